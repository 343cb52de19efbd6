// kTrellis GEMV with AVX-512 VBMI + VNNI + GFNI (trellis_kernels.h): 64 weights, one
// sequence, per zmm of bytes. Per sequence:
//   vpermb          the string (masked load, 8k/V bytes) to qwords: qword q holds
//                   string bytes B_q .. B_q + 7 (mod the string's length: the
//                   tail-biting wrap), B_q the byte of weight 8q's first state bit
//   vpmultishiftqb  x2: byte i of qword q takes the 8 bits at offset rel_i (A = state
//                   bits 0..7) and rel_i + 4 (B = bits 4..11), rel_i: weight i's state
//                   start in the qword
//   vgf2p8affineqb  M B, a GF(2) matrix per byte (V = 2: a second, masked one for h1)
//   vpxorq          h = A ^ M B = the table index (see kHash0Rows)
//   vpermb          value + 126 = (kTrellisTable + 126)[h] (vpermb reads index bits 0..5)
//   vpdpbusd        x2: (value + 126) * lo and * hi of the 16-bit fixed-point x,
//                   four columns per int32 lane (x bytes are plain int8 per column)
// Why this shape: 512-bit uops issue on two ports only (0 and 5 on Intel), so the
// sum of the vector uops bounds the speed, and vpermb and vpmultishiftqb run on
// port 5 alone. The first version pulled four windows (offsets 0, 4, 6, 8) and XORed
// them with two vpternlog: 6 port-5 uops and 14 vector uops per sequence at G = 64
// (with vpslld, vpaddd, vcvtdq2ps and vfmadd of the per-sequence conversion). The
// hash is linear over GF(2) in the state bits, so two windows and one affine map
// give it: 4 port-5 uops (vpermb x2, vpmultishiftqb x2), vgf2p8affineqb and
// vcvtdq2ps on port 0, and 11 vector uops at G = 64 (lo accumulated onto 256 hi by
// the second vpdpbusd, no vpaddd). Measured on a Xeon (AVX-512 VBMI/VNNI/GFNI,
// 2.6 GHz nominal) at 2048 columns: tcq2_g64 3.24 -> 2.74 ns per 64 weights.
// The integer dot products, their conversion and the FP32 sums are those of the
// first version, operation for operation (bit-identical results).
// Where x is not finite, the portable FP32 GEMV runs.
// GCC 12 flags the intrinsics headers' _mm512_undefined_* values as maybe uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "core/half.h"
#include "kernels/fixed16_avx512.h"
#include "kernels/stream_prefetch.h"
#include "kernels/trellis_kernels.h"

