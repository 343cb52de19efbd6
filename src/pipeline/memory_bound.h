// The peak resident memory of `lowbit quantize`, on paper (docs/QUANTIZATION.md,
// "Memory"). The pipeline holds one decoder layer at a time, so the peak is the
// largest of three phases plus a fixed overhead (the binary, BLAS buffers,
// allocator slack: 300 MiB):
//   tables  2·E + S            the embedding E = 4·vocab·dim in FP32 and its stored
//                              copy (at most FP32 size), while the calibration states
//                              S = 4·N·L·dim are embedded; later the head (untied or
//                              rotated: the FP32 head and its stored copy, 2·E)
//   layers  S + B + max over the moments of a layer:
//           statistics   2·4·P + Σ H                two FP32 copies of the layer (the
//                                                   weights, the block that runs them) and
//                                                   every distinct input's FP64 H = 8·in²
//           phase p      2·4·P(≥p) + 4·P(<p) + Σ_{q≥p} H_q + W(p)
//                                                   the linears of phases p.. still FP32
//                                                   twice, earlier ones stored (≤ 4 bytes per
//                                                   weight), their H, and the quantizer's
//                                                   work space W of the phase's largest linear
//           with B = the block's work buffers for one L-token sequence
//                    (4·L·(2·dim + 2·q_dim + 2·kv_dim + 2·ffn) + threads·4·L²)
//           and W = GPTQ's 8·in² (the inverse's Cholesky factor) + 24·out·in
//                   (working weights in FP64, their copy and result) + 16·128·in
//                   (the proxy error's row blocks); without calibration 8·out·in.
// Phases: q/k/v (input dim), o (q_dim), gate/up (dim), down (ffn).
#pragma once

#include <cstdint>

#include "model/config.h"

namespace lowbit {

struct MemoryBound {
  uint64_t tables = 0;    // bytes, the phase before and after the layers
  uint64_t layers = 0;    // bytes, the largest moment of one decoder layer
  uint64_t overhead = 0;  // bytes, fixed
  uint64_t total() const { return (tables > layers ? tables : layers) + overhead; }
};

// n_samples = 0: data-free (no calibration states, no H, RTN work space).
// bf16_products: --calib-arith bf16, whose statistics pass adds a window's FP32 XᵀX
// (4·in²) and its BF16 panels of X (2·seq_len·in) at the widest input.
MemoryBound quantize_memory_bound(const ModelConfig& config, int n_samples, int seq_len, int threads,
                                  bool bf16_products = false);

}  // namespace lowbit
