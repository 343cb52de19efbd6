#include "pipeline/ct_linear.h"

#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <optional>

#include "core/half.h"

namespace lowbit {
namespace {

using Dt = SafetensorsDtype;

// A weight in compressed-tensors' terms before packing.
struct Unpacked {
  std::vector<uint8_t> codes;        // [rows, cols] stored codes: INT q + 2^(b-1), FP8 E4M3 byte, FP4 E2M1 nibble
  std::vector<float> scales;         // [scale grid] the FP32 scale each code multiplies (NVFP4: the E4M3 value)
  std::vector<uint8_t> scale_codes;  // NVFP4: [rows, cols/16] E4M3 bytes of `scales`
  std::vector<uint8_t> zeros;        // asymmetric: [rows, groups] stored zero points z + 2^(b-1)
  std::vector<float> mins;           // asymmetric, as mapped: lowbit's block minimum m of each group
  float global_scale = 1.0f;         // NVFP4
};

// Shape of the scale grid of `a` over [rows, cols] (io/compressed_tensors.h).
std::vector<int64_t> scale_shape(const CtWeightArgs& a, int64_t rows, int64_t cols) {
  switch (a.strategy) {
    case CtStrategy::kTensor: return {1};
    case CtStrategy::kChannel: return {rows, 1};
    case CtStrategy::kGroup:
    case CtStrategy::kTensorGroup: return {rows, cols / a.group_size};
    case CtStrategy::kBlock:
      return {(rows + a.block_rows - 1) / a.block_rows, (cols + a.block_cols - 1) / a.block_cols};
  }
  return {1};
}


// Exact float-bits -> code tables of the OCP element formats compressed-tensors uses.
std::map<uint32_t, uint8_t> fp8_codes_by_value() {
  std::map<uint32_t, uint8_t> m;
  for (int c = 0; c < 256; ++c) {
    const float v = ct_fp8_e4m3_to_float(static_cast<uint8_t>(c));
    if (!std::isnan(v)) m.emplace(float_to_bits(v), static_cast<uint8_t>(c));
  }
  return m;
}

std::map<uint32_t, uint8_t> fp4_codes_by_value() {
  std::map<uint32_t, uint8_t> m;
  for (int c = 0; c < 16; ++c) m.emplace(float_to_bits(ct_fp4_e2m1_to_float(static_cast<uint8_t>(c))), c);
  return m;
}

// lowbit element code -> stored compressed-tensors code, for every code of the
// format; -1 for codes the quantizer never produces (reserved, NaN).
Expected<std::vector<int>> code_table(const BlockFormat& f, const CtScheme& s, const std::string& tensor) {
  const ElementCodec& codec = *f.element.codec;
  const uint32_t n = 1u << f.layout.code_bits;
  std::vector<int> table(n, -1);
  const auto fp8 = s.format == kCtFormatFloat ? fp8_codes_by_value() : std::map<uint32_t, uint8_t>();
  const auto fp4 = s.format == kCtFormatNvfp4 ? fp4_codes_by_value() : std::map<uint32_t, uint8_t>();
  const int offset = 1 << (s.weights.num_bits - 1);
  for (uint32_t c = 0; c < n; ++c) {
    const float v = codec.decode(c);
    if (codec.is_reserved(c) || std::isnan(v)) continue;  // never produced by the quantizer; checked when met
    if (s.format == kCtFormatPacked) {
      // Integer elements decode to integers; asymmetric ones are already unsigned.
      const int q = static_cast<int>(v) + (s.weights.symmetric ? offset : 0);
      if (static_cast<float>(static_cast<int>(v)) != v || q < 0 || q >= 2 * offset) {
        return make_error("tensor '{}': {} code {} decodes to {}, outside the {}-bit range", tensor, f.name(), c, v,
                          s.weights.num_bits);
      }
      table[c] = q;
    } else {
      const auto& by_value = s.format == kCtFormatFloat ? fp8 : fp4;
      auto it = by_value.find(float_to_bits(v));
      if (it == by_value.end()) {
        return make_error("tensor '{}': {} code {} decodes to {}, which the stored element format lacks", tensor,
                          f.name(), c, v);
      }
      table[c] = it->second;
    }
  }
  return table;
}

// A divisor g with fl(d / g) == fl(d * t) for every block scale value d: lowbit
// multiplies by the tensor scale t, compressed-tensors divides by its global scale.
// Searched around 1/t; nullopt when none of the nearby floats reproduces all.
std::optional<float> global_divisor(const std::vector<float>& values, float t) {
  const float g0 = 1.0f / t;
  auto works = [&](float g) {
    for (float d : values) {
      if (float_to_bits(d / g) != float_to_bits(d * t)) return false;
    }
    return true;
  };
  float up = g0, down = g0;
  if (works(g0)) return g0;
  for (int step = 0; step < 256; ++step) {
    up = std::nextafter(up, INFINITY);
    down = std::nextafter(down, 0.0f);
    if (works(up)) return up;
    if (works(down)) return down;
  }
  return std::nullopt;
}

// The stored form of q as it is (no requantization). `reason` says what is not
// exact when the mapping already knows (asymmetric minima that are not zero points).
Expected<Unpacked> map_codes(const QuantizedWeight& q, const BlockFormat& f, const CtScheme& s,
                             const std::string& tensor, std::string* reason) {
  const QuantizedTensor& t = q.tensor;
  const int64_t rows = t.rows, cols = t.cols;
  const BlockLayout& l = f.layout;
  LB_ASSIGN_OR_RETURN(std::vector<int> table, code_table(f, s, tensor));
  Unpacked u;
  u.codes.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const uint32_t code = code_at(f, t, r, c);
      if (table[code] < 0) return make_error("tensor '{}': {} code {} at [{}, {}] is not a value", tensor, f.name(), code, r, c);
      u.codes[r * cols + c] = static_cast<uint8_t>(table[code]);
    }
  }
  // lowbit's block scales as the FP32 factors its kernels use.
  const int64_t lrows = scale_rows(l, rows), lcols = scale_cols(l, cols);
  const float unit = std::ldexp(1.0f, f.spec.element_unit_log2);
  std::vector<float> ls(static_cast<size_t>(lrows * lcols)), lm(ls.size(), 0.0f);
  std::vector<float> raw(ls.size());  // decoded scale codes without the tensor scale (NVFP4)
  for (size_t i = 0; i < ls.size(); ++i) {
    float v = decode_scale(f.spec.scale_type, read_scale_code(t.scales.data() + i * l.scale_bytes, l.scale_bytes));
    raw[i] = v;
    if (f.spec.tensor_scale) v *= t.tensor_scale;
    ls[i] = v * unit;
    if (l.asymmetric) lm[i] = decode_scale(f.spec.scale_type, read_scale_code(t.mins.data() + i * l.scale_bytes, l.scale_bytes));
  }
  const std::vector<int64_t> grid = scale_shape(s.weights, rows, cols);
  const int64_t grows = grid[0], gcols = grid.size() > 1 ? grid[1] : 1;
  // CT block (i, j) lies inside lowbit block (i, j * sub) with sub = G / G' for groups.
  const int64_t sub = s.weights.strategy == CtStrategy::kGroup ? l.group_cols / s.weights.group_size : 1;
  u.scales.resize(static_cast<size_t>(grows * gcols));
  for (int64_t i = 0; i < grows; ++i) {
    for (int64_t j = 0; j < gcols; ++j) u.scales[i * gcols + j] = ls[i * lcols + j / sub];
  }
  if (l.asymmetric) {
    const int bits = s.weights.num_bits;
    const float maxq = static_cast<float>((1 << bits) - 1);
    int64_t inexact = 0;
    u.zeros.resize(u.scales.size());
    u.mins.resize(u.scales.size());
    for (int64_t i = 0; i < grows; ++i) {
      for (int64_t j = 0; j < gcols; ++j) {
        const size_t k = static_cast<size_t>(i * lcols + j / sub);
        u.mins[i * gcols + j] = lm[k];
        // x = u*s + m = (u - z)*s  <=>  z = -m/s, an integer in [0, 2^b - 1].
        float z = 0.0f;
        if (ls[k] > 0.0f && std::isfinite(ls[k])) z = -lm[k] / ls[k];
        const float zr = std::min(std::max(std::nearbyint(z), 0.0f), maxq);
        if (zr != z || (ls[k] == 0.0f && lm[k] != 0.0f)) ++inexact;
        u.zeros[i * gcols + j] = static_cast<uint8_t>(zr);
      }
    }
    if (inexact > 0) {
      *reason = fmt::format("the block minimum is not an integer multiple of the scale in {} of {} groups", inexact,
                            u.zeros.size());
    }
  }
  if (s.format == kCtFormatNvfp4) {
    const auto fp8 = fp8_codes_by_value();
    u.scale_codes.resize(u.scales.size());
    std::vector<float> used;
    for (size_t i = 0; i < u.scales.size(); ++i) {
      const float d = raw[i];
      auto it = fp8.find(float_to_bits(d));
      if (it == fp8.end()) return make_error("tensor '{}': NVFP4 block scale {} is not an E4M3 value", tensor, d);
      u.scale_codes[i] = it->second;
      u.scales[i] = d;
      used.push_back(d);
    }
    const float ts = t.tensor_scale;
    if (ts == 0.0f) {  // all-zero tensor: zero block scales under a unit global scale
      std::fill(u.scale_codes.begin(), u.scale_codes.end(), 0);
      std::fill(u.scales.begin(), u.scales.end(), 0.0f);
      u.global_scale = 1.0f;
    } else if (auto g = global_divisor(used, ts)) {
      u.global_scale = *g;
    } else {
      u.global_scale = 1.0f / ts;
      *reason = fmt::format("no FP32 global scale divides every block scale as the tensor scale {} multiplies it", ts);
    }
  }
  return u;
}

