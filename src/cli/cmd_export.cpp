// `lowbit export MODEL --to TARGET -o OUT [--type T] [--exact] [--force] [--tokenizer F] [--json F] [-v]`
// The targets and what each writes are the table of pipeline/export.h; the
// paths and options are checked before any work.
#include <cstdio>

#include "cli/commands.h"
#include "pipeline/export.h"

namespace lowbit::cli {
namespace {

struct ExportFlags {
  std::string model_path;
  std::string target;
  std::string output_path;
  std::string type;
  bool exact = false;
  bool force = false;
  std::string tokenizer_path;
  std::string json_path;
  bool verbose = false;
  ProgressFlags progress;
};

std::string targets_help() {
  std::string help = "Export target:";
  for (const ExportTarget& t : export_targets()) help += fmt::format("\n  {}: {}", t.name, t.description);
  return help;
}

Status run_export_command(const ExportFlags& f) {
  LB_RETURN_IF_ERROR(check_output_file("--json", f.json_path));
  LB_ASSIGN_OR_RETURN(const ExportTarget* target, find_export_target(f.target));
  ExportOptions o;
  o.model_path = f.model_path;
  o.output_path = f.output_path;
  o.type = f.type;
  o.exact = f.exact;
  o.force = f.force;
  o.tokenizer_path = f.tokenizer_path;
  o.verbose = f.verbose;
  o.progress = show_progress(f.progress);
  o.log = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  if (f.verbose) {
    std::fprintf(stderr, "export: %s -> %s (%s), type %s%s%s\n", f.model_path.c_str(), f.output_path.c_str(),
                 target->name, f.type.empty() ? "(not given)" : f.type.c_str(), f.exact ? ", exact" : "",
                 f.force ? ", force" : "");
  }
  LB_ASSIGN_OR_RETURN(ExportReport r, run_export(*target, o));
  std::printf("wrote %s: %.2f MB, %llu tensors (%llu carried exactly, %llu requantized)\n", r.output_path.c_str(),
              static_cast<double>(r.output_bytes) / 1e6, static_cast<unsigned long long>(r.tensors),
              static_cast<unsigned long long>(r.converted_exactly), static_cast<unsigned long long>(r.requantized));
  const nlohmann::json report = export_report_json(r, f.model_path, *target);
  return write_json_report(f.json_path, report);
}

}  // namespace

void register_export(CLI::App& root, CommandRunner& runner) {
  auto flags = std::make_shared<ExportFlags>();
  CLI::App* app = root.add_subcommand("export", "Write a model in a format another runtime loads (llama.cpp GGUF, ...)");
  app->add_option("model", flags->model_path, "Model: lowbit file, .gguf file, Hugging Face folder or llama2.c .bin")
      ->required();
  std::vector<std::string> names;
  for (const ExportTarget& t : export_targets()) names.push_back(t.name);
  app->add_option("--to", flags->target, targets_help())->required()->check(CLI::IsMember(names));
  app->add_option("-o,--output", flags->output_path, "Output (written to a temporary name, then renamed)")->required();
  app->add_option("--type,--dtype", flags->type,
                  "Storage type for tensors that must be converted (gguf: f32, f16, bf16 or a llama.cpp type "
                  "such as q4_K; an FP model's matrices default to f32; safetensors / compressed-tensors: the "
                  "dense tensors' bf16, f16 or f32, default bf16)");
  app->add_flag("--exact", flags->exact, "Refuse any tensor that cannot be written without changing a value");
  app->add_flag("--force", flags->force, "Replace an existing output");
  app->add_option("--tokenizer", flags->tokenizer_path,
                  "Tokenizer for a model without one the target can write (gguf: a .gguf file whose "
                  "tokenizer.* keys are copied, for Hugging Face and llama2.c sources; safetensors / "
                  "compressed-tensors: a tokenizer.json whose folder's tokenizer files are copied)")
      ->check(CLI::ExistingFile);
  app->add_option("--json", flags->json_path, "Write a JSON report (per-tensor type and error)");
  app->add_flag("-v,--verbose", flags->verbose, "Print the resolved configuration and one line per tensor");
  add_progress_flags(*app, flags->progress);
  app->callback([flags, &runner] { runner.run = [flags] { return run_export_command(*flags); }; });
}

}  // namespace lowbit::cli
