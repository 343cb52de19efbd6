#include "kvcache/kv_stream.h"

#include <algorithm>

namespace lowbit {

KvStream::KvStream(const KvTensorCodec& codec, int capacity, int sinks, int residual)
    : codec_(&codec),
      width_(codec.width()),
      capacity_(capacity),
      sinks_(std::min(sinks, capacity)),
      residual_(residual),
      unit_rows_(codec.tokens_per_unit()) {
  const int after_sinks = capacity - sinks_;
  window_rows_ = std::max(1, std::min(residual + unit_rows_, after_sinks));
  max_units_ = after_sinks > residual ? (after_sinks - residual) / unit_rows_ : 0;
  coded_end_ = sinks_;
  sink_rows_.resize(static_cast<size_t>(sinks_) * width_);
  units_.resize(static_cast<size_t>(max_units_ * codec.unit_bytes()));
  sparse_.resize(static_cast<size_t>(max_units_ * unit_rows_ * codec.sparse_row_bytes()));
  window_.resize(static_cast<size_t>(window_rows_) * width_);
  gather_.resize(static_cast<size_t>(unit_rows_) * width_);
}

void KvStream::code_oldest_unit() {
  const int64_t unit = (coded_end_ - sinks_) / unit_rows_;
  for (int t = 0; t < unit_rows_; ++t) {
    const float* row = window_row(coded_end_ + t);
    std::copy(row, row + width_, gather_.data() + static_cast<int64_t>(t) * width_);
  }
  codec_->encode(gather_.data(), 1, units_.data() + unit * codec_->unit_bytes(),
                 sparse_.data() + unit * unit_rows_ * codec_->sparse_row_bytes(), scratch_);
  coded_end_ += unit_rows_;
}

Status KvStream::write(int pos, int n, const float* x) {
  if (pos > length_) return make_error("write at position {} leaves a gap (the cache holds {} positions)", pos, length_);
  if (pos < first_writable()) {
    return make_error("positions below {} are already quantized and cannot be rewritten (write at {})",
                      first_writable(), pos);
  }
  if (pos < 0 || n < 0 || pos + n > capacity_) {
    return make_error("positions [{}, {}) exceed the capacity {}", pos, pos + n, capacity_);
  }
  length_ = pos;
  for (int i = 0; i < n; ++i, ++length_) {
    const float* row = x + static_cast<int64_t>(i) * width_;
    float* dst = length_ < sinks_ ? sink_rows_.data() + static_cast<int64_t>(length_) * width_ : window_row(length_);
    std::copy(row, row + width_, dst);
    if (length_ + 1 - coded_end_ >= residual_ + unit_rows_ && length_ >= sinks_) code_oldest_unit();
  }
  return Status::ok_status();
}

int KvStream::fp_from(int query_pos) const {
  const int after = query_pos + 1 - sinks_ - residual_;
  return sinks_ + (after > 0 ? after / unit_rows_ * unit_rows_ : 0);
}

void KvStream::read_rows(int begin, int end, float* out) const {
  // Sinks.
  for (int p = begin; p < std::min(end, sinks_); ++p) {
    std::copy(sink_rows_.begin() + static_cast<int64_t>(p) * width_,
              sink_rows_.begin() + static_cast<int64_t>(p + 1) * width_, out + static_cast<int64_t>(p - begin) * width_);
  }
  // Coded units: those wholly inside [begin, end) decode in place, cut ones via staging.
  const int coded_lo = std::max(begin, sinks_);
  const int coded_hi = std::min(end, coded_end_);
  if (coded_lo < coded_hi) {
    const int64_t first_unit = (coded_lo - sinks_) / unit_rows_;
    const int64_t last_unit = (coded_hi - 1 - sinks_) / unit_rows_;  // inclusive
    std::vector<float> staging;
    for (int64_t u = first_unit; u <= last_unit;) {
      const int u_begin = sinks_ + static_cast<int>(u) * unit_rows_;
      // A run of whole units.
      int64_t run = 0;
      while (u + run <= last_unit && u_begin + (run + 1) * unit_rows_ <= coded_hi && u_begin >= coded_lo) ++run;
      if (run > 0) {
        codec_->decode(units_.data() + u * codec_->unit_bytes(),
                       sparse_.data() + u * unit_rows_ * codec_->sparse_row_bytes(), run,
                       out + static_cast<int64_t>(u_begin - begin) * width_, scratch_);
        u += run;
        continue;
      }
      staging.resize(static_cast<size_t>(unit_rows_) * width_);
      codec_->decode(units_.data() + u * codec_->unit_bytes(),
                     sparse_.data() + u * unit_rows_ * codec_->sparse_row_bytes(), 1, staging.data(), scratch_);
      const int lo = std::max(coded_lo, u_begin), hi = std::min(coded_hi, u_begin + unit_rows_);
      std::copy(staging.begin() + static_cast<int64_t>(lo - u_begin) * width_,
                staging.begin() + static_cast<int64_t>(hi - u_begin) * width_,
                out + static_cast<int64_t>(lo - begin) * width_);
      ++u;
    }
  }
  // The FP32 window.
  for (int p = std::max(begin, std::max(coded_end_, sinks_)); p < end; ++p) {
    const float* row = window_row(p);
    std::copy(row, row + width_, out + static_cast<int64_t>(p - begin) * width_);
  }
}

uint64_t KvStream::allocated_bytes() const {
  return (sink_rows_.size() + window_.size()) * sizeof(float) + units_.size() + sparse_.size();
}

}  // namespace lowbit
