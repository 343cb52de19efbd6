// Registration of the CLI subcommands. Each subcommand declares its flags once
// with CLI11 and, when selected, leaves the work to do in `runner.run`, so the
// library's Status reaches main() which turns it into an exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "cli/common.h"
#include "core/atomic_file_writer.h"

namespace lowbit::cli {

struct CommandRunner {
  std::function<Status()> run;
};

void register_info(CLI::App& root, CommandRunner& runner);
void register_generate(CLI::App& root, CommandRunner& runner);
void register_ppl(CLI::App& root, CommandRunner& runner);
void register_bench(CLI::App& root, CommandRunner& runner);
void register_formats(CLI::App& root, CommandRunner& runner);
void register_quantize(CLI::App& root, CommandRunner& runner);
void register_inspect(CLI::App& root, CommandRunner& runner);
void register_export(CLI::App& root, CommandRunner& runner);
void register_pareto(CLI::App& root, CommandRunner& runner);
void register_restore(CLI::App& root, CommandRunner& runner);

}  // namespace lowbit::cli
