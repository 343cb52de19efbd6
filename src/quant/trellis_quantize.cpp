// Trellis-coded quantization of matrices (trellis_quantize.h).
#include "quant/trellis_quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"

namespace lowbit {
namespace {

// The codebook values of one stored sequence: v [64].
void sequence_values(const TrellisParams& p, const uint8_t* seq, float* v) {
  for (int t = 0; t < p.steps(); ++t) {
    const uint32_t state = trellis_state(p, seq, t);
    for (int j = 0; j < p.values_per_step; ++j) {
      v[t * p.values_per_step + j] = static_cast<float>(trellis_state_value(state, j));
    }
  }
}

// Runs fn(row, encoder) for every row, on pool's threads when given, one encoder
// per thread; the first error (lowest thread) is returned.
template <typename Fn>
Status for_rows(const TrellisParams& p, int64_t rows, ThreadPool* pool, Fn fn) {
  const int threads = pool != nullptr ? pool->size() : 1;
  std::vector<Status> status(static_cast<size_t>(threads));
  auto body = [&](int64_t begin, int64_t end, int thread) {
    auto encoder = TrellisEncoder::create(p);
    if (!encoder.ok()) {
      status[thread] = encoder.status();
      return;
    }
    for (int64_t r = begin; r < end; ++r) {
      Status s = fn(r, *encoder);
      if (!s.ok()) {
        status[thread] = s;
        return;
      }
    }
  };
  if (pool != nullptr && rows > 1) {
    pool->parallel_for(rows, body);
  } else {
    body(0, rows, 0);
  }
  for (Status& s : status) LB_RETURN_IF_ERROR(s);
  return Status::ok_status();
}

}  // namespace

Expected<TrellisGroupCode> trellis_encode_group(TrellisEncoder& encoder, const float* x, const float* w, int64_t n,
                                                int refits, uint8_t* codes, const uint16_t* fixed_scale) {
  const TrellisParams& p = encoder.params();
  const int len = encoder.length(), bytes = encoder.bytes();
  if (len != kTrellisSeqLen || n < len || n % len != 0) {
    return make_error("trellis group: {} values are not whole sequences of {}", n, kTrellisSeqLen);
  }
  const int64_t n_seq = n / len;
  double energy = 0.0, wsum = 0.0;  // Σ w x², Σ w
  for (int64_t i = 0; i < n; ++i) {
    const double wi = w != nullptr ? w[i] : 1.0;
    energy += wi * static_cast<double>(x[i]) * x[i];
    wsum += wi;
  }
  if (wsum <= 0.0) {  // no importance anywhere: every column counts alike
    w = nullptr;
    energy = 0.0;
    for (int64_t i = 0; i < n; ++i) energy += static_cast<double>(x[i]) * x[i];
    wsum = static_cast<double>(n);
  }
  TrellisGroupCode best;
  best.error = energy;
  std::memset(codes, 0, static_cast<size_t>(n_seq * bytes));
  uint16_t h = 0;
  if (fixed_scale != nullptr) {
    h = *fixed_scale;
  } else if (energy > 0.0) {
    h = float_to_fp16(static_cast<float>(std::sqrt(energy / wsum) / encoder.codebook_rms()));
  }
  if ((h & 0x7c00u) == 0x7c00u) {
    return make_error("trellis {}: group scale {} exceeds FP16 (max |weight| too large)", trellis_format_name(p),
                      std::sqrt(energy / wsum) / encoder.codebook_rms());
  }
  std::vector<uint8_t> trial(static_cast<size_t>(n_seq * bytes));
  std::vector<float> y(static_cast<size_t>(len)), v(y.size());
  for (int round = 0; round <= refits; ++round) {
    const float s = fp16_to_float(h);
    if (!(s > 0.0f)) break;  // zero (or underflowed) scale: zero codes, the error is Σ w x²
    double err = 0.0, num = 0.0, den = 0.0;
    for (int64_t q = 0; q < n_seq; ++q) {
      const float* xs = x + q * len;
      const float* ws = w != nullptr ? w + q * len : nullptr;
      for (int i = 0; i < len; ++i) y[i] = xs[i] / s;
      uint8_t* seq = trial.data() + q * bytes;
      encoder.encode(y.data(), ws, TailBiting::kTwoPass, seq);
      sequence_values(p, seq, v.data());
      for (int i = 0; i < len; ++i) {
        const double wi = ws != nullptr ? ws[i] : 1.0;
        const double d = static_cast<double>(xs[i]) - static_cast<double>(s * v[i]);
        err += wi * d * d;
        num += wi * static_cast<double>(xs[i]) * v[i];
        den += wi * static_cast<double>(v[i]) * v[i];
      }
    }
    if (err < best.error || round == 0) {
      best.error = err;
      best.scale = h;
      std::copy(trial.begin(), trial.end(), codes);
    }
    if (fixed_scale != nullptr || !(num > 0.0 && den > 0.0)) break;
    const uint16_t next = float_to_fp16(static_cast<float>(num / den));
    if (next == h || (next & 0x7c00u) == 0x7c00u || fp16_to_float(next) == 0.0f) break;
    h = next;
  }
  return best;
}

Expected<QuantizedTensor> trellis_quantize(const TrellisParams& p, const float* x, int64_t rows, int64_t cols,
                                           std::span<const float> importance, ThreadPool* pool, int refits) {
  const std::string name = trellis_format_name(p);
  LB_RETURN_IF_ERROR(trellis_check_shape(p, rows, cols));
  if (!importance.empty() && static_cast<int64_t>(importance.size()) != cols) {
    return make_error("{}: importance has {} values for {} columns", name, importance.size(), cols);
  }
  for (size_t j = 0; j < importance.size(); ++j) {
    if (!(importance[j] >= 0.0f) || !std::isfinite(importance[j])) {
      return make_error("{}: importance[{}] = {} is not finite and >= 0", name, j, importance[j]);
    }
  }
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(x[i])) return make_error("{}: weight [{}, {}] = {} is not finite", name, i / cols, i % cols, x[i]);
  }
  const int64_t row_bytes = trellis_row_bytes(p, cols), groups = trellis_row_groups(p, cols);
  QuantizedTensor t;
  t.rows = rows;
  t.cols = cols;
  t.codes.resize(static_cast<size_t>(rows * row_bytes));
  t.scales.resize(static_cast<size_t>(rows * groups * 2));
  LB_RETURN_IF_ERROR(for_rows(p, rows, pool, [&](int64_t r, TrellisEncoder& encoder) -> Status {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t c0 = g * p.group, len = std::min<int64_t>(p.group, cols - c0);
      const float* w = importance.empty() ? nullptr : importance.data() + c0;
      uint8_t* codes = t.codes.data() + r * row_bytes + c0 / kTrellisSeqLen * p.seq_bytes();
      LB_ASSIGN_OR_RETURN(TrellisGroupCode code, trellis_encode_group(encoder, x + r * cols + c0, w, len, refits, codes));
      t.scales[(r * groups + g) * 2] = static_cast<uint8_t>(code.scale & 0xffu);
      t.scales[(r * groups + g) * 2 + 1] = static_cast<uint8_t>(code.scale >> 8);
    }
    return Status::ok_status();
  }));
  return t;
}

