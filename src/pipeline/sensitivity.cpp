#include "pipeline/sensitivity.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <cstdio>
#include <map>
#include <memory>
#include <random>

#include "core/blas_threads.h"
#include "core/mapped_file.h"
#include "core/progress.h"
#include "eval/bench.h"
#include "io/untrusted_json.h"
#include "pipeline/activation_stats.h"
#include "pipeline/kld_probe.h"
#include "pipeline/layer_runner.h"
#include "pipeline/linear_quantizer.h"
#include "quant/hutchinson.h"
#include "quant/quantizers.h"

namespace lowbit {
namespace {

using json = nlohmann::json;

constexpr double kSpikeFactor = 10.0;  // inspect_summary.h's suggest_mixed_precision default

struct ModeName {
  SensitivityMode mode;
  const char* name;
};
constexpr ModeName kModes[] = {{SensitivityMode::kProxy, "proxy"},
                               {SensitivityMode::kHutchinson, "hutchinson"},
                               {SensitivityMode::kMeasured, "measured"},
                               {SensitivityMode::kSpike, "spike"}};

double rms(const std::vector<float>& w) {
  double s = 0.0;
  for (float v : w) s += static_cast<double>(v) * v;
  return w.empty() ? 0.0 : std::sqrt(s / static_cast<double>(w.size()));
}

// Everything the pass learns of one tensor before the curvature is known.
struct Pending {
  TensorSensitivity t;
  std::vector<QuantizedWeight> quantized;  // [costs]: kept for the measured mode
};

class SensitivityPass {
 public:
  SensitivityPass(const SizeMenu& menu, const PipelineOptions& o, const SensitivityOptions& so)
      : menu_(menu), o_(o), so_(so), pool_(o.threads) {}

  Expected<SensitivityTable> run() {
    const auto start = std::chrono::steady_clock::now();
    LB_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> source, open_model_source(o_.model_path, o_.load));
    const ModelConfig& c = source->config();
    if (o_.calib_path.empty()) return make_error("a size budget needs calibration data (--calib FILE)");
    json calibration_json;
    LB_ASSIGN_OR_RETURN(CalibrationSet calibration, pipeline_calibration(*source, o_, false, &calibration_json));
    const int64_t n_tokens = static_cast<int64_t>(calibration.tokens.size());

    ModelWeights weights;
    LB_ASSIGN_OR_RETURN(weights.token_embedding, source->token_embedding());
    LB_ASSIGN_OR_RETURN(weights.rope_freq_factors, source->rope_freq_factors());
    LB_ASSIGN_OR_RETURN(std::vector<float> hidden, embed_tokens(weights.token_embedding, c, calibration.tokens.data(),
                                                                n_tokens));  // [n_samples, seq_len, dim]
    ProgressBar progress("sensitivity", c.n_layers + 2, o_.progress);
    LB_RETURN_IF_ERROR(embedding_costs(weights.token_embedding, c, calibration));
    progress.update(1, "token_embedding");

    LayerRunner runner(c, calibration.seq_len);
    std::vector<std::array<double, 4>> absmax;  // [layer][point]: max_j max|x_j| of the four inputs
    for (int l = 0; l < c.n_layers; ++l) {
      LB_ASSIGN_OR_RETURN(LayerWeights w, source->layer(l));
      LB_ASSIGN_OR_RETURN(DecoderBlock block, DecoderBlock::create(c, l, w, weights.rope_freq_factors));
      ActivationStats stats({.hessian = o_.hessian, .names = {}});  // every linear
      LB_RETURN_IF_ERROR(runner.run(block, hidden.data(), calibration.n_samples(), hidden.data(), pool_, &stats));
      LB_RETURN_IF_ERROR(stats.status());
      std::array<double, 4> point{};
      int p = 0;
      for (const char* leader : {"q_proj", "o_proj", "gate_proj", "down_proj"}) {
        const InputStats* s = stats.find(fmt::format("layers.{}.{}", l, leader));
        if (s == nullptr) return make_error("layers.{}.{}: no calibration statistics", l, leader);
        point[p++] = *std::max_element(s->abs_max.begin(), s->abs_max.end());
      }
      absmax.push_back(point);
      for (std::string_view suffix : DecoderBlock::kLinearSuffixes) {
        const std::string name = fmt::format("layers.{}.{}", l, suffix);
        const InputStats* s = stats.find(name);
        LB_RETURN_IF_ERROR(linear_costs(name, linear_matrix(w, suffix), s->hessian(), s->n_tokens));
      }
      fixed_bytes_ += 4ull * c.dim * 2;  // attn_norm, ffn_norm
      for (const auto* b : {&w.attn_norm_bias, &w.ffn_norm_bias}) fixed_bytes_ += 4ull * b->size();
      for (std::string_view suffix : DecoderBlock::kLinearSuffixes) fixed_bytes_ += 4ull * linear_matrix(w, suffix).bias.size();
      weights.layers.push_back(std::move(w));
      progress.update(l + 2, fmt::format("layer {}/{}", l + 1, c.n_layers));
    }
    mark_spikes(absmax);

