// The table and charts of `lowbit pareto`: each quantized model's size against
// its accuracy loss (KL divergence to the unquantized model, perplexity), one
// series per way of quantizing (lowbit's allocated and uniform recipes,
// llama.cpp's types), so the models on the size/accuracy front stand out.
//
// Charts are drawn by gnuplot (cli/gnuplot.h) as PNG and SVG, with the data file
// and the gnuplot script beside them so a chart can be redrawn or restyled.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "core/status.h"

namespace lowbit::cli {

// One quantized model file, measured.
struct ParetoPoint {
  std::string label;   // e.g. "q4_K_M" or "lowbit 4.50 bpw"
  std::string series;  // e.g. "lowbit allocated", "lowbit uniform", "llama.cpp"
  double size_mb = 0;  // model size, MB = 1e6 bytes
  double bpw = 0;      // bits per stored parameter
  double kld = 0;      // mean KL divergence to the unquantized model
  double kld_stderr = 0;
  double ppl = 0;
  double ppl_stderr = 0;
  double predicted_kld = NAN;  // allocator's prediction where there is one
  std::string command;         // the command that produced the file
};

// Markdown table, rows sorted by series then size:
//   | series | label | MB | bpw | KLD ± | PPL ± | predicted KLD |
// each label carrying a footnote ([^n]) to the command that produced the file
// (one footnote per distinct command), the footnotes listed below the table.
// A value that is not finite (e.g. no prediction) shows as "—".
std::string pareto_markdown(const std::vector<ParetoPoint>& points);

// Writes <prefix>_kld.{png,svg} (y = KLD, log scale) and <prefix>_ppl.{png,svg}
// (y = PPL), x = size in MB, one colour and marker per series with error bars of
// ± stderr, each series' points joined in size order (predicted KLDs dashed with
// open markers in the KLD chart), every point labelled; the data in <prefix>.dat
// and the gnuplot script in <prefix>.gp beside them. The prefix's folder is
// created when missing. PNG via pngcairo, else png; SVG via svg. Returns the
// absolute image paths (kld png, kld svg, ppl png, ppl svg).
//
// Every file is written under a temporary name and renamed; on an error no image
// and no temporary file is left (the data file and the script, once written,
// are complete and stay, to look into a gnuplot failure).
Expected<std::vector<std::string>> write_pareto_charts(const std::vector<ParetoPoint>& points,
                                                       const std::string& prefix, const std::string& gnuplot,
                                                       const std::string& title);

}  // namespace lowbit::cli
