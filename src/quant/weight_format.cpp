// WeightFormat (weight_format.h): the one place that tells scaled formats, GGUF
// block types, trellis codes, VQ codes and PTQ1.61 apart, and the ColumnScales GPTQ drives.
#include "quant/weight_format.h"

#include <algorithm>
#include <vector>

#include "quant/block_scales.h"
#include "quant/ptq161.h"
#include "quant/trellis_quantize.h"
#include "quant/vq_quantize.h"

namespace lowbit {
namespace {

// BlockScales with the element codes kept until pack().
class BlockColumnScales final : public ColumnScales {
 public:
  BlockColumnScales(BlockScales scales, int64_t rows, int64_t cols, ScaleSearch search)
      : scales_(std::move(scales)),
        rows_(rows),
        cols_(cols),
        search_(search),
        codes_(static_cast<size_t>(rows * cols)),
        column_codes_(static_cast<size_t>(rows)) {}

  int64_t group_cols() const override { return scales_.group_cols(); }

  Status choose(const float* x, int64_t c0, int64_t n, std::span<const float> importance) override {
    QuantizeOptions o;
    o.search = search_;
    o.importance = importance;
    return scales_.choose(x, c0, n, o);
  }

  void quantize_column(int64_t c, const float* x, float* q) override {
    scales_.quantize_column(c, x, column_codes_.data(), q);
    for (int64_t r = 0; r < rows_; ++r) codes_[r * cols_ + c] = column_codes_[r];
  }

  Expected<QuantizedTensor> pack() const override { return scales_.pack(codes_.data()); }

 private:
  BlockScales scales_;
  int64_t rows_, cols_;
  ScaleSearch search_;
  std::vector<uint16_t> codes_;         // [rows, cols]
  std::vector<uint16_t> column_codes_;  // [rows]
};

// GgufBlockScales, whose choose() takes one block at a time.
class GgufColumnScales final : public ColumnScales {
 public:
  GgufColumnScales(GgufBlockScales scales, int64_t rows) : scales_(std::move(scales)), rows_(rows) {}

  int64_t group_cols() const override { return scales_.group_cols(); }

  Status choose(const float* x, int64_t c0, int64_t n, std::span<const float> importance) override {
    const int64_t g = scales_.group_cols();
    if (n < 1 || c0 % g != 0 || n % g != 0 || (!importance.empty() && static_cast<int64_t>(importance.size()) != n)) {
      return make_error("{}: columns [{}, {}) are not whole blocks of {} (importance: {} values)", scales_.type().name, c0,
                        c0 + n, g, importance.size());
    }
    for (int64_t b = 0; b < n; b += g) {
      const float* block = x;
      if (n != g) {  // [rows, g] out of [rows, n]
        slice_.resize(static_cast<size_t>(rows_ * g));
        for (int64_t r = 0; r < rows_; ++r) std::copy_n(x + r * n + b, g, slice_.data() + r * g);
        block = slice_.data();
      }
      const std::span<const float> w = importance.empty() ? importance : importance.subspan(b, g);
      LB_RETURN_IF_ERROR(scales_.choose(block, c0 + b, g, w));
    }
    return Status::ok_status();
  }

  void quantize_column(int64_t c, const float* x, float* q) override { scales_.quantize_column(c, x, q); }

  Expected<QuantizedTensor> pack() const override { return scales_.pack(); }