// Integer zero points for the dequantized weights w [rows, cols] on the scheme's
// group grid (GPTQ/AWQ's asymmetric grid x = (q - z) * s). Each group takes the
// candidate with the smallest squared error against w:
//   round to nearest over [min(x, 0), max(x, 0)] with s = range / (2^b - 1), and,
//   when `anchor` holds lowbit's own grid (scale s, minimum m), that scale with
//   z = floor(-m/s) and ceil(-m/s): the whole group shifted by under half a step,
// scales kept FP16-representable so a runtime holding them in FP16 reads the same.
Unpacked requantize_asymmetric(const std::vector<float>& w, int64_t rows, int64_t cols, const CtScheme& s,
                               const Unpacked* anchor) {
  const int bits = s.weights.num_bits;
  const float maxq = static_cast<float>((1 << bits) - 1);
  const int64_t group = s.weights.strategy == CtStrategy::kGroup ? s.weights.group_size : cols;
  const int64_t groups = cols / group;
  Unpacked u;
  u.codes.resize(static_cast<size_t>(rows * cols));
  u.scales.resize(static_cast<size_t>(rows * groups));
  u.zeros.resize(u.scales.size());
  std::vector<uint8_t> q(static_cast<size_t>(group)), best_q(q.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < groups; ++j) {
      const float* x = w.data() + r * cols + j * group;
      float lo = 0.0f, hi = 0.0f;
      for (int64_t i = 0; i < group; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
      }
      struct Candidate {
        float scale, zero;
      };
      std::vector<Candidate> candidates;
      float scale = (hi - lo) / maxq;
      const float half = fp16_to_float(float_to_fp16(scale));
      if (std::isfinite(half) && half > 0.0f) scale = half;
      candidates.push_back({scale, scale > 0.0f ? std::min(std::max(std::nearbyint(-lo / scale), 0.0f), maxq) : 0.0f});
      if (anchor != nullptr) {
        const float sa = anchor->scales[r * groups + j], m = anchor->mins[r * groups + j];
        if (sa > 0.0f && std::isfinite(sa)) {
          for (float z : {std::floor(-m / sa), std::ceil(-m / sa)}) {
            candidates.push_back({sa, std::min(std::max(z, 0.0f), maxq)});
          }
        }
      }
      double best = INFINITY;
      for (const Candidate& c : candidates) {
        double sse = 0.0;
        for (int64_t i = 0; i < group; ++i) {
          const float v = c.scale > 0.0f ? std::min(std::max(std::nearbyint(x[i] / c.scale) + c.zero, 0.0f), maxq) : 0.0f;
          q[i] = static_cast<uint8_t>(v);
          const double d = static_cast<double>((v - c.zero) * c.scale) - x[i];
          sse += d * d;
        }
        if (sse < best) {
          best = sse;
          best_q.swap(q);
          u.scales[r * groups + j] = c.scale;
          u.zeros[r * groups + j] = static_cast<uint8_t>(c.zero);
        }
      }
      std::copy(best_q.begin(), best_q.end(), u.codes.begin() + r * cols + j * group);
    }
  }
  return u;
}

