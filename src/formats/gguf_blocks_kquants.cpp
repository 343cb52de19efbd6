// The 256-element llama.cpp "K" block types (Q6_K, Q5_K, Q4_K, Q3_K, Q2_K): a
// super-block of 8 or 16 sub-blocks, each with a small integer scale (and min)
// under the super-block's fp16 d (and dmin). Layouts as io/ggml_types.cpp
// decodes them (ggml-common.h); gguf_block_search.cpp chooses the header.
#include "formats/gguf_block_codec.h"

namespace lowbit::gguf_codec {
namespace {

constexpr int kQKK = 256;

// 2-bit planes of Q2_K/Q3_K: element e, in half e / 128 with r = e % 128, sits
// in byte 32 * (e / 128) + r % 32 at bit pair r / 32.
void put_two_bit_planes(const uint8_t* codes, uint8_t* qs) {
  for (int i = 0; i < kQKK / 4; ++i) qs[i] = 0;
  for (int e = 0; e < kQKK; ++e) {
    const int r = e % 128;
    qs[32 * (e / 128) + r % 32] |= static_cast<uint8_t>((codes[e] & 3) << (2 * (r / 32)));
  }
}

// Low nibbles of Q4_K/Q5_K: element e in byte 32 * (e / 64) + e % 32, nibble (e / 32) % 2.
void put_k_nibbles(const uint8_t* codes, uint8_t* qs) {
  for (int i = 0; i < kQKK / 2; ++i) qs[i] = 0;
  for (int e = 0; e < kQKK; ++e) {
    qs[32 * (e / 64) + e % 32] |= static_cast<uint8_t>((codes[e] & 0x0F) << (4 * ((e / 32) % 2)));
  }
}

// Q4_K/Q5_K's 8 six-bit scales and mins in 12 bytes: for j < 4 the low 6 bits
// of bytes j (scale) and j + 4 (min); for j >= 4 the low 4 bits in the two
// nibbles of byte j + 4, the top 2 bits in the top bits of bytes j - 4 and j.
void put_scales_mins_k4(const Header& h, uint8_t* s) {
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>((h.sc[j] & 63) | (h.sc[j + 4] >> 4) << 6);
    s[j + 4] = static_cast<uint8_t>((h.mn[j] & 63) | (h.mn[j + 4] >> 4) << 6);
    s[j + 8] = static_cast<uint8_t>((h.sc[j + 4] & 0x0F) | (h.mn[j + 4] & 0x0F) << 4);
  }
}

// Q2_K [scales 16: sc | mn << 4][qs 64][d][dmin].
void pack_q2_k(const Header& h, const uint8_t* codes, uint8_t* out) {
  for (int j = 0; j < 16; ++j) out[j] = static_cast<uint8_t>((h.sc[j] & 0x0F) | (h.mn[j] & 0x0F) << 4);
  put_two_bit_planes(codes, out + 16);
  put_u16(out + 80, h.d);
  put_u16(out + 82, h.m);
}

// Q3_K [hmask 32][qs 64][scales 12][d]. Code k stands for k - 4: its bit 2 goes
// to hmask[e % 32] bit e / 32 (set = no -4), its low bits to the 2-bit planes.
// Scale j is stored as j + 32 in 6 bits: low 4 bits in byte j % 8 (nibble
// j / 8), high 2 bits in byte 8 + j % 4 (bit pair j / 4).
void pack_q3_k(const Header& h, const uint8_t* codes, uint8_t* out) {
  uint8_t* hmask = out;
  for (int i = 0; i < 32; ++i) hmask[i] = 0;
  for (int e = 0; e < kQKK; ++e) hmask[e % 32] |= static_cast<uint8_t>((codes[e] >> 2) << (e / 32));
  put_two_bit_planes(codes, out + 32);
  uint8_t* scales = out + 96;
  for (int i = 0; i < 12; ++i) scales[i] = 0;
  for (int j = 0; j < 16; ++j) {
    const int s = h.sc[j] + 32;
    scales[j % 8] |= static_cast<uint8_t>((s & 0x0F) << (4 * (j / 8)));
    scales[8 + j % 4] |= static_cast<uint8_t>((s >> 4) << (2 * (j / 4)));
  }
  put_u16(out + 108, h.d);
}

// Q4_K [d][dmin][scales 12][qs 128].
void pack_q4_k(const Header& h, const uint8_t* codes, uint8_t* out) {
  put_u16(out, h.d);
  put_u16(out + 2, h.m);
  put_scales_mins_k4(h, out + 4);
  put_k_nibbles(codes, out + 16);
}

// Q5_K [d][dmin][scales 12][qh 32][qs 128]: bit 4 of element e is bit e / 32 of qh[e % 32].
void pack_q5_k(const Header& h, const uint8_t* codes, uint8_t* out) {
  put_u16(out, h.d);
  put_u16(out + 2, h.m);
  put_scales_mins_k4(h, out + 4);
  uint8_t* qh = out + 16;
  for (int i = 0; i < 32; ++i) qh[i] = 0;
  for (int e = 0; e < kQKK; ++e) qh[e % 32] |= static_cast<uint8_t>(((codes[e] >> 4) & 1) << (e / 32));
  put_k_nibbles(codes, out + 48);
}

// Q6_K [ql 128][qh 64][scales 16 int8][d]. Code k stands for k - 32; element e,
// in half h = e / 128 with r = e % 128, has its low nibble in ql[64 h + r % 64]
// (nibble r / 64) and its high 2 bits in qh[32 h + r % 32] (bit pair r / 32).
void pack_q6_k(const Header& h, const uint8_t* codes, uint8_t* out) {
  uint8_t* ql = out;
  uint8_t* qh = out + 128;
  for (int i = 0; i < 192; ++i) out[i] = 0;
  for (int e = 0; e < kQKK; ++e) {
    const int half = e / 128;
    const int r = e % 128;
    ql[64 * half + r % 64] |= static_cast<uint8_t>((codes[e] & 0x0F) << (4 * (r / 64)));
    qh[32 * half + r % 32] |= static_cast<uint8_t>((codes[e] >> 4) << (2 * (r / 32)));
  }
  for (int j = 0; j < 16; ++j) out[192 + j] = static_cast<uint8_t>(static_cast<int8_t>(h.sc[j]));
  put_u16(out + 208, h.d);
}

}  // namespace

