// Round-to-nearest (quantizers.h): the formats layer's quantize with min-max
// scales or its MSE clip search, the search optionally weighting column j by
// importance[j] (diag(H) = Σ_t x_tj², llama.cpp's imatrix): the clip ratio of
// each block then minimises Σ_j importance[j] (w_j − q_j)², the error the
// layer's output sees when input channels are uncorrelated. A GGUF block type
// runs its own search (weight_format.h), weighted the same way.
#include "quant/quantizers.h"

namespace lowbit {

Expected<QuantizedWeight> quantize_rtn(const WeightFormat& format, const float* w, int64_t rows, int64_t cols,
                                       const RtnOptions& options) {
  QuantizeOptions o;
  o.search = options.search;
  o.clip_min = options.clip_min;
  o.clip_steps = options.clip_steps;
  o.importance = options.importance;
  QuantizedWeight q;
  q.format = format.name();
  LB_ASSIGN_OR_RETURN(q.tensor, format.quantize(w, rows, cols, o, options.pool));
  return q;
}

}  // namespace lowbit
