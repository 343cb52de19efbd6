// QuantizedWeight (the model file's packed form, formats/block_format.h) ->
// PackedMatrix (the runtime kernels' layout, kernels/packed_matrix.h), done once
// at load. Which stored formats have a packed kernel:
//   4-bit elements in groups of a multiple of 16 (int4, uint4 with a minimum,
//     fp4_e2m1, nf4, 4-bit codebooks) whose scales are exact in FP16 (fp16, ue4m3,
//     e4m3 scale types) or BF16 (e8m0, bf16)            -> kLut4
//   int8 per row with FP32 scales (int8_pc)               -> kInt8Row
//   fp8_e4m3 per row with FP32 scales                     -> kFp8Row
//   fp16 / bf16 storage                                   -> kFp16 / kBf16
//   trellis codes (tcq2_g64, ..., formats/trellis_code.h) -> kTrellis
//   PTQ1.61 (ptq161_s<P>_b<B>, formats/ptq161_code.h)     -> kPtq161
// VQ codes (vq2x8_g256, ..., formats/vq_code.h) have no packed kernel by design (a
// comparison format). Weights with EasyQuant outliers or LoRC factors, other element widths (FP6,
// ...), other scale layouts and the GGUF block types (formats/gguf_blocks.h) have
// none yet: the runtime keeps their dequantized FP32 copy (QuantizedLinear).
#pragma once

#include <string>

#include "core/status.h"
#include "kernels/packed_matrix.h"
#include "quant/quantized_weight.h"

namespace lowbit {

// Empty when a packed kernel exists for q, else why not (for --verbose).
std::string packed_unsupported_reason(const QuantizedWeight& q);

// The packed layout of q; an error when packed_unsupported_reason(q) is not empty
// or the stored arrays do not match the shape.
Expected<PackedMatrix> pack_quantized_weight(const QuantizedWeight& q);

}  // namespace lowbit
