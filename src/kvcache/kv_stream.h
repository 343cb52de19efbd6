// The storage of one layer's keys or values: positions [0, S) as FP32 sinks,
// then units of T positions coded by a KvTensorCodec, then an FP32 residual
// window. Rows arrive in order; the window holds the newest rows, and whenever
// it holds R + T rows the oldest T are coded into the next unit, so the R most
// recent positions are always FP32 (KIVI's residual; T = 1 per token) and
// rows that are not coded yet are never more than R + T - 1.
//
// Memory is allocated up front for the capacity and never grows:
//   sinks   [min(S, capacity), width] f32
//   units   [U][unit_bytes], U = max(0, capacity - S - R) / T (units ever filled)
//   sparse  [U * T][sparse_row_bytes]
//   window  [min(R + T, capacity - S), width] f32, ring indexed by position
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "kvcache/kv_tensor_codec.h"

namespace lowbit {

class KvStream {
 public:
  // codec must outlive the stream.
  KvStream(const KvTensorCodec& codec, int capacity, int sinks, int residual);

  int length() const { return length_; }
  // Positions below this are coded and cannot be rewritten.
  int first_writable() const { return coded_end_ > sinks_ ? coded_end_ : 0; }
  // Rows [pos, pos + n): x [n, width]. pos may go back to first_writable() (the
  // rows after it are dropped); a gap after length() is an error.
  Status write(int pos, int n, const float* x);
  // Positions [0, n_pos) as FP32, n_pos <= length(): out [n_pos, width].
  void read(int n_pos, float* out) const { read_rows(0, n_pos, out); }
  // Positions [begin, end): out [end - begin, width].
  void read_rows(int begin, int end, float* out) const;
  // Once position `query_pos` has been written (and nothing after it), the first
  // position at or after the sinks that is still FP32: S + T floor((query_pos + 1 - S - R) / T).
  int fp_from(int query_pos) const;
  // Whether some position other than the newest can still be FP32 beyond the sinks (R + T > 1).
  bool keeps_recent_fp32() const { return residual_ + unit_rows_ > 1; }
  // Whether rows are coded (false for FP32 storage, which reads back exactly).
  bool coded() const { return codec_->spec().quantized(); }
  uint64_t allocated_bytes() const;

  // The storage read in place (kv_fused_attention.h): positions [0, sinks()) are
  // sink_row(p), [sinks(), coded_end()) are units of codec().tokens_per_unit()
  // rows (unit(u) holds positions sinks() + u T ...), [coded_end(), length())
  // are window_row(p). Rows are [width] f32.
  const KvTensorCodec& codec() const { return *codec_; }
  int sinks() const { return sinks_; }
  int coded_end() const { return coded_end_; }
  const float* sink_row(int pos) const { return sink_rows_.data() + static_cast<int64_t>(pos) * width_; }
  const uint8_t* unit(int64_t u) const { return units_.data() + u * codec_->unit_bytes(); }
  const float* window_row(int pos) const {
    return window_.data() + static_cast<int64_t>(pos % window_rows_) * width_;
  }

 private:
  void code_oldest_unit();
  float* window_row(int pos) { return window_.data() + static_cast<int64_t>(pos % window_rows_) * width_; }

  const KvTensorCodec* codec_;
  int width_;
  int capacity_;
  int sinks_;        // S, capped at capacity
  int residual_;     // R
  int unit_rows_;    // T
  int window_rows_;  // ring size
  int64_t max_units_;
  int length_ = 0;
  int coded_end_;  // positions [S, coded_end_) are in units
  std::vector<float> sink_rows_;  // [S, width]
  std::vector<uint8_t> units_;    // [max_units][unit_bytes]
  std::vector<uint8_t> sparse_;   // [max_units * T][sparse_row_bytes]
  std::vector<float> window_;     // [window_rows, width]
  std::vector<float> gather_;     // [T, width] staging for one unit
  mutable KvCodecScratch scratch_;
};

}  // namespace lowbit
