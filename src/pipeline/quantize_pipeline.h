// `lowbit quantize`: a model quantized per a recipe, decoder layer by decoder
// layer (layer_quantizer.h), streamed into a lowbit model file.
//
// Memory: only the current decoder layer is read to FP32; the rest of the source
// stays mapped and its pages are dropped once converted. Peak resident memory is
// bounded by pipeline/memory_bound.h (the largest of the embedding/head phase and
// one layer's moments, plus 300 MiB of overhead), reported with every run.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "core/status.h"
#include "model/model_source.h"
#include "pipeline/activation_stats.h"
#include "pipeline/calibration.h"
#include "pipeline/layer_quantizer.h"
#include "pipeline/memory_bound.h"
#include "pipeline/recipe.h"

namespace lowbit {

struct PipelineOptions {
  std::string model_path;
  LoadOptions load;
  std::string output_path;
  std::string calib_path;          // "" = no calibration (data-free recipes only)
  CalibrationOptions calibration;  // 0 = the model's default (calibration_defaults)
  bool auto_bos = true;            // bos = document start when the tokenizer adds BOS, else none
  HessianPrecision hessian = HessianPrecision::kFp64;  // kBf16 goes with arithmetic kBf16
  CalibArithmetic arithmetic = CalibArithmetic::kFp32;  // the calibration forward's products
  int threads = 2;
  bool progress = true;  // progress bar on stderr
  bool verbose = false;  // one line per module on stderr
  nlohmann::json kv = nullptr;  // KV-cache configuration stored as lowbit.kv (null = none)
  // Resumable runs (pipeline/quantize_checkpoint.h): OUT.ckpt after every decoder
  // layer; `resume` continues from it.
  bool checkpoint = true;
  bool resume = false;  // needs checkpoint
  std::string build_id;  // the binary, as the checkpoint's fingerprint records it ("" = not compared)
  // Test-only (the CLI's LOWBIT_TEST_KILL_AT): called with ("checkpoint", layers done)
  // after each checkpoint is written, ("checkpoint_write", layers done) when its
  // OUT.ckpt.tmp is written but not yet renamed, and ("module", n) before the n-th
  // linear this process quantizes (0-based), so a test can kill the process at a known point.
  std::function<void(const std::string& point, int64_t n)> test_hook;
  // Applied to every decoder layer's FP32 weights as read from the source, before any
  // rotation or statistics (null: none). Restorative LoRA writes its merged model
  // through it (pipeline/restorative_lora.h). Not recorded in checkpoints: runs with
  // a transform set checkpoint = false.
  std::function<Status(int index, LayerWeights& w)> transform_layer;
  // Calibration across processes (docs/MPI.md): the ranks of `mpirun -np N` (null:
  // one process). Each rank runs its shard of the windows; rank 0 alone writes.
  Communicator* comm = nullptr;
  // Statistics' sums in this many shards of windows (pipeline/calibration_shards.h);
  // 0: the number of ranks. One process with N writes what `mpirun -np N` writes.
  int calib_shards = 0;
};

struct QuantizeReport {
  std::string output_path;
  std::vector<ModuleReport> modules;
  nlohmann::json calibration;  // as stored in the file ({} when none)
  nlohmann::json rotation;     // lowbit.rotation as stored (null when none)
  uint64_t file_bytes = 0;
  uint64_t linear_params = 0;  // decoder linears
  uint64_t linear_bytes = 0;   // their stored bytes
  double seconds = 0.0;
  uint64_t peak_rss_bytes = 0;      // getrusage: the whole process so far
  uint64_t memory_bound_bytes = 0;  // memory_bound() for this run

  double linear_bits_per_weight() const {
    return linear_params > 0 ? 8.0 * static_cast<double>(linear_bytes) / static_cast<double>(linear_params) : 0.0;
  }
};

// quantize_memory_bound(...).total() for a model and calibration shape (0 samples: none).
uint64_t memory_bound(const ModelConfig& config, int n_samples, int seq_len, int threads, bool bf16_products = false);

// The calibration length used when CalibrationOptions::seq_len is 0.
int default_calibration_length(const ModelConfig& config);

// The calibration shape that scales with the model, for the fields left 0:
//   seq_len   = min(2048, the model's context)                (default_calibration_length)
//   n_samples = clamp(ceil(32 · W / seq_len), 8, 128), W = the widest linear input
//               (max of dim, q_dim, ffn_dim: the columns of the largest Hessian).
// GPTQ inverts H = XᵀX [W, W]; a sample covariance of T tokens is well conditioned
// only for T >> W (its relative error is about sqrt(W / T): 18 % at T = 32 W), and
// AWQ/SmoothQuant scales and static activation ranges are statistics over the same
// tokens. GPTQ's 128 × 2048 tokens are 24 W for Llama-2-7B (W = 11008): 32 W is
// that budget for models of that size and shrinks with the model (stories260K:
// W = 172, 11 windows of 512 tokens instead of 128, so seconds, not minutes).
// At least 8 windows so the tokens come from several places of the corpus; at
// most 128, GPTQ's default. Data-free recipes read no calibration at all.
struct CalibrationDefaults {
  CalibrationOptions options;  // n_samples and seq_len resolved
  int widest_input = 0;        // W
  bool auto_samples = false;   // n_samples was 0
  bool auto_len = false;       // seq_len was 0
};
CalibrationDefaults calibration_defaults(const ModelConfig& config, const CalibrationOptions& options);

// "11 windows x 512 tokens = 5632 tokens (auto: 32 x 172 columns of the widest linear input; window = the
// model's context 512)": the one line the CLI prints.
std::string describe_calibration(const CalibrationDefaults& d, const ModelConfig& config);

// H = Σ_t n_t n_tᵀ [dim, dim] of the head's input n_t = rms_norm(h_t) · output_norm, over the
// calibration hidden states h [tokens, dim] after the last layer (RTN importance of lm_head).
// shard_starts, comm: summed in shards and over ranks as the layers' statistics are
// (pipeline/calibration_shards.h); chunks of tokens never cross a shard's start.
Expected<std::vector<double>> head_input_hessian(const std::vector<float>& hidden, const ModelConfig& c,
                                                 const std::vector<float>& output_norm, HessianPrecision precision,
                                                 const std::vector<int64_t>& shard_starts = {},
                                                 Communicator* comm = nullptr);

// The calibration windows of a run: o.calib_path read with the source's tokenizer
// (o.calibration; seq_len 0 = default_calibration_length). `description`, when
// given, receives what the output file records of them.
Expected<CalibrationSet> pipeline_calibration(const ModelSource& source, const PipelineOptions& o,
                                              bool true_sequential, nlohmann::json* description);

Expected<QuantizeReport> quantize_model(const Recipe& recipe, const PipelineOptions& options);

nlohmann::json report_json(const QuantizeReport& report);

}  // namespace lowbit