    LB_ASSIGN_OR_RETURN(weights.output_norm, source->output_norm());
    fixed_bytes_ += 4ull * c.dim;
    if (!weights.rope_freq_factors.empty()) fixed_bytes_ += 4ull * weights.rope_freq_factors.size();
    if (!c.tied_embeddings) {
      LB_ASSIGN_OR_RETURN(weights.lm_head, source->lm_head());
      LB_ASSIGN_OR_RETURN(std::vector<double> head_h, head_input_hessian(hidden, c, weights.output_norm, o_.hessian));
      LB_RETURN_IF_ERROR(linear_costs("lm_head", weights.lm_head, head_h, n_tokens));
    }
    progress.update(c.n_layers + 2, "lm_head");
    progress.finish();
    hidden = std::vector<float>();

    // The probe windows: the first kld_windows calibration windows, cut to kld_len.
    const int n_seq = std::min(so_.kld_windows, calibration.n_samples());
    const int len = std::min(so_.kld_len, calibration.seq_len);
    std::vector<int32_t> probe_tokens;
    for (int s = 0; s < n_seq; ++s) probe_tokens.insert(probe_tokens.end(), calibration.sample(s), calibration.sample(s) + len);
    LB_ASSIGN_OR_RETURN(std::unique_ptr<KldProbe> probe,
                        KldProbe::create(c, std::move(weights), std::move(probe_tokens), n_seq, len, pool_));
    SensitivityTable table;
    table.kld_positions = static_cast<int>(probe->positions());
    switch (so_.mode) {
      case SensitivityMode::kProxy:
      case SensitivityMode::kSpike: LB_RETURN_IF_ERROR(global_curvature(*probe, table)); break;
      case SensitivityMode::kHutchinson: LB_RETURN_IF_ERROR(hutchinson(*probe)); break;
      case SensitivityMode::kMeasured: LB_RETURN_IF_ERROR(measure(*probe)); break;
    }
    table.model = o_.model_path;
    table.calibration = calibration_json;
    table.menu = menu_.name;
    table.mode = so_.mode;
    table.fixed_bytes = fixed_bytes_;
    table.params = fixed_bytes_ / 4;
    table.fp16_bytes = fixed_bytes_;
    for (Pending& p : pending_) {
      table.params += static_cast<uint64_t>(p.t.rows * p.t.cols);
      table.fp16_bytes += 2ull * static_cast<uint64_t>(p.t.rows * p.t.cols);
      table.tensors.push_back(std::move(p.t));
    }
    table.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    table.peak_rss_bytes = peak_rss_bytes();
    std::error_code ec;
    const uint64_t source_bytes = std::filesystem::is_regular_file(o_.model_path, ec)
                                      ? std::filesystem::file_size(o_.model_path, ec)
                                      : 0;  // a folder (Hugging Face): its files are read, not mapped whole
    table.memory_bound_bytes =
        sensitivity_memory_bound(c, source_bytes, calibration.n_samples(), calibration.seq_len, so_, o_.threads,
                                 static_cast<int>(menu_.candidates.size()));
    return table;
  }

