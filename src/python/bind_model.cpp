// lowbit.load_model / Model / perplexity: a model loaded and run as the CLI runs
// it (cli/common.h load_runnable: packed quantized linears, activation
// quantizers, online rotations), logits from LlamaModel::forward, perplexity and
// KL divergence from eval/perplexity.h with the KV cache `lowbit ppl` would use
// (cli/kv_cli.h resolve_kv: `kv`, else the file's stored lowbit.kv, else FP32).
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/common.h"
#include "cli/kv_cli.h"
#include "cli/ppl_report.h"
#include "eval/perplexity.h"
#include "python/bindings.h"
#include "python/errors.h"

namespace py = pybind11;

namespace lowbit::python {
namespace {

struct PyModel {
  std::string path;
  int threads = 2;
  std::unique_ptr<cli::RunnableModel> m;

  const Tokenizer& tokenizer() const { return *m->loaded.tokenizer; }
  const ModelConfig& config() const { return m->model.config(); }
};

void check_threads(int threads) {
  if (threads < 1 || threads > 256) throw py::value_error(fmt::format("threads={}: expected 1..256", threads));
}

PyModel load(const std::string& path, const std::optional<std::string>& tokenizer, int threads, bool simulate_act) {
  check_threads(threads);
  cli::ActRuntime act;
  act.simulate = simulate_act;
  Expected<cli::RunnableModel> loaded = [&] {
    py::gil_scoped_release release;
    return cli::load_runnable(path, tokenizer.value_or(""), nullptr, act);
  }();
  return PyModel{path, threads, std::make_unique<cli::RunnableModel>(value_or_throw(std::move(loaded)))};
}

py::dict config_dict(const ModelConfig& c) {
  py::dict d;
  d["architecture"] = c.architecture;
  d["n_layers"] = c.n_layers;
  d["dim"] = c.dim;
  d["n_heads"] = c.n_heads;
  d["n_kv_heads"] = c.n_kv_heads;
  d["head_dim"] = c.head_dim;
  d["ffn_dim"] = c.ffn_dim;
  d["vocab_size"] = c.vocab_size;
  d["max_seq_len"] = c.max_seq_len;
  d["norm_eps"] = c.norm_eps;
  d["rope_theta"] = c.rope_theta;
  d["rope_layout"] = rope_layout_name(c.rope_layout);
  d["tied_embeddings"] = c.tied_embeddings;
  d["qkv_bias"] = c.qkv_bias;
  return d;
}

std::vector<int32_t> tokenize(const PyModel& model, const std::string& text, bool bos) {
  std::vector<int32_t> ids;
  const Tokenizer& tok = model.tokenizer();
  if (bos && tok.bos_id() >= 0) ids.push_back(tok.bos_id());
  const std::vector<int32_t> body = tok.encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

py::str detokenize(const PyModel& model, const std::vector<int32_t>& ids) {
  const int32_t vocab = model.tokenizer().vocab_size();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      throw py::value_error(fmt::format("token id {} at index {} is outside the vocabulary [0, {})", ids[i], i, vocab));
    }
  }
  const std::string bytes = model.tokenizer().decode(ids);
  // A token sequence may end inside a UTF-8 character: undecodable bytes become U+FFFD.
  PyObject* s = PyUnicode_DecodeUTF8(bytes.data(), static_cast<Py_ssize_t>(bytes.size()), "replace");
  if (s == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(s);
}

// [n_tokens, vocab]: the logits after each token, one forward pass from position 0 (FP32 KV cache).
py::array_t<float> logits(const PyModel& model, const std::vector<int32_t>& ids) {
  if (ids.empty()) throw py::value_error("logits: no tokens");
  const int vocab = model.config().vocab_size;
  const int n = static_cast<int>(ids.size());
  py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(vocab)});
  float* y = out.mutable_data();
  Status s;
  {
    py::gil_scoped_release release;
    cli::configure_threads(model.threads);
    ThreadPool pool(model.threads);
    std::unique_ptr<KvCache> cache = model.m->model.make_fp32_cache(n);
    s = model.m->model.forward(ids.data(), n, 0, *cache, y, pool);
  }
  throw_if_error(s.with_context(model.path));
  return out;
}

