// kTrellis GEMV with AVX2 (trellis_kernels.h): 16 weights (one block) per ymm of
// 16-bit lanes. Lane l's state starts at bit rel = (l / V) k of the block's
// 16-byte window (trellis_window.h), at byte rel / 8 and shift sh = rel % 8:
//   vpshufb x2     words (byte rel/8, +1) and (rel/8 + 1, +2) of the window
//   vpmullw x2     by 2^(8 - sh): the high bytes are state bits 0..7 and 8..15,
//                  joined into the 12-bit state s of the lane
//   shifts, xors   h = (s ^ s >> 4 ^ s >> 6 ^ s >> 8) & 63 in the low byte
//                  (V = 2: the s >> 6 term in even lanes only, h1 in odd ones)
//   vpackuswb      two blocks' h to one register of bytes
//   vpshufb x4, vpaddb x3, vpxor x3   value + 126 from the 64-byte table (an XOR of
//                  four 16-byte tables' lookups, see values()), unpacked to 16-bit lanes
//   vpmaddwd       (value + 126) * xi with the 16-bit fixed-point x itself (pairs
//                  <= 2 * 252 * 32639 < 2^24; exact int32 lanes, see below)
// The lanes of D hold int32 sums over at most kTrellisFlushCols columns, 2 products
// per lane per 16 columns: 128 * 252 * 32639 = 1.05e9 < 2^31.
// Where x is not finite, the portable FP32 GEMV runs.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "kernels/avx2_lanes.h"
#include "kernels/fixed16_avx2.h"
#include "kernels/stream_prefetch.h"
#include "kernels/trellis_kernels.h"
#include "kernels/trellis_window.h"

namespace lowbit {
namespace {

template <int K, int V>
struct Decoder {
  __m256i lo_bytes, hi_bytes, mul, keep6, table[4];
  Decoder() {
    alignas(32) int8_t lo[32], hi[32];
    alignas(32) int16_t m[16], k6[16];
    alignas(32) uint8_t t[4][32];
    for (int l = 0; l < 16; ++l) {
      const int rel = trellis_lane_bit(K, V, l), byte = rel / 8;
      const int pos = 2 * (l % 8) + 16 * (l / 8);  // word l of the ymm
      lo[pos] = static_cast<int8_t>(byte);
      lo[pos + 1] = static_cast<int8_t>(byte + 1);
      hi[pos] = static_cast<int8_t>(byte + 1);
      hi[pos + 1] = static_cast<int8_t>(byte + 2);
      m[l] = static_cast<int16_t>(1 << (8 - rel % 8));
      k6[l] = static_cast<int16_t>(V == 1 || l % V == 0 ? -1 : 0);  // h0 lanes keep the s >> 6 term
    }
    // table[j] = T_j ^ T_{j+1} (j < 3), table[3] = T_3: T_j the j-th 16 entries of the table
    // (value + 126), in both 128-bit lanes; see values().
    const auto entry = [](int j, int i) {
      return static_cast<uint8_t>(kTrellisTable[16 * j + i % 16] + kTrellisValueMax);
    };
    for (int j = 0; j < 4; ++j) {
      for (int i = 0; i < 32; ++i) t[j][i] = static_cast<uint8_t>(entry(j, i) ^ (j < 3 ? entry(j + 1, i) : 0));
      table[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(t[j]));
    }
    lo_bytes = _mm256_load_si256(reinterpret_cast<const __m256i*>(lo));
    hi_bytes = _mm256_load_si256(reinterpret_cast<const __m256i*>(hi));
    mul = _mm256_load_si256(reinterpret_cast<const __m256i*>(m));
    keep6 = _mm256_load_si256(reinterpret_cast<const __m256i*>(k6));
  }
  // h of block b's 16 weights, one per 16-bit lane (the low byte; the high one is 0).
  __m256i indices(const uint8_t* seq, int b) const {
    const __m256i win = _mm256_broadcastsi128_si256(trellis_window<K, V>(seq, b));
    const __m256i lo = _mm256_mullo_epi16(_mm256_shuffle_epi8(win, lo_bytes), mul);  // high byte: s & 255
    const __m256i hi = _mm256_mullo_epi16(_mm256_shuffle_epi8(win, hi_bytes), mul);  // high byte: s >> 8 (+ more)
    const __m256i s = _mm256_or_si256(_mm256_srli_epi16(lo, 8), _mm256_and_si256(hi, _mm256_set1_epi16(0x0f00)));
    __m256i s6 = _mm256_srli_epi16(s, 6);
    if constexpr (V != 1) s6 = _mm256_and_si256(s6, keep6);
    return _mm256_and_si256(_mm256_xor_si256(_mm256_xor_si256(s, _mm256_srli_epi16(s, 4)),
                                             _mm256_xor_si256(s6, _mm256_srli_epi16(s, 8))),
                            _mm256_set1_epi16(63));
  }
  // value + 126 of blocks b and b + 1, one per 16-bit lane: the two blocks' indices
  // packed to bytes (block b's in bytes 0..7 of each 128-bit lane, b + 1's in 8..15),
  // one table lookup for both, unpacked back in order.
  void values(const uint8_t* seq, int b, __m256i& va, __m256i& vb) const {
    // The 64-entry lookup as an XOR of four vpshufb: h + 0x70 - 16 j has bit 7 clear (vpshufb
    // reads entry h & 15) iff h < 16 (j + 1), else it reads 0; so the terms j >= h / 16 are
    // the ones read, and their XOR telescopes to T_{h / 16}[h & 15] (h <= 63: bytes do not
    // wrap). 10 uops; three vpblendvb instead cost 9 on Intel cores (3 uops each) and the
    // two shifts of their selectors 2 more.
    const __m256i h = _mm256_packus_epi16(indices(seq, b), indices(seq, b + 1));
    const auto term = [&](int j) {
      return _mm256_shuffle_epi8(table[j], _mm256_add_epi8(h, _mm256_set1_epi8(static_cast<char>(0x70 - 16 * j))));
    };
    const __m256i v = _mm256_xor_si256(_mm256_xor_si256(term(0), term(1)),
                                       _mm256_xor_si256(term(2), _mm256_shuffle_epi8(table[3], h)));
    va = _mm256_unpacklo_epi8(v, _mm256_setzero_si256());
    vb = _mm256_unpackhi_epi8(v, _mm256_setzero_si256());
  }
};

// The row's group scales in FP32 (vcvtph2ps, exact) and sum_g s_g X_g.
inline float row_scales(const uint16_t* sc, const float* xsum, int64_t ng, float* sf) {
  int64_t g = 0;
  __m256 acc = _mm256_setzero_ps();
  for (; g + 8 <= ng; g += 8) {
    const __m256 v = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + g)));
    _mm256_storeu_ps(sf + g, v);
    acc = _mm256_fmadd_ps(v, _mm256_loadu_ps(xsum + g), acc);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  float offset = 0.0f;
  for (float v : lanes) offset += v;
  for (; g < ng; ++g) {
    sf[g] = fp16_to_float(sc[g]);
    offset += sf[g] * xsum[g];
  }
  return offset;
}

