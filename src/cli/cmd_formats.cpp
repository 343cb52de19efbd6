// `lowbit formats [--list]`                 every format with bits per element and a description
// `lowbit formats --table NAME [--json F]`  every code of an element format of <= 8 bits
// `lowbit formats --eval [--input gaussian|laplace|student-t|outlier] [--rows R --cols C --seed S]
//                 [--search minmax|mse] [--formats a,b] [--json F]`
//     quantize a seeded random matrix with each scaled format: bits, MSE, SNR, max error.
#include <cmath>
#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "formats/block_format.h"
#include "formats/format_eval.h"

namespace lowbit::cli {
namespace {

struct FormatsFlags {
  ProgressFlags progress;  // accepted like every command's; formats has no long step to show
  bool list = false;
  std::string table;
  bool eval = false;
  std::string input = "gaussian";
  int64_t rows = kQualityRows;
  int64_t cols = kQualityCols;
  uint64_t seed = kQualitySeed;
  std::string search = "minmax";
  std::string formats;  // comma-separated subset for --eval
  std::string json_path;
  bool verbose = false;
};

// Shape of the matrix `--list` quotes bits per element for.
constexpr int64_t kListRows = 4096;
constexpr int64_t kListCols = 4096;

// A float for JSON: a number, or "nan" / "inf" / "-inf"; -0.0 stays -0.0.
nlohmann::json json_value(float v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return static_cast<double>(v);
}

std::string scale_summary(const BlockFormat& f) {
  const BlockFormatSpec& s = f.spec;
  switch (s.granularity) {
    case ScaleGranularity::kNone: return "none";
    case ScaleGranularity::kTensor: return fmt::format("{} per tensor", scale_type_name(s.scale_type));
    case ScaleGranularity::kRow:
      return fmt::format("{}{} per row", scale_type_name(s.scale_type), s.asymmetric ? "+min" : "");
    case ScaleGranularity::kGroup:
      return fmt::format("{}{}{} /{}", scale_type_name(s.scale_type), s.asymmetric ? "+min" : "",
                         s.tensor_scale ? "+fp32 tensor" : "", s.group_cols);
    case ScaleGranularity::kBlock2D:
      return fmt::format("{} /{}x{}", scale_type_name(s.scale_type), s.group_rows, s.group_cols);
  }
  return "?";
}

Status run_list() {
  std::printf("Scaled formats (bits/elem on a %lldx%lld matrix; SNR on N(0,1) %lldx%lld, seed %llu):\n",
              static_cast<long long>(kListRows), static_cast<long long>(kListCols),
              static_cast<long long>(kQualityRows), static_cast<long long>(kQualityCols),
              static_cast<unsigned long long>(kQualitySeed));
  std::printf("  %-15s %9s  %-9s %-22s %7s  %s\n", "name", "bits/elem", "element", "scale", "SNR dB", "description");
  for (const BlockFormat& f : block_formats()) {
    std::printf("  %-15s %9.4f  %-9s %-22s %7.2f  %s\n", f.name().c_str(), f.bits_per_element(kListRows, kListCols),
                f.element.name.c_str(), scale_summary(f).c_str(), f.spec.snr_gaussian_db, f.spec.description.c_str());
  }
  std::printf("\nElement formats (for --table when at most 8 bits):\n");
  std::printf("  %-11s %4s  %12s  %s\n", "name", "bits", "max", "description");
  for (const ElementFormat& e : element_formats()) {
    std::printf("  %-11s %4d  %12g  %s\n", e.name.c_str(), e.bits, e.max_finite, e.description.c_str());
  }
  return Status::ok_status();
}

Status run_table(const FormatsFlags& f) {
  LB_ASSIGN_OR_RETURN(const ElementFormat* e, find_element_format(f.table));
  if (e->bits > 8) {
    return make_error("--table {}: the format has {} bits ({} codes); --table prints formats of at most 8 bits",
                      f.table, e->bits, num_codes(*e));
  }
  const std::vector<float> values = decode_table(*e);
  std::printf("%s: %d bits, %u codes; %s\n", e->name.c_str(), e->bits, num_codes(*e), e->description.c_str());
  nlohmann::json codes = nlohmann::json::array();
  for (uint32_t c = 0; c < values.size(); ++c) {
    std::string binary;
    for (int b = e->bits - 1; b >= 0; --b) binary += ((c >> b) & 1u) ? '1' : '0';
    std::printf("  %3u  0x%02x  0b%s  %s%s\n", c, c, binary.c_str(), fmt::format("{}", values[c]).c_str(),
                e->codec->is_reserved(c) ? "  (reserved: never produced by encode)" : "");
    codes.push_back({{"code", c}, {"value", json_value(values[c])}});
  }
  return write_json_report(f.json_path, nlohmann::json{{"format", e->name}, {"codes", codes}});
}

Expected<std::vector<const BlockFormat*>> selected_formats(const std::string& list) {
  std::vector<const BlockFormat*> out;
  if (list.empty()) {
    for (const BlockFormat& f : block_formats()) out.push_back(&f);
    return out;
  }
  std::stringstream ss(list);
  std::string name;
  while (std::getline(ss, name, ',')) {
    auto f = find_block_format(name);
    if (!f.ok()) return f.status().with_context("--formats");
    out.push_back(*f);
  }
  return out;
}

Status run_eval(const FormatsFlags& f, Isa isa) {
  LB_ASSIGN_OR_RETURN(SyntheticInput input, parse_synthetic_input(f.input));
  if (f.rows * f.cols > (int64_t{1} << 28)) {
    return make_error("--rows {} x --cols {}: at most 2^28 elements", f.rows, f.cols);
  }
  LB_ASSIGN_OR_RETURN(std::vector<const BlockFormat*> formats, selected_formats(f.formats));
  QuantizeOptions options;
  if (f.search == "mse") options.search = ScaleSearch::kMseClip;
  const std::vector<float> x = synthetic_matrix(input, f.rows, f.cols, f.seed);  // [rows, cols]
  if (f.verbose) {
    std::printf("input %s [%lld, %lld] seed %llu, scale search %s, isa %s\n", synthetic_input_name(input),
                static_cast<long long>(f.rows), static_cast<long long>(f.cols),
                static_cast<unsigned long long>(f.seed), f.search.c_str(), isa_name(isa));
  }
  std::printf("%-15s %9s  %11s  %8s  %10s\n", "format", "bits/elem", "MSE", "SNR dB", "max|err|");
  nlohmann::json results = nlohmann::json::array();
  for (const BlockFormat* format : formats) {
    LB_ASSIGN_OR_RETURN(FormatEval e, evaluate_format(*format, x.data(), f.rows, f.cols, options, isa));
    std::printf("%-15s %9.4f  %11.4e  %8.3f  %10.4g\n", e.name.c_str(), e.bits_per_element, e.error.mse,
                e.error.snr_db, e.error.max_abs);
    results.push_back({{"format", e.name},
                       {"bits_per_element", e.bits_per_element},
                       {"mse", e.error.mse},
                       {"snr_db", e.error.snr_db},
                       {"max_abs_error", e.error.max_abs}});
  }
  nlohmann::json report = {{"input", synthetic_input_name(input)},
                           {"rows", f.rows},
                           {"cols", f.cols},
                           {"seed", f.seed},
                           {"search", f.search},
                           {"isa", isa_name(isa)},
                           {"results", results}};
  return write_json_report(f.json_path, report);
}

Status run_formats(const FormatsFlags& f) {
  LB_RETURN_IF_ERROR(check_output_file("--json", f.json_path));
  LB_ASSIGN_OR_RETURN(Isa isa, resolve_isa(lowbit_isa_env(), detect_cpu_features()));
  if (f.verbose) {
    std::printf("cpu: %s; kernels: %s%s\n", describe_cpu_features(detect_cpu_features()).c_str(), isa_name(isa),
                lowbit_isa_env().empty() ? "" : " (LOWBIT_ISA)");
  }
  if (!f.table.empty()) return run_table(f);
  if (f.eval) return run_eval(f, isa);
  return run_list();
}

}  // namespace

void register_formats(CLI::App& root, CommandRunner& runner) {
  auto flags = std::make_shared<FormatsFlags>();
  CLI::App* app = root.add_subcommand("formats", "List number formats, print an element format's codes, or compare "
                                                 "scaled formats on random data");
  CLI::Option* list = app->add_flag("--list", flags->list, "List every format with bits per element (the default)");
  CLI::Option* table = app->add_option("--table", flags->table, "Print every code of an element format of <= 8 bits");
  CLI::Option* eval = app->add_flag("--eval", flags->eval, "Quantize a seeded random matrix with each scaled format");
  list->excludes(table)->excludes(eval);
  table->excludes(eval);
  app->add_option("--input", flags->input, "Distribution for --eval: gaussian, laplace, student-t or outlier")
      ->check(CLI::IsMember({"gaussian", "laplace", "student-t", "outlier"}))
      ->capture_default_str()
      ->needs(eval);
  app->add_option("--rows", flags->rows, "Rows of the --eval matrix")->check(CLI::Range(1, 1 << 20))
      ->capture_default_str()->needs(eval);
  app->add_option("--cols", flags->cols, "Columns of the --eval matrix")->check(CLI::Range(1, 1 << 24))
      ->capture_default_str()->needs(eval);
  app->add_option("--seed", flags->seed, "Seed of the --eval matrix")->capture_default_str()->needs(eval);
  app->add_option("--search", flags->search, "Scale search for --eval: minmax or mse (clip-ratio grid)")
      ->check(CLI::IsMember({"minmax", "mse"}))
      ->capture_default_str()
      ->needs(eval);
  app->add_option("--formats", flags->formats, "Comma-separated scaled formats for --eval (default: all)")->needs(eval);
  app->add_option("--json", flags->json_path, "Write a JSON report to this file (--table, --eval)");
  app->add_flag("-v,--verbose", flags->verbose, "Print the CPU features, the kernels chosen and the configuration");
  add_progress_flags(*app, flags->progress);
  app->callback([flags, &runner] { runner.run = [flags] { return run_formats(*flags); }; });
}

}  // namespace lowbit::cli
