// [out, in] of the seven linear layers of a decoder block, in
// DecoderBlock::kLinearSuffixes order (q, k, v, o, gate, up, down): the one place
// the shapes are spelled out for code that builds blocks from parts.
#pragma once

#include <array>
#include <cstdint>

#include "model/config.h"

namespace lowbit {

struct LinearShape {
  int64_t rows = 0;  // output features
  int64_t cols = 0;  // input features
};

inline std::array<LinearShape, 7> block_linear_shapes(const ModelConfig& c) {
  return {{{c.q_dim(), c.dim},
           {c.kv_dim(), c.dim},
           {c.kv_dim(), c.dim},
           {c.dim, c.q_dim()},
           {c.ffn_dim, c.dim},
           {c.ffn_dim, c.dim},
           {c.dim, c.ffn_dim}}};
}

}  // namespace lowbit