 private:
  // Every candidate of the menu that holds the tensor's shape, quantized on the pool's
  // threads (one candidate each, BLAS single-threaded), into p.t.costs in menu order,
  // each with its tr(ΔW Σ ΔWᵀ): proxy(Ŵ) when given, else quantize_linear's
  // tr(ΔW H ΔWᵀ) · inv_n.
  // With H given, proxy is null and tr(ΔW H ΔWᵀ)·inv_n comes from quantize_linear.
  Status quantize_candidates(Pending& p, const std::vector<float>& w, const std::function<double(const float*)>& proxy,
                             const std::vector<double>* h, double inv_n = 1.0) {
    std::vector<QuantRule> rules;
    for (size_t k = 0; k < menu_.candidates.size(); ++k) {
      LB_ASSIGN_OR_RETURN(std::optional<QuantRule> rule,
                          candidate_rule(menu_.candidates[k], p.t.name, p.t.rows, p.t.cols, true));
      if (!rule) continue;
      CandidateCost cost;
      cost.candidate = static_cast<int>(k);
      cost.rule = *rule;
      p.t.costs.push_back(std::move(cost));
    }
    const size_t n = p.t.costs.size();
    std::vector<Status> status(n, Status::ok_status());
    std::vector<QuantizedWeight> quantized(n);
    const SingleThreadedBlas one_thread_blas;
    std::atomic<size_t> next{0};  // candidates differ in cost by 10x: taken one at a time
    pool_.parallel_for(pool_.size(), [&](int64_t, int64_t, int) {
      std::vector<float> q(w.size());
      for (size_t i; (i = next++) < n;) {
        CandidateCost& cost = p.t.costs[i];
        auto r = quantize_linear(cost.rule, p.t.name, w.data(), p.t.rows, p.t.cols, h);
        if (!r.ok()) {
          status[i] = r.status();
          continue;
        }
        cost.bytes = r->weight.storage_bytes();
        cost.weight_rel_error = r->weight_rel_error;
        if (proxy) {
          status[i] = dequantize_weight(r->weight, q.data());
          if (!status[i].ok()) continue;
          cost.proxy = proxy(q.data());
        } else {
          cost.proxy = r->output_error.value_or(0.0) * inv_n;
        }
        quantized[i] = std::move(r->weight);
      }
    });
    for (const Status& s : status) LB_RETURN_IF_ERROR(s);
    if (so_.mode == SensitivityMode::kMeasured) p.quantized = std::move(quantized);
    return Status::ok_status();
  }

  // Every candidate of the menu that holds [rows, cols], quantized; proxy = tr(ΔW Σ ΔWᵀ).
  Status linear_costs(const std::string& name, const Matrix& m, const std::vector<double>& h, int64_t n_tokens) {
    Pending p;
    p.t.name = name;
    p.t.rows = m.rows;
    p.t.cols = m.cols;
    const double inv_n = 1.0 / static_cast<double>(std::max<int64_t>(1, n_tokens));
    for (int64_t j = 0; j < m.cols; ++j) p.t.input_power += h[j * m.cols + j] * inv_n;
    LB_RETURN_IF_ERROR(quantize_candidates(p, m.data, nullptr, &h, inv_n));
    if (p.t.costs.empty()) return make_error("{} [{}, {}]: no candidate of menu {} holds its shape", name, m.rows, m.cols, menu_.name);
    pending_.push_back(std::move(p));
    return Status::ok_status();
  }

