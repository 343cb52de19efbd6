// The fixed-point kLut4 GEMV's table, activation preparation, scalar
// reference and error bounds (lut4_fixed16.h).
#include "kernels/lut4_fixed16.h"

#include <algorithm>
#include <cmath>

#include "core/half.h"

namespace lowbit {
namespace {

// Where column c (within its 128-column chunk) sits in the chunk's activation
// bytes: the vector for its nibble (0 low, 1 high) and the byte in it.
struct Fixed16Slot {
  int64_t chunk;
  int half;  // 0: low nibble, 1: high nibble
  int byte;  // 0..63
};

Fixed16Slot fixed16_slot(int64_t c) {
  const int64_t within = c % 128, j = within % 32;
  return {c / 128, static_cast<int>(j / 16), static_cast<int>(16 * (within / 32) + j % 16)};
}

// xi[c] back from its two bytes.
int32_t fixed16_value(const Fixed16Activation& f, int64_t c) {
  const Fixed16Slot s = fixed16_slot(c);
  const int8_t* chunk = f.bytes.data() + 256 * s.chunk;
  return 256 * chunk[64 * (2 + s.half) + s.byte] + chunk[64 * s.half + s.byte];
}

float group_scale(const PackedMatrix& w, int64_t r, int64_t g) {
  return half_code_to_float(w.scales[r * w.n_groups() + g], w.bf16_scales);
}

float group_min(const PackedMatrix& w, int64_t r, int64_t g) {
  return w.asymmetric ? half_code_to_float(w.mins[r * w.n_groups() + g], w.bf16_scales) : 0.0f;
}

}  // namespace

Lut4ByteTable lut4_byte_table(const PackedMatrix& w) {
  Lut4ByteTable t;
  if (w.kind != PackedKind::kLut4) return t;
  for (int e = 0; e <= 8; ++e) {
    const float k = std::ldexp(1.0f, e);
    float lo = 0.0f, hi = 0.0f;
    bool integral = true;
    for (int c = 0; c < 16 && integral; ++c) {
      const float v = w.lut[c] * k;  // exact: k is a power of two
      integral = std::isfinite(v) && v == std::nearbyint(v);
      lo = c == 0 ? v : std::min(lo, v);
      hi = c == 0 ? v : std::max(hi, v);
    }
    if (!integral || hi - lo > 255.0f) continue;
    t.ok = true;
    t.multiplier = k;
    t.offset = -static_cast<int32_t>(lo);
    t.identity = true;
    for (int c = 0; c < 16; ++c) {
      t.u[c] = static_cast<uint8_t>(static_cast<int32_t>(w.lut[c] * k) + t.offset);
      t.identity = t.identity && t.u[c] == c;
    }
    return t;
  }
  return t;
}

bool lut4_fixed16_eligible(const PackedMatrix& w) {
  return w.kind == PackedKind::kLut4 && (w.group == 16 || w.group == 32 || w.group == 64 || w.group % 128 == 0) &&
         lut4_byte_table(w).ok;
}

bool lut4_fixed16_avx2_eligible(const PackedMatrix& w) {
  if (!lut4_fixed16_eligible(w)) return false;
  const Lut4ByteTable t = lut4_byte_table(w);
  return *std::max_element(t.u, t.u + 16) <= 63;
}

bool fixed16_values(const float* x, int64_t n, float* scale, std::vector<int32_t>& xi) {
  float amax = 0.0f;
  for (int64_t c = 0; c < n; ++c) {
    if (!std::isfinite(x[c])) return false;
    amax = std::max(amax, std::fabs(x[c]));
  }
  *scale = amax / static_cast<float>(kFixed16Max);
  const float inv = amax > 0.0f ? static_cast<float>(kFixed16Max) / amax : 0.0f;
  xi.resize(static_cast<size_t>(n));
  for (int64_t c = 0; c < n; ++c) {
    xi[c] = std::clamp(static_cast<int32_t>(std::nearbyint(x[c] * inv)), -kFixed16Max, kFixed16Max);
  }
  return true;
}

void prepare_lut4_fixed16(const PackedMatrix& w, PackedActivation& a) {
  Fixed16Activation& f = a.fixed;
  f.valid = false;
  std::vector<int32_t> xi;
  if (!lut4_fixed16_eligible(w) || !fixed16_values(a.x.data(), w.cols, &f.scale, xi)) return;
  const int64_t chunks = (w.cols_padded + 127) / 128, ng = w.n_groups();
  f.bytes.assign(static_cast<size_t>(256 * chunks), 0);
  std::vector<int64_t> sums(static_cast<size_t>(ng), 0);
  for (int64_t c = 0; c < w.cols; ++c) {
    const Fixed16Bytes b = fixed16_bytes(xi[c]);
    const Fixed16Slot s = fixed16_slot(c);
    int8_t* chunk = f.bytes.data() + 256 * s.chunk;
    chunk[64 * s.half + s.byte] = b.lo;
    chunk[64 * (2 + s.half) + s.byte] = b.hi;
    sums[c / w.group] += xi[c];
  }
  f.group_sums.assign(static_cast<size_t>(ng + 16), 0.0f);
  for (int64_t g = 0; g < ng; ++g) f.group_sums[g] = static_cast<float>(sums[g]);
  f.valid = true;
}

void gemv_lut4_fixed16_reference(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const Lut4ByteTable t = lut4_byte_table(w);
  const Fixed16Activation& f = a.fixed;
  for (int64_t r = r0; r < r1; ++r) {
    double acc = 0.0;
    for (int64_t g = 0; g < w.n_groups(); ++g) {
      int64_t dot = 0;  // sum u_c xi_c over the group, exact
      for (int64_t c = g * w.group; c < std::min<int64_t>(w.cols, (g + 1) * w.group); ++c) {
        dot += static_cast<int64_t>(t.u[lut4_code(w, r, c)]) * fixed16_value(f, c);
      }
      const double xs = f.group_sums[g], s = group_scale(w, r, g) / static_cast<double>(t.multiplier);
      acc += s * (static_cast<double>(dot) - t.offset * xs) + group_min(w, r, g) * xs;
    }
    y[r - r0] = static_cast<float>(acc * f.scale * w.tensor_scale);
  }
}

double lut4_fixed16_rounding_bound(const PackedMatrix& w, const PackedActivation& a, int64_t r) {
  const Lut4ByteTable t = lut4_byte_table(w);
  const Fixed16Activation& f = a.fixed;
  double mag = 0.0;  // the terms the kernel rounds, in absolute value
  for (int64_t g = 0; g < w.n_groups(); ++g) {
    double dot = 0.0;
    for (int64_t c = g * w.group; c < std::min<int64_t>(w.cols, (g + 1) * w.group); ++c) {
      dot += static_cast<double>(t.u[lut4_code(w, r, c)]) * std::abs(fixed16_value(f, c));
    }
    const double xs = std::fabs(f.group_sums[g]);
    mag += std::fabs(group_scale(w, r, g) / t.multiplier) * (dot + t.offset * xs) + std::fabs(group_min(w, r, g)) * xs;
  }
  const double depth = static_cast<double>(w.cols_padded) / 128.0 + static_cast<double>(w.n_groups()) + 16.0;
  return depth * 0x1.0p-24 * mag * f.scale * std::fabs(w.tensor_scale) + 1e-30;
}

double fixed16_quantization_bound(const PackedMatrix& w, const PackedActivation& a, int64_t r) {
  double mag = 0.0;
  for (int64_t c = 0; c < w.cols; ++c) mag += std::fabs(static_cast<double>(packed_value(w, r, c)));
  // 0.5 of a step, plus the FP32 rounding of x * (32639 / max|x|) and of the scale.
  return 0.51 * a.fixed.scale * mag + 1e-30;
}

}  // namespace lowbit
