// Scaled (block) formats: an element format (element_format.h) plus scales.
//
// A scaled format stores a matrix x [rows, cols] (row-major; for weights
// [out_features, in_features], for activations [tokens, features]) as
//   x[r, c] ~= decode(code[r, c]) * 2^unit * s_block            (symmetric)
//   x[r, c] ~= decode(code[r, c]) * s_block + m_block            (asymmetric)
// where s_block (and the block minimum m_block) are stored in the scale type and,
// for two-level formats (NVFP4), s_block = decode(scale code) * s_tensor with one
// FP32 s_tensor per matrix. The scale block is set by the granularity:
//   tensor   one scale for the whole matrix
//   row      one per row: per output channel of a weight, per token of an activation
//   group    one per G consecutive elements of a row (G = 16, 32, 64, 128, ...)
//   block2d  one per bh x bw tile (DeepSeek-V3 FP8 uses 128 x 128)
//   none     no scale (FP16, BF16 storage)
// The last group/tile of a row/matrix may be partial (cols % G elements).
//
// How the scale is chosen (ScaleRule), with amax = max |x| over the block and
// vmax = the element format's largest value (times 2^unit):
//   absmax    s = amax / vmax rounded to nearest in the scale type, so the
//             largest value maps onto the largest code; FP16/BF16/FP8 scales
//             saturate at their maximum. Asymmetric: the range is widened to
//             include 0 as GPTQ does, m = min(min, 0) rounded to the scale type,
//             s = (max(max, 0) - m) / (2^b - 1) rounded.
//   pow2      OCP MX v1.0 section 6.3: s = 2^(floor(log2 amax) - emax_elem) where
//             emax_elem = floor(log2 vmax); values beyond vmax clip to vmax.
//   pow2_up   the same, doubled when the largest value would round past vmax,
//             so nothing clips (ZeroQuant-FP's power-of-two constraint, and the
//             "round-up" MX variant). "Would round past" is exact: the doubling
//             happens iff amax / s rounds to nearest-even beyond vmax on the
//             element grid extended by one step u = vmax - (next lower value),
//             i.e. amax / s > vmax + u/2, or equal with vmax's code odd. This rule,
//             unlike s = 2^ceil(log2(amax / vmax)), is idempotent for integer and
//             minifloat elements: requantizing a dequantized block chooses the
//             same scale (tested).
//             Doubling is skipped where the grid's top would pass float32's
//             largest value (blocks near 3e38).
// Requantizing a dequantized tensor gives back the same codes when the format is
// `requantize_stable` (every named format is; tested) and the block scales stay in
// the scale type's normal range (an FP16 scale below 2^-14, i.e. an INT4 group with
// amax < 4e-4, has too few bits to be re-derived). Stable means:
//   absmax   the scale type resolves the top of the element grid: with relative
//            rounding error d = 2^-(mantissa bits + 1), vmax d / (1 - d) < u / 2, so
//            the block maximum lands on the top code again (asymmetric: the minimum
//            on code 0 too). UINT8 with BF16 scales (255 * 2^-8 > 1/2) is not.
//   pow2     2^floor(log2 vmax) is an element value (rounding keeps the top binade).
//   pow2_up  integer and minifloat elements (their grid one binade down is the top
//            grid halved); not codebooks or posits.
// The second-level scale (NVFP4, NVIDIA's recipe) is s_tensor = amax_tensor /
// (vmax * scale_max), scale_max = 448 for E4M3, so the largest block scale lands
// on the top of the scale type's range.
// Scale search (QuantizeOptions::search): min-max uses amax itself; MSE clipping
// tries clip ratios r = 1, 1 - (1 - r_min)/steps, ..., r_min on amax (on both
// ends of the asymmetric range) and keeps the scale with the smallest sum over the block of
// w[col] (x - q)^2, w = per-column importance (llama.cpp imatrix) or 1; ties keep
// the larger ratio, so r = 1 (min-max) wins unless clipping strictly helps.
//
// Elements: y = x / (s * 2^unit) (asymmetric: (x - m) / s), clamped to the
// element range [-vmax, vmax] ([0, 2^b - 1]), then encoded by the element codec
// with round-to-nearest-even, or stochastic rounding from a seeded counter-based
// generator (uniform u of element i of the matrix = hash(seed, i)), so results
// do not depend on the ISA or on threading. Non-finite inputs are an error. A
// zero block scale (all-zero block, or a block scale underflowing the scale type)
// encodes every element as the code of 0.
//
// Packed storage (QuantizedTensor):
//   codes   [rows][row_code_bytes(bits, cols)]: each row is a little-endian bit
//           stream starting on a byte boundary; code c of the row occupies stream
//           bits [c*b, c*b + b), bit 0 = least significant bit of byte 0. So
//           4-bit codes go low nibble first, and 3/5/6-bit codes cross bytes
//           (8 codes of b bits = b bytes). Unused bits of a row's last byte are 0.
//   scales  [scale_rows][scale_cols] scale codes, each scale_bytes little-endian
//   mins    asymmetric only, m = min(block minimum, 0), same shape and type as scales
//   tensor_scale  FP32 second-level scale (1 when the format has none)
// bits_per_element counts all of it: codes, scales, mins, the tensor scale and the
// padding of each row to whole bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/element_format.h"
#include "formats/scale_type.h"
#include "kernels/cpu_features.h"