  // The embedding's input is the one-hot token: Σ = diag(f), f the token frequencies.
  Status embedding_costs(const std::vector<float>& e, const ModelConfig& c, const CalibrationSet& calibration) {
    std::vector<double> freq(static_cast<size_t>(c.vocab_size), 0.0);
    for (int32_t t : calibration.tokens) freq[t] += 1.0 / static_cast<double>(calibration.tokens.size());
    Pending p;
    p.t.name = "token_embedding";
    p.t.rows = c.vocab_size;
    p.t.cols = c.dim;
    p.t.input_power = 1.0;
    LB_RETURN_IF_ERROR(quantize_candidates(p, e, [&](const float* q) {
      double proxy = 0.0;
      for (int64_t v = 0; v < p.t.rows; ++v) {
        if (freq[v] == 0.0) continue;
        double d2 = 0.0;
        for (int64_t j = 0; j < p.t.cols; ++j) {
          const double d = static_cast<double>(e[v * p.t.cols + j]) - q[v * p.t.cols + j];
          d2 += d * d;
        }
        proxy += freq[v] * d2;
      }
      return proxy;
    }, nullptr));
    if (p.t.costs.empty()) return make_error("token_embedding: no candidate of menu {} holds its shape", menu_.name);
    pending_.push_back(std::move(p));
    return Status::ok_status();
  }

  // Linears reading an input whose absmax is above kSpikeFactor × the median over layers.
  void mark_spikes(const std::vector<std::array<double, 4>>& absmax) {
    static const std::vector<std::vector<std::string>> kReaders = {
        {"q_proj", "k_proj", "v_proj"}, {"o_proj"}, {"gate_proj", "up_proj"}, {"down_proj"}};
    for (int p = 0; p < 4; ++p) {
      std::vector<double> v;
      for (const auto& a : absmax) v.push_back(a[p]);
      std::vector<double> sorted = v;
      std::sort(sorted.begin(), sorted.end());
      const double median = sorted[sorted.size() / 2];
      for (size_t l = 0; l < v.size(); ++l) {
        if (v[l] <= kSpikeFactor * median) continue;
        for (const std::string& s : kReaders[p]) {
          for (Pending& t : pending_) {
            if (t.t.name == fmt::format("layers.{}.{}", l, s)) t.t.spiking = true;
          }
        }
      }
    }
  }

  // KLD_t(c) = ½ g proxy_t(c) with one g from perturbing every tensor at once.
  Status global_curvature(KldProbe& probe, SensitivityTable& table) {
    std::mt19937_64 rng(so_.seed ^ 0x9e3779b97f4a7c15ull);
    double denominator = 0.0;  // Σ_t ε_t² rows_t tr(Σ_t)
    std::vector<double> eps(pending_.size());
    for (size_t i = 0; i < pending_.size(); ++i) {
      LB_ASSIGN_OR_RETURN(const Matrix* m, probe.weight(pending_[i].t.name));
      eps[i] = so_.probe_scale * rms(m->data);
      denominator += eps[i] * eps[i] * static_cast<double>(pending_[i].t.rows) * pending_[i].t.input_power;
    }
    double sum = 0.0;
    for (int k = 0; k < so_.probes; ++k) {
      std::vector<std::vector<float>> perturbed(pending_.size());
      std::map<std::string, const float*> replaced;
      for (size_t i = 0; i < pending_.size(); ++i) {
        const Matrix* m = probe.weight(pending_[i].t.name).value();
        std::vector<float> v(m->data.size());
        fill_rademacher(rng, v);
        perturbed[i] = m->data;
        for (size_t j = 0; j < v.size(); ++j) perturbed[i][j] += static_cast<float>(eps[i]) * v[j];
        replaced[pending_[i].t.name] = perturbed[i].data();
      }
      LB_ASSIGN_OR_RETURN(double kld, probe.kld_with(replaced));
      sum += 2.0 * kld;
    }
    const double g = denominator > 0.0 ? sum / so_.probes / denominator : 0.0;
    table.global_curvature = g;
    for (Pending& p : pending_) {
      p.t.curvature = g;
      for (CandidateCost& cost : p.t.costs) cost.predicted_kld = 0.5 * g * cost.proxy;
    }
    if (so_.mode == SensitivityMode::kSpike) restrict_spikes();
    return Status::ok_status();
  }

