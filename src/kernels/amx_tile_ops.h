// Tile-level pieces shared by the AMX GEMMs (amx_gemm.h has the layouts):
// the tile configuration, the VNNI reordering of a 16-row weight block and the
// 2 x 2 tile product. Include only from translation units compiled with
// -mamx-tile -mamx-int8 and AVX-512 (file names ending in _amx.cpp).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/amx_gemm.h"

namespace lowbit::amx {

// Tile registers: C 0..3 (token block i, row block j at 2 i + j), A 4..5, B 6..7.
// kc = bytes of K per step (64, or 32 for groups of 32 columns).
class TileScope {
 public:
  explicit TileScope(int kc) {
    struct alignas(64) Config {  // the 64-byte LDTILECFG operand, palette 1
      uint8_t palette = 1;
      uint8_t start_row = 0;
      uint8_t reserved[14] = {};
      uint16_t colsb[16] = {};
      uint8_t rows[16] = {};
    } cfg;
    static_assert(sizeof(Config) == 64);
    for (int t = 0; t < 4; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    for (int t = 4; t < 6; ++t) cfg.rows[t] = 16, cfg.colsb[t] = static_cast<uint16_t>(kc);
    for (int t = 6; t < 8; ++t) cfg.rows[t] = static_cast<uint8_t>(kc / 4), cfg.colsb[t] = 64;
    _tile_loadconfig(&cfg);
  }
  ~TileScope() { _tile_release(); }
  TileScope(const TileScope&) = delete;
  TileScope& operator=(const TileScope&) = delete;
};

// Weight rows per block whose B buffer ([rows][k_padded] bytes) fits in about
// 1 MiB of L2 next to one 32-token A block: a multiple of kAmxRowBlock in [32, 512]
// (512 rather than 256 for K = 2048 halves the passes over the activations:
// the 2-thread TinyLlama layer GEMMs took ~5% less CPU time, W4A8 and W8A8 alike).
inline int64_t row_block(int64_t k_padded) {
  return std::clamp<int64_t>((int64_t{1} << 20) / k_padded / kAmxRowBlock * kAmxRowBlock, kAmxRowBlock, 512);
}

// rows: [16][k_padded] int8 row-major -> b: [k_padded / 4][16][4] (B[kk][4 n + i] = rows[n][4 kk + i]);
// one 16-lane dword gather per 64-byte B row.
inline void to_vnni(const int8_t* rows, int64_t k_padded, int8_t* b) {
  const __m512i idx = _mm512_mullo_epi32(
      _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
      _mm512_set1_epi32(static_cast<int>(k_padded)));
  for (int64_t kk = 0; kk < k_padded / 4; ++kk) {
    _mm512_storeu_si512(b + 64 * kk, _mm512_i32gather_epi32(idx, rows + 4 * kk, 1));
  }
}

// Asks for the 16 cache lines of a 1 KiB tile to be brought into L1.
inline void prefetch_tile(const int8_t* p) {
  for (int i = 0; i < 1024; i += 64) _mm_prefetch(reinterpret_cast<const char*>(p) + i, _MM_HINT_T0);
}

// C tiles (zeroed before) += A block (tokens [t, t + 32) of x) x B blocks b0, b1
// (16 rows each, [k_padded / 4][64]) over K in [k0, k1), steps of kc. The four
// tiles two 64-byte steps ahead are prefetched: tile loads come from L2 (the A
// and B blocks do not fit L1 together), and the hardware prefetchers alone left
// the loads waiting (measured 8-15% faster W8A8 with it, 5632 x 2048 x 512).
template <int kc>
inline void accumulate(const AmxActivations& x, int64_t t, const int8_t* b0, const int8_t* b1, int64_t k0,
                       int64_t k1) {
  constexpr int64_t kAhead = 2 * kAmxK;
  for (int64_t k = k0; k < k1; k += kc) {
    if (k % kAmxK == 0 && k + kAhead < x.k_padded) {
      prefetch_tile(x.tile(t, k + kAhead));
      prefetch_tile(x.tile(t + 16, k + kAhead));
      prefetch_tile(b0 + 16 * (k + kAhead));
      prefetch_tile(b1 + 16 * (k + kAhead));
    }
    _tile_loadd(4, x.tile(t, k), 64);
    _tile_loadd(5, x.tile(t + 16, k), 64);
    _tile_loadd(6, b0 + 16 * k, 64);  // B row kk = k / 4 starts at byte 64 kk
    _tile_loadd(7, b1 + 16 * k, 64);
    _tile_dpbssd(0, 4, 6);
    _tile_dpbssd(1, 4, 7);
    _tile_dpbssd(2, 5, 6);
    _tile_dpbssd(3, 5, 7);
  }
}

inline void zero_c() {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
}

// c: [4][16][16] int32, tile 2 i + j = tokens 16 i .., rows 16 j ..
inline void store_c(int32_t* c) {
  _tile_stored(0, c, 64);
  _tile_stored(1, c + 256, 64);
  _tile_stored(2, c + 512, 64);
  _tile_stored(3, c + 768, 64);
}

// Lanes [0, n) of a 16-lane mask, n clamped to [0, 16].
inline __mmask16 first_lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1);
}

}  // namespace lowbit::amx