namespace lowbit {

enum class ScaleGranularity { kNone, kTensor, kRow, kGroup, kBlock2D };
enum class ScaleRule { kAbsMax, kPow2, kPow2Up };

// Shape of the stored data; everything the size helpers need, constexpr.
struct BlockLayout {
  int code_bits = 8;
  ScaleGranularity granularity = ScaleGranularity::kRow;
  int group_rows = 1;  // block2d tile height
  int group_cols = 1;  // group size G, or block2d tile width
  int scale_bytes = 4;
  bool asymmetric = false;
  bool tensor_scale = false;
};

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
constexpr int64_t row_code_bytes(int bits, int64_t cols) { return ceil_div(cols * bits, 8); }
constexpr int64_t scale_rows(const BlockLayout& l, int64_t rows) {
  switch (l.granularity) {
    case ScaleGranularity::kNone: return 0;
    case ScaleGranularity::kTensor: return 1;
    case ScaleGranularity::kBlock2D: return ceil_div(rows, l.group_rows);
    default: return rows;
  }
}
constexpr int64_t scale_cols(const BlockLayout& l, int64_t cols) {
  switch (l.granularity) {
    case ScaleGranularity::kNone: return 0;
    case ScaleGranularity::kGroup:
    case ScaleGranularity::kBlock2D: return ceil_div(cols, l.group_cols);
    default: return 1;
  }
}
constexpr int64_t scale_count(const BlockLayout& l, int64_t rows, int64_t cols) {
  return scale_rows(l, rows) * scale_cols(l, cols);
}
constexpr int64_t packed_bytes(const BlockLayout& l, int64_t rows, int64_t cols) {
  return rows * row_code_bytes(l.code_bits, cols) + scale_count(l, rows, cols) * l.scale_bytes * (l.asymmetric ? 2 : 1) +
         (l.tensor_scale ? 4 : 0);
}
constexpr double bits_per_element(const BlockLayout& l, int64_t rows, int64_t cols) {
  return 8.0 * static_cast<double>(packed_bytes(l, rows, cols)) / static_cast<double>(rows * cols);
}

// NVFP4 on a 16-aligned 1 x 4096 row: 4 bits + one byte per 16 + the FP32 tensor scale.
static_assert(packed_bytes(BlockLayout{4, ScaleGranularity::kGroup, 1, 16, 1, false, true}, 1, 4096) ==
              2048 + 256 + 4);
// MXFP4: 4 + 8/32 = 4.25 bits; 3-bit codes of 33 columns take 13 bytes a row.
static_assert(bits_per_element(BlockLayout{4, ScaleGranularity::kGroup, 1, 32, 1, false, false}, 8, 4096) == 4.25);
static_assert(row_code_bytes(3, 33) == 13 && row_code_bytes(6, 4) == 3 && row_code_bytes(5, 8) == 5);

// One named scaled format. Build with make_block_format, which checks the
// combination and resolves the element format.
struct BlockFormatSpec {
  std::string name;
  std::string element;  // element format name: "fp4_e2m1", "int4", "uint4", "nf4", "int16", ...
  ScaleGranularity granularity = ScaleGranularity::kRow;
  int group_rows = 1;
  int group_cols = 1;
  ScaleType scale_type = ScaleType::kFp32;
  ScaleRule rule = ScaleRule::kAbsMax;
  bool asymmetric = false;    // needs an unsigned integer element ("uintN") and a signed scale type
  bool tensor_scale = false;  // FP32 second-level scale (NVFP4)
  int element_unit_log2 = 0;  // element value = decode(code) * 2^unit (MXINT8: -6, the 1.6 fixed point)
  std::string description;
  // Measured quality: SNR (dB) on the reference Gaussian matrix (synthetic.h,
  // kQualityRows x kQualityCols, seed kQualitySeed, min-max scales); 0 = not
  // measured. Tests pin the measurement to this value +-0.05 dB.
  double snr_gaussian_db = 0.0;
};

struct BlockFormat {
  BlockFormatSpec spec;
  ElementFormat element;
  BlockLayout layout;
  float element_max = 0.0f;   // vmax: largest element value times 2^unit
  float element_step = 0.0f;  // u: vmax minus the next lower element value (times 2^unit)
  bool max_code_odd = false;  // the code of vmax is odd (pow2_up tie rule)
  float code_lo = 0.0f;       // range of decode() over the codes encode produces: scaled values
  float code_hi = 0.0f;       // are clamped to [code_lo, code_hi] before encoding
  bool requantize_stable = false;  // dequantize -> quantize returns the same codes (see above)