  // Spike-aware prior: a spiking linear keeps only its two largest candidates.
  void restrict_spikes() {
    for (Pending& p : pending_) {
      if (!p.t.spiking || p.t.costs.size() <= 2) continue;
      std::vector<CandidateCost> costs = p.t.costs;
      std::stable_sort(costs.begin(), costs.end(), [](const CandidateCost& a, const CandidateCost& b) { return a.bytes > b.bytes; });
      costs.resize(2);
      std::vector<CandidateCost> kept;
      for (const CandidateCost& c : p.t.costs) {
        if (c.bytes >= costs[1].bytes) kept.push_back(c);
      }
      p.t.costs = std::move(kept);
    }
  }

  // g_t = tr(F_t) / (rows_t tr(Σ_t)), tr(F_t) by Hutchinson with finite-difference quadratic forms.
  Status hutchinson(KldProbe& probe) {
    ProgressBar progress("hutchinson", static_cast<int64_t>(pending_.size()), o_.progress);
    for (size_t i = 0; i < pending_.size(); ++i) {
      TensorSensitivity& t = pending_[i].t;
      LB_ASSIGN_OR_RETURN(const Matrix* m, probe.weight(t.name));
      const double eps = so_.probe_scale * rms(m->data);
      if (eps == 0.0) return make_error("{}: all weights are zero, no scale for the Hutchinson probe", t.name);
      std::vector<float> perturbed(m->data.size());
      auto quad_form = [&](const std::vector<float>& v) -> Expected<double> {
        for (size_t j = 0; j < v.size(); ++j) perturbed[j] = m->data[j] + static_cast<float>(eps) * v[j];
        LB_ASSIGN_OR_RETURN(double kld, probe.kld_with({{t.name, perturbed.data()}}));
        return 2.0 * kld / (eps * eps);  // ≈ vᵀ F v
      };
      LB_ASSIGN_OR_RETURN(TraceEstimate tr, hutchinson_trace(static_cast<int64_t>(m->data.size()), so_.probes,
                                                             so_.seed + 1000003ull * i, quad_form));
      t.fisher_trace = tr.mean;
      t.fisher_stderr = tr.stderr_of_mean;
      t.curvature = t.input_power > 0.0 ? tr.mean / (static_cast<double>(t.rows) * t.input_power) : 0.0;
      for (CandidateCost& cost : t.costs) cost.predicted_kld = 0.5 * t.curvature * cost.proxy;
      progress.update(static_cast<int64_t>(i + 1), t.name);
    }
    progress.finish();
    return Status::ok_status();
  }

  Status measure(KldProbe& probe) {
    int64_t total = 0;
    for (const Pending& p : pending_) total += static_cast<int64_t>(p.t.costs.size());
    ProgressBar progress("measure", total, o_.progress);
    int64_t done = 0;
    for (Pending& p : pending_) {
      std::vector<float> q(static_cast<size_t>(p.t.rows * p.t.cols));
      for (size_t k = 0; k < p.t.costs.size(); ++k) {
        LB_RETURN_IF_ERROR(dequantize_weight(p.quantized[k], q.data()));
        LB_ASSIGN_OR_RETURN(double kld, probe.kld_with({{p.t.name, q.data()}}));
        p.t.costs[k].measured_kld = kld;
        p.t.costs[k].predicted_kld = kld;
        progress.update(++done, p.t.name);
      }
      p.quantized.clear();
    }
    progress.finish();
    return Status::ok_status();
  }

  const SizeMenu& menu_;
  const PipelineOptions& o_;
  const SensitivityOptions& so_;
  ThreadPool pool_;
  std::vector<Pending> pending_;  // token_embedding, the layers' linears in order, lm_head
  uint64_t fixed_bytes_ = 0;
};

}  // namespace