namespace lowbit {
namespace {

// The GF(2) matrices of the hash (vgf2p8affineqb: output bit j of a byte = parity of
// the byte AND row j, row j in byte 7 - j of the qword). With the two windows of a
// state, A = s bits 0..7 and B = s bits 4..11 (B_i = s_{4 + i}), the hash is
// h = A ^ M B in bits 0..5: for h0 = s ^ s >> 4 ^ s >> 6 ^ s >> 8 (s_n = 0 for n >= 12)
//   bit j < 4:  s_j ^ s_{j+4} ^ s_{j+6} ^ s_{j+8} = A_j ^ (B_j ^ B_{j+2} ^ B_{j+4})
//   bit 4:      s4 ^ s8 ^ s10 = A_4 ^ (B_4 ^ B_6)      (A_4 = s4 = B_0 cancels the s4 of A)
//   bit 5:      s5 ^ s9 ^ s11 = A_5 ^ (B_5 ^ B_7)
// and for h1 = s ^ s >> 4 ^ s >> 8: rows B_j ^ B_{j+4} (j < 4), B_4, B_5. Bits 6, 7 of
// h are left 0 in M B (rows 0); those of A are not cleared (vpermb reads bits 0..5).
constexpr uint64_t gf2_rows(const uint8_t (&rows)[6]) {
  uint64_t m = 0;
  for (int j = 0; j < 6; ++j) m |= static_cast<uint64_t>(rows[j]) << (8 * (7 - j));
  return m;
}
constexpr uint8_t kHash0Rows[6] = {0x15, 0x2a, 0x54, 0xa8, 0x50, 0xa0};
constexpr uint8_t kHash1Rows[6] = {0x11, 0x22, 0x44, 0x88, 0x10, 0x20};
constexpr uint64_t kHash0Matrix = gf2_rows(kHash0Rows), kHash1Matrix = gf2_rows(kHash1Rows);

// The per-(k, V) control vectors of the decode.
template <int K, int V>
struct Decoder {
  static constexpr int kSeqBytes = 8 * K / V;  // the string: 16, 20, 24 or 32 bytes
  static constexpr __mmask64 kLoad = (1ull << kSeqBytes) - 1;
  __m512i arrange, w0, w4, table_u8, table_s8;
  Decoder() {
    alignas(64) uint8_t arr[64], c0[64], c4[64], tu[64];
    alignas(64) int8_t ts[64];
    for (int i = 0; i < 64; ++i) {
      const int q = i / 8, m = i % 8;
      const int first = (8 * q / V) * K / 8;  // B_q: byte of weight 8q's first state bit
      const int rel = (i / V) * K - 8 * first;  // <= 28 (k 4) or 19 (k 5, V 2): rel + 11 < 64
      arr[i] = static_cast<uint8_t>((first + m) % kSeqBytes);
      c0[i] = static_cast<uint8_t>(rel);
      c4[i] = static_cast<uint8_t>(rel + 4);
      tu[i] = static_cast<uint8_t>(kTrellisTable[i] + kTrellisValueMax);
      ts[i] = kTrellisTable[i];
    }
    arrange = _mm512_load_si512(arr);
    w0 = _mm512_load_si512(c0);
    w4 = _mm512_load_si512(c4);
    table_u8 = _mm512_load_si512(tu);
    table_s8 = _mm512_load_si512(ts);
  }
  // The 64 table indices (bits 0..5 of each byte; bits 6, 7 are not cleared) of one sequence:
  // the windows A (offset rel) and B (rel + 4) of each weight's state, h = A ^ M B.
  // kFull: a plain 64-byte load (the caller knows seq + 64 is inside the codes; vpermb reads
  // only the string's bytes), else a masked load of the string alone.
  template <bool kFull = false>
  __m512i indices(const uint8_t* seq) const {
    const __m512i raw = kFull ? _mm512_loadu_si512(seq) : _mm512_maskz_loadu_epi8(kLoad, seq);
    const __m512i a = _mm512_permutexvar_epi8(arrange, raw);
    const __m512i b = _mm512_multishift_epi64_epi8(w4, a);
    __m512i mb = _mm512_gf2p8affine_epi64_epi8(b, _mm512_set1_epi64(static_cast<long long>(kHash0Matrix)), 0);
    if constexpr (V == 2) {  // odd bytes: value 1 of a step, h1
      mb = _mm512_mask_gf2p8affine_epi64_epi8(mb, 0xaaaaaaaaaaaaaaaaull, b,
                                              _mm512_set1_epi64(static_cast<long long>(kHash1Matrix)), 0);
    }
    return _mm512_xor_si512(_mm512_multishift_epi64_epi8(w0, a), mb);
  }
};

// kHiOnly: x as its hi byte alone (an 8-bit x of step 256 xs), one vpdpbusd per
// sequence; for the benchmark's comparison only (trellis_kernels.h).
// The row's group scales in FP32 (vcvtph2ps, exact) and sum_g s_g X_g.
inline float row_scales(const uint16_t* sc, const float* xsum, int64_t ng, float* sf) {
  int64_t g = 0;
  __m512 acc = _mm512_setzero_ps();
  for (; g + 16 <= ng; g += 16) {
    const __m512 v = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc + g)));
    _mm512_storeu_ps(sf + g, v);
    acc = _mm512_fmadd_ps(v, _mm512_loadu_ps(xsum + g), acc);
  }
  float offset = _mm512_reduce_add_ps(acc);
  for (; g < ng; ++g) {
    sf[g] = fp16_to_float(sc[g]);
    offset += sf[g] * xsum[g];
  }
  return offset;
}

