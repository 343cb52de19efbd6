// Residual vector-quantized weights (issue 19, item 2, for comparison with the
// trellis codes of formats/trellis_code.h): every 8 consecutive weights of a row
// are one vector in R^8, coded by S stages of a per-tensor codebook of 256
// centroids each (one byte per stage per vector, so S bits per weight):
//   W[r, 8 v + j] = scale[r, g] * (C_0[a_0][j] + C_1[a_1][j] + ... + C_{S-1}[a_{S-1}][j])
//   a_s = codes[r][v][s],  g = 8 v / G
// the stage sum taken in float in stage order, then multiplied by the scale.
// The codebooks C_s [256][8] are trained per tensor by k-means on the scaled
// weights (quant/vq_quantize.h) and stored with it in FP16.
//
// Format names: vq<S>x8_g<G>, S in 1..3, G columns per FP16 scale, a multiple
// of 8 (the last group of a row may be partial). vq2x8_g256 stores 2 + 16/256
// = 2.0625 bits per weight of codes and scales, as tcq2_g256 does, plus the
// codebooks: S * 256 * 8 * 16 bits per tensor (65536 bits for S = 2, 0.074
// bits per weight on a 576 x 1536 matrix).
//
// When it wins: a learned codebook follows the joint distribution of 8 weights
// (a trellis code's is a fixed Gaussian-like one), but 256 centroids per stage
// cover R^8 coarsely; residual stages add bits without a 2^16-entry table.
// There is no SIMD kernel: the runtime decodes it to FP32 once at load
// (model/packed_convert.h); the format is here to compare quality.
//
// Stored arrays (QuantizedTensor):
//   codes  [rows][cols / 8][S] bytes
//   scales [rows][ceil(cols / G)] FP16 bit patterns, little-endian
//   mins   the codebooks [S][256][8] FP16 bit patterns, little-endian (the
//          tensor's third array; VQ has no minimums)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace lowbit {

inline constexpr int kVqDim = 8;          // weights per vector
inline constexpr int kVqCentroids = 256;  // entries per stage codebook (one byte)
inline constexpr int kVqMaxStages = 3;

struct VqParams {
  int stages = 2;  // S
  int group = 256;  // G: columns per FP16 scale, a multiple of kVqDim

  // Codes and scales per weight of a row of cols columns (the codebooks are per tensor).
  double row_bits_per_weight(int64_t cols) const;
  // Bytes of the codebooks of one tensor: S * 256 * 8 FP16 values.
  int64_t codebook_bytes() const { return static_cast<int64_t>(stages) * kVqCentroids * kVqDim * 2; }
  // Everything stored per weight of a [rows, cols] matrix: codes, scales and codebooks.
  double bits_per_weight(int64_t rows, int64_t cols) const;
};

// "vq2x8_g256" -> its parameters; errors name the name and what is wrong.
Expected<VqParams> parse_vq_format(std::string_view name);
// Whether a name has the vq prefix (so it is parsed here, or refused here).
bool is_vq_format_name(std::string_view name);
std::string vq_format_name(const VqParams& p);

// cols must be a positive multiple of 8; the error names the format and the shape.
Status vq_check_shape(const VqParams& p, int64_t rows, int64_t cols);
int64_t vq_row_bytes(const VqParams& p, int64_t cols);   // codes of one row: cols / 8 * S
int64_t vq_row_groups(const VqParams& p, int64_t cols);  // scales of one row

// One decoded vector: out[8] = scale * Σ_s codebooks[s][codes[s]], codebooks [S][256][8] float.
// The one place the sum is formed, so the encoder's values equal the decoder's bit for bit.
void vq_decode_vector(const VqParams& p, const float* codebooks, const uint8_t* codes, float scale, float* out);

// The reference decoder of one row: out[cols] from its codes [cols / 8][S], FP16 scales
// and the codebooks [S][256][8] (float, as vq_codebooks_from_fp16 gives them).
void vq_decode_row(const VqParams& p, const float* codebooks, const uint8_t* codes, const uint16_t* scales,
                   int64_t cols, float* out);

}  // namespace lowbit