uint64_t sensitivity_memory_bound(const ModelConfig& c, uint64_t source_bytes, int n_samples, int seq_len,
                                  const SensitivityOptions& so, int threads, int candidates) {
  const uint64_t layer = 2ull * c.q_dim() * c.dim + 2ull * c.kv_dim() * c.dim + 3ull * c.ffn_dim * c.dim + 2ull * c.dim;
  const uint64_t table = static_cast<uint64_t>(c.vocab_size) * c.dim;
  const uint64_t params = layer * c.n_layers + table * (c.tied_embeddings ? 1 : 2) + c.dim;
  const uint64_t largest = std::max<uint64_t>({table, static_cast<uint64_t>(c.ffn_dim) * c.dim,
                                               static_cast<uint64_t>(c.q_dim()) * c.dim});
  const uint64_t positions = static_cast<uint64_t>(so.kld_windows) * so.kld_len;
  uint64_t bytes = source_bytes;
  bytes += 4 * params + 4 * layer * c.n_layers;
  bytes += 4ull * n_samples * seq_len * c.dim;
  bytes += 4 * positions * (static_cast<uint64_t>(c.n_layers) * c.dim + c.vocab_size) + 4ull * 128 * c.vocab_size;
  bytes += static_cast<uint64_t>(threads) * 16 * largest + static_cast<uint64_t>(candidates) * 2 * largest;
  const bool whole_model = so.mode == SensitivityMode::kProxy || so.mode == SensitivityMode::kSpike;
  bytes += whole_model ? 4 * params : 8 * largest;
  if (so.mode == SensitivityMode::kMeasured) bytes += static_cast<uint64_t>(candidates) * 2 * params;
  return bytes + (300ull << 20);
}

Expected<SensitivityMode> parse_sensitivity_mode(const std::string& name) {
  for (const ModeName& m : kModes) {
    if (name == m.name) return m.mode;
  }
  return make_error("--sensitivity: unknown mode '{}' (known: proxy, hutchinson, measured, spike)", name);
}

const char* sensitivity_mode_name(SensitivityMode mode) {
  for (const ModeName& m : kModes) {
    if (mode == m.mode) return m.name;
  }
  return "?";
}

json SensitivityTable::to_json() const {
  json tensors_json = json::array();
  for (const TensorSensitivity& t : tensors) {
    json costs = json::array();
    for (const CandidateCost& c : t.costs) {
      json j = {{"candidate", c.candidate}, {"format", c.rule.format}, {"method", quant_method_name(c.rule.method)},
                {"bytes", c.bytes},         {"weight_rel_error", c.weight_rel_error},
                {"proxy", c.proxy},         {"predicted_kld", c.predicted_kld}};
      if (!std::isnan(c.measured_kld)) j["measured_kld"] = c.measured_kld;
      costs.push_back(std::move(j));
    }
    json j = {{"name", t.name},           {"shape", {t.rows, t.cols}}, {"input_power", t.input_power},
              {"curvature", t.curvature}, {"spiking", t.spiking},      {"costs", costs}};
    if (!std::isnan(t.fisher_trace)) {
      j["fisher_trace"] = t.fisher_trace;
      j["fisher_stderr"] = t.fisher_stderr;
    }
    tensors_json.push_back(std::move(j));
  }
  json j = {{"model", model},        {"menu", menu}, {"calibration", calibration},   {"mode", sensitivity_mode_name(mode)},
            {"fixed_bytes", fixed_bytes}, {"params", params}, {"fp16_bytes", fp16_bytes},
            {"kld_positions", kld_positions}, {"seconds", seconds}, {"peak_rss_bytes", peak_rss_bytes},
            {"memory_bound_bytes", memory_bound_bytes}, {"tensors", tensors_json}};
  if (!std::isnan(global_curvature)) j["global_curvature"] = global_curvature;
  return j;
}