  const std::string& name() const { return spec.name; }
  // Bits per element of a rows x cols matrix, all overheads included.
  double bits_per_element(int64_t rows, int64_t cols) const { return lowbit::bits_per_element(layout, rows, cols); }
};

Expected<BlockFormat> make_block_format(const BlockFormatSpec& spec);

// The traits table of named scaled formats.
const std::vector<BlockFormat>& block_formats();
// Lookup by name; the error lists the known names.
Expected<const BlockFormat*> find_block_format(const std::string& name);
// The asymmetric integer menu by shape rather than name: UINT`bits` codes with an
// FP16 scale and an FP16 minimum per `group` columns, or per row when group is 0
// ("int5_g32_asym", "int8_pc_asym"; the 3-bit/128 and 2-bit/64 entries keep their
// older names int3_g128 and int2_g64). Null when the table has no such entry.
const BlockFormat* find_asymmetric_int_format(int bits, int group);

const char* granularity_name(ScaleGranularity g);
const char* scale_rule_name(ScaleRule r);

enum class Rounding { kNearestEven, kStochastic };
enum class ScaleSearch { kMinMax, kMseClip };

struct QuantizeOptions {
  Rounding rounding = Rounding::kNearestEven;
  uint64_t seed = 0;  // stochastic rounding
  ScaleSearch search = ScaleSearch::kMinMax;
  float clip_min = 0.5f;  // MSE clip search: ratios 1 .. clip_min
  int clip_steps = 20;    // number of steps below 1
  std::span<const float> importance;  // [cols] per-column weights >= 0 for the MSE search, empty = all 1
};

struct QuantizedTensor {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint8_t> codes;   // [rows][row_code_bytes(bits, cols)] bit-packed element codes
  std::vector<uint8_t> scales;  // [scale_rows][scale_cols][scale_bytes] scale codes, little-endian
  std::vector<uint8_t> mins;    // asymmetric: [scale_rows][scale_cols][scale_bytes] m = min(block min, 0)
  float tensor_scale = 1.0f;    // second-level FP32 scale (NVFP4), else 1

  size_t total_bytes() const { return codes.size() + scales.size() + mins.size() + 4; }
};

// The scalar reference: the element codec called per value. x: [rows, cols].
Expected<QuantizedTensor> quantize_reference(const BlockFormat& format, const float* x, int64_t rows, int64_t cols,
                                             const QuantizeOptions& options = {});
// out: [rows, cols].
Status dequantize_reference(const BlockFormat& format, const QuantizedTensor& q, float* out);

struct BlockKernelImpl;

// The fast path of one format on one ISA (generic, or AVX-512 for the AVX-512
// levels; AVX2 runs generic), bit for bit equal to the reference. Creating it
// builds the element kernel's tables, so make one and reuse it. The format must
// outlive it. Stochastic rounding runs the reference codec for the element step.
class BlockKernel {
 public:
  static Expected<BlockKernel> create(const BlockFormat& format, Isa isa = active_isa());
  Expected<QuantizedTensor> quantize(const float* x, int64_t rows, int64_t cols,
                                     const QuantizeOptions& options = {}) const;
  Status dequantize(const QuantizedTensor& q, float* out) const;
  Isa isa() const { return isa_; }

 private:
  BlockKernel(std::shared_ptr<const BlockKernelImpl> impl, Isa isa) : impl_(std::move(impl)), isa_(isa) {}
  std::shared_ptr<const BlockKernelImpl> impl_;
  Isa isa_;
};

// One-shot conveniences: create a BlockKernel and run it.
Expected<QuantizedTensor> quantize(const BlockFormat& format, const float* x, int64_t rows, int64_t cols,
                                   const QuantizeOptions& options = {}, Isa isa = active_isa());
Status dequantize(const BlockFormat& format, const QuantizedTensor& q, float* out, Isa isa = active_isa());

// Scale codes are stored little-endian in `bytes` (1, 2 or 4) bytes each, in
// QuantizedTensor::scales / mins. Shared with code that keeps scales apart from
// the codes (quant/block_scales.h).
void write_scale_code(uint8_t* dst, uint32_t code, int bytes);
uint32_t read_scale_code(const uint8_t* src, int bytes);

// Code c (0-based) of row r, unpacked (tests and inspection).
uint32_t code_at(const BlockFormat& format, const QuantizedTensor& q, int64_t r, int64_t c);

}  // namespace lowbit