std::vector<uint8_t> float_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// The stored bytes of `u`, rows in `order`, in ct_module_entries order.
Expected<std::vector<std::vector<uint8_t>>> pack(const Unpacked& u, const CtScheme& s, int64_t rows, int64_t cols,
                                                 const std::vector<int64_t>& order, const std::string& tensor) {
  const CtWeightArgs& a = s.weights;
  const std::vector<int64_t> grid = scale_shape(a, rows, cols);
  const int64_t gcols = grid.size() > 1 ? grid[1] : 1;
  std::vector<int64_t> scale_order;  // rows of the scale grid
  if (!order.empty()) {
    if (a.strategy == CtStrategy::kBlock) {
      for (int64_t r = 0; r < rows; ++r) {
        if (order[r] / a.block_rows != r / a.block_rows) {
          return make_error("tensor '{}': the RoPE row order moves row {} out of its {}-row block", tensor, order[r],
                            a.block_rows);
        }
      }
    } else if (a.strategy != CtStrategy::kTensor) {
      scale_order = order;
    }
  }
  const std::vector<uint8_t> codes = reorder_rows(u.codes, cols, order);
  const std::vector<float> scales = reorder_rows(u.scales, gcols, scale_order);
  std::vector<std::vector<uint8_t>> out;
  if (s.format == kCtFormatPacked) {
    out.push_back(ct_pack_rows(codes.data(), rows, cols, a.num_bits));
    out.push_back(float_bytes(scales));
    if (!a.symmetric) {
      const std::vector<uint8_t> zeros = reorder_rows(u.zeros, gcols, scale_order);
      out.push_back(ct_pack_columns(zeros.data(), grid[0], gcols, a.num_bits));
    }
    const int64_t shape[2] = {rows, cols};
    std::vector<uint8_t> shape_bytes(sizeof(shape));
    std::memcpy(shape_bytes.data(), shape, sizeof(shape));
    out.push_back(std::move(shape_bytes));
  } else if (s.format == kCtFormatFloat) {
    out.push_back(codes);
    out.push_back(float_bytes(scales));
  } else {  // NVFP4: two codes a byte, low nibble first
    std::vector<uint8_t> packed(static_cast<size_t>(rows * cols / 2));
    for (size_t i = 0; i < packed.size(); ++i) {
      packed[i] = static_cast<uint8_t>((codes[2 * i] & 0xf) | ((codes[2 * i + 1] & 0xf) << 4));
    }
    out.push_back(std::move(packed));
    out.push_back(reorder_rows(u.scale_codes, gcols, scale_order));
    out.push_back(float_bytes({u.global_scale}));
  }
  return out;
}