Status trellis_dequantize(const TrellisParams& p, const QuantizedTensor& t, float* out) {
  LB_RETURN_IF_ERROR(trellis_check_shape(p, t.rows, t.cols));
  const int64_t row_bytes = trellis_row_bytes(p, t.cols), groups = trellis_row_groups(p, t.cols);
  if (t.codes.size() != static_cast<size_t>(t.rows * row_bytes) ||
      t.scales.size() != static_cast<size_t>(t.rows * groups * 2) || !t.mins.empty()) {
    return make_error("{}: stored sizes (codes {}, scales {}, mins {}) do not match [{}, {}]", trellis_format_name(p),
                      t.codes.size(), t.scales.size(), t.mins.size(), t.rows, t.cols);
  }
  std::vector<uint16_t> scales(static_cast<size_t>(groups));  // [groups] of one row
  for (int64_t r = 0; r < t.rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const size_t at = static_cast<size_t>((r * groups + g) * 2);
      scales[g] = static_cast<uint16_t>(t.scales[at] | (t.scales[at + 1] << 8));
    }
    trellis_decode_row(p, t.codes.data() + r * row_bytes, scales.data(), t.cols, out + r * t.cols);
  }
  return Status::ok_status();
}

namespace {

class TrellisColumnScales final : public ColumnScales {
 public:
  TrellisColumnScales(const TrellisParams& p, int64_t rows, int64_t cols, ThreadPool* pool)
      : p_(p),
        rows_(rows),
        cols_(cols),
        pool_(pool),
        groups_(trellis_row_groups(p, cols)),
        row_bytes_(trellis_row_bytes(p, cols)),
        scales_(static_cast<size_t>(rows * groups_)),
        codes_(static_cast<size_t>(rows * row_bytes_)),
        importance_(static_cast<size_t>(cols), 1.0f),
        chosen_x_(static_cast<size_t>(groups_)) {}

  int64_t group_cols() const override { return p_.group; }
  int64_t joint_cols() const override { return kTrellisSeqLen; }

