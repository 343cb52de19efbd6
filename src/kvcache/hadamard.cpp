#include "kvcache/hadamard.h"

#include <cmath>

namespace lowbit {

void fwht(float* x, int n) {
  for (int h = 1; h < n; h *= 2) {
    for (int i = 0; i < n; i += 2 * h) {
      for (int j = i; j < i + h; ++j) {
        const float a = x[j];
        const float b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
    }
  }
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  for (int i = 0; i < n; ++i) x[i] *= scale;
}

void fwht_rows(float* x, int64_t rows, int n) {
  for (int64_t r = 0; r < rows; ++r) fwht(x + r * n, n);
}

}  // namespace lowbit