template <int K, int V, bool kHiOnly>
void gemv_t(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  using D = Decoder<K, V>;
  const D dec;
  const int64_t nq = w.cols / kTrellisSeqLen, ng = w.n_groups(), rb = w.row_bytes();
  const int64_t seqs_per_group = w.group / kTrellisSeqLen, flush = kTrellisFlushCols / kTrellisSeqLen;
  const int8_t* xlo = a.fixed.bytes.data();       // [cols]
  const int8_t* xhi = xlo + w.cols;               // [cols]
  const float* xsum = a.fixed.group_sums.data();  // [ng]
  std::vector<float> sf(static_cast<size_t>(ng));  // the row's scales
  const auto row = [&](int64_t r, auto full) {
    constexpr bool kFull = decltype(full)::value;
    const uint8_t* codes = w.codes.data() + r * rb;
    // value + 126 of sequence q's 64 weights.
    const auto values = [&](int64_t q) {
      return _mm512_permutexvar_epi8(dec.template indices<kFull>(codes + q * D::kSeqBytes), dec.table_u8);
    };
    __m512 facc = _mm512_setzero_ps();
    const float offset = row_scales(w.scales.data() + r * ng, xsum, ng, sf.data());  // sum_g s_g X_g
    if (seqs_per_group == 1) {
      // One sequence per group (G = 64, the common case): no chunk loop; D = 256 hi + lo of
      // the sequence alone, converted at once; two FP32 accumulators for the FMA latency.
      const auto seq_d = [&](int64_t q) {
        const __m512i v = values(q);
        const int64_t c = q * kTrellisSeqLen;
        const __m512i hi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v, _mm512_loadu_si512(xhi + c));
        if constexpr (kHiOnly) return _mm512_cvtepi32_ps(_mm512_slli_epi32(hi, 8));
        // 256 hi + lo with the lo products accumulated onto 256 hi: the same int32 lanes
        // (exact, trellis_kernels.h) without a separate add.
        return _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_slli_epi32(hi, 8), v, _mm512_loadu_si512(xlo + c)));
      };
      __m512 facc1 = _mm512_setzero_ps();
      int64_t q = 0;
      for (; q + 1 < nq; q += 2) {
        if (((q * D::kSeqBytes) & 63) < 2 * D::kSeqBytes) prefetch_stream(codes + q * D::kSeqBytes);
        facc = _mm512_fmadd_ps(seq_d(q), _mm512_set1_ps(sf[q]), facc);
        facc1 = _mm512_fmadd_ps(seq_d(q + 1), _mm512_set1_ps(sf[q + 1]), facc1);
      }
      if (q < nq) facc = _mm512_fmadd_ps(seq_d(q), _mm512_set1_ps(sf[q]), facc);
      facc = _mm512_add_ps(facc, facc1);
    }
    // Whole groups of G = 128 .. 1024 (2 .. 16 sequences, one chunk each) with the group's
    // sequences unrolled at compile time: the chunk loop's bounds and tail cost more than the
    // decode otherwise (tcq3_g256, 64 x 2048 in cache: 3.24 -> 2.89 ns per 64 weights). The same D lanes
    // (exact int32 sums) and the same FMA order as the general loop below.
    int64_t g_begin = 0;
    const auto whole_groups = [&](auto n_seqs) {
      constexpr int kS = decltype(n_seqs)::value;
      for (int64_t g = 0; g < nq / kS; ++g) {
        __m512i lo0 = _mm512_setzero_si512(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
        for (int i = 0; i < kS; i += 2) {
          const int64_t q = g * kS + i, c = q * kTrellisSeqLen;
          if (((q * D::kSeqBytes) & 63) < 2 * D::kSeqBytes) prefetch_stream(codes + q * D::kSeqBytes);
          const __m512i v0 = values(q);
          const __m512i v1 = values(q + 1);
          if constexpr (!kHiOnly) lo0 = _mm512_dpbusd_epi32(lo0, v0, _mm512_loadu_si512(xlo + c));
          hi0 = _mm512_dpbusd_epi32(hi0, v0, _mm512_loadu_si512(xhi + c));
          if constexpr (!kHiOnly) lo1 = _mm512_dpbusd_epi32(lo1, v1, _mm512_loadu_si512(xlo + c + 64));
          hi1 = _mm512_dpbusd_epi32(hi1, v1, _mm512_loadu_si512(xhi + c + 64));
        }
        const __m512i d = _mm512_add_epi32(_mm512_slli_epi32(_mm512_add_epi32(hi0, hi1), 8), _mm512_add_epi32(lo0, lo1));
        facc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_set1_ps(sf[g]), facc);
      }
      g_begin = nq / kS;
    };
    switch (seqs_per_group) {
      case 2: whole_groups(std::integral_constant<int, 2>{}); break;
      case 4: whole_groups(std::integral_constant<int, 4>{}); break;
      case 8: whole_groups(std::integral_constant<int, 8>{}); break;
      case 16: whole_groups(std::integral_constant<int, 16>{}); break;
      default: break;
    }
    for (int64_t g = g_begin; g < ng && seqs_per_group > 1; ++g) {
      const __m512 vs = _mm512_set1_ps(sf[g]);
      const int64_t q_end = std::min(nq, (g + 1) * seqs_per_group);
      for (int64_t q0 = g * seqs_per_group; q0 < q_end; q0 += flush) {
        __m512i lo0 = _mm512_setzero_si512(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
        const int64_t q1 = std::min(q_end, q0 + flush);
        int64_t q = q0;
        for (; q + 1 < q1; q += 2) {  // two sequences: independent accumulator chains
          // About one prefetch per 64-byte line of the code stream (stream_prefetch.h).
          if (((q * D::kSeqBytes) & 63) < 2 * D::kSeqBytes) prefetch_stream(codes + q * D::kSeqBytes);
          const __m512i v0 = values(q);
          const __m512i v1 = values(q + 1);
          const int64_t c = q * kTrellisSeqLen;
          if constexpr (!kHiOnly) lo0 = _mm512_dpbusd_epi32(lo0, v0, _mm512_loadu_si512(xlo + c));
          hi0 = _mm512_dpbusd_epi32(hi0, v0, _mm512_loadu_si512(xhi + c));
          if constexpr (!kHiOnly) lo1 = _mm512_dpbusd_epi32(lo1, v1, _mm512_loadu_si512(xlo + c + 64));
          hi1 = _mm512_dpbusd_epi32(hi1, v1, _mm512_loadu_si512(xhi + c + 64));
        }
        if (q < q1) {
          const __m512i v0 = values(q);
          const int64_t c = q * kTrellisSeqLen;
          if constexpr (!kHiOnly) lo0 = _mm512_dpbusd_epi32(lo0, v0, _mm512_loadu_si512(xlo + c));
          hi0 = _mm512_dpbusd_epi32(hi0, v0, _mm512_loadu_si512(xhi + c));
        }
        // D lanes: 256 hi + lo, exact in int32 over kTrellisFlushCols columns (trellis_kernels.h).
        const __m512i d = _mm512_add_epi32(_mm512_slli_epi32(_mm512_add_epi32(hi0, hi1), 8), _mm512_add_epi32(lo0, lo1));
        facc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), vs, facc);
      }
    }
    const float sum = _mm512_reduce_add_ps(facc) - static_cast<float>(kTrellisValueMax) * offset;
    y[r - r0] = sum * a.fixed.scale * w.tensor_scale;
  };
  // Rows whose sequences can all be read as 64 bytes inside the codes (all but the last one
  // or few) take plain loads: 3-5% faster than the masked load (64 x 2048 .. 5632 x 2048).
  const int64_t total = static_cast<int64_t>(w.codes.size());
  for (int64_t r = r0; r < r1; ++r) {
    if ((r + 1) * rb - D::kSeqBytes + 64 <= total) {
      row(r, std::true_type{});
    } else {
      row(r, std::false_type{});
    }
  }
}

