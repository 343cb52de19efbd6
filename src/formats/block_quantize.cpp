// Quantize and dequantize of scaled formats (block_format.h): one driver for the
// reference and the fast paths. The driver's scalar decisions (scale rules, the
// clip search, packing layout) are shared; what differs between paths is the
// kernels it calls (block_kernels.h) and the element step (the codec per value,
// or ElementKernel), each bit-exact against the reference, so every path
// produces the same bytes.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

#include "core/half.h"
#include "formats/block_format.h"
#include "formats/block_kernels.h"
#include "formats/element_kernel.h"

namespace lowbit {

struct BlockKernelImpl {
  const BlockFormat* format = nullptr;
  const ScaleKernels* kernels = nullptr;
  std::optional<ElementKernel> element;  // empty: the reference codec
};

namespace {

// Counter-based uniform in [0, 1) (splitmix64 finaliser): the same value for
// element i of the matrix whatever the ISA, threading or order of work.
float uniform_at(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * 0x1.0p-24f;
}

// One block's scale: stored codes and what the kernels use.
struct ScaleChoice {
  uint32_t scale_code = 0;
  uint32_t min_code = 0;
  float scale = 0.0f;   // kernel scale: decoded scale * tensor scale * 2^unit
  float offset = 0.0f;  // asymmetric: decoded block minimum
};

// Shape of the scale grid over a rows x cols matrix.
struct Grid {
  int64_t rows = 0, cols = 0;
  int64_t grid_rows = 1, grid_cols = 1;  // scale blocks (1 x 1 for kNone: a fixed scale)
  int64_t block_rows = 1;                // rows per block row
  int64_t group = 1;                     // columns per block (the kernels' group)
};

Grid make_grid(const BlockFormat& f, int64_t rows, int64_t cols) {
  Grid g;
  g.rows = rows;
  g.cols = cols;
  const BlockLayout& l = f.layout;
  switch (l.granularity) {
    case ScaleGranularity::kNone:
    case ScaleGranularity::kTensor:
      g.block_rows = rows;
      g.group = cols;
      break;
    case ScaleGranularity::kRow:
      g.grid_rows = rows;
      g.group = cols;
      break;
    case ScaleGranularity::kGroup:
      g.grid_rows = rows;
      g.grid_cols = ceil_div(cols, l.group_cols);
      g.group = l.group_cols;
      break;
    case ScaleGranularity::kBlock2D:
      g.grid_rows = ceil_div(rows, l.group_rows);
      g.grid_cols = ceil_div(cols, l.group_cols);
      g.block_rows = l.group_rows;
      g.group = l.group_cols;
      break;
  }
  return g;
}

class Runner {
 public:
  Runner(const BlockFormat& f, const ScaleKernels& k, const ElementKernel* element)
      : f_(f), k_(k), element_(element), codec_(*f.element.codec), asym_(f.spec.asymmetric), lo_(f.code_lo),
        hi_(f.code_hi), unit_(std::ldexp(1.0f, f.spec.element_unit_log2)) {}

  Expected<QuantizedTensor> quantize(const float* x, int64_t rows, int64_t cols, const QuantizeOptions& o);
  Status dequantize(const QuantizedTensor& q, float* out);

 private:
  ScaleChoice from_codes(uint32_t scale_code, uint32_t min_code, float tensor_scale) const;
  ScaleChoice choose(float a, float b, float ratio, float tensor_scale) const;
  int pow2_exponent(float a) const;
  ScaleChoice search(const float* x, const Grid& g, int64_t br, int64_t bc, float a, float b, float tensor_scale,
                     const QuantizeOptions& o);
  double block_error(const float* x, const Grid& g, int64_t br, int64_t bc, const ScaleChoice& s,
                     std::span<const float> importance);
  void encode_codes(const float* y, int64_t n, uint16_t* codes, const QuantizeOptions* stochastic, uint64_t index0);
  void decode_codes(const uint16_t* codes, int64_t n, float* v) const;
  GroupMaps maps(const float* scale, const float* offset) const { return GroupMaps{scale, offset, lo_, hi_, asym_}; }
  Status non_finite_error(const float* x, int64_t r, int64_t cols) const;