// Decodes stored bytes with the reader (io/compressed_tensors.h).
Expected<std::vector<float>> decode(const std::vector<SafetensorsEntry>& entries,
                                    const std::vector<std::vector<uint8_t>>& bytes, const CtScheme& s, int64_t rows,
                                    int64_t cols, const std::string& prefix, const std::string& tensor) {
  std::vector<SafetensorsTensor> views(entries.size());
  CtModuleTensors m;
  for (size_t i = 0; i < entries.size(); ++i) {
    views[i].name = entries[i].name;
    views[i].dtype = entries[i].dtype;
    views[i].shape = entries[i].shape;
    views[i].data = bytes[i].data();
    views[i].n_bytes = bytes[i].size();
    const std::string suffix = entries[i].name.substr(prefix.size() + 1);
    const SafetensorsTensor* v = &views[i];
    if (suffix == "weight") m.weight = v;
    if (suffix == "weight_packed") m.weight_packed = v;
    if (suffix == "weight_scale") m.weight_scale = v;
    if (suffix == "weight_zero_point") m.weight_zero_point = v;
    if (suffix == "weight_shape") m.weight_shape = v;
    if (suffix == "weight_global_scale") m.weight_global_scale = v;
  }
  return ct_dequantize(s, m, rows, cols, fmt::format("tensor '{}' as written", tensor));
}

}  // namespace