  Status choose(const float* x, int64_t c0, int64_t n, std::span<const float> importance) override {
    LB_RETURN_IF_ERROR(check_whole_groups(trellis_format_name(p_), p_.group, cols_, c0, n, importance));
    if (!importance.empty()) std::copy(importance.begin(), importance.end(), importance_.begin() + c0);
    const bool weighted = !importance.empty();
    for (int64_t g0 = c0; g0 < c0 + n; g0 += p_.group) {
      const int64_t g = g0 / p_.group, len = std::min<int64_t>(p_.group, cols_ - g0);
      std::vector<float>& first = chosen_x_[g];  // [rows, 64] the group's first sequence as chosen
      first.resize(static_cast<size_t>(rows_ * kTrellisSeqLen));
      LB_RETURN_IF_ERROR(for_rows(p_, rows_, pool_, [&](int64_t r, TrellisEncoder& encoder) -> Status {
        std::vector<float> row(x + r * n + (g0 - c0), x + r * n + (g0 - c0) + len);
        std::copy_n(row.data(), kTrellisSeqLen, first.data() + r * kTrellisSeqLen);
        const float* w = weighted ? importance_.data() + g0 : nullptr;
        LB_ASSIGN_OR_RETURN(TrellisGroupCode code,
                            trellis_encode_group(encoder, row.data(), w, len, kTrellisDefaultRefits, codes_at(r, g0)));
        scales_[r * groups_ + g] = code.scale;
        return Status::ok_status();
      }));
    }
    weighted_ = weighted_ || weighted;
    return Status::ok_status();
  }

  void quantize_column(int64_t c, const float* x, float* q) override {
    misuse_ = make_error("{}: column {} quantized alone; trellis codes take {} columns jointly (quantize_block)",
                         trellis_format_name(p_), c, kTrellisSeqLen);
    std::copy_n(x, rows_, q);
  }

  Status quantize_block(int64_t c0, const float* x, float* q) override {
    if (c0 % kTrellisSeqLen != 0 || c0 + kTrellisSeqLen > cols_) {
      return make_error("{}: block at column {} is not a whole sequence of {}", trellis_format_name(p_), c0,
                        kTrellisSeqLen);
    }
    const int64_t g = c0 / p_.group, n = kTrellisSeqLen;
    // The group's first sequence, unchanged since choose(), keeps the codes chosen with its scale.
    const std::vector<float>& first = chosen_x_[g];
    const bool reuse = c0 == g * p_.group && first.size() == static_cast<size_t>(rows_ * n) &&
                       std::memcmp(first.data(), x, first.size() * sizeof(float)) == 0;
    if (!reuse) {
      LB_RETURN_IF_ERROR(for_rows(p_, rows_, pool_, [&](int64_t r, TrellisEncoder& encoder) -> Status {
        const float* w = weighted_ ? importance_.data() + c0 : nullptr;
        return trellis_encode_group(encoder, x + r * n, w, n, 0, codes_at(r, c0), &scales_[r * groups_ + g]).status();
      }));
    }
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t r = 0; r < rows_; ++r) {
      sequence_values(p_, codes_at(r, c0), v.data());
      const float s = fp16_to_float(scales_[r * groups_ + g]);
      for (int64_t i = 0; i < n; ++i) q[r * n + i] = s * v[i];
    }
    return Status::ok_status();
  }

  Expected<QuantizedTensor> pack() const override {
    LB_RETURN_IF_ERROR(misuse_);
    QuantizedTensor t;
    t.rows = rows_;
    t.cols = cols_;
    t.codes = codes_;
    t.scales.resize(scales_.size() * 2);
    for (size_t i = 0; i < scales_.size(); ++i) {
      t.scales[2 * i] = static_cast<uint8_t>(scales_[i] & 0xffu);
      t.scales[2 * i + 1] = static_cast<uint8_t>(scales_[i] >> 8);
    }
    return t;
  }

 private:
  uint8_t* codes_at(int64_t r, int64_t c) { return codes_.data() + r * row_bytes_ + c / kTrellisSeqLen * p_.seq_bytes(); }

  TrellisParams p_;
  int64_t rows_, cols_;
  ThreadPool* pool_;
  int64_t groups_, row_bytes_;
  std::vector<uint16_t> scales_;             // [rows, groups] FP16
  std::vector<uint8_t> codes_;               // [rows, row_bytes]
  std::vector<float> importance_;            // [cols]
  bool weighted_ = false;
  std::vector<std::vector<float>> chosen_x_;  // [groups][rows, 64]
  Status misuse_;
};

}  // namespace

Expected<std::unique_ptr<ColumnScales>> trellis_column_scales(const TrellisParams& p, int64_t rows, int64_t cols,
                                                              ThreadPool* pool) {
  LB_RETURN_IF_ERROR(trellis_check_shape(p, rows, cols));
  return std::unique_ptr<ColumnScales>(std::make_unique<TrellisColumnScales>(p, rows, cols, pool));
}

}  // namespace lowbit
