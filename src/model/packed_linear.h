// A linear layer that runs on its packed quantized weight (kernels/packed_matrix.h)
// without an FP32 copy: memory is the packed size.
//   decode (fewer than the entry's gemm_min_tokens): the packed GEMV per token, rows
//     split over the thread pool; weights are decoded in registers.
//   prompts: the weight is dequantized one tile of rows at a time into an FP32
//     buffer of about kTileBytes (cache-resident, rows split over the pool) and
//     multiplied with BLAS sgemm, so prompt speed follows FP32 sgemm while only
//     the packed weight stays resident.
//   integer activations (W8A8, W4A8, W4A4): every call quantizes its input and
//     runs the integer kernels (or, on AMX from a token count on, the tile GEMM).
// Which of these a layer runs is fixed when it is built: create() takes the
// activation format and the ISA level and looks up its entry in the kernel
// table (kernels/kernel_table.h), which the layer keeps and never changes; the
// name it reports is that entry's.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "kernels/kernel_table.h"
#include "kernels/packed_matrix.h"
#include "model/linear.h"
#include "quant/act_quant.h"

namespace lowbit {

// The input a PackedLinear takes: a format of the kernel table and, for the
// integer formats, the rule of its quantization (the float steps of
// quant/act_quant's "int8" / "int4" specs, so the codes equal the simulation's).
struct LinearActivation {
  ActFormat format = ActFormat::kFp32;
  IntActRule rule;    // kInt8, kInt4: clip, or a per-tensor static threshold T > 0
  int64_t group = 0;  // kInt4: activation columns per scale (a multiple of 16); 0: per token or static
};

class PackedLinear : public Linear {
 public:
  static constexpr int64_t kTileBytes = 4 << 20;  // FP32 tile of the prompt path
  // bias: [rows] or empty. label: what describe() starts with ("int4_g128_asym 4.250 bpw").
  // Error when the kernel table has no entry for the weight and `act` at `isa`
  // (integer activations on a layout without integer kernels, a W4A4 group that
  // does not cut the weight groups into 16k columns, a bad static threshold).
  static Expected<std::unique_ptr<PackedLinear>> create(PackedMatrix weight, std::vector<float> bias, std::string label,
                                                        const LinearActivation& act = {}, Isa isa = active_isa());
  // The same over a matrix that stays shared (a tied lm_head over the packed token
  // embedding, model/token_embedding.h): the storage is held once, not copied.
  static Expected<std::unique_ptr<PackedLinear>> create_shared(std::shared_ptr<const PackedMatrix> weight,
                                                               std::vector<float> bias, std::string label,
                                                               const LinearActivation& act = {},
                                                               Isa isa = active_isa());
  // A new layer over the same (shared) weight, bias and label that takes `act`:
  // how a model switches a layer to integer activations (this one is unchanged).
  Expected<std::unique_ptr<PackedLinear>> with_activation(const LinearActivation& act, Isa isa = active_isa()) const;

  int64_t in_features() const override { return w_.cols; }
  int64_t out_features() const override { return w_.rows; }
  void forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const override;
  // Packed bytes (kernels/packed_matrix.h storage_bytes) + the FP32 bias.
  uint64_t weight_bytes() const override;
  // "<label> packed lut4/avx512".
  std::string describe() const override;
  const PackedLinear* packed_linear() const override { return this; }

  const PackedMatrix& packed() const { return w_; }
  const std::shared_ptr<const PackedMatrix>& shared_packed() const { return storage_; }
  // The table entry forward() runs (kernels/kernel_table.h); never null.
  const LinearKernel& kernel() const { return *kernel_; }
  const LinearActivation& activation() const { return act_; }
  const std::vector<float>& bias() const { return bias_; }  // [rows] or empty
  // The entry's name ("lut4/avx512", "w8a8/avx512vnni", ...).
  std::string kernel_name() const { return kernel_->name; }

  // Integer activations from a model file's activation quantizer (quant/act_quant.h),
  // where a kernel computes exactly what ActQuantLinear simulates (the same codes
  // and scales; only the float summation order of the product differs):
  //   "int8" per token (any clip) or per tensor static (the calibrated T: s = T / 127)
  //     with kInt8Row (W8A8) or integer kLut4 (W4A8) weights;
  //   "int4" per token, per tensor static or per group (sub-blocks of 16k columns)
  //     with integer kLut4 weights (W4A4, kernels/w4a4.h).
  // Empty when `act` has such a kernel for w, else why not (for --verbose).
  static std::string integer_act_unsupported(const PackedMatrix& w, const ActQuantAttachment& act);
  // The activation of that kernel; an error carrying the reason when there is none.
  static Expected<LinearActivation> integer_activation(const PackedMatrix& w, const ActQuantAttachment& act);

  // Whether `other` reads a decode input exactly as this layer does, so that
  // gemv_shared_input may prepare it once for both: the same layout (kind,
  // columns, groups, table), the same table entry, FP32 activations.
  bool shares_decode_input(const PackedLinear& other) const;
  // One token through several layers that read the same input (q/k/v,
  // gate/up), each pair shares_decode_input: ys[i][out_i] = linears[i] · x
  // (+ bias). The input is prepared once and all layers run in one pool call,
  // the threads taking row blocks of every layer from one queue, so a token pays
  // one preparation and one hand-off per group instead of one per layer, and the
  // short K/V projections (256 rows of TinyLlama) stop paying a barrier each.
  // Each row is computed by forward()'s kernel code whichever thread takes it,
  // so each output is forward()'s bit for bit.
  static void gemv_shared_input(std::span<const PackedLinear* const> linears, const float* x,
                                std::span<float* const> ys, ThreadPool& pool);

 private:
  PackedLinear(std::shared_ptr<const PackedMatrix> w, std::vector<float> bias, std::string label,
               const LinearKernel* kernel, const LinearActivation& act);
  void gemv(const float* x, float* y, ThreadPool& pool) const;
  void gemm(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const;
  void int8_forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const;
  void int4_forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const;

  std::shared_ptr<const PackedMatrix> storage_;  // never null; may be shared (create_shared)
  const PackedMatrix& w_;                        // *storage_
  std::vector<float> bias_;
  std::string label_;
  const LinearKernel* kernel_;   // the table's entry, never null
  LinearActivation act_;
  std::vector<int32_t> rowsum_;  // W8A8: sum of each row's codes
};

}  // namespace lowbit
