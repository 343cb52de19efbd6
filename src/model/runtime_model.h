// The model `lowbit generate|ppl|bench MODEL` runs, built from an opened source.
//
// A source that hands out its stored tensors (a lowbit model file,
// ModelSource::stored_tensor) is read one tensor at a time, and each tensor's
// mapped bytes are dropped as soon as it is read, so loading peaks at the runtime
// model plus one stored tensor and its packed form:
//   quantized linear with a packed kernel -> PackedLinear packed from the stored
//                                           codes and scales (model/packed_convert.h);
//                                           no FP32 copy is made
//   quantized linear without one          -> QuantizedLinear (its FP32 copy is what
//                                           the FP32 kernels run)
//   token embedding with a packed layout  -> packed TokenEmbedding (rows decoded per
//                                           lookup); an FP32-stored table exact in
//                                           FP16 is packed as FP16 (lossless)
//   tied lm_head                          -> PackedLinear over the embedding's packed
//                                           matrix (shared, not copied), else a
//                                           DenseLinear copy of the FP32 table
//   FP32-stored linears, untied head      -> DenseLinear (a head exact in FP16: FP16)
// Every piece is checked as ModelSource checks it: shapes, and finite values
// (FP32 values; scales and FP16/BF16/FP8 codes of packed matrices).
//
// Any other source: every piece read in FP32 (read_weights), LlamaModel::create,
// then attach_quantized_linears for what the file stores quantized.
// options.packed = false keeps quantized linears as QuantizedLinear and the
// embedding in FP32 (the reference runtime).
#pragma once

#include "core/status.h"
#include "model/llama_model.h"
#include "model/model_source.h"
#include "model/quantized_linear.h"

namespace lowbit {

Expected<LlamaModel> build_runtime_model(const ModelSource& source, const AttachOptions& options = {},
                                         AttachReport* report = nullptr);

}  // namespace lowbit
