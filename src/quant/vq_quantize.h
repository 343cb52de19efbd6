// Residual vector quantization of whole matrices (formats/vq_code.h): per-tensor
// k-means codebooks on 8-weight vectors, then the codes and FP16 group scales,
// round to nearest (vq_quantize) or as GPTQ's joint 8-column step (GPTVQ-style,
// van Baalen et al. 2024: the error of each 8-column block fed forward by GPTQ).
//
// Codebooks (vq_train_codebooks), deterministic:
//   1. every group of every row gets its start scale s = fp16(sqrt(Σ w x² / Σ w))
//      (w the column importance, or 1), so the scaled vectors y = x / s have
//      weighted RMS 1;
//   2. training set: the vectors of nonzero groups, at most kVqTrainVectors of
//      them drawn without replacement by splitmix64 when there are more (a bound
//      on cost: 20 Lloyd rounds x 131072 vectors x 256 centroids x 8 coordinates
//      = 5.4 G weighted squared differences per stage at most, whatever the
//      matrix size); all vectors are encoded. On SmolLM2's layers.5.down_proj
//      (110592 vectors) training on all of them with 20 rounds gives vq2x8 a
//      relative MSE of 0.1003 (6.6 s on 2 threads of a shared Xeon, training and
//      encoding), on 32768 with 12 rounds 0.1047;
//   3. coordinate j of a vector weighs w_j · s² (the squared error of the
//      unscaled weight), normalised to mean 1;
//   4. stage t: weighted k-means (vq_kmeans.h: k-means++ then at most
//      kVqLloydIterations Lloyd rounds, seed kVqSeed + t) on the residuals
//      y − Σ_{u<t} C_u[a_u]; the centroids are rounded to FP16 (what is stored)
//      before the next stage's residuals are formed.
//
// Encoding one group of one row, importance w or all 1 (vq_encode_group):
//   1. s = the start scale above;
//   2. each vector y = x / s: greedy, stage by stage the centroid nearest (under
//      w) to the residual, then one pass re-choosing each stage's centroid with
//      the others fixed (S > 1; never worse than greedy);
//   3. least-squares refit with the codes fixed, s' = fp16(Σ w x v / Σ w v²)
//      (v the centroid sums), then back to 2 with s' once;
//   4. keep the (s, codes) of least Σ w (x − s v)² (double), so the stored codes
//      are exactly what step 2 gives for the stored scale (GPTQ with H = I then
//      reproduces them).
// An all-zero group (or one whose scale underflows FP16) stores scale 0 and
// zero codes, which decode to zeros. A scale over FP16's range is an error.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "formats/block_format.h"
#include "formats/vq_code.h"
#include "quant/column_scales.h"

namespace lowbit {

class ThreadPool;

inline constexpr int64_t kVqTrainVectors = 131072;
inline constexpr int kVqLloydIterations = 20;
inline constexpr uint64_t kVqSeed = 0x5eed5eedull;

// The codebooks of one tensor, as decoded ([S][256][8], the decoder's layout) and
// transposed per stage ([S][8][256], what the nearest-centroid search reads).
struct VqCodebooks {
  std::vector<float> values;      // [S, 256, 8]
  std::vector<float> transposed;  // [S, 8, 256]
  static VqCodebooks from_values(std::vector<float> values);
};

// x [rows, cols] -> the codebooks [S][256][8], values exact in FP16 (steps 1-4 above).
// importance [cols] (>= 0) or empty.
Expected<std::vector<float>> vq_train_codebooks(const VqParams& p, const float* x, int64_t rows, int64_t cols,
                                                std::span<const float> importance, ThreadPool* pool);

// One vector: y [8] (already divided by the scale), w [8] or null -> codes [S] (step 2).
void vq_encode_vector(const VqParams& p, const VqCodebooks& codebooks, const float* y, const float* w, uint8_t* codes);

// x [n], w [n] or null, n a multiple of 8 (the vectors of one group of one row)
// -> the FP16 scale and codes [n / 8][S]. Returns Σ w (x − decoded)².
// fixed_scale: use this FP16 scale (no search: step 2 only).
struct VqGroupCode {
  uint16_t scale = 0;
  double error = 0.0;
};
Expected<VqGroupCode> vq_encode_group(const VqParams& p, const VqCodebooks& codebooks, const float* x, const float* w,
                                      int64_t n, uint8_t* codes, const uint16_t* fixed_scale = nullptr);

// The stored tensor of x [rows, cols]: codebooks, then every group of every row
// as above, rows in parallel on pool (null: this thread; the result does not
// depend on it). importance [cols] (>= 0) or empty.
Expected<QuantizedTensor> vq_quantize(const VqParams& p, const float* x, int64_t rows, int64_t cols,
                                      std::span<const float> importance, ThreadPool* pool);
// out [rows, cols]; the sizes of t are checked against p, the codebooks must be finite.
Status vq_dequantize(const VqParams& p, const QuantizedTensor& t, float* out);

// GPTQ's view (quant/column_scales.h): joint_cols() = 8. The codebooks are
// trained when it is made, from w0 [rows, cols] (GPTQ's weights before any
// error is fed forward) and the importance GPTQ's scale choice uses; choose()
// fixes each group's scale from its current, updated columns (steps 1-4), and
// quantize_block() codes 8 columns against that fixed scale (step 2).
Expected<std::unique_ptr<ColumnScales>> vq_column_scales(const VqParams& p, const float* w0, int64_t rows,
                                                         int64_t cols, std::span<const float> importance,
                                                         ThreadPool* pool);

}  // namespace lowbit
