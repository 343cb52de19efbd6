// W4A4 (w4a4.h): activation quantization, sub-block sums, the exact reference
// (also the portable kernel).
#include "kernels/w4a4.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/half.h"
#include "kernels/w4a8.h"

namespace lowbit {
namespace {

float scale16(uint16_t code, bool bf16) { return bf16 ? bf16_to_float(code) : fp16_to_float(code); }

// Nibble of column c in a kLut4-layout row.
uint32_t nibble(const uint8_t* row, int64_t c) {
  const uint8_t byte = row[16 * (c / 32) + (c % 16)];
  return (c % 32) < 16 ? (byte & 0xF) : (byte >> 4);
}

}  // namespace

int32_t Int4Activations::q(int64_t t, int64_t c) const {
  return static_cast<int32_t>(nibble(codes.data() + t * (cols_padded / 2), c)) - 8;
}

void quantize_activations_int4(const float* x, int64_t tokens, int64_t cols, int64_t cols_padded, int64_t group,
                               const IntActRule& rule, Int4Activations& a) {
  a.tokens = tokens;
  a.cols_padded = cols_padded;
  a.group = group;
  const int64_t ng = a.n_groups(), block = group > 0 ? group : std::max<int64_t>(cols, 1);
  a.codes.assign(static_cast<size_t>(tokens * cols_padded / 2), 0x88);  // q = 0 everywhere
  a.scale.assign(static_cast<size_t>(tokens * ng), 0.0f);
  for (int64_t t = 0; t < tokens; ++t) {
    const float* xt = x + t * cols;
    uint8_t* row = a.codes.data() + t * (cols_padded / 2);
    for (int64_t c0 = 0, h = 0; c0 < cols; c0 += block, ++h) {
      const int64_t n = std::min(block, cols - c0);
      float amax = 0.0f;
      bool finite = true;
      for (int64_t i = 0; i < n; ++i) {
        finite = finite && std::isfinite(xt[c0 + i]);
        amax = std::max(amax, std::fabs(xt[c0 + i]));
      }
      float& s_out = a.scale[t * ng + h];
      if (!finite) {
        s_out = std::nanf("");
        continue;
      }
      const float s = int_act_scale(rule, amax, 7.0f);
      if (!(s > 0.0f)) continue;
      s_out = s;
      for (int64_t c = c0; c < c0 + n; ++c) {
        const float q = std::clamp(std::nearbyint(xt[c] / s), -7.0f, 7.0f);
        const uint32_t code = static_cast<uint32_t>(static_cast<int>(q) + 8);
        uint8_t& byte = row[16 * (c / 32) + (c % 16)];
        byte = (c % 32) < 16 ? static_cast<uint8_t>((byte & 0xF0) | code)
                             : static_cast<uint8_t>((byte & 0x0F) | code << 4);
      }
    }
  }
}

bool w4a4_supported(const PackedMatrix& w, int64_t act_group) {
  if (!w4a8_supported(w, nullptr) || act_group < 0) return false;
  const int64_t b = act_group > 0 ? std::gcd(static_cast<int64_t>(w.group), act_group) : w.group;
  return b % 16 == 0;
}

int64_t w4a4_block(const PackedMatrix& w, const Int4Activations& a) {
  return a.group > 0 ? std::gcd(static_cast<int64_t>(w.group), a.group) : w.group;
}

std::vector<int32_t> w4a4_block_sums(const PackedMatrix& w, const Int4Activations& a) {
  const int64_t b = w4a4_block(w, a), nk = (a.cols_padded + b - 1) / b;
  std::vector<int32_t> out(static_cast<size_t>(a.tokens * nk), 0);
  for (int64_t t = 0; t < a.tokens; ++t) {
    for (int64_t c = 0; c < a.cols_padded; ++c) out[t * nk + c / b] += a.q(t, c);
  }
  return out;
}

float w4a4_finish(const PackedMatrix& w, const Int4Activations& a, const std::vector<int32_t>& qsum, int64_t t,
                  int64_t r, const int32_t* dots) {
  const int64_t b = w4a4_block(w, a), nk = (a.cols_padded + b - 1) / b, ng = w.n_groups(), nh = a.n_groups();
  float sum = 0.0f;
  for (int64_t k = 0; k < nk; ++k) {
    const int64_t g = r * ng + k * b / w.group;
    const float sx = a.scale[t * nh + (a.group > 0 ? k * b / a.group : 0)];
    const float m = w.asymmetric ? scale16(w.mins[g], w.bf16_scales) : 0.0f;
    sum += sx * (scale16(w.scales[g], w.bf16_scales) * static_cast<float>(dots[k]) +
                 m * static_cast<float>(qsum[t * nk + k]));
  }
  return w.tensor_scale * sum;
}

void w4a4_reference(const PackedMatrix& w, const Int4Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
                    int64_t r1, float* y, int64_t ldy) {
  bool signed_codes = false;
  w4a8_supported(w, &signed_codes);
  const int64_t b = w4a4_block(w, a), nk = (a.cols_padded + b - 1) / b;
  std::vector<int32_t> dots(static_cast<size_t>(nk));
  for (int64_t t = 0; t < a.tokens; ++t) {
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* codes = w.codes.data() + r * w.row_bytes();
      for (int64_t k = 0; k < nk; ++k) {
        int64_t dot = 0;  // int64: the reference does not rely on the int32 bound
        for (int64_t c = k * b; c < std::min(a.cols_padded, (k + 1) * b); ++c) {
          int32_t v = static_cast<int32_t>(nibble(codes, c));
          if (signed_codes && v >= 8) v -= 16;
          dot += static_cast<int64_t>(v) * a.q(t, c);
        }
        dots[k] = static_cast<int32_t>(dot);
      }
      y[t * ldy + (r - r0)] = w4a4_finish(w, a, qsum, t, r, dots.data());
    }
  }
}

}  // namespace lowbit
