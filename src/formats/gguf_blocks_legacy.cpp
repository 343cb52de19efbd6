// The 32-element llama.cpp block types (Q8_0, Q5_0, Q5_1, Q4_0, Q4_1, IQ4_NL):
// one fp16 scale d (and, for the "_1" types, an fp16 minimum m) per block.
// Layouts as io/ggml_types.cpp decodes them (ggml-common.h); the header is
// searched by gguf_block_search.cpp, these functions only describe each type
// and write its bytes.
#include <cstring>

#include "formats/gguf_block_codec.h"

namespace lowbit::gguf_codec {
namespace {

constexpr int kQK = 32;

// Element i in the low nibble of byte i, element i + 16 in its high nibble.
void put_nibbles(const uint8_t* codes, uint8_t* qs) {
  for (int i = 0; i < kQK / 2; ++i) qs[i] = static_cast<uint8_t>((codes[i] & 0x0F) | (codes[i + kQK / 2] & 0x0F) << 4);
}

// Bit 4 of element j in bit j of a little-endian u32.
void put_high_bits(const uint8_t* codes, uint8_t* qh) {
  uint32_t bits = 0;
  for (int j = 0; j < kQK; ++j) bits |= static_cast<uint32_t>((codes[j] >> 4) & 1u) << j;
  for (int b = 0; b < 4; ++b) qh[b] = static_cast<uint8_t>(bits >> (8 * b));
}

// Q4_0 [d][qs 16]; Q4_1 [d][m][qs 16]; IQ4_NL as Q4_0 (codes index its grid).
void pack_q4_0(const Header& h, const uint8_t* codes, uint8_t* out) {
  put_u16(out, h.d);
  put_nibbles(codes, out + 2);
}

void pack_q4_1(const Header& h, const uint8_t* codes, uint8_t* out) {
  put_u16(out, h.d);
  put_u16(out + 2, h.m);
  put_nibbles(codes, out + 4);
}

// Q5_0 [d][qh 4][qs 16]; Q5_1 [d][m][qh 4][qs 16].
void pack_q5_0(const Header& h, const uint8_t* codes, uint8_t* out) {
  put_u16(out, h.d);
  put_high_bits(codes, out + 2);
  put_nibbles(codes, out + 6);
}

void pack_q5_1(const Header& h, const uint8_t* codes, uint8_t* out) {
  put_u16(out, h.d);
  put_u16(out + 2, h.m);
  put_high_bits(codes, out + 4);
  put_nibbles(codes, out + 8);
}

// Q8_0 [d][qs 32 int8]: code k of the grid -127..127 is the byte k - 127.
void pack_q8_0(const Header& h, const uint8_t* codes, uint8_t* out) {
  put_u16(out, h.d);
  for (int i = 0; i < kQK; ++i) out[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(codes[i] - 127));
}

Grid iq4_nl_grid() {
  std::vector<float> v;
  for (const int8_t g : kIq4NlGrid) v.push_back(static_cast<float>(g));
  return Grid(std::move(v));
}

}  // namespace

std::vector<Codec> legacy_codecs() {
  // Q8_0 stops at -127 as llama.cpp's own quantizer does: -128 decodes, but int8
  // dot products that negate a weight (x86 sign tricks) would overflow on it.
  static const Grid kQ8 = integer_grid(-127, 127);
  static const Grid kQ5s = integer_grid(-16, 15);
  static const Grid kQ5u = integer_grid(0, 31);
  static const Grid kQ4s = integer_grid(-8, 7);
  static const Grid kQ4u = integer_grid(0, 15);
  static const Grid kIq4 = iq4_nl_grid();
  using K = FitKind;
  // Search ranges (measured on Gaussian and Student-t matrices with and without
  // an importance spread of ~100x): 4-bit grids gain from clipping heavy tails
  // and from leaving the end code unused, most with importance; 5-bit grids
  // lose nothing from a narrower sweep; at 8 bits the ~11 inverse scales that
  // put the largest value on a code near the end are enough.
  const SweepRange q8{0.96, 1.04, true};
  const SweepRange five_bit{0.8, 1.3};
  const SweepRange wide{0.7, 1.6};
  return {
      {{static_cast<uint32_t>(GgmlType::Q8_0), "q8_0", kQK, 34, 8,
        "8-bit codes -127..127, fp16 scale per 32 (8.5 bpw)"},
       &kQ8, K::kSymmetric, q8, 1, kQK, nullptr, nullptr, &pack_q8_0},
      {{static_cast<uint32_t>(GgmlType::Q5_0), "q5_0", kQK, 22, 5,
        "5-bit codes -16..15, fp16 scale per 32 (5.5 bpw)"},
       &kQ5s, K::kSymmetric, five_bit, 1, kQK, nullptr, nullptr, &pack_q5_0},
      {{static_cast<uint32_t>(GgmlType::Q5_1), "q5_1", kQK, 24, 5,
        "5-bit codes 0..31, fp16 scale and minimum per 32 (6 bpw)"},
       &kQ5u, K::kFreeOffset, five_bit, 1, kQK, nullptr, nullptr, &pack_q5_1},
      {{static_cast<uint32_t>(GgmlType::Q4_0), "q4_0", kQK, 18, 4,
        "4-bit codes -8..7, fp16 scale per 32 (4.5 bpw)"},
       &kQ4s, K::kSymmetric, wide, 1, kQK, nullptr, nullptr, &pack_q4_0},
      {{static_cast<uint32_t>(GgmlType::Q4_1), "q4_1", kQK, 20, 4,
        "4-bit codes 0..15, fp16 scale and minimum per 32 (5 bpw)"},
       &kQ4u, K::kFreeOffset, wide, 1, kQK, nullptr, nullptr, &pack_q4_1},
      {{kGgmlTypeIq4Nl, "iq4_nl", kQK, 18, 4,
        "4-bit codes on a fixed non-uniform grid, fp16 scale per 32 (4.5 bpw)"},
       &kIq4, K::kSymmetric, wide, 1, kQK, nullptr, nullptr, &pack_q4_0},
  };
}

}  // namespace lowbit::gguf_codec