  const BlockFormat& f_;
  const ScaleKernels& k_;
  const ElementKernel* element_;
  const ElementCodec& codec_;
  const bool asym_;
  const float lo_, hi_;  // element range the scaled values are clamped to
  const float unit_;     // 2^element_unit_log2
  // Scratch: [cols]
  std::vector<float> y_, v_;
  std::vector<uint16_t> codes_;
};

ScaleChoice Runner::from_codes(uint32_t scale_code, uint32_t min_code, float tensor_scale) const {
  ScaleChoice c;
  c.scale_code = scale_code;
  c.min_code = min_code;
  float s = decode_scale(f_.spec.scale_type, scale_code);
  if (f_.spec.tensor_scale) s *= tensor_scale;
  c.scale = s * unit_;  // exact power of two: the same rounding as ldexp
  if (asym_) c.offset = decode_scale(f_.spec.scale_type, min_code);
  return c;
}

// 2^e for e in [-149, 127], from the bits where it is a normal number.
float pow2(int e) {
  return e >= -126 ? bits_to_float(static_cast<uint32_t>(e + 127) << 23) : std::ldexp(1.0f, e);
}

// The power-of-two exponent of a block with maximum magnitude a (block_format.h).
int Runner::pow2_exponent(float a) const {
  int k_min = 0, k_max = 0;
  scale_type_pow2_range(f_.spec.scale_type, &k_min, &k_max);
  if (!(a > 0.0f)) return k_min;
  int e = std::clamp(std::ilogb(a) - std::ilogb(f_.element_max), k_min, k_max);
  // Doubling is skipped where vmax * 2^(e+1) would overflow float32: there the top clips.
  if (f_.spec.rule == ScaleRule::kPow2Up && e < k_max && std::isfinite(std::ldexp(f_.element_max, e + 1))) {
    const float r = std::ldexp(a, -e);                          // exact
    const float t = f_.element_max + 0.5f * f_.element_step;  // tie point above vmax, exact
    if (r > t || (r == t && f_.max_code_odd)) ++e;
  }
  return e;
}

// a, b: symmetric: amax and unused; asymmetric: min and max.
ScaleChoice Runner::choose(float a, float b, float ratio, float tensor_scale) const {
  const ScaleType t = f_.spec.scale_type;
  if (asym_) {  // the range [min(mn, 0), max(mx, 0)], as GPTQ does: |m| <= max - m
    const uint32_t min_code = encode_scale(t, std::min(a, 0.0f) * ratio);
    const float m = decode_scale(t, min_code);
    float d = (std::max(b, 0.0f) * ratio - m) / f_.element_max;
    if (!(d > 0.0f)) d = 0.0f;
    return from_codes(encode_scale(t, d), min_code, tensor_scale);
  }
  const float amax = a * ratio;
  if (f_.spec.rule != ScaleRule::kAbsMax) {
    return from_codes(encode_scale(t, pow2(pow2_exponent(amax))), 0, tensor_scale);
  }
  float target = amax / f_.element_max;
  if (f_.spec.tensor_scale) target = tensor_scale > 0.0f ? target / tensor_scale : 0.0f;
  return from_codes(encode_scale(t, target), 0, tensor_scale);
}

void Runner::encode_codes(const float* y, int64_t n, uint16_t* codes, const QuantizeOptions* stochastic,
                          uint64_t index0) {
  if (stochastic != nullptr && stochastic->rounding == Rounding::kStochastic) {
    for (int64_t i = 0; i < n; ++i) {
      codes[i] = static_cast<uint16_t>(codec_.encode_stochastic(y[i], uniform_at(stochastic->seed, index0 + i)));
    }
  } else if (element_ != nullptr) {
    element_->encode(y, codes, static_cast<size_t>(n));
  } else {
    for (int64_t i = 0; i < n; ++i) codes[i] = static_cast<uint16_t>(codec_.encode(y[i]));
  }
}

void Runner::decode_codes(const uint16_t* codes, int64_t n, float* v) const {
  if (element_ != nullptr) {
    element_->decode(codes, v, static_cast<size_t>(n));
  } else {
    for (int64_t i = 0; i < n; ++i) v[i] = codec_.decode(codes[i]);
  }
}

// sum over the block of w[col] (x - q)^2, in double, in a fixed order.
double Runner::block_error(const float* x, const Grid& g, int64_t br, int64_t bc, const ScaleChoice& s,
                           std::span<const float> importance) {
  const int64_t r0 = br * g.block_rows, r1 = std::min(g.rows, r0 + g.block_rows);
  const int64_t c0 = bc * g.group, len = std::min(g.group, g.cols - c0);
  const GroupMaps m = maps(&s.scale, &s.offset);
  double err = 0.0;
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * g.cols + c0;
    k_.to_element(xr, len, len, m, y_.data());
    encode_codes(y_.data(), len, codes_.data(), nullptr, 0);
    decode_codes(codes_.data(), len, v_.data());
    k_.from_element(v_.data(), len, len, m, y_.data());
    for (int64_t i = 0; i < len; ++i) {
      const double d = static_cast<double>(xr[i]) - static_cast<double>(y_[i]);
      err += (importance.empty() ? 1.0 : static_cast<double>(importance[c0 + i])) * d * d;
    }
  }
  return err;
}

ScaleChoice Runner::search(const float* x, const Grid& g, int64_t br, int64_t bc, float a, float b,
                           float tensor_scale, const QuantizeOptions& o) {
  ScaleChoice best = choose(a, b, 1.0f, tensor_scale);
  if (o.search == ScaleSearch::kMinMax) return best;
  double best_err = block_error(x, g, br, bc, best, o.importance);
  ScaleChoice last = best;
  const float step = (1.0f - o.clip_min) / static_cast<float>(o.clip_steps);
  for (int i = 1; i <= o.clip_steps; ++i) {
    const ScaleChoice c = choose(a, b, 1.0f - static_cast<float>(i) * step, tensor_scale);
    if (c.scale_code == last.scale_code && c.min_code == last.min_code) continue;  // same codes, same error
    last = c;
    const double err = block_error(x, g, br, bc, c, o.importance);
    if (err < best_err) {
      best_err = err;
      best = c;
    }
  }
  return best;
}

Status Runner::non_finite_error(const float* x, int64_t r, int64_t cols) const {
  for (int64_t c = 0; c < cols; ++c) {
    const float v = x[r * cols + c];
    if (!std::isfinite(v)) return make_error("{}: input x[{}, {}] = {} is not finite", f_.name(), r, c, v);
  }
  return make_error("{}: non-finite input in row {}", f_.name(), r);
}

Expected<QuantizedTensor> Runner::quantize(const float* x, int64_t rows, int64_t cols, const QuantizeOptions& o) {
  if (rows < 0 || cols < 0) return make_error("{}: negative shape [{}, {}]", f_.name(), rows, cols);
  if (rows * cols > 0 && x == nullptr) return make_error("{}: null input", f_.name());
  if (!o.importance.empty()) {
    if (static_cast<int64_t>(o.importance.size()) != cols) {
      return make_error("{}: importance has {} values, the matrix {} columns", f_.name(), o.importance.size(), cols);
    }
    for (size_t i = 0; i < o.importance.size(); ++i) {
      if (!(o.importance[i] >= 0.0f) || !std::isfinite(o.importance[i])) {
        return make_error("{}: importance[{}] = {} must be finite and >= 0", f_.name(), i, o.importance[i]);
      }
    }
  }
  if (o.search == ScaleSearch::kMseClip && (!(o.clip_min > 0.0f && o.clip_min <= 1.0f) || o.clip_steps < 1 ||
                                            o.clip_steps > 1000)) {
    return make_error("{}: clip search needs 0 < clip_min <= 1 and 1 <= clip_steps <= 1000 (got {}, {})", f_.name(),
                      o.clip_min, o.clip_steps);
  }
  const BlockLayout& l = f_.layout;
  const int64_t row_bytes = row_code_bytes(l.code_bits, cols);
  QuantizedTensor q;
  q.rows = rows;
  q.cols = cols;
  q.codes.assign(static_cast<size_t>(rows * row_bytes), 0);
  q.scales.assign(static_cast<size_t>(scale_count(l, rows, cols) * l.scale_bytes), 0);
  if (l.asymmetric) q.mins.assign(q.scales.size(), 0);
  if (rows == 0 || cols == 0) return q;

  const Grid g = make_grid(f_, rows, cols);
  y_.resize(cols);
  v_.resize(cols);
  codes_.resize(cols);
  std::vector<float> stat_a(g.grid_cols), stat_b(g.grid_cols), tmp_a(g.grid_cols), tmp_b(g.grid_cols);

  float tensor_scale = 1.0f;
  if (l.tensor_scale) {  // NVIDIA's recipe: s_tensor = amax / (vmax * scale_max)
    float amax = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      if (!k_.group_abs_max(x + r * cols, cols, cols, tmp_a.data())) return non_finite_error(x, r, cols);
      amax = std::max(amax, tmp_a[0]);
    }
    tensor_scale = amax / (f_.element_max * scale_type_max(f_.spec.scale_type));
    q.tensor_scale = tensor_scale;
  }

