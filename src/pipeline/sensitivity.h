// How much each tensor of a model costs at each candidate of a size menu
// (pipeline/size_menu.h): the table a size-budget allocation optimises over
// (issue 15). For every tensor t (decoder linears, lm_head, token_embedding) and
// every candidate c whose format holds its shape:
//   bytes_t(c)  the exact stored bytes (codes and scales, QuantizedWeight::storage_bytes)
//   proxy_t(c)  tr(ΔW Σ ΔWᵀ), Σ = XᵀX / n the input's second moment over the
//               calibration tokens: the mean squared output error per token that
//               GPTQ minimises (ΔW = W − Ŵ). For the embedding the "input" is the
//               one-hot token, Σ = diag(token frequency): Σ_v f_v ‖ΔE_v‖².
// The inputs are the FP32 model's (every layer sees unquantized inputs), so the
// costs of different tensors are measured at the same point.
//
// The predicted KL divergence the candidate adds, KLD_t(c), from a second-order
// model of the loss (HAWQ-V2, Dong et al. 2020) with a Kronecker-factored Fisher
// F_t ≈ G_t ⊗ Σ_t (K-FAC) and an isotropic output side G_t ≈ g_t·I:
//   KLD_t(c) = ½ vec(ΔW)ᵀ F_t vec(ΔW) ≈ ½ g_t proxy_t(c),   g_t = tr(F_t) / (rows_t · tr(Σ_t)).
// Modes (how g_t is found):
//   proxy       one g for every tensor: E[2·KLD] of one Rademacher perturbation
//               of all tensors at once (ε_t = scale·rms(W_t)) is Σ_t ε_t² tr(F_t)
//               = g Σ_t ε_t² rows_t tr(Σ_t) (kld_probe.h): a few forward passes.
//   hutchinson  g_t per tensor from Hutchinson's estimate of tr(F_t) (HAWQ-V2),
//               vᵀF_t v ≈ 2·KLD(W_t + ε v)/ε²: probes × tensors forward passes.
//   measured    no model: KLD_t(c) is measured, the model with tensor t alone
//               replaced by its candidate (as exllamav2's measurement pass does):
//               tensors × candidates forward passes; for small models.
//   spike       proxy, and the linears whose input has a spike (absmax above 10×
//               the median of the same input over the layers, as `lowbit inspect`
//               suggests: spike-aware mixed precision) may only take the two
//               largest candidates.
// The allocation assumes the KLDs add over tensors; the pareto report measures
// how well that predicts whole models (Spearman rank correlation).
#pragma once

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "pipeline/quantize_pipeline.h"
#include "pipeline/size_menu.h"

namespace lowbit {

enum class SensitivityMode { kProxy, kHutchinson, kMeasured, kSpike };

Expected<SensitivityMode> parse_sensitivity_mode(const std::string& name);
const char* sensitivity_mode_name(SensitivityMode mode);

struct SensitivityOptions {
  SensitivityMode mode = SensitivityMode::kHutchinson;
  int probes = 2;              // Rademacher probes per tensor (hutchinson) or of the whole model (proxy)
  double probe_scale = 0.05;   // ε = probe_scale · rms(W): a change the size of a 4-bit rounding error
  int kld_windows = 2;         // the first calibration windows the KLD is measured on,
  int kld_len = 256;           // each cut to this many tokens
  uint64_t seed = 0;
};

struct CandidateCost {
  int candidate = -1;  // index into the menu
  QuantRule rule;      // as it applies to this tensor (the tables: rtn)
  uint64_t bytes = 0;
  double weight_rel_error = 0.0;
  double proxy = 0.0;          // tr(ΔW Σ ΔWᵀ)
  double predicted_kld = 0.0;  // KLD_t(c) of the mode
  double measured_kld = NAN;   // measured mode
};

struct TensorSensitivity {
  std::string name;
  int64_t rows = 0;
  int64_t cols = 0;
  double input_power = 0.0;   // tr(Σ)
  double curvature = 0.0;     // g_t (proxy, spike: the global g)
  double fisher_trace = NAN;  // hutchinson: tr(F_t) and its standard error
  double fisher_stderr = NAN;
  bool spiking = false;
  std::vector<CandidateCost> costs;  // in menu order, only the candidates that hold the shape
};

struct SensitivityTable {
  std::string model;
  std::string menu;
  nlohmann::json calibration;  // as quantize records it (pipeline_calibration)
  SensitivityMode mode = SensitivityMode::kHutchinson;
  std::vector<TensorSensitivity> tensors;
  uint64_t fixed_bytes = 0;   // what the menu does not choose: FP32 norms, biases, rope factors
  uint64_t params = 0;        // every stored parameter
  uint64_t fp16_bytes = 0;    // the whole model with every tensor in FP16 (norms FP32)
  double global_curvature = NAN;  // proxy, spike: g
  int kld_positions = 0;
  double seconds = 0.0;
  uint64_t peak_rss_bytes = 0;      // getrusage after the pass: the whole process so far
  uint64_t memory_bound_bytes = 0;  // sensitivity_memory_bound() for this pass

  nlohmann::json to_json() const;
};

// Peak resident memory of the pass, bounded by
//   the source file (mapped; every page may be resident)
// + 4 · (every parameter) + 4 · (decoder-layer parameters)   the FP32 model the probes run
//                                                              (weights, and the layers' FP32 blocks)
// + 4 · N · L · dim                                          calibration hidden states
// + 4 · P · (n_layers · dim + vocab) + 4 · 128 · vocab       probe windows' layer inputs, base
//                                                              log-probabilities, head logits (P positions)
// + threads · 4 · 4 · T  + candidates · 2 · T                each thread's copies of the largest tensor
//                                                              (T parameters: Ŵ, dequantized, quantizer work)
//                                                              and the candidates' results (≤ 16 bits each)
// + 2 · 4 · T (hutchinson, measured) or 4 · (every parameter) (proxy, spike)   the perturbed weights
// + candidates · 2 · (every parameter)                        measured: every candidate kept
// + 300 MiB                                                  Hessians, GPTQ work space, allocator slack.
uint64_t sensitivity_memory_bound(const ModelConfig& config, uint64_t source_bytes, int n_samples, int seq_len,
                                  const SensitivityOptions& so, int threads, int candidates);

// A table written by to_json() read back (`--sensitivity-in`): the menu must be the
// one it was measured with (each cost's rule is rebuilt from its candidate).
Expected<SensitivityTable> sensitivity_table_from_json(const nlohmann::json& j, const SizeMenu& menu,
                                                       const std::string& source);

// options: the model, calibration and threads of the pipeline (output_path unused).
Expected<SensitivityTable> measure_sensitivity(const SizeMenu& menu, const PipelineOptions& options,
                                               const SensitivityOptions& so);

// The table read from `path` (written by to_json; its model must be options.model_path)
// when path is not empty, else measured.
Expected<SensitivityTable> sensitivity_table(const std::string& path, const SizeMenu& menu,
                                             const PipelineOptions& options, const SensitivityOptions& so);

}  // namespace lowbit
