#include "kvcache/kv_tensor_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "formats/block_format.h"
#include "formats/block_kernels.h"
#include "kernels/cpu_features.h"

namespace lowbit {
namespace {

Expected<ElementFormat> element_for(const KvTensorSpec& spec, const std::vector<float>& codebook,
                                    const std::string& what) {
  switch (spec.element) {
    case KvElement::kInteger: return make_int_format(spec.bits, IntMode::kAsymmetric);
    case KvElement::kFp8E4M3: {
      LB_ASSIGN_OR_RETURN(const ElementFormat* f, find_element_format("fp8_e4m3"));
      return *f;
    }
    case KvElement::kFp8E5M2: {
      LB_ASSIGN_OR_RETURN(const ElementFormat* f, find_element_format("fp8_e5m2"));
      return *f;
    }
    case KvElement::kFp4E2M1: {
      LB_ASSIGN_OR_RETURN(const ElementFormat* f, find_element_format("fp4_e2m1"));
      return *f;
    }
    case KvElement::kCodebook:
      if (codebook.size() != (size_t{1} << spec.bits)) {
        return make_error("{}: -nuq needs a codebook of {} levels, got {} (fit one with --kv-calib or load a "
                          "KV configuration file)",
                          what, 1u << spec.bits, codebook.size());
      }
      return make_codebook_format("nuq" + std::to_string(spec.bits), codebook);
    case KvElement::kFloat32:
    case KvElement::kFloat16: break;
  }
  return make_error("{}: no element format for FP32 storage", what);
}

void put_scale(ScaleType t, float v, uint8_t* dst) {
  const uint32_t code = encode_scale(t, v);
  for (int i = 0; i < scale_type_bytes(t); ++i) dst[i] = static_cast<uint8_t>(code >> (8 * i));
}

float get_scale(ScaleType t, const uint8_t* src) {
  uint32_t code = 0;
  for (int i = 0; i < scale_type_bytes(t); ++i) code |= static_cast<uint32_t>(src[i]) << (8 * i);
  return decode_scale(t, code);
}

}  // namespace

Expected<KvTensorCodec> KvTensorCodec::create(const KvTensorSpec& spec, int width, int head_dim, int sparse_count,
                                              const std::vector<float>& codebook, const std::string& what) {
  KvTensorCodec c;
  c.spec_ = spec;
  c.width_ = width;
  if (width <= 0 || head_dim <= 0 || width % head_dim != 0) {
    return make_error("{}: bad shape (width {}, head_dim {})", what, width, head_dim);
  }
  if (!spec.quantized() || spec.element == KvElement::kFloat16) {
    c.tokens_per_unit_ = 1;
    c.unit_bytes_ = static_cast<int64_t>(width) * (spec.quantized() ? sizeof(uint16_t) : sizeof(float));
    c.code_bytes_ = c.unit_bytes_;
    return c;
  }
  if (width > 65536) return make_error("{}: rows of {} elements exceed the sparse index range", what, width);
  c.sparse_count_ = std::clamp(sparse_count, 0, width);
  if (spec.granularity == KvGranularity::kPerChannel) {
    if (spec.token_block < 1) return make_error("{}: the token block must be at least 1", what);
    c.tokens_per_unit_ = spec.token_block;
    c.group_ = spec.token_block;
    c.n_groups_ = width;
  } else {
    c.group_ = spec.group > 0 ? spec.group : std::min(32, head_dim);
    if (head_dim % c.group_ != 0) {
      return make_error("{}: group size {} (-g{}) must divide head_dim {}", what, c.group_, c.group_, head_dim);
    }
    c.tokens_per_unit_ = 1;
    c.n_groups_ = width / c.group_;
  }
  LB_ASSIGN_OR_RETURN(ElementFormat format, element_for(spec, codebook, what));
  LB_ASSIGN_OR_RETURN(ElementKernel kernel, ElementKernel::create(format));
  c.kernel_ = std::move(kernel);
  c.scale_type_ = spec.bits <= 8 ? ScaleType::kFp16 : ScaleType::kFp32;
  switch (spec.element) {
    case KvElement::kInteger:
      c.lo_ = 0.0f;
      c.hi_ = static_cast<float>((1u << spec.bits) - 1u);
      break;
    case KvElement::kCodebook:
      c.lo_ = -1.0f;
      c.hi_ = 1.0f;
      break;
    default:
      c.asymmetric_ = false;
      c.lo_ = -format.max_finite;
      c.hi_ = format.max_finite;
      break;
  }
  const int64_t elements = static_cast<int64_t>(c.tokens_per_unit_) * width;
  c.code_bytes_ = row_code_bytes(spec.bits, elements);
  c.unit_bytes_ =
      c.code_bytes_ + static_cast<int64_t>(c.n_groups_) * scale_type_bytes(c.scale_type_) * (c.asymmetric_ ? 2 : 1);
  return c;
}

double KvTensorCodec::bytes_per_token() const {
  return static_cast<double>(unit_bytes_) / tokens_per_unit_ + static_cast<double>(sparse_row_bytes());
}

void KvTensorCodec::prepare_unit(const float* x, uint8_t* sparse, KvCodecScratch& s) const {
  const int T = tokens_per_unit_;
  const int64_t n = static_cast<int64_t>(T) * width_;
  s.grouped.resize(n);
  s.masked.assign(n, 0);
  s.y.resize(n);
  s.scale.resize(n_groups_);
  s.zero.resize(n_groups_);
  // Dense-and-sparse: each row's sparse_count largest |x| (ties: lower column first).
  if (sparse_count_ > 0) {
    s.order.resize(width_);
    for (int t = 0; t < T; ++t) {
      const float* row = x + static_cast<int64_t>(t) * width_;
      for (int i = 0; i < width_; ++i) s.order[i] = i;
      auto larger = [&](int a, int b) {
        const float fa = std::fabs(row[a]), fb = std::fabs(row[b]);
        return fa > fb || (fa == fb && a < b);
      };
      std::partial_sort(s.order.begin(), s.order.begin() + sparse_count_, s.order.end(), larger);
      std::sort(s.order.begin(), s.order.begin() + sparse_count_);
      for (int j = 0; j < sparse_count_; ++j) {
        const int col = s.order[j];
        s.masked[static_cast<int64_t>(t) * width_ + col] = 1;
        if (sparse != nullptr) {
          uint8_t* e = sparse + (static_cast<int64_t>(t) * sparse_count_ + j) * 6;
          const uint16_t idx = static_cast<uint16_t>(col);
          e[0] = static_cast<uint8_t>(idx);
          e[1] = static_cast<uint8_t>(idx >> 8);
          std::memcpy(e + 2, &row[col], 4);
        }
      }
    }
  }
  // Group order: rows as they are (per token), or transposed to [width, T] (per channel).
  if (spec_.granularity == KvGranularity::kPerChannel) {
    std::vector<uint8_t> mask_rows(s.masked);
    for (int t = 0; t < T; ++t) {
      for (int c = 0; c < width_; ++c) {
        s.grouped[static_cast<int64_t>(c) * T + t] = x[static_cast<int64_t>(t) * width_ + c];
        s.masked[static_cast<int64_t>(c) * T + t] = mask_rows[static_cast<int64_t>(t) * width_ + c];
      }
    }
  } else {
    std::copy(x, x + n, s.grouped.begin());
  }
  // Scales from the elements outside the sparse list.
  for (int g = 0; g < n_groups_; ++g) {
    const float* v = s.grouped.data() + static_cast<int64_t>(g) * group_;
    const uint8_t* m = s.masked.data() + static_cast<int64_t>(g) * group_;
    float mn = 0.0f, mx = 0.0f, amax = 0.0f;
    bool any = false;
    for (int i = 0; i < group_; ++i) {
      if (m[i]) continue;
      mn = any ? std::min(mn, v[i]) : v[i];
      mx = any ? std::max(mx, v[i]) : v[i];
      amax = std::max(amax, std::fabs(v[i]));
      any = true;
    }
    float scale = 0.0f, zero = 0.0f;
    if (!asymmetric_) {
      scale = amax / hi_;
    } else if (spec_.element == KvElement::kCodebook) {
      scale = (mx - mn) * 0.5f;
      zero = mn + scale;
    } else {
      scale = (mx - mn) / hi_;
      zero = mn;
    }
    s.scale[g] = decode_scale(scale_type_, encode_scale(scale_type_, scale));
    s.zero[g] = decode_scale(scale_type_, encode_scale(scale_type_, zero));
  }
  GroupMaps maps{s.scale.data(), s.zero.data(), lo_, hi_, asymmetric_};
  scale_kernels(active_isa()).to_element(s.grouped.data(), n, group_, maps, s.y.data());
}

void KvTensorCodec::encode(const float* x, int64_t n_units, uint8_t* dense, uint8_t* sparse,
                           KvCodecScratch& s) const {
  const int64_t rows = static_cast<int64_t>(tokens_per_unit_);
  if (spec_.element == KvElement::kFloat16) {
    for (int64_t i = 0; i < n_units * width_; ++i) {
      const uint16_t h = float_to_fp16(x[i]);
      std::memcpy(dense + 2 * i, &h, 2);
    }
    return;
  }
  if (!kernel_) {
    std::memcpy(dense, x, static_cast<size_t>(n_units * unit_bytes_));
    return;
  }
  const int64_t n = rows * width_;
  const int sb = scale_type_bytes(scale_type_);
  s.codes.resize(n);
  for (int64_t u = 0; u < n_units; ++u) {
    uint8_t* d = dense + u * unit_bytes_;
    prepare_unit(x + u * n, sparse == nullptr ? nullptr : sparse + u * rows * sparse_row_bytes(), s);
    kernel_->encode(s.y.data(), s.codes.data(), static_cast<size_t>(n));
    scale_kernels(active_isa()).pack(s.codes.data(), n, spec_.bits, d);
    uint8_t* scales = d + code_bytes_;
    for (int g = 0; g < n_groups_; ++g) {
      put_scale(scale_type_, s.scale[g], scales + static_cast<int64_t>(g) * sb);
      if (asymmetric_) put_scale(scale_type_, s.zero[g], scales + static_cast<int64_t>(n_groups_ + g) * sb);
    }
  }
}

void KvTensorCodec::decode(const uint8_t* dense, const uint8_t* sparse, int64_t n_units, float* out,
                           KvCodecScratch& s) const {
  if (spec_.element == KvElement::kFloat16) {
    for (int64_t i = 0; i < n_units * width_; ++i) {
      uint16_t h = 0;
      std::memcpy(&h, dense + 2 * i, 2);
      out[i] = fp16_to_float(h);
    }
    return;
  }
  if (!kernel_) {
    std::memcpy(out, dense, static_cast<size_t>(n_units * unit_bytes_));
    return;
  }
  const int T = tokens_per_unit_;
  const int64_t n = static_cast<int64_t>(T) * width_;
  const int sb = scale_type_bytes(scale_type_);
  const bool per_channel = spec_.granularity == KvGranularity::kPerChannel;
  s.codes.resize(n);
  s.y.resize(n);
  s.grouped.resize(n);
  s.scale.resize(n_groups_);
  s.zero.assign(n_groups_, 0.0f);
  const ScaleKernels& k = scale_kernels(active_isa());
  for (int64_t u = 0; u < n_units; ++u) {
    const uint8_t* d = dense + u * unit_bytes_;
    float* o = out + u * n;
    k.unpack(d, n, spec_.bits, s.codes.data());
    kernel_->decode(s.codes.data(), s.y.data(), static_cast<size_t>(n));
    const uint8_t* scales = d + code_bytes_;
    for (int g = 0; g < n_groups_; ++g) {
      s.scale[g] = get_scale(scale_type_, scales + static_cast<int64_t>(g) * sb);
      if (asymmetric_) s.zero[g] = get_scale(scale_type_, scales + static_cast<int64_t>(n_groups_ + g) * sb);
    }
    GroupMaps maps{s.scale.data(), s.zero.data(), lo_, hi_, asymmetric_};
    k.from_element(s.y.data(), n, group_, maps, per_channel ? s.grouped.data() : o);
    if (per_channel) {
      for (int c = 0; c < width_; ++c) {
        for (int t = 0; t < T; ++t) o[static_cast<int64_t>(t) * width_ + c] = s.grouped[static_cast<int64_t>(c) * T + t];
      }
    }
    if (sparse_count_ > 0) {
      const uint8_t* e = sparse + u * T * sparse_row_bytes();
      for (int t = 0; t < T; ++t) {
        for (int j = 0; j < sparse_count_; ++j, e += 6) {
          const int col = e[0] | (e[1] << 8);
          std::memcpy(o + static_cast<int64_t>(t) * width_ + col, e + 2, 4);
        }
      }
    }
  }
}

void KvTensorCodec::normalized(const float* x, std::vector<float>& y, KvCodecScratch& s) const {
  if (!kernel_) return;
  prepare_unit(x, nullptr, s);
  for (size_t i = 0; i < s.y.size(); ++i) {
    if (!s.masked[i]) y.push_back(s.y[i]);
  }
}

}  // namespace lowbit
