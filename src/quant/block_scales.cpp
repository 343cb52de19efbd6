// BlockScales (block_scales.h): scales chosen by the formats layer, values
// quantized against them here with the same arithmetic.
#include "quant/block_scales.h"

#include <algorithm>
#include <cmath>

#include "formats/block_kernels.h"

namespace lowbit {
BlockScales::BlockScales(const BlockFormat& format, ElementKernel kernel, BlockKernel block_kernel, int64_t rows,
                         int64_t cols)
    : format_(&format), kernel_(std::move(kernel)), block_kernel_(std::move(block_kernel)), rows_(rows), cols_(cols) {}

Expected<BlockScales> BlockScales::create(const BlockFormat& format, int64_t rows, int64_t cols) {
  if (rows < 1 || cols < 1) return make_error("{}: cannot hold the scales of a [{}, {}] matrix", format.name(), rows, cols);
  const BlockLayout& l = format.layout;
  if (l.tensor_scale && (l.granularity == ScaleGranularity::kBlock2D || l.granularity == ScaleGranularity::kTensor)) {
    return make_error("{}: a tensor scale with {} granularity is not supported for fixed-scale quantization",
                      format.name(), granularity_name(l.granularity));
  }
  auto element = ElementKernel::create(format.element);
  if (!element.ok()) return element.status().with_context(format.name());
  auto block = BlockKernel::create(format);
  if (!block.ok()) return block.status();
  BlockScales s(format, std::move(element).value(), std::move(block).value(), rows, cols);
  switch (l.granularity) {
    case ScaleGranularity::kNone:
    case ScaleGranularity::kTensor:
      s.group_ = cols;
      s.block_rows_ = rows;
      break;
    case ScaleGranularity::kRow:
      s.group_ = cols;
      s.grid_rows_ = rows;
      break;
    case ScaleGranularity::kGroup:
      s.group_ = l.group_cols;
      s.grid_rows_ = rows;
      s.grid_cols_ = ceil_div(cols, l.group_cols);
      break;
    case ScaleGranularity::kBlock2D:
      s.group_ = l.group_cols;
      s.block_rows_ = l.group_rows;
      s.grid_rows_ = ceil_div(rows, l.group_rows);
      s.grid_cols_ = ceil_div(cols, l.group_cols);
      break;
  }
  const size_t blocks = static_cast<size_t>(s.num_blocks());
  s.scale_code_.assign(blocks, 0);
  s.min_code_.assign(blocks, 0);
  s.scale_.assign(blocks, 0.0f);
  s.offset_.assign(blocks, 0.0f);
  s.chosen_.assign(blocks, 0);
  if (l.granularity == ScaleGranularity::kNone) {  // a fixed scale 2^unit, nothing stored
    s.scale_[0] = std::ldexp(1.0f, format.spec.element_unit_log2);
    s.chosen_[0] = 1;
  }
  const size_t n = static_cast<size_t>(std::max(rows, cols));
  s.s_.resize(n);
  s.o_.resize(n);
  s.y_.resize(n);
  s.c_.resize(n);
  return s;
}

Status BlockScales::choose(const float* x, int64_t c0, int64_t n, const QuantizeOptions& options) {
  const BlockLayout& l = format_->layout;
  if (l.granularity == ScaleGranularity::kNone) return Status::ok_status();
  if (n < 1 || c0 < 0 || c0 + n > cols_ || c0 % group_ != 0 || (c0 + n != cols_ && n % group_ != 0)) {
    return make_error("{}: columns [{}, {}) of {} are not whole scale groups of {}", format_->name(), c0, c0 + n,
                      cols_, group_);
  }
  QuantizedTensor q;
  int64_t slice_rows = rows_;
  if (l.tensor_scale) {
    if (!tensor_amax_) return make_error("{}: the tensor |max| must be set before choosing scales", format_->name());
    const float amax = *tensor_amax_;
    std::vector<float> buf(static_cast<size_t>((rows_ + 1) * n), 0.0f);  // [rows + 1, n]
    for (int64_t i = 0; i < rows_ * n; ++i) buf[i] = std::clamp(x[i], -amax, amax);
    buf[rows_ * n] = amax;
    slice_rows = rows_ + 1;
    LB_ASSIGN_OR_RETURN(q, block_kernel_.quantize(buf.data(), slice_rows, n, options));
    tensor_scale_ = q.tensor_scale;
  } else {
    LB_ASSIGN_OR_RETURN(q, block_kernel_.quantize(x, rows_, n, options));
  }
  const ScaleType t = format_->spec.scale_type;
  const float unit = std::ldexp(1.0f, format_->spec.element_unit_log2);
  const int64_t slice_cols = scale_cols(l, n);
  for (int64_t br = 0; br < grid_rows_; ++br) {
    for (int64_t bc = 0; bc < slice_cols; ++bc) {
      const int64_t i = br * slice_cols + bc;
      const int64_t b = br * grid_cols_ + c0 / group_ + bc;
      scale_code_[b] = read_scale_code(q.scales.data() + i * l.scale_bytes, l.scale_bytes);
      float s = decode_scale(t, scale_code_[b]);
      if (l.tensor_scale) s *= tensor_scale_;
      scale_[b] = s * unit;
      if (l.asymmetric) {
        min_code_[b] = read_scale_code(q.mins.data() + i * l.scale_bytes, l.scale_bytes);
        offset_[b] = decode_scale(t, min_code_[b]);
      }
      chosen_[b] = 1;
    }
  }
  return Status::ok_status();
}

void BlockScales::copy_block(const BlockScales& other, int64_t b) {
  scale_code_[b] = other.scale_code_[b];
  min_code_[b] = other.min_code_[b];
  scale_[b] = other.scale_[b];
  offset_[b] = other.offset_[b];
  chosen_[b] = other.chosen_[b];
  tensor_scale_ = other.tensor_scale_;
}

// y = clamp(x / s) or clamp((x - m) / s) with s_, o_ per value, the element
// step, then q = v * s (+ m): the formats layer's scalar kernels, value by value.
void BlockScales::encode_decode(const float* x, int64_t n, uint16_t* codes, float* q) {
  const bool asym = format_->spec.asymmetric;
  const float lo = format_->code_lo, hi = format_->code_hi;
  for (int64_t i = 0; i < n; ++i) {
    const float s = s_[i];
    float y = 0.0f;
    if (s != 0.0f) y = asym ? (x[i] - o_[i]) / s : x[i] / s;
    y_[i] = s == 0.0f ? 0.0f : (y < lo ? lo : (y > hi ? hi : y));
  }
  kernel_.encode(y_.data(), c_.data(), static_cast<size_t>(n));
  kernel_.decode(c_.data(), y_.data(), static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float scaled = y_[i] * s_[i];  // its own statement: never an FMA
    q[i] = asym ? scaled + o_[i] : scaled;
  }
  if (codes != nullptr) std::copy(c_.begin(), c_.begin() + n, codes);
}

void BlockScales::quantize_column(int64_t c, const float* x, uint16_t* codes, float* q) {
  for (int64_t r = 0; r < rows_; ++r) {
    const int64_t b = block_of(r, c);
    s_[r] = scale_[b];
    o_[r] = offset_[b];
  }
  encode_decode(x, rows_, codes, q);
}

void BlockScales::quantize_row(int64_t r, int64_t c0, int64_t n, const float* x, uint16_t* codes, float* q) {
  for (int64_t i = 0; i < n;) {  // one run per scale group
    const int64_t b = block_of(r, c0 + i);
    const int64_t end = std::min(n, (c0 + i) / group_ * group_ + group_ - c0);
    std::fill(s_.begin() + i, s_.begin() + end, scale_[b]);
    std::fill(o_.begin() + i, o_.begin() + end, offset_[b]);
    i = end;
  }
  encode_decode(x, n, codes, q);
}

Expected<QuantizedTensor> BlockScales::pack(const uint16_t* codes) const {
  const BlockLayout& l = format_->layout;
  for (int64_t b = 0; b < num_blocks(); ++b) {
    if (!chosen_[b]) return make_error("{}: scale block {} was never chosen", format_->name(), b);
  }
  QuantizedTensor q;
  q.rows = rows_;
  q.cols = cols_;
  const int64_t row_bytes = row_code_bytes(l.code_bits, cols_);
  q.codes.assign(static_cast<size_t>(rows_ * row_bytes), 0);
  const ScaleKernels& packer = scalar_scale_kernels();  // block_format.h's code stream
  for (int64_t r = 0; r < rows_; ++r) packer.pack(codes + r * cols_, cols_, l.code_bits, q.codes.data() + r * row_bytes);
  const int64_t stored = scale_count(l, rows_, cols_);  // 0 for kNone
  q.scales.assign(static_cast<size_t>(stored * l.scale_bytes), 0);
  if (l.asymmetric) q.mins.assign(q.scales.size(), 0);
  for (int64_t b = 0; b < stored; ++b) {
    write_scale_code(q.scales.data() + b * l.scale_bytes, scale_code_[b], l.scale_bytes);
    if (l.asymmetric) write_scale_code(q.mins.data() + b * l.scale_bytes, min_code_[b], l.scale_bytes);
  }
  q.tensor_scale = l.tensor_scale ? tensor_scale_ : 1.0f;
  return q;
}

}  // namespace lowbit
