// The portable parts of the trellis kernels (trellis_kernels.h).
#include "kernels/trellis_kernels.h"

#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/lut4_fixed16.h"

namespace lowbit {

void trellis_sequence_values(const TrellisParams& p, const uint8_t* seq, int8_t* out) {
  // The string plus its first 4 bytes, so a 32-bit read at any state's start byte stays inside.
  uint8_t buf[40 + 4];
  const int n = p.seq_bytes();
  std::memcpy(buf, seq, static_cast<size_t>(n));
  std::memcpy(buf + n, seq, 4);
  const uint32_t mask = p.state_mask();
  for (int t = 0; t < p.steps(); ++t) {
    const int bit = t * p.step_bits;  // < seq_bits(): the step's first bit
    uint32_t word;
    std::memcpy(&word, buf + bit / 8, 4);
    const uint32_t state = (word >> (bit % 8)) & mask;
    for (int j = 0; j < p.values_per_step; ++j) {
      out[t * p.values_per_step + j] = static_cast<int8_t>(trellis_state_value(state, j));
    }
  }
}

void trellis_dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  const TrellisParams p = w.trellis();
  const int64_t ng = w.n_groups(), nq = w.cols / kTrellisSeqLen;
  int8_t v[kTrellisSeqLen];
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * w.row_bytes();
    float* o = out + (r - r0) * w.cols;
    for (int64_t q = 0; q < nq; ++q) {
      trellis_sequence_values(p, codes + q * p.seq_bytes(), v);
      const float s = fp16_to_float(w.scales[r * ng + q * kTrellisSeqLen / w.group]);
      // The order of packed_value: value times scale, then times the tensor scale.
      for (int i = 0; i < kTrellisSeqLen; ++i) o[q * kTrellisSeqLen + i] = static_cast<float>(v[i]) * s * w.tensor_scale;
    }
  }
}

void trellis_gemv_fp32(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const TrellisParams p = w.trellis();
  const int64_t ng = w.n_groups();
  const float* x = a.x.data();
  int8_t v[kTrellisSeqLen];
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * w.row_bytes();
    float acc[16] = {};
    for (int64_t q = 0; q < w.cols / kTrellisSeqLen; ++q) {
      trellis_sequence_values(p, codes + q * p.seq_bytes(), v);
      const float s = fp16_to_float(w.scales[r * ng + q * kTrellisSeqLen / w.group]);
      const float* xq = x + q * kTrellisSeqLen;
      // value * scale is exact in FP32 (7 by 11 significant bits), so each lane sums
      // W[r, c] * x[c] as the reference does and overflows only where it would.
      for (int i = 0; i < kTrellisSeqLen; ++i) acc[i % 16] += static_cast<float>(v[i]) * s * xq[i];
    }
    float sum = 0.0f;
    for (float t : acc) sum += t;
    y[r - r0] = sum * w.tensor_scale;
  }
}

void prepare_trellis_fixed16(const PackedMatrix& w, PackedActivation& a) {
  Fixed16Activation& f = a.fixed;
  f.valid = false;
  std::vector<int32_t> xi;
  if (w.kind != PackedKind::kTrellis || !fixed16_values(a.x.data(), w.cols, &f.scale, xi)) return;
  const int64_t n = w.cols, ng = w.n_groups();
  f.bytes.assign(static_cast<size_t>(4 * n), 0);
  std::vector<int64_t> sums(static_cast<size_t>(ng), 0);
  for (int64_t c = 0; c < n; ++c) {
    const Fixed16Bytes b = fixed16_bytes(xi[c]);
    f.bytes[c] = b.lo;
    f.bytes[n + c] = b.hi;
    const int16_t word = static_cast<int16_t>(xi[c]);  // |xi| <= 32639
    std::memcpy(f.bytes.data() + 2 * n + 2 * c, &word, 2);
    sums[c / w.group] += xi[c];
  }
  f.group_sums.assign(static_cast<size_t>(ng), 0.0f);
  for (int64_t g = 0; g < ng; ++g) f.group_sums[g] = static_cast<float>(sums[g]);
  f.valid = true;
}

double trellis_fixed16_rounding_bound(const PackedMatrix& w, const PackedActivation& a, int64_t r) {
  const Fixed16Activation& f = a.fixed;
  const TrellisParams p = w.trellis();
  const int64_t ng = w.n_groups();
  const uint8_t* codes = w.codes.data() + r * w.row_bytes();
  int8_t v[kTrellisSeqLen];
  double mag = 0.0;  // sum_c |s_g| (value_c + 126) |xi_c| + 126 sum_g |s_g X_g|
  for (int64_t q = 0; q < w.cols / kTrellisSeqLen; ++q) {
    trellis_sequence_values(p, codes + q * p.seq_bytes(), v);
    const double s = std::fabs(static_cast<double>(fp16_to_float(w.scales[r * ng + q * kTrellisSeqLen / w.group])));
    for (int i = 0; i < kTrellisSeqLen; ++i) {
      const int64_t c = q * kTrellisSeqLen + i;
      const int32_t lo = f.bytes[c], hi = f.bytes[w.cols + c];
      mag += s * (v[i] + kTrellisValueMax) * std::fabs(256.0 * hi + lo);
    }
  }
  for (int64_t g = 0; g < ng; ++g) {
    mag += kTrellisValueMax * std::fabs(static_cast<double>(fp16_to_float(w.scales[r * ng + g])) * f.group_sums[g]);
  }
  const double depth = static_cast<double>(w.cols / kTrellisSeqLen + ng + 12);
  return depth * 0x1.0p-24 * std::fabs(static_cast<double>(w.tensor_scale)) * f.scale * mag + 1e-30;
}

}  // namespace lowbit
