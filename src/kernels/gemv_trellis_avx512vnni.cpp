// kTrellis GEMV with AVX-512 VNNI (trellis_kernels.h). Interim form for the
// table codebook: the values of each 64-weight sequence come from the scalar
// state walk, widened to 16 lanes of value + 126, and two vpdpbusd per 16
// weights add (value + 126) * lo and (value + 126) * hi of the 16-bit
// fixed-point x. Where x is not finite, the portable FP32 GEMV runs.
// GCC 12 flags the intrinsics headers' _mm512_undefined_* values as maybe uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/half.h"
#include "kernels/stream_prefetch.h"
#include "kernels/trellis_kernels.h"
#include "kernels/trellis_window.h"

namespace lowbit {
namespace {

// Step 1 of the table codebook (formats/trellis_code.h): the values of a sequence
// come from the scalar walk (trellis_sequence_values), value + 126 in byte 0 of
// each 32-bit lane, so the dot products below keep their form and exactness.
struct SeqValues {
  alignas(64) uint8_t u[kTrellisSeqLen];
  void load(const TrellisParams& p, const uint8_t* seq) {
    int8_t v[kTrellisSeqLen];
    trellis_sequence_values(p, seq, v);
    for (int i = 0; i < kTrellisSeqLen; ++i) u[i] = static_cast<uint8_t>(v[i] + kTrellisValueMax);
  }
  __m512i block(int b) const { return _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(u + 16 * b))); }
};

// kHiOnly: x as its hi byte alone (an 8-bit x of step 256 xs), one vpdpbusd per
// block; for the benchmark's comparison only (trellis_kernels.h).
template <int K, int V, bool kHiOnly>
void gemv_t(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  constexpr int kSeqBytes = 4 * trellis_block_bytes(K, V);
  const TrellisParams p = w.trellis();
  SeqValues sv;
  const int64_t nq = w.cols / kTrellisSeqLen, ng = w.n_groups(), rb = w.row_bytes();
  const int64_t seqs_per_group = w.group / kTrellisSeqLen, flush = kTrellisFlushCols / kTrellisSeqLen;
  const int8_t* xlo = a.fixed.bytes.data();            // [cols][4]
  const int8_t* xhi = xlo + 4 * w.cols;                // [cols][4]
  const float* xsum = a.fixed.group_sums.data();       // [ng]
  alignas(64) uint8_t last[64] = {};                   // the row's last sequence, so reads stay in the buffer
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    const uint16_t* sc = w.scales.data() + r * ng;
    std::memcpy(last, codes + (nq - 1) * kSeqBytes, kSeqBytes);
    __m512 facc = _mm512_setzero_ps();
    float offset = 0.0f;  // sum_g s_g X_g
    for (int64_t g = 0; g < ng; ++g) {
      const float s = fp16_to_float(sc[g]);
      offset += s * xsum[g];
      const __m512 vs = _mm512_set1_ps(s);
      const int64_t q_end = std::min(nq, (g + 1) * seqs_per_group);
      for (int64_t q0 = g * seqs_per_group; q0 < q_end; q0 += flush) {
        __m512i lo0 = _mm512_setzero_si512(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
        for (int64_t q = q0; q < std::min(q_end, q0 + flush); ++q) {
          // One prefetch per 64-byte line of the code stream (stream_prefetch.h).
          if (((q * kSeqBytes) & 63) < kSeqBytes) prefetch_stream(codes + q * kSeqBytes);
          const uint8_t* seq = q + 1 == nq ? last : codes + q * kSeqBytes;
          const int64_t c = q * kTrellisSeqLen;
          sv.load(p, seq);
          const __m512i h0 = sv.block(0), h1 = sv.block(1), h2 = sv.block(2), h3 = sv.block(3);
          if constexpr (!kHiOnly) lo0 = _mm512_dpbusd_epi32(lo0, h0, _mm512_loadu_si512(xlo + 4 * c));
          hi0 = _mm512_dpbusd_epi32(hi0, h0, _mm512_loadu_si512(xhi + 4 * c));
          if constexpr (!kHiOnly) lo1 = _mm512_dpbusd_epi32(lo1, h1, _mm512_loadu_si512(xlo + 4 * c + 64));
          hi1 = _mm512_dpbusd_epi32(hi1, h1, _mm512_loadu_si512(xhi + 4 * c + 64));
          if constexpr (!kHiOnly) lo0 = _mm512_dpbusd_epi32(lo0, h2, _mm512_loadu_si512(xlo + 4 * c + 128));
          hi0 = _mm512_dpbusd_epi32(hi0, h2, _mm512_loadu_si512(xhi + 4 * c + 128));
          if constexpr (!kHiOnly) lo1 = _mm512_dpbusd_epi32(lo1, h3, _mm512_loadu_si512(xlo + 4 * c + 192));
          hi1 = _mm512_dpbusd_epi32(hi1, h3, _mm512_loadu_si512(xhi + 4 * c + 192));
        }
        // D lanes: 256 hi + lo, exact in int32 over kTrellisFlushCols columns (trellis_kernels.h).
        const __m512i d = _mm512_add_epi32(_mm512_slli_epi32(_mm512_add_epi32(hi0, hi1), 8), _mm512_add_epi32(lo0, lo1));
        facc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), vs, facc);
      }
    }
    const float sum = _mm512_reduce_add_ps(facc) - static_cast<float>(kTrellisValueMax) * offset;
    y[r - r0] = sum * a.fixed.scale * w.tensor_scale;
  }
}