std::vector<Codec> kquant_codecs() {
  static const Grid kQ6 = integer_grid(-32, 31);
  static const Grid kQ5 = integer_grid(0, 31);
  static const Grid kQ4 = integer_grid(0, 15);
  static const Grid kQ3 = integer_grid(-4, 3);
  static const Grid kQ2 = integer_grid(0, 3);
  static const Grid kInt8 = integer_grid(-128, 127);
  static const Grid kSigned6 = integer_grid(-32, 31);
  static const Grid kUnsigned6 = integer_grid(0, 63);
  static const Grid kUnsigned4 = integer_grid(0, 15);
  using K = FitKind;
  // Element search ranges as in gguf_blocks_legacy.cpp; 6-bit sub-blocks try
  // the ~16 inverse scales that put their largest value on a code near the end
  // (or past it), 2-3 bit ones clip more.
  const SweepRange q6{0.8, 1.3, true};
  const SweepRange five_bit{0.8, 1.3};
  const SweepRange wide{0.7, 1.6};
  const SweepRange low_bits{0.6, 2.0};
  const auto id = [](GgmlType t) { return static_cast<uint32_t>(t); };
  return {
      {{id(GgmlType::Q6_K), "q6_K", kQKK, 210, 6,
        "6-bit codes, int8 scale per 16 under an fp16 scale per 256 (6.5625 bpw)"},
       &kQ6, K::kSymmetric, q6, 16, 16, &kInt8, nullptr, &pack_q6_k},
      {{id(GgmlType::Q5_K), "q5_K", kQKK, 176, 5,
        "5-bit codes, 6-bit scale and min per 32 under fp16 d and dmin per 256 (5.5 bpw)"},
       &kQ5, K::kNonPositiveOffset, five_bit, 8, 32, &kUnsigned6, &kUnsigned6, &pack_q5_k},
      {{id(GgmlType::Q4_K), "q4_K", kQKK, 144, 4,
        "4-bit codes, 6-bit scale and min per 32 under fp16 d and dmin per 256 (4.5 bpw)"},
       &kQ4, K::kNonPositiveOffset, wide, 8, 32, &kUnsigned6, &kUnsigned6, &pack_q4_k},
      {{id(GgmlType::Q3_K), "q3_K", kQKK, 110, 3,
        "3-bit codes, 6-bit signed scale per 16 under an fp16 scale per 256 (3.4375 bpw)"},
       &kQ3, K::kSymmetric, low_bits, 16, 16, &kSigned6, nullptr, &pack_q3_k},
      {{id(GgmlType::Q2_K), "q2_K", kQKK, 84, 2,
        "2-bit codes, 4-bit scale and min per 16 under fp16 d and dmin per 256 (2.625 bpw)"},
       &kQ2, K::kNonPositiveOffset, low_bits, 16, 16, &kUnsigned4, &kUnsigned4, &pack_q2_k},
  };
}

}  // namespace lowbit::gguf_codec
