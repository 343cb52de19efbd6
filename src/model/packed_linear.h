// A linear layer that runs on its packed quantized weight (kernels/packed_matrix.h)
// without an FP32 copy: memory is the packed size.
//   decode (fewer than kGemvMaxTokens tokens): the packed GEMV per token, rows
//     split over the thread pool; weights are decoded in registers.
//   prompts: the weight is dequantized one tile of rows at a time into an FP32
//     buffer of about kTileBytes (cache-resident, rows split over the pool) and
//     multiplied with BLAS sgemm, so prompt speed follows FP32 sgemm while only
//     the packed weight stays resident.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "kernels/packed_matrix.h"
#include "kernels/w4a4.h"
#include "kernels/w4a8.h"
#include "kernels/w8a8.h"
#include "model/linear.h"
#include "quant/act_quant.h"

namespace lowbit {

class PackedLinear : public Linear {
 public:
  static constexpr int64_t kGemvMaxTokens = 4;
  static constexpr int64_t kTileBytes = 4 << 20;
  // Integer activations: from this many tokens on, the AMX tile GEMM (when the
  // ISA has it) beats the VNNI kernels (2048 x 2048, one thread: W8A8 at 8
  // tokens 0.57 vs 0.70 ms, at 4 tokens 0.77 vs 0.27 ms; W4A8, whose VNNI
  // kernel is not tiled over tokens, at 4 tokens 0.87 vs 1.58 ms).
  static constexpr int64_t kAmxMinTokensW8A8 = 8;
  static constexpr int64_t kAmxMinTokensW4A8 = 4;

  // bias: [rows] or empty. label: what describe() starts with ("int4_g128_asym 4.250 bpw").
  static Expected<std::unique_ptr<PackedLinear>> create(PackedMatrix weight, std::vector<float> bias, std::string label,
                                                        Isa isa = active_isa());
  // The same over a matrix that stays shared (a tied lm_head over the packed token
  // embedding, model/token_embedding.h): the storage is held once, not copied.
  static Expected<std::unique_ptr<PackedLinear>> create_shared(std::shared_ptr<const PackedMatrix> weight,
                                                               std::vector<float> bias, std::string label,
                                                               Isa isa = active_isa());

  int64_t in_features() const override { return w_.cols; }
  int64_t out_features() const override { return w_.rows; }
  void forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const override;
  // Packed bytes (kernels/packed_matrix.h storage_bytes) + the FP32 bias.
  uint64_t weight_bytes() const override;
  // "<label> packed lut4/avx512".
  std::string describe() const override;

  const PackedMatrix& packed() const { return w_; }
  const std::shared_ptr<const PackedMatrix>& shared_packed() const { return storage_; }
  const PackedKernels& kernels() const { return kernels_; }

  // Switches the layer to integer activations: every call quantizes its input per
  // token to INT8 (kernels/w8a8.h) and runs the W8A8 (kInt8Row) or W4A8 (integer
  // kLut4, kernels/w4a8.h) kernel; with isa >= amx, calls of kAmxMinTokens*
  // or more tokens run the AMX tile GEMM (kernels/amx_gemm.h) instead. Error when
  // the layout has no such kernel.
  Status enable_int8_activations(Isa isa = active_isa());
  bool int8_activations() const { return int8_act_; }

  // Integer activations from a model file's activation quantizer (quant/act_quant.h),
  // where a kernel computes exactly what ActQuantLinear simulates (the same codes
  // and scales; only the float summation order of the product differs):
  //   "int8" per token (any clip) or per tensor static (the calibrated T: s = T / 127)
  //     with kInt8Row (W8A8) or integer kLut4 (W4A8) weights;
  //   "int4" per token, per tensor static or per group (sub-blocks of 16k columns)
  //     with integer kLut4 weights (W4A4, kernels/w4a4.h).
  // Empty when `act` has such a kernel for w, else why not (for --verbose).
  static std::string integer_act_unsupported(const PackedMatrix& w, const ActQuantAttachment& act);
  // Switches to that kernel; an error carrying the reason when there is none.
  Status enable_integer_activations(const ActQuantAttachment& act, Isa isa = active_isa());
  // The kernel name forward() runs ("lut4/avx512", "w8a8/avx512vnni", ...).
  std::string kernel_name() const;

  // Whether `other` reads a decode input exactly as this layer does, so that
  // gemv_shared_input may prepare it once for both: the same layout (kind,
  // columns, groups, table), the same GEMV kernels, no integer activations.
  bool shares_decode_input(const PackedLinear& other) const;
  // One token through several layers that read the same input (q/k/v,
  // gate/up), each pair shares_decode_input: ys[i][out_i] = linears[i] · x
  // (+ bias). The input is prepared once and all layers run in one pool call,
  // each thread taking its share of every layer, so a token pays one
  // preparation and one hand-off per group instead of one per layer, and the
  // short K/V projections (256 rows of TinyLlama) stop paying a barrier each.
  // The shares are forward()'s, so each output is forward()'s bit for bit.
  static void gemv_shared_input(std::span<const PackedLinear* const> linears, const float* x,
                                std::span<float* const> ys, ThreadPool& pool);

 private:
  PackedLinear(std::shared_ptr<const PackedMatrix> w, std::vector<float> bias, std::string label, PackedKernels kernels)
      : storage_(std::move(w)), w_(*storage_), bias_(std::move(bias)), label_(std::move(label)), kernels_(kernels) {}
  void gemv(const float* x, float* y, ThreadPool& pool) const;
  void gemm(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const;
  void integer_forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const;
  void w4a4_forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const;

  std::shared_ptr<const PackedMatrix> storage_;  // never null; may be shared (create_shared)
  const PackedMatrix& w_;                        // *storage_
  std::vector<float> bias_;
  std::string label_;
  PackedKernels kernels_;
  bool int8_act_ = false;
  IntActRule act_rule_;          // how integer_forward picks the activation scales
  W4A4Fn w4a4_ = nullptr;        // set: INT4 activations (W4A4)
  int64_t act_group_ = 0;        // W4A4: activation columns per scale, 0 per token
  std::vector<int32_t> rowsum_;  // kInt8Row: sum of each row's codes (W8A8)
  W8A8Kernels w8a8_;
  W4A8Fn w4a8_ = nullptr;
  GroupSumsFn group_sums_ = nullptr;  // W4A8: the per-token group sums of q
  QuantizeRowsFn quantize_rows_ = nullptr;
  int64_t amx_min_tokens_ = 0;  // > 0: calls of this many tokens or more run w8a8_amx / w4a8_amx
  std::string int_name_;
};

}  // namespace lowbit
