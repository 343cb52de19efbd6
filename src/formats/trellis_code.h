// Trellis-coded weights (issue 19, item 2): the stored form of a bitshift-trellis
// quantized matrix, in the style of QTIP (Tseng et al. 2024) with a computed
// codebook, so the decoder needs no table in memory.
//
// A row of W [rows, cols] is cut into sequences of T = 64 consecutive weights
// (cols must be a multiple of 64). Each sequence is a circular bit string of
// N = (T / V) * k bits: step t = 0 .. T/V - 1 reads the L-bit state
//   s_t = sum_{j < L} bit((t * k + j) mod N) * 2^j      (bit i of the string is
//         bit i % 8 of byte i / 8; the read wraps: the trellis is tail-biting)
// and emits V weights, the values of codebook entries V * s_t + j, j < V:
//   W[r, 64 q + t V + j] = scale[r, g] * value(V * s_t + j),  g = column / G
// Consecutive states overlap in L - k bits (s_{t+1} = (s_t >> k) | new bits << (L - k)),
// which is what lets a Viterbi search choose the whole string at once.
//
// The codebook is a hash ("1MAD" of QTIP, on 6-bit bytes so that SIMD kernels
// can sum its bytes with 8-bit multiply-adds without saturating):
//   h = a * u + b (mod 2^32),  value(u) = sum of the four bytes of h & 0x3f3f3f3f - 126
// an integer in [-126, 126] whose distribution (a sum of four near-uniform
// 6-bit numbers) is close to a Gaussian of standard deviation ~36.9.
//
// Parameter sets (bits per weight = k / V, plus 16 / G for the FP16 scales):
//   tcq2    L 12, k 2, V 1      16 bytes per 64 weights
//   tcq2p5  L 12, k 5, V 2      20 bytes
//   tcq3    L 12, k 3, V 1      24 bytes
//   tcq4    L 12, k 4, V 1      32 bytes
// Format names: tcq2_g64, tcq3_g256, ...: G columns per FP16 scale, a multiple
// of 64 (the last group of a row may be partial).
//
// Stored arrays (QuantizedTensor and the packed layout alike):
//   codes  [rows][cols / 64][N / 8] bytes, the sequences of a row in column order
//   scales [rows][ceil(cols / G)] FP16 bit patterns, little-endian
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace lowbit {

inline constexpr int kTrellisSeqLen = 64;  // T: weights per tail-biting sequence
inline constexpr uint32_t kTrellisHashMul = 34038481u;
inline constexpr uint32_t kTrellisHashAdd = 76625530u;
inline constexpr int kTrellisValueMax = 126;  // |value(u)| <= 126

struct TrellisParams {
  int state_bits = 12;      // L
  int step_bits = 2;        // k: new bits per step
  int values_per_step = 1;  // V
  int group = 64;           // G: columns per FP16 scale, a multiple of kTrellisSeqLen

  int steps() const { return kTrellisSeqLen / values_per_step; }
  int seq_bits() const { return steps() * step_bits; }
  int seq_bytes() const { return seq_bits() / 8; }
  double code_bits_per_weight() const { return static_cast<double>(step_bits) / values_per_step; }
  // Codes and scales per weight of a row of cols columns.
  double bits_per_weight(int64_t cols) const;
  uint32_t state_mask() const { return (1u << state_bits) - 1u; }
};

// The codebook entry u (see the file comment).
inline int trellis_code_value(uint32_t u) {
  const uint32_t h = (u * kTrellisHashMul + kTrellisHashAdd) & 0x3f3f3f3fu;
  return static_cast<int>((h & 0xffu) + ((h >> 8) & 0xffu) + ((h >> 16) & 0xffu) + (h >> 24)) - 126;
}
// Value j (< V) of state s.
inline int trellis_state_value(const TrellisParams& p, uint32_t state, int j) {
  return trellis_code_value(state * static_cast<uint32_t>(p.values_per_step) + static_cast<uint32_t>(j));
}
// The state at step t of one sequence's bit string (seq_bytes() bytes), reading circularly.
uint32_t trellis_state(const TrellisParams& p, const uint8_t* seq, int t);

// "tcq2_g64" -> its parameters; errors name the name and what is wrong.
Expected<TrellisParams> parse_trellis_format(std::string_view name);
// Whether a name has the tcq prefix (so it is parsed here, or refused here).
bool is_trellis_format_name(std::string_view name);
std::string trellis_format_name(const TrellisParams& p);

// cols must be a multiple of 64; the error names the format and the shape.
Status trellis_check_shape(const TrellisParams& p, int64_t rows, int64_t cols);
int64_t trellis_row_bytes(const TrellisParams& p, int64_t cols);   // codes of one row
int64_t trellis_row_groups(const TrellisParams& p, int64_t cols);  // scales of one row

// The reference decoder of one row: out[cols] from its codes and FP16 scales.
void trellis_decode_row(const TrellisParams& p, const uint8_t* codes, const uint16_t* scales, int64_t cols,
                        float* out);

}  // namespace lowbit