  // Block scales, one block row at a time: [grid_rows, grid_cols].
  std::vector<float> scale(g.grid_rows * g.grid_cols), offset(scale.size());
  if (l.granularity == ScaleGranularity::kNone) {
    scale[0] = std::ldexp(1.0f, f_.spec.element_unit_log2);
  } else {
    for (int64_t br = 0; br < g.grid_rows; ++br) {
      const int64_t r0 = br * g.block_rows, r1 = std::min(rows, r0 + g.block_rows);
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * cols;
        const bool finite = asym_ ? k_.group_min_max(xr, cols, g.group, tmp_a.data(), tmp_b.data())
                                  : k_.group_abs_max(xr, cols, g.group, tmp_a.data());
        if (!finite) return non_finite_error(x, r, cols);
        for (int64_t bc = 0; bc < g.grid_cols; ++bc) {
          stat_a[bc] = r == r0 ? tmp_a[bc] : (asym_ ? std::min(stat_a[bc], tmp_a[bc]) : std::max(stat_a[bc], tmp_a[bc]));
          if (asym_) stat_b[bc] = r == r0 ? tmp_b[bc] : std::max(stat_b[bc], tmp_b[bc]);
        }
      }
      for (int64_t bc = 0; bc < g.grid_cols; ++bc) {
        // + 0.0f turns a -0 extreme into +0, whatever order min/max saw the zeros in.
        const ScaleChoice c = search(x, g, br, bc, stat_a[bc] + 0.0f, stat_b[bc] + 0.0f, tensor_scale, o);
        const int64_t i = br * g.grid_cols + bc;
        scale[i] = c.scale;
        offset[i] = c.offset;
        write_scale_code(q.scales.data() + i * l.scale_bytes, c.scale_code, l.scale_bytes);
        if (asym_) write_scale_code(q.mins.data() + i * l.scale_bytes, c.min_code, l.scale_bytes);
      }
    }
  }

  for (int64_t r = 0; r < rows; ++r) {
    const int64_t br = l.granularity == ScaleGranularity::kNone ? 0 : r / g.block_rows;
    const GroupMaps m = maps(scale.data() + br * g.grid_cols, offset.data() + br * g.grid_cols);
    k_.to_element(x + r * cols, cols, g.group, m, y_.data());
    encode_codes(y_.data(), cols, codes_.data(), &o, static_cast<uint64_t>(r * cols));
    k_.pack(codes_.data(), cols, l.code_bits, q.codes.data() + r * row_bytes);
  }
  return q;
}