Expected<SensitivityTable> sensitivity_table_from_json(const json& j, const SizeMenu& menu, const std::string& source) {
  try {
    SensitivityTable t;
    t.model = j.at("model").get<std::string>();
    t.menu = j.at("menu").get<std::string>();
    t.calibration = j.at("calibration");
    if (t.menu != menu.name) {
      return make_error("{}: measured with menu {}, not {} (pass --menu {})", source, t.menu, menu.name, t.menu);
    }
    LB_ASSIGN_OR_RETURN(t.mode, parse_sensitivity_mode(j.at("mode").get<std::string>()));
    t.fixed_bytes = j.at("fixed_bytes").get<uint64_t>();
    t.params = j.at("params").get<uint64_t>();
    t.fp16_bytes = j.at("fp16_bytes").get<uint64_t>();
    t.kld_positions = j.at("kld_positions").get<int>();
    t.seconds = j.at("seconds").get<double>();
    if (j.contains("global_curvature")) t.global_curvature = j["global_curvature"].get<double>();
    for (const json& tj : j.at("tensors")) {
      TensorSensitivity ts;
      ts.name = tj.at("name").get<std::string>();
      ts.rows = tj.at("shape").at(0).get<int64_t>();
      ts.cols = tj.at("shape").at(1).get<int64_t>();
      ts.input_power = tj.at("input_power").get<double>();
      ts.curvature = tj.at("curvature").get<double>();
      ts.spiking = tj.at("spiking").get<bool>();
      if (tj.contains("fisher_trace")) {
        ts.fisher_trace = tj["fisher_trace"].get<double>();
        ts.fisher_stderr = tj["fisher_stderr"].get<double>();
      }
      for (const json& cj : tj.at("costs")) {
        CandidateCost c;
        c.candidate = cj.at("candidate").get<int>();
        if (c.candidate < 0 || c.candidate >= static_cast<int>(menu.candidates.size())) {
          return make_error("{}: {}: candidate {} is not in menu {}", source, ts.name, c.candidate, menu.name);
        }
        LB_ASSIGN_OR_RETURN(std::optional<QuantRule> rule,
                            candidate_rule(menu.candidates[c.candidate], ts.name, ts.rows, ts.cols, true));
        if (!rule || rule->format != cj.at("format").get<std::string>()) {
          return make_error("{}: {}: candidate {} does not match menu {}", source, ts.name, c.candidate, menu.name);
        }
        c.rule = *rule;
        c.bytes = cj.at("bytes").get<uint64_t>();
        c.weight_rel_error = cj.at("weight_rel_error").get<double>();
        c.proxy = cj.at("proxy").get<double>();
        c.predicted_kld = cj.at("predicted_kld").get<double>();
        if (cj.contains("measured_kld")) c.measured_kld = cj["measured_kld"].get<double>();
        ts.costs.push_back(std::move(c));
      }
      if (ts.costs.empty()) return make_error("{}: {} has no costs", source, ts.name);
      t.tensors.push_back(std::move(ts));
    }
    return t;
  } catch (const json::exception& e) {
    return make_error("{}: not a sensitivity table: {}", source, e.what());
  }
}

Expected<SensitivityTable> measure_sensitivity(const SizeMenu& menu, const PipelineOptions& options,
                                               const SensitivityOptions& so) {
  if (so.probes < 1) return make_error("--probes must be at least 1, got {}", so.probes);
  if (so.kld_windows < 1 || so.kld_len < 2) return make_error("the KLD probe needs at least one window of 2 tokens");
  return SensitivityPass(menu, options, so).run();
}

Expected<SensitivityTable> sensitivity_table(const std::string& path, const SizeMenu& menu,
                                             const PipelineOptions& options, const SensitivityOptions& so) {
  if (path.empty()) return measure_sensitivity(menu, options, so);
  LB_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  LB_ASSIGN_OR_RETURN(const json j, parse_untrusted_json(text, "--sensitivity-in " + path));
  LB_ASSIGN_OR_RETURN(SensitivityTable t, sensitivity_table_from_json(j, menu, "--sensitivity-in " + path));
  if (t.model != options.model_path) {
    return make_error("--sensitivity-in {}: measured on {}, not {}", path, t.model, options.model_path);
  }
  // The same calibration windows, or the recipe would be quantized on other data than it was chosen on.
  auto source = open_model_source(options.model_path, options.load);
  if (!source.ok()) return source.status();
  json calibration;
  LB_RETURN_IF_ERROR(pipeline_calibration(**source, options, false, &calibration).status());
  if (calibration != t.calibration) {
    return make_error("--sensitivity-in {}: measured with calibration {}, this run has {}", path, dump_json(t.calibration),
                      dump_json(calibration));
  }
  return t;
}

}  // namespace lowbit
