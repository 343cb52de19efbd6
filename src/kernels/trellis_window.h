// The 16-byte window of one 16-weight block of a trellis sequence
// (trellis_kernels.h), in SSE2 so the AVX2 and AVX-512 kernels share it and
// broadcast it to their 128-bit lanes.
#pragma once

#include <emmintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/trellis_kernels.h"

namespace lowbit {

// Block b < 3: 16 bytes from seq + b * block bytes (readable: the caller's
// buffer or the next sequence). Block 3: the string's last block bytes, then its
// first two (the wrap), read as 8 bytes from seq + 3 * block bytes and 2 from seq.
template <int K, int V>
inline __m128i trellis_window(const uint8_t* seq, int b) {
  constexpr int kB = trellis_block_bytes(K, V);
  if (b < 3) return _mm_loadu_si128(reinterpret_cast<const __m128i*>(seq + b * kB));
  uint16_t wrap;
  std::memcpy(&wrap, seq, 2);
  const __m128i tail = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(seq + 3 * kB));
  constexpr uint64_t kKeep = kB == 8 ? ~0ull : (1ull << (8 * kB)) - 1;  // the tail's kB bytes
  const __m128i low = _mm_and_si128(tail, _mm_set_epi64x(0, static_cast<int64_t>(kKeep)));
  return _mm_or_si128(low, _mm_slli_si128(_mm_cvtsi32_si128(wrap), kB));
}

}  // namespace lowbit
