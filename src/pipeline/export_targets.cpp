// The table of export targets (export.h) and the checks they share.
#include <unistd.h>

#include <filesystem>

#include "pipeline/export.h"
#include "pipeline/export_gguf.h"
#include "pipeline/hf_export.h"

namespace lowbit {

const std::vector<ExportTarget>& export_targets() {
  static const std::vector<ExportTarget> targets = {
      {"gguf", ExportOutput::kFile,
       "GGUF for llama.cpp (architecture llama/qwen2): llama.cpp block types written verbatim, exact "
       "conversions where a GGUF type holds the values, the rest requantized into --type",
       &check_gguf_export_options, &export_gguf},
      {"safetensors", ExportOutput::kFolder,
       "Hugging Face folder (config.json, model.safetensors, tokenizer files) of BF16/F16/F32 weights "
       "(--type, default bf16), e.g. of a rotated or smoothed FP model",
       &check_hf_export_options, &export_safetensors_target},
      {"compressed-tensors", ExportOutput::kFolder,
       "Hugging Face folder for vLLM: quantized linears as compressed-tensors (pack-quantized INT2/4/8, "
       "float-quantized FP8, nvfp4-pack-quantized), the rest dense in --type (default bf16)",
       &check_hf_export_options, &export_compressed_tensors_target},
  };
  return targets;
}

Expected<const ExportTarget*> find_export_target(const std::string& name) {
  std::string known;
  for (const ExportTarget& t : export_targets()) {
    if (name == t.name) return &t;
    known += (known.empty() ? "" : ", ") + std::string(t.name);
  }
  return make_error("--to: unknown export target '{}' (known: {})", name, known);
}

Status check_export_paths(const ExportTarget& target, const ExportOptions& o) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (o.model_path.empty()) return make_error("export: MODEL is required");
  if (!fs::exists(o.model_path, ec)) return make_error("{}: no such file or folder", o.model_path);
  if (o.output_path.empty()) return make_error("export: -o OUT is required");
  const fs::path out(o.output_path);
  const fs::path parent = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  if (!fs::is_directory(parent, ec)) {
    return make_error("-o {}: folder {} does not exist", o.output_path, parent.string());
  }
  if (access(parent.c_str(), W_OK | X_OK) != 0) {
    return make_error("-o {}: folder {} is not writable", o.output_path, parent.string());
  }
  if (!fs::exists(out, ec)) return Status::ok_status();
  if (fs::equivalent(out, o.model_path, ec)) {
    return make_error("-o {}: is the model being exported; choose another output", o.output_path);
  }
  const bool is_dir = fs::is_directory(out, ec);
  if (target.output == ExportOutput::kFile && is_dir) {
    return make_error("-o {}: is a folder; --to {} writes a file", o.output_path, target.name);
  }
  if (target.output == ExportOutput::kFolder && !is_dir) {
    return make_error("-o {}: is a file; --to {} writes a folder", o.output_path, target.name);
  }
  if (!o.force) return make_error("-o {}: already exists (pass --force to replace it)", o.output_path);
  return Status::ok_status();
}

Expected<ExportReport> run_export(const ExportTarget& target, const ExportOptions& options) {
  LB_RETURN_IF_ERROR(check_export_paths(target, options));
  LB_RETURN_IF_ERROR(target.check(options));
  return target.run(options);
}

nlohmann::json export_report_json(const ExportReport& report, const std::string& model_path,
                                  const ExportTarget& target) {
  nlohmann::json j = report.details;
  j["model"] = model_path;
  j["to"] = target.name;
  j["output"] = report.output_path;
  j["output_bytes"] = report.output_bytes;
  j["tensors"] = report.tensors;
  j["converted_exactly"] = report.converted_exactly;
  j["requantized"] = report.requantized;
  return j;
}

}  // namespace lowbit
