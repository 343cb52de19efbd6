// Trellis-coded weights (issue 19, item 2): the stored form of a bitshift-trellis
// quantized matrix, in the style of QTIP (Tseng et al. 2024) with a 64-byte
// codebook that a SIMD decoder keeps in one register.
//
// A row of W [rows, cols] is cut into sequences of T = 64 consecutive weights
// (cols must be a multiple of 64). Each sequence is a circular bit string of
// N = (T / V) * k bits: step t = 0 .. T/V - 1 reads the L-bit state
//   s_t = sum_{j < L} bit((t * k + j) mod N) * 2^j      (bit i of the string is
//         bit i % 8 of byte i / 8; the read wraps: the trellis is tail-biting)
// and emits V weights, the codebook values j < V of its state:
//   W[r, 64 q + t V + j] = scale[r, g] * value_j(s_t),  g = column / G
// Consecutive states overlap in L - k bits (s_{t+1} = (s_t >> k) | new bits << (L - k)),
// which is what lets a Viterbi search choose the whole string at once.
//
// The codebook is a table of 64 bytes indexed by a 6-bit hash of the state:
//   h0(s) = (s ^ s >> 4 ^ s >> 6 ^ s >> 8) & 63,   h1(s) = (s ^ s >> 4 ^ s >> 8) & 63
//   value_0(s) = kTrellisTable[h0(s)]   (V = 1: the step's value; V = 2: its first)
//   value_1(s) = kTrellisTable[h1(s)]   (V = 2: its second)
// The table holds the 64 Gaussian quantiles round(126 Phi^-1((i + 0.5) / 64) /
// Phi^-1(63.5 / 64)) (RMS 51.60) in a fixed shuffled order (scripts/trellis_table.py
// regenerates it). Why this and not a computed hash ("1MAD" of QTIP, the first
// version of this format): every step of the decode is a byte operation, so a
// 512-bit register decodes 64 weights at once with VBMI: one vpermb places each
// weight's state bytes, vpmultishiftqb pulls the 8-bit windows at bit offsets 0
// and 4 of the state, one GF(2) affine map (vgf2p8affineqb: the hash is linear in
// the state bits) and an XOR form the index, and one vpermb looks the 6-bit index
// up in the table (held in a register). The 1MAD hash needed a 32-bit
// multiply per weight and 32-bit lanes, 4x fewer weights per instruction. At
// equal trellis (L 12) the table is as accurate as 1MAD for V = 1 (Viterbi MSE on
// N(0, 1): 0.0705 vs 0.0709 at k 2, 0.0188 vs 0.0190 at k 3) and twice as
// accurate for V = 2 (0.0384 vs 0.0797 at 2.5 bits), whose two values of a state
// are now two different hashes instead of neighbouring hash entries.
// Files written with the 1MAD codebook are refused by the loader (the header key
// lowbit.trellis_codebook, model/lowbit_file.cpp).
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
inline constexpr int kTrellisValueMax = 126;  // |value| <= 126, so value + 126 fits a u8
// The codebook's version, stored in every .lowbit file (1 was the 1MAD hash).
inline constexpr uint32_t kTrellisCodebookVersion = 2;
inline constexpr int kTrellisTableSize = 64;
// The codebook values (see the file comment; scripts/trellis_table.py prints them).
inline constexpr int8_t kTrellisTable[kTrellisTableSize] = {
    -77, -62, 71,  48,  -51, 1,   -13, 20,  -92, 51,   -16, -3,  -7,  -83, -71, -31, 45,  -18, 62,  -27, -24, -36,
    9,   92,  11,  -66, 22,  31,  -22, -9,  66,  77,   5,   83,  126, 18,  -11, -104, 27, 7,   -20, -34, 3,   24,
    -54, -1,  104, -29, 34,  -42, -45, -5,  -126, 42,  -48, 13,  -39, 36,  54,  -58, 39,  58,  16,  29};

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

// The table indices of state s (any number of bits; for L < 12 the missing bits are 0).
constexpr uint32_t trellis_hash0(uint32_t s) { return (s ^ (s >> 4) ^ (s >> 6) ^ (s >> 8)) & 63u; }
constexpr uint32_t trellis_hash1(uint32_t s) { return (s ^ (s >> 4) ^ (s >> 8)) & 63u; }
// Value j (0 or 1, < V) of state s.
constexpr int trellis_state_value(uint32_t state, int j) {
  return kTrellisTable[j == 0 ? trellis_hash0(state) : trellis_hash1(state)];
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
