// kTrellis GEMV with AVX2 (trellis_kernels.h). Interim form for the table
// codebook: the values of each sequence come from the scalar state walk, widened
// to 8 lanes of value + 126, with the dot products as vpmaddubsw then vpmaddwd by
// ones. Where x is not finite, the portable FP32 GEMV runs.
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
// each 32-bit lane.
struct SeqValues {
  alignas(32) uint8_t u[kTrellisSeqLen];
  void load(const TrellisParams& p, const uint8_t* seq) {
    int8_t v[kTrellisSeqLen];
    trellis_sequence_values(p, seq, v);
    for (int i = 0; i < kTrellisSeqLen; ++i) u[i] = static_cast<uint8_t>(v[i] + kTrellisValueMax);
  }
  // Lanes 8h .. 8h + 7 of block b.
  __m256i half(int b, int h) const {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(u + 16 * b + 8 * h)));
  }
};

inline __m256i load(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

template <int K, int V>
void gemv_t(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  constexpr int kSeqBytes = 4 * trellis_block_bytes(K, V);
  const TrellisParams p = w.trellis();
  SeqValues sv;
  const int64_t nq = w.cols / kTrellisSeqLen, ng = w.n_groups(), rb = w.row_bytes();
  const int64_t seqs_per_group = w.group / kTrellisSeqLen, flush = kTrellisFlushCols / kTrellisSeqLen;
  const int8_t* xlo = a.fixed.bytes.data();       // [cols][4]
  const int8_t* xhi = xlo + 4 * w.cols;           // [cols][4]
  const float* xsum = a.fixed.group_sums.data();  // [ng]
  const __m256i ones = _mm256_set1_epi16(1);
  alignas(64) uint8_t last[64] = {};  // the row's last sequence, so reads stay in the buffer
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    const uint16_t* sc = w.scales.data() + r * ng;
    std::memcpy(last, codes + (nq - 1) * kSeqBytes, kSeqBytes);
    __m256 facc = _mm256_setzero_ps();
    float offset = 0.0f;  // sum_g s_g X_g
    for (int64_t g = 0; g < ng; ++g) {
      const float s = fp16_to_float(sc[g]);
      offset += s * xsum[g];
      const int64_t q_end = std::min(nq, (g + 1) * seqs_per_group);
      for (int64_t q0 = g * seqs_per_group; q0 < q_end; q0 += flush) {
        __m256i lo = _mm256_setzero_si256(), hi = lo;
        for (int64_t q = q0; q < std::min(q_end, q0 + flush); ++q) {
          // One prefetch per 64-byte line of the code stream (stream_prefetch.h).
          if (((q * kSeqBytes) & 63) < kSeqBytes) prefetch_stream(codes + q * kSeqBytes);
          const uint8_t* seq = q + 1 == nq ? last : codes + q * kSeqBytes;
          const int64_t c = q * kTrellisSeqLen;
          sv.load(p, seq);
          // value + 126 <= 252 in byte 0 of each lane: a vpmaddubsw pair is at most
          // 252 * 128 = 32256 < 2^15, so each block goes to int32 on its own.
          for (int b = 0; b < 4; ++b) {
            for (int h = 0; h < 2; ++h) {
              const __m256i hv = sv.half(b, h);
              const int64_t o = 4 * (c + 16 * b + 8 * h);  // x bytes of the half
              lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_maddubs_epi16(hv, load(xlo + o)), ones));
              hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_maddubs_epi16(hv, load(xhi + o)), ones));
            }
          }
        }
        // D lanes: 256 hi + lo, exact in int32 over kTrellisFlushCols columns (trellis_kernels.h).
        const __m256i d = _mm256_add_epi32(_mm256_slli_epi32(hi, 8), lo);
        facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(s), facc);
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

// Rows in FP32: value = bytesum(h) - 126 (vpmaddubsw with ones, vpmaddwd with ones),
// then value * scale * tensor_scale in packed_value's order (bit-identical).
template <int K, int V>
void dequantize_t(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  constexpr int kSeqBytes = 4 * trellis_block_bytes(K, V);
  const TrellisParams p = w.trellis();
  SeqValues sv;
  const int64_t nq = w.cols / kTrellisSeqLen, ng = w.n_groups(), rb = w.row_bytes();
  const __m256 ts = _mm256_set1_ps(w.tensor_scale);
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  alignas(64) uint8_t last[64] = {};
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    std::memcpy(last, codes + (nq - 1) * kSeqBytes, kSeqBytes);
    float* o = out + (r - r0) * w.cols;
    for (int64_t q = 0; q < nq; ++q) {
      const uint8_t* seq = q + 1 == nq ? last : codes + q * kSeqBytes;
      const __m256 s = _mm256_set1_ps(fp16_to_float(w.scales[r * ng + q * kTrellisSeqLen / w.group]));
      sv.load(p, seq);
      for (int b = 0; b < 4; ++b) {
        for (int h = 0; h < 2; ++h) {
          const __m256i sum = _mm256_madd_epi16(_mm256_maddubs_epi16(sv.half(b, h), ones8), ones16);
          const __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(sum, _mm256_set1_epi32(kTrellisValueMax)));
          _mm256_storeu_ps(o + q * kTrellisSeqLen + 16 * b + 8 * h, _mm256_mul_ps(_mm256_mul_ps(v, s), ts));
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

PackedKernels packed_kernels_trellis_avx2() {
  PackedKernels k{gemv, dequantize_rows, Isa::kAvx2};
  k.prepare_fixed16 = prepare_trellis_fixed16;
  return k;
}

}  // namespace lowbit