// Rows in FP32: the signed table looked up, widened 16 bytes at a time, then
// value * scale * tensor_scale in packed_value's order (bit-identical).
template <int K, int V>
void dequantize_t(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  using D = Decoder<K, V>;
  const D dec;
  const int64_t nq = w.cols / kTrellisSeqLen, ng = w.n_groups(), rb = w.row_bytes();
  const __m512 ts = _mm512_set1_ps(w.tensor_scale);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    float* o = out + (r - r0) * w.cols;
    for (int64_t q = 0; q < nq; ++q) {
      const __m512i v = _mm512_permutexvar_epi8(dec.indices(codes + q * D::kSeqBytes), dec.table_s8);
      const __m512 s = _mm512_set1_ps(fp16_to_float(w.scales[r * ng + q * kTrellisSeqLen / w.group]));
      const auto store = [&](int b, __m128i v16) {
        const __m512 vf = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v16));
        _mm512_storeu_ps(o + q * kTrellisSeqLen + 16 * b, _mm512_mul_ps(_mm512_mul_ps(vf, s), ts));
      };
      store(0, _mm512_castsi512_si128(v));
      store(1, _mm512_extracti32x4_epi32(v, 1));
      store(2, _mm512_extracti32x4_epi32(v, 2));
      store(3, _mm512_extracti32x4_epi32(v, 3));
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

