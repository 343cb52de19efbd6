// W8A8 (w8a8.h): activation quantization, row sums, the exact reference, the
// portable kernel.
#include "kernels/w8a8.h"

#include <algorithm>
#include <cmath>

namespace lowbit {

void reserve_int8_activations(int64_t tokens, int64_t cols_padded, Int8Activations& a) {
  a.tokens = tokens;
  a.cols_padded = cols_padded;
  a.u8.assign(static_cast<size_t>(tokens * cols_padded), 128);
  a.scale.assign(static_cast<size_t>(tokens), 0.0f);
}

void quantize_rows_int8_rule(const float* x, int64_t cols, int64_t t0, int64_t t1, const IntActRule& rule,
                             Int8Activations& a) {
  for (int64_t t = t0; t < t1; ++t) {
    const float* xt = x + t * cols;
    float amax = 0.0f;
    bool finite = true;
    for (int64_t c = 0; c < cols; ++c) {
      finite = finite && std::isfinite(xt[c]);
      amax = std::max(amax, std::fabs(xt[c]));
    }
    if (!finite) {
      a.scale[t] = std::nanf("");
      continue;
    }
    const float s = int_act_scale(rule, amax, 127.0f);
    if (!(s > 0.0f)) continue;
    a.scale[t] = s;
    uint8_t* u = a.u8.data() + t * a.cols_padded;
    for (int64_t c = 0; c < cols; ++c) {
      const float q = std::clamp(std::nearbyint(xt[c] / s), -127.0f, 127.0f);
      u[c] = static_cast<uint8_t>(static_cast<int>(q) + 128);
    }
  }
}

void quantize_rows_int8_generic(const float* x, int64_t cols, int64_t t0, int64_t t1, Int8Activations& a) {
  quantize_rows_int8_rule(x, cols, t0, t1, {}, a);
}

void quantize_activations_int8(const float* x, int64_t tokens, int64_t cols, int64_t cols_padded, Int8Activations& a,
                               const IntActRule& rule) {
  reserve_int8_activations(tokens, cols_padded, a);
  quantize_rows_int8_rule(x, cols, 0, tokens, rule, a);
}

std::vector<int32_t> int8_row_sums(const PackedMatrix& w) {
  std::vector<int32_t> out(static_cast<size_t>(w.rows), 0);
  for (int64_t r = 0; r < w.rows; ++r) {
    const uint8_t* p = w.codes.data() + r * w.row_bytes();
    int32_t s = 0;
    for (int64_t c = 0; c < w.cols_padded; ++c) s += static_cast<int8_t>(p[c]);
    out[r] = s;
  }
  return out;
}

void w8a8_reference(const PackedMatrix& w, const std::vector<int32_t>& rowsum, const Int8Activations& a, int64_t r0,
                    int64_t r1, float* y, int64_t ldy) {
  for (int64_t t = 0; t < a.tokens; ++t) {
    const uint8_t* u = a.u8.data() + t * a.cols_padded;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* p = w.codes.data() + r * w.row_bytes();
      int64_t acc = 0;
      for (int64_t c = 0; c < w.cols_padded; ++c) acc += static_cast<int64_t>(u[c] - 128) * static_cast<int8_t>(p[c]);
      y[t * ldy + (r - r0)] = static_cast<float>(acc) * a.scale[t] * (w.row_scales[r] * w.tensor_scale);
    }
  }
}

namespace {

void gemm_generic(const PackedMatrix& w, const std::vector<int32_t>& rowsum, const Int8Activations& a, int64_t r0,
                  int64_t r1, float* y, int64_t ldy) {
  for (int64_t t = 0; t < a.tokens; ++t) {
    const uint8_t* u = a.u8.data() + t * a.cols_padded;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* p = w.codes.data() + r * w.row_bytes();
      int32_t acc = 0;
      for (int64_t c = 0; c < w.cols_padded; ++c) acc += static_cast<int32_t>(u[c]) * static_cast<int8_t>(p[c]);
      acc -= 128 * rowsum[r];
      y[t * ldy + (r - r0)] = static_cast<float>(acc) * a.scale[t] * (w.row_scales[r] * w.tensor_scale);
    }
  }
}

}  // namespace

W8A8Kernels w8a8_kernels_generic() { return {gemm_generic, Isa::kGeneric}; }

}  // namespace lowbit