// The same steps as `lowbit ppl` (cli/cmd_ppl.cpp); the result holds its JSON report's numbers.
py::object perplexity(const PyModel& model, const std::string& text, int ctx, int chunks, const std::string& protocol,
                    int batch, const PyModel* base, const std::optional<std::string>& kv) {
  if (ctx < 2) throw py::value_error(fmt::format("ctx={}: expected at least 2", ctx));
  if (chunks < 0 || batch < 0) throw py::value_error("chunks and batch must be >= 0");
  const PplProtocol p = value_or_throw(parse_ppl_protocol(protocol));
  const Tokenizer& tok = model.tokenizer();
  Expected<PplResult> result = Status::error("not run");
  size_t text_tokens = 0;
  {
    py::gil_scoped_release release;
    cli::configure_threads(model.threads);
    const std::vector<int32_t> tokens = tok.encode(text);
    text_tokens = tokens.size();
    PplOptions options;
    options.ctx = ctx;
    options.protocol = p;
    options.max_chunks = chunks;
    options.batch = batch;
    options.add_bos = tok.add_bos() && tok.bos_id() >= 0;
    options.bos_id = tok.bos_id();
    ThreadPool pool(model.threads);
    cli::KvFlags kv_flags;
    kv_flags.spec = kv.value_or("");
    Expected<cli::ResolvedKv> resolved = cli::resolve_kv(kv_flags, model.path, *model.m, pool, false);
    if (!resolved.ok()) {
      result = resolved.status();
    } else {
      options.kv_cache = resolved->factory;
      result = evaluate_perplexity(model.m->model, tokens, options, pool, base != nullptr ? &base->m->model : nullptr);
    }
  }
  const PplResult r = value_or_throw(std::move(result));
  nlohmann::json report = cli::ppl_metrics_json(r);
  report["protocol"] = ppl_protocol_name(p);
  report["ctx"] = ctx;
  report["text_tokens"] = text_tokens;
  report["kv_bytes_per_token"] = r.kv_bytes_per_token;
  return to_python(report);
}

}  // namespace

void register_model(py::module_& m) {
  py::class_<PyModel>(m, "Model", "A loaded model (GGUF, Hugging Face folder, llama2.c .bin or lowbit file).")
      .def_readonly("path", &PyModel::path)
      .def_property(
          "threads", [](const PyModel& model) { return model.threads; },
          [](PyModel& model, int threads) {
            check_threads(threads);
            model.threads = threads;
          },
          "Threads of logits() and perplexity()")
      .def_property_readonly("config", [](const PyModel& model) { return config_dict(model.config()); })
      .def_property_readonly("vocab_size", [](const PyModel& model) { return model.config().vocab_size; })
      .def_property_readonly("bos_id", [](const PyModel& model) { return model.tokenizer().bos_id(); })
      .def_property_readonly("eos_id", [](const PyModel& model) { return model.tokenizer().eos_id(); })
      .def_property_readonly("add_bos", [](const PyModel& model) { return model.tokenizer().add_bos(); },
                             "Whether prompts start with BOS for this model")
      .def("tokenize", &tokenize, py::arg("text"), py::arg("bos") = false,
           "Token ids of text (special-token strings matched), BOS first when bos=True.")
      .def("detokenize", &detokenize, py::arg("ids"), "The text of token ids.")
      .def("logits", &logits, py::arg("token_ids"),
           "float32 [n_tokens, vocab]: the logits after each token, one pass from position 0.")
      .def("__repr__", [](const PyModel& model) {
        const ModelConfig& c = model.config();
        return fmt::format("<lowbit.Model {}: {} layers, dim {}, vocab {}>", model.path, c.n_layers, c.dim,
                           c.vocab_size);
      });

  m.def("load_model", &load, py::arg("path"), py::arg("tokenizer") = py::none(), py::arg("threads") = 2,
        py::arg("simulate_act") = false,
        "Load a model as `lowbit ppl` does; tokenizer: a tokenizer file for a llama2.c .bin.");
  m.def("perplexity", &perplexity, py::arg("model"), py::arg("text"), py::arg("ctx") = 512, py::arg("chunks") = 0,
        py::arg("protocol") = "llamacpp", py::arg("batch") = 0, py::arg("base") = py::none(),
        py::arg("kv") = py::none(),
        "Perplexity of text as `lowbit ppl` computes it; with base, KL divergence to the base model. "
        "Returns a dict (ppl, ppl_stderr, nll, ..., and kld_mean, top1_agree, ... with base).");
}

}  // namespace lowbit::python
