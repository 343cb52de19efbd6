// The fixed-point kInt8Row GEMV's activation preparation, scalar reference
// and rounding bound (int8_fixed16.h).
#include "kernels/int8_fixed16.h"

#include <cmath>
#include <cstdlib>
#include <vector>

#include "kernels/lut4_fixed16.h"

namespace lowbit {
namespace {

int32_t code_at(const PackedMatrix& w, int64_t r, int64_t c) {
  return static_cast<int8_t>(w.codes[r * w.row_bytes() + c]);
}

int32_t xi_at(const PackedMatrix& w, const Fixed16Activation& f, int64_t c) {
  return 256 * f.bytes[int8_fixed16_plane(w) + c] + f.bytes[c];
}

}  // namespace

void prepare_int8_fixed16(const PackedMatrix& w, PackedActivation& a) {
  Fixed16Activation& f = a.fixed;
  f.valid = false;
  std::vector<int32_t> xi;
  if (!int8_fixed16_eligible(w) || !fixed16_values(a.x.data(), w.cols, &f.scale, xi)) return;
  const int64_t plane = int8_fixed16_plane(w);
  f.bytes.assign(static_cast<size_t>(2 * plane), 0);
  int64_t sum = 0;
  for (int64_t c = 0; c < w.cols; ++c) {
    const Fixed16Bytes b = fixed16_bytes(xi[c]);
    f.bytes[c] = b.lo;
    f.bytes[plane + c] = b.hi;
    sum += xi[c];
  }
  f.group_sums.clear();  // one group, the row: its sum is `total`
  f.total = sum;
  f.valid = true;
}

void gemv_int8_fixed16_reference(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  for (int64_t r = r0; r < r1; ++r) {
    int64_t dot = 0;
    for (int64_t c = 0; c < w.cols; ++c) dot += static_cast<int64_t>(code_at(w, r, c)) * xi_at(w, a.fixed, c);
    y[r - r0] = static_cast<float>(static_cast<double>(dot) * a.fixed.scale * w.row_scales[r] * w.tensor_scale);
  }
}

double int8_fixed16_rounding_bound(const PackedMatrix& w, const PackedActivation& a, int64_t r) {
  double mag = 0.0;  // sum |q| |xi|: the kernel's integer sums are exact, its float steps see this magnitude
  for (int64_t c = 0; c < w.cols; ++c) mag += std::abs(code_at(w, r, c)) * std::abs(xi_at(w, a.fixed, c));
  return 6.0 * 0x1.0p-24 * mag * a.fixed.scale * std::fabs(w.row_scales[r] * w.tensor_scale) + 1e-30;
}

}  // namespace lowbit
