// The portable half of the AMX GEMMs (amx_gemm.h): the activation layout and
// the support check. The tile code is in w8a8_amx.cpp and w4a8_amx.cpp.
#include "kernels/amx_gemm.h"

#include <algorithm>
#include <cstring>

#include "kernels/w4a8.h"

namespace lowbit {

namespace {

// Row t of x (the 64-byte pieces of token t in its tiles) <- n bytes of q, zeros after.
template <class Fill>
void write_row(AmxActivations& x, int64_t t, Fill fill) {
  int8_t* block = x.q.get() + (t - t % 16) * x.k_padded + (t % 16) * 64;  // [k_padded / 64] pieces, 1 KiB apart
  for (int64_t k = 0; k < x.k_padded; k += 64) fill(k, block + (k / 64) * 1024);
}

}  // namespace

void reserve_amx_activations(int64_t tokens, int64_t cols_padded, AmxActivations& x) {
  x.tokens = tokens;
  x.tokens_padded = (tokens + kAmxTokenBlock - 1) / kAmxTokenBlock * kAmxTokenBlock;
  x.k_padded = (cols_padded + kAmxK - 1) / kAmxK * kAmxK;
  x.q = std::make_unique_for_overwrite<int8_t[]>(static_cast<size_t>(x.tokens_padded * x.k_padded));
  for (int64_t t = tokens; t < x.tokens_padded; ++t) {
    write_row(x, t, [](int64_t, int8_t* piece) { std::fill(piece, piece + 64, int8_t{0}); });
  }
  x.scale.assign(static_cast<size_t>(tokens), 0.0f);
}

void amx_activation_rows(const Int8Activations& a, int64_t t0, int64_t t1, AmxActivations& x) {
  for (int64_t t = t0; t < t1; ++t) {
    const uint8_t* u = a.u8.data() + t * a.cols_padded;
    write_row(x, t, [&](int64_t k, int8_t* piece) {
      // cols_padded is a multiple of 32: a piece is all columns, half, or padding.
      const int64_t words = std::clamp<int64_t>(a.cols_padded - k, 0, 64) / 8;
      for (int64_t i = 0; i < 8; ++i) {
        // u = q + 128 in [1, 255]: flipping each byte's top bit gives q as a signed byte.
        uint64_t v = 0;
        if (i < words) {
          std::memcpy(&v, u + k + 8 * i, 8);
          v ^= 0x8080808080808080ull;
        }
        std::memcpy(piece + 8 * i, &v, 8);
      }
    });
    x.scale[t] = a.scale[t];
  }
}

void prepare_amx_activations(const Int8Activations& a, AmxActivations& x) {
  reserve_amx_activations(a.tokens, a.cols_padded, x);
  amx_activation_rows(a, 0, a.tokens, x);
}

bool w4a8_amx_supported(const PackedMatrix& w) { return w4a8_supported(w, nullptr) && w.group % 32 == 0; }

}  // namespace lowbit