template <int K, int V>
void gemv_t(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  constexpr int kSeqBytes = 4 * trellis_block_bytes(K, V);
  const Decoder<K, V> dec;
  const int64_t nq = w.cols / kTrellisSeqLen, ng = w.n_groups(), rb = w.row_bytes();
  const int64_t seqs_per_group = w.group / kTrellisSeqLen, flush = kTrellisFlushCols / kTrellisSeqLen;
  const int16_t* xi = trellis_fixed16_words(a, w.cols);  // [cols]
  const float* xsum = a.fixed.group_sums.data();        // [ng]
  alignas(64) uint8_t last[64] = {};                    // the row's last sequence, so reads stay in the buffer
  std::vector<float> sf(static_cast<size_t>(ng));       // the row's scales
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    std::memcpy(last, codes + (nq - 1) * kSeqBytes, kSeqBytes);
    __m256 facc = _mm256_setzero_ps();
    const float offset = row_scales(w.scales.data() + r * ng, xsum, ng, sf.data());  // sum_g s_g X_g
    // D lanes of sequence q: (value + 126) * xi, two columns per lane and 16-weight block.
    const auto seq_d = [&](int64_t q) {
      // One prefetch per 64-byte line of the code stream (stream_prefetch.h).
      if (((q * kSeqBytes) & 63) < kSeqBytes) prefetch_stream(codes + q * kSeqBytes);
      const uint8_t* seq = q + 1 == nq ? last : codes + q * kSeqBytes;
      const int16_t* xq = xi + q * kTrellisSeqLen;
      const auto x16 = [&](int b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 16 * b)); };
      __m256i v0, v1, v2, v3;
      dec.values(seq, 0, v0, v1);
      dec.values(seq, 2, v2, v3);
      return _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(v0, x16(0)), _mm256_madd_epi16(v1, x16(1))),
                              _mm256_add_epi32(_mm256_madd_epi16(v2, x16(2)), _mm256_madd_epi16(v3, x16(3))));
    };
    if (seqs_per_group == 1) {
      // One sequence per group (G = 64, the common case): each sequence's D converted at
      // once; two FP32 accumulators for the FMA latency.
      __m256 facc1 = _mm256_setzero_ps();
      int64_t q = 0;
      for (; q + 1 < nq; q += 2) {
        facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(seq_d(q)), _mm256_set1_ps(sf[q]), facc);
        facc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(seq_d(q + 1)), _mm256_set1_ps(sf[q + 1]), facc1);
      }
      if (q < nq) facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(seq_d(q)), _mm256_set1_ps(sf[q]), facc);
      facc = _mm256_add_ps(facc, facc1);
    }
    for (int64_t g = 0; g < ng && seqs_per_group > 1; ++g) {
      const int64_t q_end = std::min(nq, (g + 1) * seqs_per_group);
      for (int64_t q0 = g * seqs_per_group; q0 < q_end; q0 += flush) {
        __m256i d = _mm256_setzero_si256();
        for (int64_t q = q0; q < std::min(q_end, q0 + flush); ++q) d = _mm256_add_epi32(d, seq_d(q));
        facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(sf[g]), facc);
      }
    }
    alignas(32) float lanes8[8];
    _mm256_store_ps(lanes8, facc);
    float sum = 0.0f;
    for (float v : lanes8) sum += v;
    sum -= static_cast<float>(kTrellisValueMax) * offset;
    y[r - r0] = sum * a.fixed.scale * w.tensor_scale;
  }
}

