#include "model/ops.h"

#include <cmath>

#include "kernels/exp_rows.h"

namespace lowbit {

void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* out) {
  // Eight interleaved double sums (x[i]^2 is exact in double; the sums differ from
  // one running sum by ~1e-16 relative, far below the float result's rounding):
  // one chain of dependent adds made a prompt's norms 2-3% of its time.
  double part[8] = {};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    for (int j = 0; j < 8; ++j) part[j] += static_cast<double>(x[k + j]) * x[k + j];
  }
  for (; k < n; ++k) part[0] += static_cast<double>(x[k]) * x[k];
  const double sum_sq = ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
  const float scale = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

std::vector<double> rope_inverse_frequencies(const ModelConfig& c, const std::vector<float>& freq_factors) {
  const int half = c.head_dim / 2;
  std::vector<double> inv_freq(half);
  constexpr double kPi = 3.14159265358979323846;
  for (int i = 0; i < half; ++i) {
    double freq = std::pow(c.rope_theta, -2.0 * i / c.head_dim);
    if (c.rope_scaling.llama3) {
      // Llama-3.1: long wavelengths are slowed by `factor`, short ones kept, and the
      // band between is interpolated smoothly.
      const RopeScaling& s = c.rope_scaling;
      const double wavelen = 2.0 * kPi / freq;
      const double low_wavelen = s.original_max_position / s.low_freq_factor;
      const double high_wavelen = s.original_max_position / s.high_freq_factor;
      if (wavelen > low_wavelen) {
        freq /= s.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (s.original_max_position / wavelen - s.low_freq_factor) /
                              (s.high_freq_factor - s.low_freq_factor);
        freq = (1.0 - smooth) * freq / s.factor + smooth * freq;
      }
    }
    if (!freq_factors.empty()) freq /= freq_factors[i];
    inv_freq[i] = freq;
  }
  return inv_freq;
}

namespace {

// Rotates pair (a, b) of every head of vec [n_heads, head_dim] by the angle of (c, s).
void rotate_heads(float* vec, int n_heads, int head_dim, int a, int b, float c, float s) {
  for (int h = 0; h < n_heads; ++h) {
    float* head = vec + static_cast<int64_t>(h) * head_dim;
    const float x0 = head[a];
    const float x1 = head[b];
    head[a] = x0 * c - x1 * s;
    head[b] = x0 * s + x1 * c;
  }
}

}  // namespace

void apply_rope(float* vec, int n_heads, int head_dim, int pos, RopeLayout layout,
                const std::vector<double>& inv_freq) {
  apply_rope_qk(vec, n_heads, nullptr, 0, head_dim, pos, layout, inv_freq);
}

void apply_rope_qk(float* query, int n_heads, float* key, int n_kv_heads, int head_dim, int pos, RopeLayout layout,
                   const std::vector<double>& inv_freq) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const double angle = pos * inv_freq[i];
    const float c = static_cast<float>(std::cos(angle));
    const float s = static_cast<float>(std::sin(angle));
    const int a = layout == RopeLayout::kAdjacentPairs ? 2 * i : i;
    const int b = layout == RopeLayout::kAdjacentPairs ? 2 * i + 1 : i + half;
    rotate_heads(query, n_heads, head_dim, a, b, c, s);
    if (key != nullptr) rotate_heads(key, n_kv_heads, head_dim, a, b, c, s);
  }
}

// Both run once per attention score row / FFN hidden row: the vectorized exp
// of the active ISA (kernels/exp_rows.h; std::exp on CPUs without AVX2).
void softmax(float* x, int64_t n) { exp_row_ops(active_isa()).softmax(x, n); }

void swiglu(float* gate, const float* up, int64_t n) { exp_row_ops(active_isa()).swiglu(gate, up, n); }

}  // namespace lowbit
