// W4A8 (w4a8.h): support check, group sums, the reference (also the portable kernel).
#include "kernels/w4a8.h"

#include <algorithm>

#include "core/half.h"

namespace lowbit {

bool w4a8_supported(const PackedMatrix& w, bool* signed_codes) {
  if (w.kind != PackedKind::kLut4) return false;
  bool identity = true, twos = true;
  for (int c = 0; c < 16; ++c) {
    identity = identity && w.lut[c] == static_cast<float>(c);
    twos = twos && w.lut[c] == static_cast<float>(c < 8 ? c : c - 16);
  }
  // The restricted INT4 never emits code 8 (-8): its table entry may differ.
  if (!twos) {
    twos = true;
    for (int c = 0; c < 16; ++c) twos = twos && (c == 8 || w.lut[c] == static_cast<float>(c < 8 ? c : c - 16));
  }
  if (signed_codes != nullptr) *signed_codes = !identity && twos;
  return (identity && w.asymmetric) || (twos && !w.asymmetric);
}

void group_activation_sums_rows(const PackedMatrix& w, const Int8Activations& a, int64_t t0, int64_t t1,
                                int32_t* qsum) {
  const int64_t ng = w.n_groups();
  for (int64_t t = t0; t < t1; ++t) {
    const uint8_t* u = a.u8.data() + t * a.cols_padded;
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t c0 = g * w.group, c1 = std::min<int64_t>(w.cols_padded, c0 + w.group);
      int32_t s = 0;  // sum of u, then minus 128 per column: sum of q
      for (int64_t c = c0; c < c1; ++c) s += u[c];
      qsum[t * ng + g] = s - 128 * static_cast<int32_t>(c1 - c0);
    }
  }
}

std::vector<int32_t> group_activation_sums(const PackedMatrix& w, const Int8Activations& a) {
  std::vector<int32_t> out(static_cast<size_t>(a.tokens * w.n_groups()), 0);
  group_activation_sums_rows(w, a, 0, a.tokens, out.data());
  return out;
}

namespace {
float scale16(uint16_t code, bool bf16) { return bf16 ? bf16_to_float(code) : fp16_to_float(code); }
}  // namespace

float w4a8_finish(const PackedMatrix& w, const Int8Activations& a, const std::vector<int32_t>& qsum, int64_t t,
                  int64_t r, const int32_t* dots) {
  const int64_t ng = w.n_groups();
  float sum = 0.0f;
  for (int64_t g = 0; g < ng; ++g) {
    const float m = w.asymmetric ? scale16(w.mins[r * ng + g], w.bf16_scales) : 0.0f;
    sum += scale16(w.scales[r * ng + g], w.bf16_scales) * static_cast<float>(dots[g]) +
           m * static_cast<float>(qsum[t * ng + g]);
  }
  return w.tensor_scale * a.scale[t] * sum;
}

void w4a8_reference(const PackedMatrix& w, const Int8Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
                    int64_t r1, float* y, int64_t ldy) {
  bool signed_codes = false;
  w4a8_supported(w, &signed_codes);
  const int64_t ng = w.n_groups();
  std::vector<int32_t> dots(static_cast<size_t>(ng));
  for (int64_t t = 0; t < a.tokens; ++t) {
    const uint8_t* u = a.u8.data() + t * a.cols_padded;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* codes = w.codes.data() + r * w.row_bytes();
      for (int64_t g = 0; g < ng; ++g) {
        int64_t dot = 0;  // int64: the reference does not rely on the int32 bound
        const int64_t end = std::min<int64_t>(w.cols_padded, (g + 1) * w.group);
        for (int64_t c = g * w.group; c < end; ++c) {
          const uint8_t byte = codes[16 * (c / 32) + (c % 16)];
          int32_t v = (c % 32) < 16 ? (byte & 0xF) : (byte >> 4);
          if (signed_codes && v >= 8) v -= 16;
          dot += static_cast<int64_t>(v) * (static_cast<int32_t>(u[c]) - 128);
        }
        dots[g] = static_cast<int32_t>(dot);
      }
      y[t * ldy + (r - r0)] = w4a8_finish(w, a, qsum, t, r, dots.data());
    }
  }
}

}  // namespace lowbit
