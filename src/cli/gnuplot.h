// Drawing with gnuplot (Debian package gnuplot-nox; scripts/install_deps.sh
// installs it), shared by the commands that write plots (`inspect --plot`,
// `pareto`): finding the executable, choosing the PNG terminal, quoting strings
// for a script, and running a script whose images appear only once complete.
//
// A script made for run_gnuplot_script starts with gnuplot_prologue() and opens
// each image with gnuplot_set_output(path): run here, gnuplot writes `path.tmp`
// and the images are renamed to `path` once gnuplot has succeeded; run by hand
// (`gnuplot script.gp`, to redraw or restyle), it writes `path` directly.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace lowbit::cli {

// The gnuplot executable on PATH; an error saying how to install it when absent.
Expected<std::string> find_gnuplot();

// Runs `args` (args[0] a path, not looked up on PATH) and returns its exit status,
// -1 when it could not start or did not exit normally; its output goes to
// /dev/null when quiet.
int run_program(const std::vector<std::string>& args, bool quiet);

// "pngcairo" when `gnuplot` has it, else "png"; an error when it has neither.
Expected<std::string> png_terminal(const std::string& gnuplot);

// `text` as a gnuplot single-quoted string: '' stands for one quote, a backslash
// is itself, control characters (a newline would end the command) become spaces.
std::string gnuplot_quoted(const std::string& text);

// The first lines of a script for run_gnuplot_script.
std::string gnuplot_prologue();

// `set output` for the image `path` (its temporary name when run by run_gnuplot_script).
std::string gnuplot_set_output(const std::string& path);

// Runs the script file `script` with `gnuplot`, then renames each image of
// `images` from its temporary name. On failure no image's temporary file is
// left behind; the error names the script or the image.
Status run_gnuplot_script(const std::string& gnuplot, const std::string& script,
                          const std::vector<std::string>& images);

}  // namespace lowbit::cli