Status Runner::dequantize(const QuantizedTensor& q, float* out) {
  const BlockLayout& l = f_.layout;
  const int64_t rows = q.rows, cols = q.cols;
  if (rows < 0 || cols < 0) return make_error("{}: negative shape [{}, {}]", f_.name(), rows, cols);
  const int64_t row_bytes = row_code_bytes(l.code_bits, cols);
  const size_t n_scales = static_cast<size_t>(scale_count(l, rows, cols));
  if (q.codes.size() != static_cast<size_t>(rows * row_bytes) || q.scales.size() != n_scales * l.scale_bytes ||
      q.mins.size() != (l.asymmetric ? q.scales.size() : 0)) {
    return make_error("{}: packed sizes (codes {}, scales {}, mins {}) do not match [{}, {}]", f_.name(),
                      q.codes.size(), q.scales.size(), q.mins.size(), rows, cols);
  }
  if (l.tensor_scale && !(std::isfinite(q.tensor_scale) && q.tensor_scale >= 0.0f)) {
    return make_error("{}: tensor scale {} is not a finite value >= 0", f_.name(), q.tensor_scale);
  }
  if (rows == 0 || cols == 0) return Status::ok_status();
  if (out == nullptr) return make_error("{}: null output", f_.name());

  const Grid g = make_grid(f_, rows, cols);
  std::vector<float> scale(g.grid_rows * g.grid_cols), offset(scale.size());
  if (l.granularity == ScaleGranularity::kNone) {
    scale[0] = std::ldexp(1.0f, f_.spec.element_unit_log2);
  } else {
    for (size_t i = 0; i < n_scales; ++i) {
      const uint32_t sc = read_scale_code(q.scales.data() + i * l.scale_bytes, l.scale_bytes);
      const uint32_t mc = l.asymmetric ? read_scale_code(q.mins.data() + i * l.scale_bytes, l.scale_bytes) : 0;
      const ScaleChoice c = from_codes(sc, mc, q.tensor_scale);
      if (!std::isfinite(c.scale) || !std::isfinite(c.offset)) {
        return make_error("{}: scale block {} decodes to a non-finite scale (code {:#x})", f_.name(), i, sc);
      }
      scale[i] = c.scale;
      offset[i] = c.offset;
    }
  }
  y_.resize(cols);
  codes_.resize(cols);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t br = l.granularity == ScaleGranularity::kNone ? 0 : r / g.block_rows;
    k_.unpack(q.codes.data() + r * row_bytes, cols, l.code_bits, codes_.data());
    decode_codes(codes_.data(), cols, y_.data());
    k_.from_element(y_.data(), cols, g.group, maps(scale.data() + br * g.grid_cols, offset.data() + br * g.grid_cols),
                    out + r * cols);
  }
  return Status::ok_status();
}

}  // namespace