Expected<CtScheme> ct_scheme_for_format(const BlockFormat& f, int64_t rows, int64_t cols, const std::string& tensor) {
  auto refuse = [&](const std::string& why) {
    return make_error("tensor '{}': format '{}' cannot be written as compressed-tensors: {}", tensor, f.name(), why);
  };
  const ElementFormat& e = f.element;
  const BlockLayout& l = f.layout;
  CtScheme s;
  CtWeightArgs& a = s.weights;
  a.num_bits = e.bits;
  if (e.kind == ElementKind::kInteger) {
    if (e.bits != 2 && e.bits != 4 && e.bits != 8) {
      return refuse(fmt::format("{}-bit integers (2, 4 and 8 bits pack the same in every compressed-tensors version)",
                                e.bits));
    }
    if (l.tensor_scale) return refuse("integers under a second-level tensor scale");
    s.format = kCtFormatPacked;
    a.symmetric = !f.spec.asymmetric;
    switch (l.granularity) {
      case ScaleGranularity::kRow: a.strategy = CtStrategy::kChannel; break;
      case ScaleGranularity::kTensor:
        if (!a.symmetric) return refuse("an asymmetric per-tensor scale (zero points are per group or channel)");
        a.strategy = CtStrategy::kTensor;
        break;
      case ScaleGranularity::kGroup:
        a.strategy = CtStrategy::kGroup;
        a.group_size = std::gcd(static_cast<int64_t>(l.group_cols), cols);
        break;
      default: return refuse(fmt::format("integers with {} scales", granularity_name(l.granularity)));
    }
    return s;
  }
  if (e.name == "fp8_e4m3" && !l.tensor_scale && f.spec.element_unit_log2 == 0) {
    s.format = kCtFormatFloat;
    a.is_float = true;
    switch (l.granularity) {
      case ScaleGranularity::kRow: a.strategy = CtStrategy::kChannel; break;
      case ScaleGranularity::kTensor: a.strategy = CtStrategy::kTensor; break;
      case ScaleGranularity::kBlock2D:
        a.strategy = CtStrategy::kBlock;
        a.block_rows = l.group_rows;
        a.block_cols = l.group_cols;
        break;
      default:
        return refuse(fmt::format("FP8 with {} scales (float-quantized stores FP8 per channel, per tensor or in 2D "
                                  "blocks)", granularity_name(l.granularity)));
    }
    return s;
  }
  if (e.name == "fp4_e2m1" && l.tensor_scale && l.granularity == ScaleGranularity::kGroup && l.group_cols == 16 &&
      f.spec.scale_type == ScaleType::kUe4m3 && f.spec.element_unit_log2 == 0) {
    if (cols % 16 != 0) return refuse(fmt::format("NVFP4 needs the columns a multiple of 16, not {}", cols));
    s.format = kCtFormatNvfp4;
    a.is_float = true;
    a.strategy = CtStrategy::kTensorGroup;
    a.group_size = 16;
    return s;
  }
  return refuse(fmt::format("element '{}' ({} bits) under {} scales; compressed-tensors holds 2/4/8-bit integers, "
                            "FP8 E4M3 and NVFP4",
                            e.name, e.bits, granularity_name(l.granularity)));
}

std::vector<SafetensorsEntry> ct_module_entries(const CtScheme& s, const std::string& prefix, int64_t rows,
                                                int64_t cols) {
  const std::vector<int64_t> grid = scale_shape(s.weights, rows, cols);
  const int b = s.weights.num_bits;
  if (s.format == kCtFormatPacked) {
    std::vector<SafetensorsEntry> e = {{prefix + ".weight_packed", Dt::kI32, {rows, ct_packed_words(cols, b)}},
                                       {prefix + ".weight_scale", Dt::kF32, grid}};
    if (!s.weights.symmetric) {
      e.push_back({prefix + ".weight_zero_point", Dt::kI32, {ct_packed_words(grid[0], b), grid.size() > 1 ? grid[1] : 1}});
    }
    e.push_back({prefix + ".weight_shape", Dt::kI64, {2}});
    return e;
  }
  if (s.format == kCtFormatFloat) {
    return {{prefix + ".weight", Dt::kF8_E4M3, {rows, cols}}, {prefix + ".weight_scale", Dt::kF32, grid}};
  }
  return {{prefix + ".weight_packed", Dt::kU8, {rows, cols / 2}},
          {prefix + ".weight_scale", Dt::kF8_E4M3, grid},
          {prefix + ".weight_global_scale", Dt::kF32, {1}}};
}

