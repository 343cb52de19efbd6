// lowbit: quantize, evaluate and run Llama-family models on the CPU.
#include <malloc.h>

#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "core/interrupt_cleanup.h"

int main(int argc, char** argv) {
  // Prompt buffers (quantized activations, scores, FFN rows: megabytes each) are
  // allocated per call; keep freed memory in the heap instead of returning it
  // to the OS, so reusing it costs no page faults (measured on a 512-token
  // TinyLlama W8A8 prompt: page faults were 4 % of the time).
  mallopt(M_MMAP_THRESHOLD, 16 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  lowbit::install_interrupt_cleanup();  // an interrupted run leaves no OUT.tmp behind
  CLI::App app{"lowbit: low-bit quantization toolkit for Llama-family language models"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  lowbit::cli::CommandRunner runner;
  lowbit::cli::register_info(app, runner);
  lowbit::cli::register_generate(app, runner);
  lowbit::cli::register_ppl(app, runner);
  lowbit::cli::register_bench(app, runner);
  lowbit::cli::register_formats(app, runner);
  lowbit::cli::register_quantize(app, runner);
  lowbit::cli::register_inspect(app, runner);
  lowbit::cli::register_export(app, runner);
  lowbit::cli::register_pareto(app, runner);
  lowbit::cli::register_restore(app, runner);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --help-all print the help and exit 0 as CLI11 does; every other
    // parse error (unknown flag, out-of-range value, missing file) is a user error
    // like any other: one line, exit code 1.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::string message = e.what();
    for (char& c : message) {
      if (c == '\n') c = ' ';
    }
    while (!message.empty() && message.back() == ' ') message.pop_back();
    std::fprintf(stderr, "lowbit: error: %s (see --help)\n", message.c_str());
    return 1;
  }
  if (!runner.run) return 0;
  const lowbit::Status status = runner.run();
  if (!status.ok()) {
    std::fprintf(stderr, "lowbit: error: %s\n", status.message().c_str());
    return 1;
  }
  return 0;
}
