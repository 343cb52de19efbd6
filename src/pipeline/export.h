// `lowbit export`: writes a model lowbit reads (a lowbit model file, GGUF, a
// Hugging Face folder, a llama2.c .bin) in a format another runtime loads. Each
// format is one row of the target table (export_targets()); the command and its
// checks are shared, the rows differ only in their option check and their writer.
//
// Every target writes through a temporary name and renames when complete, and
// refuses what it cannot represent with a message naming the tensor, format or
// transform (never silently drops it).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/model_source.h"

namespace lowbit {

struct ExportOptions {
  std::string model_path;   // MODEL
  std::string output_path;  // -o: a file or a folder, per the target's ExportOutput
  std::string type;         // --type: the target's storage type for tensors it must convert; "" = not given
  bool exact = false;       // --exact: refuse any tensor that cannot be carried without changing a value
  bool force = false;       // --force: replace an existing output
  // --tokenizer: where a target takes the tokenizer from when the model has none
  // it can write (gguf: a GGUF file whose tokenizer.* keys are copied).
  std::string tokenizer_path;
  bool verbose = false;     // one line per tensor
  bool progress = false;    // a progress line on stderr (over tensor elements / bytes)
  // Receives each warning and verbose line (the CLI prints them on stderr); null = dropped.
  std::function<void(const std::string&)> log;
};

struct ExportReport {
  std::string output_path;
  uint64_t output_bytes = 0;
  uint64_t tensors = 0;
  uint64_t converted_exactly = 0;  // carried bit for bit (verbatim or a lossless change of layout)
  uint64_t requantized = 0;        // requantized into --type, each with a warning
  nlohmann::json details = nlohmann::json::object();  // per-target report (--json)
};

// What the output path is.
enum class ExportOutput { kFile, kFolder };

struct ExportTarget {
  const char* name;  // --to NAME
  ExportOutput output;
  const char* description;  // one line for --help
  // Target-specific checks of the options (e.g. --type names) before any work.
  Status (*check)(const ExportOptions& options);
  Expected<ExportReport> (*run)(const ExportOptions& options);
};

// The table of targets, in --help order.
const std::vector<ExportTarget>& export_targets();
// Lookup by --to name; the error lists the known names.
Expected<const ExportTarget*> find_export_target(const std::string& name);

// The checks every target shares, before any work: the model path exists; the
// output is given, is not the model itself, its parent folder exists, it is not
// a folder when the target writes a file (nor a file when it writes a folder),
// and it does not exist unless `force`.
Status check_export_paths(const ExportTarget& target, const ExportOptions& options);

// check_export_paths, the target's check, then its writer.
Expected<ExportReport> run_export(const ExportTarget& target, const ExportOptions& options);

// The --json report of an export (the CLI's and the Python package's): the
// target's details plus model, to, output, output_bytes and the tensor counts.
nlohmann::json export_report_json(const ExportReport& report, const std::string& model_path,
                                  const ExportTarget& target);

}  // namespace lowbit