// Rows in FP32: value = (value + 126) - 126 per 16-bit lane, widened to 32 bits, then
// value * scale * tensor_scale in packed_value's order (bit-identical).
template <int K, int V>
void dequantize_t(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  constexpr int kSeqBytes = 4 * trellis_block_bytes(K, V);
  const Decoder<K, V> dec;
  const int64_t nq = w.cols / kTrellisSeqLen, ng = w.n_groups(), rb = w.row_bytes();
  const __m256 ts = _mm256_set1_ps(w.tensor_scale);
  alignas(64) uint8_t last[64] = {};
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    std::memcpy(last, codes + (nq - 1) * kSeqBytes, kSeqBytes);
    float* o = out + (r - r0) * w.cols;
    for (int64_t q = 0; q < nq; ++q) {
      const uint8_t* seq = q + 1 == nq ? last : codes + q * kSeqBytes;
      const __m256 s = _mm256_set1_ps(fp16_to_float(w.scales[r * ng + q * kTrellisSeqLen / w.group]));
      __m256i vb[4];
      dec.values(seq, 0, vb[0], vb[1]);
      dec.values(seq, 2, vb[2], vb[3]);
      for (int b = 0; b < 4; ++b) {
        const __m256i v = _mm256_sub_epi16(vb[b], _mm256_set1_epi16(kTrellisValueMax));
        for (int h = 0; h < 2; ++h) {
          const __m256i v32 = _mm256_cvtepi16_epi32(h == 0 ? _mm256_castsi256_si128(v) : _mm256_extracti128_si256(v, 1));
          const __m256 vf = _mm256_cvtepi32_ps(v32);
          _mm256_storeu_ps(o + q * kTrellisSeqLen + 16 * b + 8 * h, _mm256_mul_ps(_mm256_mul_ps(vf, s), ts));
        }
      }
    }
  }
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  trellis_dispatch(w.trellis_step_bits, [&](auto k, auto v) { dequantize_t<k(), v()>(w, r0, r1, out); });
}

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  if (!a.fixed.valid) return trellis_gemv_fp32(w, a, r0, r1, y);
  trellis_dispatch(w.trellis_step_bits, [&](auto k, auto v) { gemv_t<k(), v()>(w, a, r0, r1, y); });
}

}  // namespace

void prepare_trellis_fixed16_avx2(const PackedMatrix& w, PackedActivation& a) {
  Fixed16Activation& f = a.fixed;
  f.valid = false;
  const int64_t n = w.cols, ng = w.n_groups();  // n: a multiple of 64 (kTrellisSeqLen)
  float amax = 0.0f;
  if (w.kind != PackedKind::kTrellis || !fixed16_absmax_avx2(a.x.data(), n, &amax)) return;
  f.scale = amax / static_cast<float>(kFixed16Max);
  const __m256 inv = _mm256_set1_ps(amax > 0.0f ? static_cast<float>(kFixed16Max) / amax : 0.0f);
  f.bytes.assign(static_cast<size_t>(4 * n), 0);
  std::vector<int64_t> sums(static_cast<size_t>(ng), 0);
  for (int64_t c = 0; c < n; c += 16) {  // a group is a multiple of 64 columns: 16 never straddle two
    const Fixed16Lanes8 v = fixed16_lanes_avx2(a.x.data() + c, inv);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(f.bytes.data() + c), v.lo);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(f.bytes.data() + n + c), v.hi);
    // |xi| <= 32639: the saturating pack is exact; packs works per 128-bit lane, so restore the order.
    const __m256i words = _mm256_permute4x64_epi64(_mm256_packs_epi32(v.xi_a, v.xi_b), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(f.bytes.data() + 2 * n + 2 * c), words);
    sums[c / w.group] += avx2::hsum(_mm256_add_epi32(v.xi_a, v.xi_b));
  }
  f.group_sums.assign(static_cast<size_t>(ng), 0.0f);
  for (int64_t g = 0; g < ng; ++g) f.group_sums[g] = static_cast<float>(sums[g]);
  f.valid = true;
}

PackedKernels packed_kernels_trellis_avx2() {
  PackedKernels k{gemv, dequantize_rows, Isa::kAvx2};
  k.prepare_fixed16 = prepare_trellis_fixed16_avx2;
  return k;
}

}  // namespace lowbit