// Rows in FP32: per block, value = bytesum(h) - 126 (one vpdpbusd of h with ones onto
// -126), then value * scale * tensor_scale in packed_value's order (bit-identical).
template <int K, int V>
void dequantize_t(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  constexpr int kSeqBytes = 4 * trellis_block_bytes(K, V);
  const TrellisParams p = w.trellis();
  SeqValues sv;
  const int64_t nq = w.cols / kTrellisSeqLen, ng = w.n_groups(), rb = w.row_bytes();
  const __m512 ts = _mm512_set1_ps(w.tensor_scale);
  alignas(64) uint8_t last[64] = {};
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    std::memcpy(last, codes + (nq - 1) * kSeqBytes, kSeqBytes);
    float* o = out + (r - r0) * w.cols;
    for (int64_t q = 0; q < nq; ++q) {
      const uint8_t* seq = q + 1 == nq ? last : codes + q * kSeqBytes;
      const __m512 s = _mm512_set1_ps(fp16_to_float(w.scales[r * ng + q * kTrellisSeqLen / w.group]));
      sv.load(p, seq);
      for (int b = 0; b < 4; ++b) {
        const __m512i v = _mm512_dpbusd_epi32(_mm512_set1_epi32(-kTrellisValueMax), sv.block(b),
                                              _mm512_set1_epi8(1));
        _mm512_storeu_ps(o + q * kTrellisSeqLen + 16 * b, _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(v), s), ts));
      }
    }
  }
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  trellis_dispatch(w.trellis_step_bits, [&](auto k, auto v) { dequantize_t<k(), v()>(w, r0, r1, out); });
}

template <bool kHiOnly>
void gemv_any(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  if (!a.fixed.valid) return trellis_gemv_fp32(w, a, r0, r1, y);
  trellis_dispatch(w.trellis_step_bits, [&](auto k, auto v) { gemv_t<k(), v(), kHiOnly>(w, a, r0, r1, y); });
}

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  gemv_any<false>(w, a, r0, r1, y);
}

}  // namespace

void trellis_gemv_avx512vnni_hi_only(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1,
                                     float* y) {
  gemv_any<true>(w, a, r0, r1, y);
}

PackedKernels packed_kernels_trellis_avx512vnni() {
  PackedKernels k{gemv, dequantize_rows, Isa::kAvx512Vnni};
  k.prepare_fixed16 = prepare_trellis_fixed16;
  return k;
}

}  // namespace lowbit