void trellis_gemv_avx512vbmi_hi_only(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1,
                                     float* y) {
  gemv_any<true>(w, a, r0, r1, y);
}

void prepare_trellis_fixed16_avx512(const PackedMatrix& w, PackedActivation& a) {
  Fixed16Activation& f = a.fixed;
  f.valid = false;
  const int64_t n = w.cols, ng = w.n_groups();  // n: a multiple of 64 (kTrellisSeqLen)
  float amax = 0.0f;
  if (w.kind != PackedKind::kTrellis || !fixed16_absmax_avx512(a.x.data(), n, &amax)) return;
  f.scale = amax / static_cast<float>(kFixed16Max);
  const __m512 inv = _mm512_set1_ps(amax > 0.0f ? static_cast<float>(kFixed16Max) / amax : 0.0f);
  f.bytes.assign(static_cast<size_t>(4 * n), 0);
  std::vector<int64_t> sums(static_cast<size_t>(ng), 0);
  for (int64_t c = 0; c < n; c += 16) {  // a group is a multiple of 64 columns: 16 never straddle two
    const Fixed16Lanes v = fixed16_lanes(a.x.data() + c, inv);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(f.bytes.data() + c), v.lo);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(f.bytes.data() + n + c), v.hi);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(f.bytes.data() + 2 * n + 2 * c), _mm512_cvtepi32_epi16(v.xi));
    sums[c / w.group] += _mm512_reduce_add_epi32(v.xi);
  }
  f.group_sums.assign(static_cast<size_t>(ng), 0.0f);
  for (int64_t g = 0; g < ng; ++g) f.group_sums[g] = static_cast<float>(sums[g]);
  f.valid = true;
}

PackedKernels packed_kernels_trellis_avx512vbmi() {
  PackedKernels k{gemv, dequantize_rows, Isa::kAvx512Vnni};
  k.prepare_fixed16 = prepare_trellis_fixed16_avx512;
  return k;
}

}  // namespace lowbit
