// Trellis-coded quantization of whole matrices (formats/trellis_code.h): the
// scales of each group and the codes of its 64-weight sequences, round to
// nearest (quantize_rtn) or as GPTQ's joint block step (BlockLDLQ, gptq.cpp).
//
// One group of one row, G columns x (n sequences), importance w or all 1:
//   1. start: s = fp16(sqrt(Σ w x² / Σ w) / rms(codebook)), the RMS ratio;
//   2. codes c = Viterbi(x / s) per sequence (trellis_viterbi.h, two-pass tail-biting);
//   3. least-squares refit with the codes fixed, s' = fp16(Σ w x v / Σ w v²)
//      (v the codebook values of c), then back to 2 with s', `refits` times;
//   4. keep the (s, c) of least Σ w (x − s v)² (in double).
// An all-zero group (or one whose scale underflows FP16) stores scale 0 and
// zero bytes, which decode to exact zeros. A scale over FP16's range is an error.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "core/status.h"
#include "formats/block_format.h"
#include "formats/trellis_code.h"
#include "quant/column_scales.h"
#include "quant/trellis_viterbi.h"

namespace lowbit {

class ThreadPool;

inline constexpr int kTrellisDefaultRefits = 1;

// x [n], w [n] or null, n a multiple of 64 (the sequences of one group of one row)
// -> the FP16 scale and codes [n / 64][seq_bytes]. Returns Σ w (x − s v)².
// fixed_scale: use this FP16 scale (no search: step 2 only).
struct TrellisGroupCode {
  uint16_t scale = 0;
  double error = 0.0;
};
Expected<TrellisGroupCode> trellis_encode_group(TrellisEncoder& encoder, const float* x, const float* w, int64_t n,
                                                int refits, uint8_t* codes, const uint16_t* fixed_scale = nullptr);

// The stored tensor of x [rows, cols]: every group of every row as above,
// rows in parallel on pool (null: this thread); the codes do not depend on it.
// importance [cols] (>= 0) or empty.
Expected<QuantizedTensor> trellis_quantize(const TrellisParams& p, const float* x, int64_t rows, int64_t cols,
                                           std::span<const float> importance, ThreadPool* pool,
                                           int refits = kTrellisDefaultRefits);
// out [rows, cols]; the sizes of t are checked against p.
Status trellis_dequantize(const TrellisParams& p, const QuantizedTensor& t, float* out);

// GPTQ's view (quant/column_scales.h): joint_cols() = 64; choose() fixes the
// scales of the groups as above (keeping the codes of the group's first
// sequence, whose columns are still as chosen when GPTQ quantizes them), and
// quantize_block() codes the later sequences of a group against its fixed scale.
Expected<std::unique_ptr<ColumnScales>> trellis_column_scales(const TrellisParams& p, int64_t rows, int64_t cols,
                                                              ThreadPool* pool);

}  // namespace lowbit
