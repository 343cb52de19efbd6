// Codes the keys or the values of one layer in units of T token rows (T = 1 per
// token, T = B tokens per channel under KIVI). A unit of rows x: [T, width]
// (width = n_kv_heads * head_dim) is stored as
//   fp16    (the fp16 spec) the T = 1 row as IEEE halves, round to nearest even
//   dense   codes of all T*width elements in group order, one LSB-first bit
//           stream (block_format.h's packing), then one scale code per group,
//           then (integer and NUQ) one zero-point code per group; scale codes are
//           FP16 for codes of up to 8 bits and FP32 above (scale_type.h)
//   sparse  per row, `sparse_count` entries {u16 column, f32 value}: the row's
//           largest |x| kept exactly (dense-and-sparse, KVQuant section 3.5)
// Groups: per token, G consecutive elements of a row (G divides head_dim, so a
// group never spans two heads); per channel, one column over the T rows.
//
// The maps between x and the element value y of a group (m, M: the group's
// minimum and maximum over the elements not in the sparse list; s, z rounded to
// the scale type before use, so decoding needs nothing else):
//   integer uintN  s = (M - m) / (2^N - 1), z = m;   y = (x - z) / s in [0, 2^N - 1]
//   NUQ codebook   s = (M - m) / 2, z = (M + m) / 2; y = (x - z) / s in [-1, 1]
//   FP8 / FP4      s = max|x| / vmax, no z;         y = x / s in [-vmax, vmax]
// y is clamped to the element's range and coded with round-to-nearest-even
// (nearest level for NUQ) by the element format's codec; x' = y' s + z. A group of
// equal values (s = 0) decodes to z exactly (as far as the scale type holds it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/element_format.h"
#include "formats/element_kernel.h"
#include "formats/scale_type.h"
#include "kvcache/kv_spec.h"

namespace lowbit {

// Reusable work buffers of encode/decode.
struct KvCodecScratch {
  std::vector<float> grouped;   // [T * width] in group order
  std::vector<uint8_t> masked;  // [T * width] 1 where the element is in the sparse list
  std::vector<float> y;         // [T * width] element values
  std::vector<uint16_t> codes;  // [T * width]
  std::vector<float> scale;     // [groups]
  std::vector<float> zero;      // [groups]
  std::vector<int> order;       // [width] sparse selection
};

class KvTensorCodec {
 public:
  // width = kv_dim; sparse_count outliers per row (0 for FP32 storage); codebook:
  // the 2^bits NUQ levels (kCodebook only). `what` names the tensor in errors.
  static Expected<KvTensorCodec> create(const KvTensorSpec& spec, int width, int head_dim, int sparse_count,
                                        const std::vector<float>& codebook, const std::string& what);

  const KvTensorSpec& spec() const { return spec_; }
  int width() const { return width_; }
  int tokens_per_unit() const { return tokens_per_unit_; }
  int group_size() const { return group_; }  // elements per scale group
  int sparse_count() const { return sparse_count_; }
  int64_t unit_bytes() const { return unit_bytes_; }
  int64_t sparse_row_bytes() const { return 6 * static_cast<int64_t>(sparse_count_); }
  // The unit's layout, for readers of the codes in place (kv_fused_attention.h).
  int groups_per_unit() const { return n_groups_; }
  int64_t code_bytes() const { return code_bytes_; }
  ScaleType scale_type() const { return scale_type_; }
  bool asymmetric() const { return asymmetric_; }
  // Final storage per token: unit_bytes / T + sparse_row_bytes.
  double bytes_per_token() const;

  // x: [n_units * T, width] -> dense: [n_units][unit_bytes], sparse: [n_units * T][sparse_row_bytes].
  void encode(const float* x, int64_t n_units, uint8_t* dense, uint8_t* sparse, KvCodecScratch& s) const;
  // The inverse: out: [n_units * T, width].
  void decode(const uint8_t* dense, const uint8_t* sparse, int64_t n_units, float* out, KvCodecScratch& s) const;
  // Appends to y the element-domain values (before rounding) of the elements of
  // one unit x: [T, width] not in the sparse list: what a NUQ codebook is fitted on.
  void normalized(const float* x, std::vector<float>& y, KvCodecScratch& s) const;

 private:
  // Sparse selection (entries written to `sparse` when not null), grouping,
  // scales (rounded to the scale type) and clamped y of one unit.
  void prepare_unit(const float* x, uint8_t* sparse, KvCodecScratch& s) const;

  KvTensorSpec spec_;
  int width_ = 0;
  int tokens_per_unit_ = 1;
  int group_ = 0;
  int n_groups_ = 0;  // per unit
  int sparse_count_ = 0;
  int64_t code_bytes_ = 0;
  int64_t unit_bytes_ = 0;
  ScaleType scale_type_ = ScaleType::kFp16;
  bool asymmetric_ = true;
  float lo_ = 0.0f, hi_ = 0.0f;  // element range
  std::optional<ElementKernel> kernel_;  // empty for FP32 storage
};

}  // namespace lowbit
