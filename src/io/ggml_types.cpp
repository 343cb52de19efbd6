// Block layouts of the GGUF tensor types lowbit can read, their scalar reference
// dequantizers and the traits table. Layouts follow ggml's ggml-common.h; the
// code is written from those layouts and checked bit for bit against gguf-py
// (tests/test_ggml_types.cpp, fixtures from scripts/gen_ggml_fixtures.py).
//
// Why results are bit-exact with any correct implementation: every product here is
// exact in float32 (fp16 d has 11 significant bits, sub-scales at most 7, codes at
// most 8, so no product needs more than 24 bits), leaving only the final add of a
// min (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) to round once. Multiplication order and FMA
// contraction therefore cannot change a result.
#include "io/ggml_types.h"

#include <array>
#include <bit>
#include <cstddef>
#include <cstring>

#include "core/half.h"

namespace lowbit {
namespace {

static_assert(std::endian::native == std::endian::little,
              "GGUF blocks are little-endian; the structs below are read in place");

constexpr int kQK = 32;    // elements per legacy block (Q4_0 .. Q8_0)
constexpr int kQKK = 256;  // elements per K-quant super-block

// --- Legacy 32-element blocks -----------------------------------------------------
// Symmetric types store x = d * (q - offset); asymmetric "_1" types store
// x = d * q + m. Nibble j of byte i: low nibble is element i, high nibble is
// element i + 16. The 5-bit types keep bit 4 of element j in bit j of qh.

// 4.5 bits per weight. x = d * (q - 8), q in [0, 15].
struct BlockQ4_0 {
  static constexpr int kElements = kQK;
  uint16_t d;              // fp16 scale
  uint8_t qs[kQK / 2];     // nibbles
};
static_assert(sizeof(BlockQ4_0) == 18);

// 5 bits per weight. x = d * q + m, q in [0, 15].
struct BlockQ4_1 {
  static constexpr int kElements = kQK;
  uint16_t d;              // fp16 scale
  uint16_t m;              // fp16 minimum
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

// 5.5 bits per weight. x = d * (q - 16), q in [0, 31].
struct BlockQ5_0 {
  static constexpr int kElements = kQK;
  uint16_t d;
  uint8_t qh[4];           // little-endian u32: bit j = bit 4 of element j
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

// 6 bits per weight. x = d * q + m, q in [0, 31].
struct BlockQ5_1 {
  static constexpr int kElements = kQK;
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// 8.5 bits per weight. x = d * q, q in [-128, 127].
struct BlockQ8_0 {
  static constexpr int kElements = kQK;
  uint16_t d;
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34);

// 4.5 bits per weight. x = d * kIq4NlGrid[q], q in [0, 15], nibbles as Q4_0. The
// grid is ggml's kvalues_iq4nl: a fixed non-uniform 16-value grid, denser near
// zero, fitted to the distribution of LLM weights (llama.cpp PR #5590).
struct BlockIq4Nl {
  static constexpr int kElements = kQK;
  uint16_t d;
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockIq4Nl) == 18);

// --- K-quants: 256-element super-blocks -----------------------------------------
// A super-block has 16 or 8 sub-blocks, each with its own small integer scale
// (and min), themselves scaled by the fp16 super-block d (and dmin).

// 2.625 bits per weight. 16 sub-blocks of 16: x = d*sc*q - dmin*mn, q in [0, 3];
// scales[k] = sc | mn << 4 (4 bits each).
struct BlockQ2_K {
  static constexpr int kElements = kQKK;
  uint8_t scales[kQKK / 16];
  uint8_t qs[kQKK / 4];    // 2-bit codes, see decode below
  uint16_t d;
  uint16_t dmin;
};
static_assert(sizeof(BlockQ2_K) == 84);

// 3.4375 bits per weight. 16 sub-blocks of 16: x = d * (sc - 32) * q, q in [-4, 3];
// sc is 6 bits packed into 12 bytes; q's bit 2 is stored inverted in hmask.
struct BlockQ3_K {
  static constexpr int kElements = kQKK;
  uint8_t hmask[kQKK / 8];
  uint8_t qs[kQKK / 4];
  uint8_t scales[12];
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110);

// 4.5 bits per weight. 8 sub-blocks of 32: x = d*sc*q - dmin*mn, q in [0, 15];
// sc, mn are 6 bits packed into 12 bytes (unpack_scale_min_k4).
struct BlockQ4_K {
  static constexpr int kElements = kQKK;
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQKK / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// 5.5 bits per weight. As Q4_K with q in [0, 31]; bit 4 of element 32*j + l is
// bit j of qh[l].
struct BlockQ5_K {
  static constexpr int kElements = kQKK;
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// 6.5625 bits per weight. 16 sub-blocks of 16: x = d * sc * (q - 32), q in [0, 63],
// sc an int8.
struct BlockQ6_K {
  static constexpr int kElements = kQKK;
  uint8_t ql[kQKK / 2];    // low 4 bits
  uint8_t qh[kQKK / 4];    // high 2 bits
  int8_t scales[kQKK / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// --- Decoders: one block -> Block::kElements floats -------------------------------

void decode(const BlockQ4_0& b, float* y) {
  const float d = fp16_to_float(b.d);
  for (int i = 0; i < kQK / 2; ++i) {
    y[i] = static_cast<float>((b.qs[i] & 0x0F) - 8) * d;
    y[i + kQK / 2] = static_cast<float>((b.qs[i] >> 4) - 8) * d;
  }
}

void decode(const BlockQ4_1& b, float* y) {
  const float d = fp16_to_float(b.d);
  const float m = fp16_to_float(b.m);
  for (int i = 0; i < kQK / 2; ++i) {
    y[i] = static_cast<float>(b.qs[i] & 0x0F) * d + m;
    y[i + kQK / 2] = static_cast<float>(b.qs[i] >> 4) * d + m;
  }
}

uint32_t load_u32_le(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

// Five-bit codes of a Q5_0/Q5_1 block: [32] values in [0, 31].
std::array<int, kQK> unpack_q5(const uint8_t* qh_bytes, const uint8_t* qs) {
  const uint32_t qh = load_u32_le(qh_bytes);
  std::array<int, kQK> q{};
  for (int i = 0; i < kQK / 2; ++i) {
    q[i] = (qs[i] & 0x0F) | static_cast<int>((qh >> i) & 1u) << 4;
    q[i + kQK / 2] = (qs[i] >> 4) | static_cast<int>((qh >> (i + kQK / 2)) & 1u) << 4;
  }
  return q;
}

void decode(const BlockQ5_0& b, float* y) {
  const float d = fp16_to_float(b.d);
  const std::array<int, kQK> q = unpack_q5(b.qh, b.qs);
  for (int i = 0; i < kQK; ++i) y[i] = static_cast<float>(q[i] - 16) * d;
}

void decode(const BlockQ5_1& b, float* y) {
  const float d = fp16_to_float(b.d);
  const float m = fp16_to_float(b.m);
  const std::array<int, kQK> q = unpack_q5(b.qh, b.qs);
  for (int i = 0; i < kQK; ++i) y[i] = static_cast<float>(q[i]) * d + m;
}

void decode(const BlockQ8_0& b, float* y) {
  const float d = fp16_to_float(b.d);
  for (int i = 0; i < kQK; ++i) y[i] = static_cast<float>(b.qs[i]) * d;
}

void decode(const BlockIq4Nl& b, float* y) {
  const float d = fp16_to_float(b.d);
  for (int i = 0; i < kQK / 2; ++i) {
    y[i] = d * static_cast<float>(kIq4NlGrid[b.qs[i] & 0x0F]);
    y[i + kQK / 2] = d * static_cast<float>(kIq4NlGrid[b.qs[i] >> 4]);
  }
}

// Element e of a 2-bit K-quant half (128 elements, 32 bytes q): code
// (q[e % 32] >> 2 * (e / 32)) & 3. Halves follow each other.
int two_bit_code(const uint8_t* qs, int e) {
  const int half = e / 128;
  const int r = e % 128;
  return (qs[half * 32 + r % 32] >> (2 * (r / 32))) & 3;
}

void decode(const BlockQ2_K& b, float* y) {
  const float d = fp16_to_float(b.d);
  const float dmin = fp16_to_float(b.dmin);
  for (int e = 0; e < kQKK; ++e) {
    const uint8_t sc = b.scales[e / 16];
    const float dl = d * static_cast<float>(sc & 0x0F);
    const float ml = dmin * static_cast<float>(sc >> 4);
    y[e] = dl * static_cast<float>(two_bit_code(b.qs, e)) - ml;
  }
}

// Q3_K's 16 six-bit scales: low 4 bits of scale k in byte k % 8 (nibble k / 8),
// high 2 bits in byte 8 + k % 4 (bit pair k / 4).
int q3_k_scale(const uint8_t* scales, int k) {
  const int lo = (scales[k % 8] >> (4 * (k / 8))) & 0x0F;
  const int hi = (scales[8 + k % 4] >> (2 * (k / 4))) & 0x03;
  return (lo | hi << 4) - 32;
}

void decode(const BlockQ3_K& b, float* y) {
  const float d = fp16_to_float(b.d);
  for (int e = 0; e < kQKK; ++e) {
    const float dl = d * static_cast<float>(q3_k_scale(b.scales, e / 16));
    const bool high_set = (b.hmask[e % 32] >> (e / 32)) & 1;
    const int q = two_bit_code(b.qs, e) - (high_set ? 0 : 4);
    y[e] = dl * static_cast<float>(q);
  }
}

// Q4_K/Q5_K's 8 six-bit scales and mins in 12 bytes: for j < 4 the low 6 bits of
// bytes j (scale) and j + 4 (min); for j >= 4 a nibble of byte j + 4 plus the top
// two bits of bytes j - 4 (scale) and j (min).
void unpack_scale_min_k4(const uint8_t* s, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Element e of a Q4_K/Q5_K super-block sits in sub-block e / 32; its low nibble
// is nibble (e / 32) % 2 of qs[32 * (e / 64) + e % 32].
int k_quant_nibble(const uint8_t* qs, int e) {
  return (qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 0x0F;
}

// Shared by Q4_K and Q5_K: y[e] = d*sc * q(e) - dmin*mn, per 32-element sub-block.
template <class Block, class CodeFn>
void decode_k4_style(const Block& b, float* y, CodeFn code) {
  const float d = fp16_to_float(b.d);
  const float dmin = fp16_to_float(b.dmin);
  for (int j = 0; j < kQKK / 32; ++j) {
    int sc = 0;
    int mn = 0;
    unpack_scale_min_k4(b.scales, j, &sc, &mn);
    const float d1 = d * static_cast<float>(sc);
    const float m1 = dmin * static_cast<float>(mn);
    for (int l = 0; l < 32; ++l) {
      const int e = 32 * j + l;
      y[e] = d1 * static_cast<float>(code(e)) - m1;
    }
  }
}

void decode(const BlockQ4_K& b, float* y) {
  decode_k4_style(b, y, [&](int e) { return k_quant_nibble(b.qs, e); });
}

void decode(const BlockQ5_K& b, float* y) {
  decode_k4_style(b, y, [&](int e) {
    return k_quant_nibble(b.qs, e) | ((b.qh[e % 32] >> (e / 32)) & 1) << 4;
  });
}

// Q6_K element e, in half h = e / 128 with r = e % 128: low nibble from
// ql[64*h + r % 64] (nibble r / 64), high two bits from qh[32*h + r % 32]
// (bit pair r / 32).
void decode(const BlockQ6_K& b, float* y) {
  const float d = fp16_to_float(b.d);
  for (int e = 0; e < kQKK; ++e) {
    const int h = e / 128;
    const int r = e % 128;
    const int lo = (b.ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0F;
    const int hi = (b.qh[32 * h + r % 32] >> (2 * (r / 32))) & 0x03;
    const float dl = d * static_cast<float>(b.scales[e / 16]);
    y[e] = dl * static_cast<float>((lo | hi << 4) - 32);
  }
}

// --- Row dequantizers (the DequantizeBlocksFn of each table entry) ----------------

// Blocks may sit at any byte offset in a mapped file: copy each one out first.
template <class Block>
void dequantize_blocks(const uint8_t* src, float* dst, int64_t n_blocks) {
  for (int64_t i = 0; i < n_blocks; ++i) {
    Block b;
    std::memcpy(&b, src + i * static_cast<int64_t>(sizeof(Block)), sizeof(Block));
    decode(b, dst + i * Block::kElements);
  }
}

void dequantize_f32(const uint8_t* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

template <float (*Convert)(uint16_t)>
void dequantize_half(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = Convert(h);
  }
}

template <class Block>
constexpr GgmlTypeTraits block_traits(GgmlType type, const char* name, GgmlType act_type, int min_offset = -1) {
  return {type, name, Block::kElements, sizeof(Block), &dequantize_blocks<Block>, act_type, min_offset};
}

constexpr std::array kTraits = {
    GgmlTypeTraits{GgmlType::F32, "f32", 1, 4, &dequantize_f32, GgmlType::F32, -1},
    GgmlTypeTraits{GgmlType::F16, "f16", 1, 2, &dequantize_half<fp16_to_float>, GgmlType::F16, -1},
    GgmlTypeTraits{GgmlType::BF16, "bf16", 1, 2, &dequantize_half<bf16_to_float>, GgmlType::BF16, -1},
    block_traits<BlockQ4_0>(GgmlType::Q4_0, "q4_0", GgmlType::Q8_0),
    block_traits<BlockQ4_1>(GgmlType::Q4_1, "q4_1", GgmlType::Q8_1, offsetof(BlockQ4_1, m)),
    block_traits<BlockQ5_0>(GgmlType::Q5_0, "q5_0", GgmlType::Q8_0),
    block_traits<BlockQ5_1>(GgmlType::Q5_1, "q5_1", GgmlType::Q8_1, offsetof(BlockQ5_1, m)),
    block_traits<BlockQ8_0>(GgmlType::Q8_0, "q8_0", GgmlType::Q8_0),
    block_traits<BlockIq4Nl>(GgmlType::IQ4_NL, "iq4_nl", GgmlType::Q8_0),
    block_traits<BlockQ2_K>(GgmlType::Q2_K, "q2_K", GgmlType::Q8_K),
    block_traits<BlockQ3_K>(GgmlType::Q3_K, "q3_K", GgmlType::Q8_K),
    block_traits<BlockQ4_K>(GgmlType::Q4_K, "q4_K", GgmlType::Q8_K),
    block_traits<BlockQ5_K>(GgmlType::Q5_K, "q5_K", GgmlType::Q8_K),
    block_traits<BlockQ6_K>(GgmlType::Q6_K, "q6_K", GgmlType::Q8_K),
};

// Names of all ggml type ids, as ggml prints them. Ids 4, 5 (q4_2, q4_3) and
// 31-33, 36-38 (repacked layouts) were removed from GGUF files.
constexpr auto kAllNames = std::to_array<const char*>({
    "f32",     "f16",    "q4_0",     "q4_1",    "q4_2",       "q4_3",       "q5_0",
    "q5_1",    "q8_0",   "q8_1",     "q2_K",    "q3_K",       "q4_K",       "q5_K",
    "q6_K",    "q8_K",   "iq2_xxs",  "iq2_xs",  "iq3_xxs",    "iq1_s",      "iq4_nl",
    "iq3_s",   "iq2_s",  "iq4_xs",   "i8",      "i16",        "i32",        "i64",
    "f64",     "iq1_m",  "bf16",     "q4_0_4_4", "q4_0_4_8",  "q4_0_8_8",   "tq1_0",
    "tq2_0",   "iq4_nl_4_4", "iq4_nl_4_8", "iq4_nl_8_8", "mxfp4", "nvfp4", "q1_0",
});
static_assert(kAllNames.size() == 42, "ids 0..41 of ggml.h");

}  // namespace

bool ggml_block_mins(const GgmlTypeTraits& type, const uint8_t* src, int64_t n_blocks, float* out) {
  if (type.min_offset < 0) return false;
  for (int64_t i = 0; i < n_blocks; ++i) {
    uint16_t m;
    std::memcpy(&m, src + i * static_cast<int64_t>(type.bytes_per_block) + type.min_offset, 2);
    out[i] = fp16_to_float(m);
  }
  return true;
}

const GgmlTypeTraits* find_ggml_type(uint32_t type_id) {
  for (const GgmlTypeTraits& t : kTraits) {
    if (static_cast<uint32_t>(t.type) == type_id) return &t;
  }
  return nullptr;
}

std::string ggml_type_name(uint32_t type_id) {
  if (type_id < kAllNames.size()) return kAllNames[type_id];
  return "type#" + std::to_string(type_id);
}

}  // namespace lowbit