Expected<CtConvertedLinear> ct_convert_linear(const QuantizedWeight& q, const CtScheme& scheme,
                                              const std::string& prefix, const std::string& tensor,
                                              const CtConvertOptions& options) {
  LB_ASSIGN_OR_RETURN(const BlockFormat* f, find_block_format(q.format));
  const int64_t rows = q.rows(), cols = q.cols();
  if (!options.row_order.empty() && static_cast<int64_t>(options.row_order.size()) != rows) {
    return make_error("tensor '{}': row order of {} rows for a {}-row weight", tensor, options.row_order.size(), rows);
  }
  CtConvertedLinear out;
  out.entries = ct_module_entries(scheme, prefix, rows, cols);
  std::vector<float> ref(static_cast<size_t>(rows * cols));  // lowbit's dequantization [rows, cols]
  LB_RETURN_IF_ERROR(dequantize_weight(q, ref.data()).with_context(fmt::format("tensor '{}'", tensor)));

  std::string reason;
  const bool side_tables = !q.outliers.empty() || q.rank > 0;
  Unpacked u;
  if (side_tables) {
    reason = q.rank > 0 ? fmt::format("its rank-{} low-rank correction has no place in the format", q.rank)
                        : fmt::format("its {} sparse outliers have no place in the format", q.outliers.size());
  } else {
    LB_ASSIGN_OR_RETURN(u, map_codes(q, *f, scheme, tensor, &reason));
  }
  std::vector<float> decoded;
  if (!side_tables) {
    LB_ASSIGN_OR_RETURN(std::vector<std::vector<uint8_t>> bytes, pack(u, scheme, rows, cols, {}, tensor));
    LB_ASSIGN_OR_RETURN(decoded, decode(out.entries, bytes, scheme, rows, cols, prefix, tensor));
  }
  size_t first = ref.size();
  for (size_t i = 0; i < decoded.size() && first == ref.size(); ++i) {
    if (float_to_bits(decoded[i]) != float_to_bits(ref[i])) first = i;
  }
  if (side_tables || first != ref.size()) {
    if (reason.empty()) reason = "it does not decode to lowbit's values";
    if (options.exact) {
      std::string at;
      if (!side_tables) {
        at = fmt::format(" (first difference at [{}, {}]: {} instead of {})", first / cols, first % cols,
                         decoded[first], ref[first]);
      }
      return make_error("tensor '{}' ({}) is not exact as compressed-tensors {}: {}{}; without --exact it is "
                        "requantized",
                        tensor, q.format, scheme.format, reason, at);
    }
    out.exact = false;
    if (!scheme.weights.symmetric) {
      u = requantize_asymmetric(ref, rows, cols, scheme, side_tables ? nullptr : &u);
      out.note = reason + "; requantized with integer zero points";
    } else if (side_tables) {
      QuantizedWeight plain;
      plain.format = q.format;
      LB_ASSIGN_OR_RETURN(plain.tensor, quantize_matrix(q.format, ref.data(), rows, cols));
      std::string ignored;
      LB_ASSIGN_OR_RETURN(u, map_codes(plain, *f, scheme, tensor, &ignored));
      out.note = reason + fmt::format("; requantized to {} from the dequantized weights", q.format);
    } else {
      out.note = reason;
    }
    LB_ASSIGN_OR_RETURN(std::vector<std::vector<uint8_t>> bytes, pack(u, scheme, rows, cols, {}, tensor));
    LB_ASSIGN_OR_RETURN(decoded, decode(out.entries, bytes, scheme, rows, cols, prefix, tensor));
    double sum = 0.0, sum_w = 0.0;
    for (size_t i = 0; i < ref.size(); ++i) {
      const double d = static_cast<double>(decoded[i]) - ref[i];
      sum += d * d;
      sum_w += static_cast<double>(ref[i]) * ref[i];
      out.max_error = std::max(out.max_error, std::abs(d));
    }
    out.rms_error = std::sqrt(sum / static_cast<double>(ref.size()));
    out.weight_rms = std::sqrt(sum_w / static_cast<double>(ref.size()));
  }
  LB_ASSIGN_OR_RETURN(out.bytes, pack(u, scheme, rows, cols, options.row_order, tensor));
  return out;
}

}  // namespace lowbit
