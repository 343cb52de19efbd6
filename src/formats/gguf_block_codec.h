// The inside of formats/gguf_blocks.h: what every llama.cpp block type is made
// of, described as data, plus the header search they share
// (gguf_block_search.cpp) and each type's byte layout (gguf_blocks_legacy.cpp,
// gguf_blocks_kquants.cpp).
//
// Every type decodes element i of sub-block j as
//   v = scale_j * grid[code_i] (+ offset_j where the type has one)
// with scale_j * grid[code] exact in float (io/ggml_types.cpp says why), so v is
// rounded once, by the addition, exactly as the reference dequantizer rounds it:
//   single-level (32 elements, one sub-block): scale = fp16 d, offset = fp16 m
//     (Q4_1, Q5_1);
//   two-level (K types): scale_j = fp16 d * sc_j, offset_j = -(fp16 dmin * mn_j)
//     (Q2_K, Q4_K, Q5_K), sc_j and mn_j small integers.
// A header is chosen by a search (gguf_block_search.cpp); codes are then always
// the nearest stored values under it, so a header and the values fix the bytes.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "formats/gguf_blocks.h"
#include "io/ggml_types.h"

namespace lowbit::gguf_codec {

inline constexpr int kMaxBlock = 256;     // elements of the largest block (K types)
inline constexpr int kMaxSubBlocks = 16;  // Q2_K, Q3_K, Q6_K: 16 sub-blocks of 16

// One block's header as integers, before packing.
struct Header {
  uint16_t d = 0;  // fp16 bits: the block scale (K types: the super-block scale)
  uint16_t m = 0;  // fp16 bits: Q4_1/Q5_1 minimum; Q2_K/Q4_K/Q5_K dmin
  std::array<int16_t, kMaxSubBlocks> sc{};  // K types: sub-block scales (Q3_K -32..31, Q6_K -128..127)
  std::array<uint8_t, kMaxSubBlocks> mn{};  // Q2_K/Q4_K/Q5_K: sub-block mins
};

// What the elements of one sub-block decode to (see above).
struct SubBlock {
  float scale = 0.0f;
  float offset = 0.0f;
};

// The values a code stands for before scale and offset, ascending.
class Grid {
 public:
  explicit Grid(std::vector<float> values);
  int size() const { return static_cast<int>(values_.size()); }
  float value(int k) const { return values_[k]; }
  float min() const { return values_.front(); }
  float max() const { return values_.back(); }
  // Midpoint between values k and k + 1, k in [0, size - 1).
  float midpoint(int k) const { return mid_[k]; }
  // Code of the grid value nearest t (NaN gives zero_code()); ties between two
  // values go to the upper one.
  int index_of(float t) const {
    if (!(t == t)) return zero_code_;
    if (uniform_) {  // floor(u + 0.5): ties go up, as in the midpoint search
      const float u = std::clamp(t - values_.front(), 0.0f, static_cast<float>(values_.size() - 1));
      return static_cast<int>(u + 0.5f);
    }
    return static_cast<int>(std::upper_bound(mid_.begin(), mid_.end(), t) - mid_.begin());
  }
  bool uniform() const { return uniform_; }
  // Code of the value of smallest magnitude (the first of equals): what
  // elements of a zero-scale block are written as.
  int zero_code() const { return zero_code_; }

 private:
  std::vector<float> values_;  // [n]
  std::vector<float> mid_;     // [n - 1]
  bool uniform_ = false;       // values_[k] = values_[0] + k: index_of rounds instead of searching
  int zero_code_ = 0;
};

// How a type's header is searched (gguf_block_search.cpp).
enum class FitKind {
  kSymmetric,          // v = scale * grid: scale of either sign, no offset
  kFreeOffset,         // v = scale * grid + offset, offset of either sign (Q4_1, Q5_1)
  kNonPositiveOffset,  // offset = -(dmin * mn) <= 0 (Q2_K, Q4_K, Q5_K sub-blocks)
};

// Range of inverse scales the sweep visits, relative to the one that puts the
// block's largest element on the end of the grid: below 1 leaves headroom,
// above 1 clips the largest elements.
struct SweepRange {
  double lo = 1.0;
  double hi = 1.0;
  // false: visit every assignment in the range (the sweep). true: only those
  // of the inverse scales that put the largest element exactly on a grid value
  // (or whole steps past the end), cheaper where the grid is fine (6-8 bits)
  // and the assignments many, each differing little. Uniform grids only.
  bool top_aligned = false;
};

using PackFn = void (*)(const Header& h, const uint8_t* codes, uint8_t* out);

// An fp16 field of a block, little-endian.
inline void put_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xFF);
  p[1] = static_cast<uint8_t>(v >> 8);
}

struct Codec {
  GgufBlockType info;
  const Grid* grid;        // element codes; pack() receives codes as indexes into it
  FitKind kind;
  SweepRange range;        // of the element (sub-block) fit
  int sub_blocks = 1;      // 1: single-level
  int sub_size = 32;       // elements per sub-block
  const Grid* sub_scales = nullptr;  // two-level: the integers a sub-block scale can be
  const Grid* sub_mins = nullptr;    // two-level with mins: the integers a sub-block min can be
  PackFn pack;             // header + codes [block_size] -> bytes_per_block bytes

  bool has_offset() const { return kind != FitKind::kSymmetric; }
};

// The codec table, in gguf_block_types() order.
const std::vector<Codec>& codecs();
const Codec* find_codec(uint32_t type_id);
// Codecs defined by the two type files.
std::vector<Codec> legacy_codecs();  // Q8_0, Q5_0, Q5_1, Q4_0, Q4_1, IQ4_NL
std::vector<Codec> kquant_codecs();  // Q6_K, Q5_K, Q4_K, Q3_K, Q2_K

// Buffers the search reuses from block to block.
struct Scratch {
  // A move of one element to its next code, as a sortable key: the float bits of
  // the inverse scale t > 0 where it happens (ordered like t), then the element
  // j, then 1 for a move up or 0 for a move down: t_bits << 32 | j << 1 | up.
  std::vector<uint64_t> events;
  std::array<double, kMaxBlock> y{};
  std::array<int, kMaxBlock> code{};
  std::array<float, kMaxBlock> unit_weights = ones();

 private:
  static constexpr std::array<float, kMaxBlock> ones() {
    std::array<float, kMaxBlock> a{};
    a.fill(1.0f);
    return a;
  }
};

// The integers lo..hi as a grid (sub-block scales and mins, uniform codes).
Grid integer_grid(int lo, int hi);

// Chooses the header of one block: x, w [block_size] (w >= 0, not all zero),
// minimising sum w (x - v)^2 over the block with v the value as stored.
void choose_header(const Codec& c, const float* x, const float* w, Scratch& s, Header* h);
// The decode parameters of every sub-block of `h`: out [c.sub_blocks].
void sub_blocks_of(const Codec& c, const Header& h, SubBlock* out);
// The code whose stored value is nearest x (among the grid neighbours of
// (x - offset) / scale; ties to the lower code); zero_code() where scale is 0.
int nearest_code(const Codec& c, const SubBlock& p, float x);
// The stored value of code k.
inline float stored_value(const Codec& c, const SubBlock& p, int k) {
  const float v = p.scale * c.grid->value(k);
  return c.has_offset() ? v + p.offset : v;
}

}  // namespace lowbit::gguf_codec