 private:
  GgufBlockScales scales_;
  int64_t rows_;
  std::vector<float> slice_;  // [rows, block]
};

}  // namespace

Expected<WeightFormat> WeightFormat::find(std::string_view name) {
  if (is_ptq161_format_name(name)) {
    LB_ASSIGN_OR_RETURN(Ptq161Params p, parse_ptq161_format(name));
    return WeightFormat(p);
  }
  if (const GgufBlockType* t = find_gguf_block_type(name)) return WeightFormat(*t);
  if (is_trellis_format_name(name)) {
    LB_ASSIGN_OR_RETURN(TrellisParams p, parse_trellis_format(name));
    return WeightFormat(p);
  }
  if (is_vq_format_name(name)) {
    LB_ASSIGN_OR_RETURN(VqParams p, parse_vq_format(name));
    return WeightFormat(p);
  }
  auto f = find_block_format(std::string(name));
  if (f.ok()) return WeightFormat(**f);
  std::string gguf;
  for (const GgufBlockType& t : gguf_block_types()) gguf += (gguf.empty() ? "" : ", ") + std::string(t.name);
  return make_error(
      "{}; GGUF block types: {}; trellis codes: tcq2_gG, tcq2p5_gG, tcq3_gG, tcq4_gG (G a multiple of 64); "
      "VQ codes: vq1x8_gG, vq2x8_gG, vq3x8_gG (G a multiple of 8); PTQ1.61: ptq161_s<P>_b<B> (P salient channels per mille, B columns per binary block)",
      f.status().message(), gguf);
}

std::string WeightFormat::name() const {
  if (block_ != nullptr) return block_->name();
  if (gguf_ != nullptr) return std::string(gguf_->name);
  if (is_ptq161_) return ptq161_format_name(ptq161_);
  if (is_vq_) return vq_format_name(vq_);
  return trellis_format_name(trellis_);
}

int64_t WeightFormat::col_multiple() const {
  if (gguf_ != nullptr) return gguf_->block_size;
  if (is_vq_) return kVqDim;
  return is_trellis_ ? kTrellisSeqLen : 1;
}

Status WeightFormat::check_shape(int64_t rows, int64_t cols) const {
  if (is_ptq161_) return ptq161_check_shape(ptq161_, rows, cols);
  if (rows < 1 || cols < 1) return make_error("{}: cannot store a [{}, {}] matrix", name(), rows, cols);
  if (cols % col_multiple() != 0) {
    return make_error("{}: a [{}, {}] matrix does not fit: rows must be whole blocks of {} values ({} % {} = {})",
                      name(), rows, cols, col_multiple(), cols, col_multiple(), cols % col_multiple());
  }
  return Status::ok_status();
}

Expected<QuantizedTensor> WeightFormat::quantize(const float* x, int64_t rows, int64_t cols,
                                                 const QuantizeOptions& options, ThreadPool* pool) const {
  if (block_ != nullptr) return lowbit::quantize(*block_, x, rows, cols, options);
  if (is_ptq161_) {
    if (options.rounding != Rounding::kNearestEven) return make_error("{}: rounds to nearest only", name());
    return ptq161_quantize(ptq161_, x, rows, cols, options.importance);
  }
  LB_RETURN_IF_ERROR(check_shape(rows, cols));
  if (options.rounding != Rounding::kNearestEven) {
    return make_error("{}: {} round to nearest only", name(),
                      is_trellis_ ? "trellis codes" : is_vq_ ? "VQ codes" : "GGUF block types");
  }
  if (is_trellis_) return trellis_quantize(trellis_, x, rows, cols, options.importance, pool);
  if (is_vq_) return vq_quantize(vq_, x, rows, cols, options.importance, pool);
  if (!options.importance.empty() && static_cast<int64_t>(options.importance.size()) != cols) {
    return make_error("{}: importance has {} values for {} columns", gguf_->name, options.importance.size(), cols);
  }
  return gguf_quantize(*gguf_, x, rows, cols, options.importance);
}

Status WeightFormat::dequantize(const QuantizedTensor& t, float* out) const {
  if (block_ != nullptr) return lowbit::dequantize(*block_, t, out);
  if (is_ptq161_) return ptq161_dequantize(ptq161_, t, out);
  if (is_trellis_) return trellis_dequantize(trellis_, t, out);
  if (is_vq_) return vq_dequantize(vq_, t, out);
  LB_RETURN_IF_ERROR(check_shape(t.rows, t.cols));
  LB_ASSIGN_OR_RETURN(ArraySizes sizes, array_sizes(t.rows, t.cols));
  if (t.codes.size() != sizes.codes || !t.scales.empty() || !t.mins.empty()) {
    return make_error("{}: stored sizes (codes {}, scales {}, mins {}) do not match [{}, {}] ({} bytes)", gguf_->name,
                      t.codes.size(), t.scales.size(), t.mins.size(), t.rows, t.cols, sizes.codes);
  }
  return gguf_dequantize(*gguf_, t, out);
}

Expected<WeightFormat::ArraySizes> WeightFormat::array_sizes(int64_t rows, int64_t cols) const {
  if (rows < 0 || cols < 0) return make_error("{}: negative shape [{}, {}]", name(), rows, cols);
  if (is_ptq161_) {
    LB_RETURN_IF_ERROR(check_shape(rows, cols));
    const Ptq161Sizes s = ptq161_sizes(ptq161_, rows, cols);
    return ArraySizes{s.codes, s.scales, 0};
  }
  if (is_trellis_) {
    return ArraySizes{static_cast<uint64_t>(rows * trellis_row_bytes(trellis_, cols)),
                      static_cast<uint64_t>(rows * trellis_row_groups(trellis_, cols) * 2), 0};
  }
  if (is_vq_) {  // the codebooks in `mins` (formats/vq_code.h)
    return ArraySizes{static_cast<uint64_t>(rows * vq_row_bytes(vq_, cols)),
                      static_cast<uint64_t>(rows * vq_row_groups(vq_, cols) * 2),
                      static_cast<uint64_t>(vq_.codebook_bytes())};
  }
  if (gguf_ != nullptr) {
    LB_ASSIGN_OR_RETURN(uint64_t bytes, gguf_matrix_bytes(*gguf_, rows, cols));
    return ArraySizes{bytes, 0, 0};
  }
  const BlockLayout& l = block_->layout;
  const uint64_t scales = static_cast<uint64_t>(scale_count(l, rows, cols)) * l.scale_bytes;
  return ArraySizes{static_cast<uint64_t>(rows * row_code_bytes(l.code_bits, cols)), scales, l.asymmetric ? scales : 0};
}

Expected<uint64_t> WeightFormat::stored_bytes(int64_t rows, int64_t cols) const {
  LB_ASSIGN_OR_RETURN(ArraySizes s, array_sizes(rows, cols));
  const bool tensor_scale = block_ != nullptr && block_->layout.tensor_scale;
  return s.codes + s.scales + s.mins + (tensor_scale ? 4u : 0u);
}

Expected<double> WeightFormat::bits_per_element(int64_t rows, int64_t cols) const {
  LB_RETURN_IF_ERROR(check_shape(rows, cols));
  LB_ASSIGN_OR_RETURN(uint64_t bytes, stored_bytes(rows, cols));
  return 8.0 * static_cast<double>(bytes) / (static_cast<double>(rows) * static_cast<double>(cols));
}

Expected<std::unique_ptr<ColumnScales>> WeightFormat::column_scales(int64_t rows, int64_t cols,
                                                                    const ColumnScalesOptions& options) const {
  if (block_ != nullptr) {
    LB_ASSIGN_OR_RETURN(BlockScales s, BlockScales::create(*block_, rows, cols));
    s.set_tensor_amax(options.tensor_amax);
    return std::unique_ptr<ColumnScales>(std::make_unique<BlockColumnScales>(std::move(s), rows, cols, options.search));
  }
  if (is_ptq161_) return make_error("{}: no per-column scales (GPTQ does not apply; use rtn with importance)", name());
  LB_RETURN_IF_ERROR(check_shape(rows, cols));
  if (is_trellis_) return trellis_column_scales(trellis_, rows, cols, options.pool);
  if (is_vq_) return vq_column_scales(vq_, options.weights, rows, cols, options.importance, options.pool);
  LB_ASSIGN_OR_RETURN(GgufBlockScales s, GgufBlockScales::create(*gguf_, rows, cols));
  return std::unique_ptr<ColumnScales>(std::make_unique<GgufColumnScales>(std::move(s), rows));
}

}  // namespace lowbit
