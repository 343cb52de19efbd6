// lowbit.quantize_model / lowbit.export / lowbit.recipes: the pipelines behind
// `lowbit quantize --recipe` (pipeline/quantize_pipeline.h) and `lowbit export`
// (pipeline/export.h), with the options the CLI flags set. Both return the
// dict the CLI writes as its --json report.
#include <pybind11/stl.h>

#include <cstdio>
#include <optional>
#include <string>

#include "cli/common.h"
#include "pipeline/export.h"
#include "pipeline/quantize_pipeline.h"
#include "pipeline/recipe.h"
#include "python/bindings.h"
#include "python/errors.h"
#include "io/untrusted_json.h"

namespace py = pybind11;

namespace lowbit::python {

py::object to_python(const nlohmann::json& j) { return py::module_::import("json").attr("loads")(dump_json(j)); }

namespace {


// The same options `lowbit quantize MODEL --recipe R -o OUT` sets (cli/cmd_quantize.cpp),
// without its default calibration file: a data-aware recipe needs `calib`.
py::object quantize_model(const std::string& path, const std::string& recipe_name, const std::string& out,
                          const std::optional<std::string>& calib, int calib_samples, int calib_len, uint64_t seed,
                          const std::string& calib_bos, const std::string& hessian, int threads,
                          const std::optional<std::string>& tokenizer, bool progress, bool verbose,
                          const std::string& calib_arith) {
  if (calib_bos != "auto" && calib_bos != "none" && calib_bos != "first" && calib_bos != "document") {
    throw py::value_error("calib_bos='" + calib_bos + "': expected 'auto', 'none', 'first' or 'document'");
  }
  if (calib_arith != "fp32" && calib_arith != "bf16") {
    throw py::value_error("calib_arith='" + calib_arith + "': expected fp32 or bf16");
  }
  const bool bf16 = calib_arith == "bf16";
  if (bf16 ? hessian != "fp64" && hessian != "bf16" : hessian != "fp64" && hessian != "fp32") {
    throw py::value_error("hessian='" + hessian + "': expected " + (bf16 ? "bf16 under calib_arith='bf16'" : "fp64 or fp32"));
  }
  if (threads < 1 || threads > 256) throw py::value_error(fmt::format("threads={}: expected 1..256", threads));
  if (calib_samples < 1 || calib_len < 0) throw py::value_error("calib_samples must be >= 1 and calib_len >= 0");
  PipelineOptions o;
  o.model_path = path;
  o.load.tokenizer_path = tokenizer.value_or("");
  o.output_path = out;
  o.calib_path = calib.value_or("");
  o.calibration.n_samples = calib_samples;
  o.calibration.seq_len = calib_len;
  o.calibration.seed = seed;
  o.auto_bos = calib_bos == "auto";
  if (calib_bos == "first") o.calibration.bos = CalibrationBos::kFirstToken;
  if (calib_bos == "document") o.calibration.bos = CalibrationBos::kDocumentStart;
  o.hessian = bf16 ? HessianPrecision::kBf16 : hessian == "fp32" ? HessianPrecision::kFp32 : HessianPrecision::kFp64;
  o.arithmetic = bf16 ? CalibArithmetic::kBf16 : CalibArithmetic::kFp32;
  o.threads = threads;
  o.progress = progress;
  o.verbose = verbose;
  o.checkpoint = false;  // no resume from Python (yet): checkpoints would cost without use
  const Recipe recipe = value_or_throw(load_recipe(recipe_name));
  Expected<QuantizeReport> r = [&] {
    py::gil_scoped_release release;
    cli::configure_threads(threads);
    return quantize_model(recipe, o);
  }();
  nlohmann::json report = report_json(value_or_throw(std::move(r)));
  report["model"] = path;
  report["recipe"] = recipe.name;
  report["recipe_json"] = recipe.json;
  report["threads"] = threads;
  return to_python(report);
}

// `lowbit export MODEL --to TARGET -o OUT [--type T] [--exact] [--force]` (cli/cmd_export.cpp).
py::object export_model(const std::string& path, const std::string& out, const std::string& to,
                        const std::optional<std::string>& type, bool exact, bool force,
                        const std::optional<std::string>& tokenizer, bool verbose) {
  const ExportTarget* target = value_or_throw(find_export_target(to));
  ExportOptions o;
  o.model_path = path;
  o.output_path = out;
  o.type = type.value_or("");
  o.exact = exact;
  o.force = force;
  o.tokenizer_path = tokenizer.value_or("");
  o.verbose = verbose;
  o.log = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  Expected<ExportReport> r = [&] {
    py::gil_scoped_release release;
    return run_export(*target, o);
  }();
  const ExportReport e = value_or_throw(std::move(r));
  const nlohmann::json report = export_report_json(e, path, *target);
  return to_python(report);
}

}  // namespace

void register_pipeline(py::module_& m) {
  m.def(
      "recipes",
      [] {
        std::vector<std::string> names;
        for (const BuiltinRecipe& b : builtin_recipes()) names.push_back(b.name);
        return names;
      },
      "Names of the built-in recipes (`lowbit quantize --list-recipes`).");
  m.def("quantize_model", &quantize_model, py::arg("path"), py::arg("recipe"), py::arg("out"),
        py::arg("calib") = py::none(), py::arg("calib_samples") = 128, py::arg("calib_len") = 0,
        py::arg("seed") = 0, py::arg("calib_bos") = "auto", py::arg("hessian") = "fp64", py::arg("threads") = 2,
        py::arg("tokenizer") = py::none(), py::arg("progress") = false, py::arg("verbose") = false,
        py::arg("calib_arith") = "fp32",
        "Quantize a model with a recipe (built-in name or JSON file) into a lowbit file, as `lowbit quantize` "
        "does (calib_arith='bf16' is --calib-arith bf16); returns its JSON report as a dict.");
  m.def("export", &export_model, py::arg("path"), py::arg("out"), py::arg("to") = "gguf",
        py::arg("type") = py::none(), py::arg("exact") = false, py::arg("force") = false,
        py::arg("tokenizer") = py::none(), py::arg("verbose") = false,
        "Write a model for another runtime (to='gguf', ...), as `lowbit export` does; returns its JSON report.");
}

}  // namespace lowbit::python