Expected<QuantizedTensor> quantize_reference(const BlockFormat& format, const float* x, int64_t rows, int64_t cols,
                                             const QuantizeOptions& options) {
  Runner runner(format, scalar_scale_kernels(), nullptr);
  return runner.quantize(x, rows, cols, options);
}

Status dequantize_reference(const BlockFormat& format, const QuantizedTensor& q, float* out) {
  Runner runner(format, scalar_scale_kernels(), nullptr);
  return runner.dequantize(q, out);
}

Expected<BlockKernel> BlockKernel::create(const BlockFormat& format, Isa isa) {
  if (!isa_supported(isa, detect_cpu_features())) {
    return make_error("{}: ISA {} is not supported on this CPU", format.name(), isa_name(isa));
  }
  auto element = ElementKernel::create(format.element, isa);
  if (!element.ok()) return element.status().with_context(format.name());
  auto impl = std::make_shared<BlockKernelImpl>();
  impl->format = &format;
  impl->kernels = &scale_kernels(isa);
  impl->element.emplace(std::move(element).value());
  return BlockKernel(std::move(impl), isa);
}

Expected<QuantizedTensor> BlockKernel::quantize(const float* x, int64_t rows, int64_t cols,
                                                const QuantizeOptions& options) const {
  Runner runner(*impl_->format, *impl_->kernels, &*impl_->element);
  return runner.quantize(x, rows, cols, options);
}

Status BlockKernel::dequantize(const QuantizedTensor& q, float* out) const {
  Runner runner(*impl_->format, *impl_->kernels, &*impl_->element);
  return runner.dequantize(q, out);
}

Expected<QuantizedTensor> quantize(const BlockFormat& format, const float* x, int64_t rows, int64_t cols,
                                   const QuantizeOptions& options, Isa isa) {
  LB_ASSIGN_OR_RETURN(BlockKernel kernel, BlockKernel::create(format, isa));
  return kernel.quantize(x, rows, cols, options);
}

Status dequantize(const BlockFormat& format, const QuantizedTensor& q, float* out, Isa isa) {
  LB_ASSIGN_OR_RETURN(BlockKernel kernel, BlockKernel::create(format, isa));
  return kernel.dequantize(q, out);
}

void write_scale_code(uint8_t* dst, uint32_t code, int bytes) {
  for (int i = 0; i < bytes; ++i) dst[i] = static_cast<uint8_t>(code >> (8 * i));
}

uint32_t read_scale_code(const uint8_t* src, int bytes) {
  uint32_t code = 0;
  for (int i = 0; i < bytes; ++i) code |= static_cast<uint32_t>(src[i]) << (8 * i);
  return code;
}

uint32_t code_at(const BlockFormat& format, const QuantizedTensor& q, int64_t r, int64_t c) {
  const int bits = format.layout.code_bits;
  const uint8_t* row = q.codes.data() + r * row_code_bytes(bits, q.cols);
  uint32_t code = 0;
  for (int b = 0; b < bits; ++b) {
    const int64_t bit = c * bits + b;
    code |= static_cast<uint32_t>((row[bit / 8] >> (bit % 8)) & 1u) << b;
  }
  return code;
}

}  // namespace lowbit
