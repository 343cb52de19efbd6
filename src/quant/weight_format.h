// The number format of a stored weight matrix, as the quantizers see it: a
// scaled format of formats/block_format.h ("int4_g128_asym", "nvfp4", ...), a
// llama.cpp block type of formats/gguf_blocks.h ("q4_K", "q8_0", "iq4_nl", ...)
// trellis codes of formats/trellis_code.h ("tcq2_g64", ...), residual VQ codes of
// formats/vq_code.h ("vq2x8_g256") or a PTQ1.61 mixed
// 4-bit / binary format of formats/ptq161_code.h ("ptq161_s125_b192": quantize()
// runs quant/ptq161.h with the importance as the salience, and there are no
// ColumnScales, so GPTQ refuses it).
// All store a [rows, cols] matrix in a QuantizedTensor, quantize round-to-nearest
// with an optional per-column importance, dequantize with a reference decoder,
// and hand GPTQ a ColumnScales: the block scales / headers chosen apart from the
// codes (quant/column_scales.h). The quantizers (RTN, GPTQ, AWQ) are written once
// against this handle; which of the five families a name belongs to is decided
// here and nowhere else.
//
// Differences the handle keeps visible:
//   shapes   scaled formats take any cols (the last group of a row may be
//            partial); a GGUF type needs cols to be a multiple of its block size
//            (32, or 256 for the K types): check_shape() says so, naming the type
//            and shape.
//   search   QuantizeOptions::search picks min-max or the MSE clip search of a
//            scaled format; a GGUF type always runs its own scale search (the one
//            llama.cpp's quantizer runs, weighted by the importance when given),
//            so `search` does not apply to it. Stochastic rounding is refused.
//   storage  a GGUF matrix is its GGUF tensor bytes in `codes`; `scales` and
//            `mins` are empty and tensor_scale is 1.
//   trellis  cols a multiple of 64 (one tail-biting sequence); quantize runs the
//            Viterbi encoder with its own scale fit (quant/trellis_quantize.h),
//            weighted by the importance when given; `search` does not apply,
//            stochastic rounding is refused. GPTQ codes 64 columns jointly
//            (ColumnScales::joint_cols, BlockLDLQ).
//   VQ       cols a multiple of 8 (one vector); quantize trains the per-tensor
//            codebooks and runs the VQ encoder (quant/vq_quantize.h), weighted by
//            the importance when given; `search` does not apply, stochastic
//            rounding is refused. GPTQ codes 8 columns jointly; the codebooks
//            travel in the tensor's `mins` array.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "formats/block_format.h"
#include "formats/gguf_blocks.h"
#include "formats/ptq161_code.h"
#include "formats/trellis_code.h"
#include "formats/vq_code.h"
#include "quant/column_scales.h"

namespace lowbit {

class ThreadPool;  // core/thread_pool.h

class WeightFormat {
 public:
  // Implicit, so a quantizer taking a WeightFormat takes either traits entry;
  // the entry (a table row, static) must outlive the handle.
  WeightFormat(const BlockFormat& format) : block_(&format) {}    // NOLINT(google-explicit-constructor)
  WeightFormat(const GgufBlockType& type) : gguf_(&type) {}       // NOLINT(google-explicit-constructor)
  explicit WeightFormat(const TrellisParams& p) : trellis_(p), is_trellis_(true) {}
  explicit WeightFormat(const Ptq161Params& p) : ptq161_(p), is_ptq161_(true) {}
  explicit WeightFormat(const VqParams& p) : vq_(p), is_vq_(true) {}

  // A scaled format, a GGUF block type, trellis codes, VQ codes or a PTQ1.61 format by name;
  // the error lists the families.
  static Expected<WeightFormat> find(std::string_view name);

  std::string name() const;
  // Exactly one of the five is non-null.
  const BlockFormat* block_format() const { return block_; }
  const GgufBlockType* gguf_type() const { return gguf_; }
  const TrellisParams* trellis_params() const { return is_trellis_ ? &trellis_ : nullptr; }
  const Ptq161Params* ptq161_params() const { return is_ptq161_ ? &ptq161_ : nullptr; }
  const VqParams* vq_params() const { return is_vq_ ? &vq_ : nullptr; }

  // cols must be a multiple of this: 1 for scaled formats and PTQ1.61, the block size of
  // a GGUF type, the sequence length 64 of trellis codes, the vector length 8 of VQ codes.
  int64_t col_multiple() const;
  // Whether a [rows, cols] matrix can be stored; the error names the format and the shape.
  Status check_shape(int64_t rows, int64_t cols) const;

  // x [rows, cols] -> the stored tensor (round to nearest; see the file comment
  // for what of `options` applies to a GGUF type).
  // pool: rows in parallel where the encoder uses it (trellis codes; the codes do not
  // depend on it); null: this thread.
  Expected<QuantizedTensor> quantize(const float* x, int64_t rows, int64_t cols,
                                     const QuantizeOptions& options = {}, ThreadPool* pool = nullptr) const;
  // out [rows, cols]: the reference decoder, bit for bit what the runtime and the files hold.
  Status dequantize(const QuantizedTensor& t, float* out) const;

  // Bytes of the three arrays of a [rows, cols] matrix, and the stored total
  // (arrays + the FP32 tensor scale of two-level formats).
  struct ArraySizes {
    uint64_t codes = 0, scales = 0, mins = 0;
  };
  Expected<ArraySizes> array_sizes(int64_t rows, int64_t cols) const;
  Expected<uint64_t> stored_bytes(int64_t rows, int64_t cols) const;
  Expected<double> bits_per_element(int64_t rows, int64_t cols) const;

  // The per-group scales (headers) of a [rows, cols] matrix held apart from its
  // codes, for GPTQ (quant/column_scales.h).
  Expected<std::unique_ptr<ColumnScales>> column_scales(int64_t rows, int64_t cols,
                                                        const ColumnScalesOptions& options) const;

 private:
  const BlockFormat* block_ = nullptr;
  const GgufBlockType* gguf_ = nullptr;
  TrellisParams trellis_;
  bool is_trellis_ = false;
  Ptq161Params ptq161_;
  bool is_ptq161_ = false;
  VqParams vq_;
  bool is_vq_ = false;
};

}  // namespace lowbit
