// Element kernels: construction (tables, constants), the generic path and the
// dispatch to AVX-512. See element_kernel.h for what each path does.
#include "formats/element_kernel.h"

#include <cassert>
#include <climits>
#include <cmath>
#include <variant>

#include "core/half.h"
#include "formats/element_kernel_data.h"

namespace lowbit {
namespace {

float key_to_float(int64_t key) {
  const auto s = static_cast<int32_t>(key);
  return bits_to_float(static_cast<uint32_t>(s < 0 ? (s ^ 0x7fffffff) : s));
}

// Bisection for the breakpoints of the reference encoder over the keys of
// -inf..+inf. Over the finite floats each code's preimage is an interval (the
// encoder is monotone), so the first key after `cur` whose code differs is found
// by bisection; the infinities may be special (posits map them to NaR) and get
// their own steps.
Expected<ThresholdTable> build_thresholds(const ElementFormat& f) {
  const ElementCodec& codec = *f.codec;
  const int64_t kmin = ordered_key(0xff800000u);         // -inf
  const int64_t kmax_finite = ordered_key(0x7f7fffffu);  // FLT_MAX
  const int64_t kinf = ordered_key(0x7f800000u);         // +inf
  auto code_at = [&](int64_t key) { return codec.encode(key_to_float(key)); };
  std::vector<int32_t> bounds;
  std::vector<int32_t> codes{static_cast<int32_t>(code_at(kmin))};
  auto add_step = [&](int64_t key) -> Status {
    bounds.push_back(static_cast<int32_t>(key));
    codes.push_back(static_cast<int32_t>(code_at(key)));
    if (codes.size() > num_codes(f) + 2) {
      return make_error("element format '{}': encoder is not monotone (more steps than codes)", f.name);
    }
    return Status::ok_status();
  };
  int64_t cur = kmin;
  while (code_at(kmax_finite) != static_cast<uint32_t>(codes.back())) {
    int64_t lo = cur, hi = kmax_finite;  // code_at(lo) == current, code_at(hi) != current
    while (hi - lo > 1) {
      const int64_t mid = lo + (hi - lo) / 2;
      (code_at(mid) == static_cast<uint32_t>(codes.back()) ? lo : hi) = mid;
    }
    LB_RETURN_IF_ERROR(add_step(hi));
    cur = hi;
  }
  if (code_at(kinf) != static_cast<uint32_t>(codes.back())) LB_RETURN_IF_ERROR(add_step(kinf));
  ThresholdTable t;
  t.size = 1;
  while (t.size < static_cast<int>(codes.size())) t.size *= 2;
  bounds.resize(t.size - 1, INT32_MAX);
  codes.resize(t.size, codes.back());
  t.bounds = std::move(bounds);
  t.codes = std::move(codes);
  t.nan_code = codec.encode(std::numeric_limits<float>::quiet_NaN());
  return t;
}

bool minifloat_fast_eligible(const MinifloatSpec& s) {
  return s.has_subnormals && 1 - s.bias >= -126;
}

MinifloatFast make_minifloat_fast(const ElementFormat& f, const MinifloatSpec& s) {
  MinifloatFast p;
  const int emin = 1 - s.bias;
  p.shift = 23 - s.mantissa_bits;
  p.round_bias = (1u << (p.shift - 1)) - 1u;
  p.rebias = static_cast<uint32_t>(127 - s.bias) << s.mantissa_bits;
  p.min_normal_bits = float_to_bits(std::ldexp(1.0f, emin));
  p.subnormal_magic = std::ldexp(1.0f, emin - s.mantissa_bits + 23);
  p.magic_bits = float_to_bits(p.subnormal_magic);
  p.has_sign = s.has_sign;
  p.sign_bit = s.has_sign ? 1u << (s.exponent_bits + s.mantissa_bits) : 0u;
  // The codec defines the codes; read max finite, inf and NaN back from it.
  const ElementCodec& c = *f.codec;
  p.max_mag = c.encode(f.max_finite);
  p.overflow_code = c.encode(std::numeric_limits<float>::infinity());
  p.nan_code = c.encode(std::numeric_limits<float>::quiet_NaN());
  return p;
}

uint32_t encode_minifloat_scalar(const MinifloatFast& p, float x) {
  const uint32_t u = float_to_bits(x);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return p.nan_code;
  uint32_t mag;
  if (a >= p.min_normal_bits) {
    mag = ((a + p.round_bias + ((a >> p.shift) & 1u)) >> p.shift) - p.rebias;
  } else {
    mag = float_to_bits(bits_to_float(a) + p.subnormal_magic) - p.magic_bits;
  }
  if (mag > p.max_mag) mag = p.overflow_code;
  if ((u >> 31) == 0) return mag;
  return p.has_sign ? (p.sign_bit | mag) : 0u;
}

uint32_t encode_thresholds_scalar(const ThresholdTable& t, float x) {
  if (std::isnan(x)) return t.nan_code;
  const int32_t key = ordered_key(float_to_bits(x));
  int pos = 0;
  for (int step = t.size / 2; step > 0; step /= 2) {
    pos += step & -static_cast<int>(t.bounds[pos + step - 1] <= key);
  }
  return static_cast<uint32_t>(t.codes[pos]);
}

template <typename Code>
void encode_generic(const ElementKernelData& d, const float* x, Code* codes, size_t n) {
  if (d.method == EncodeMethod::kMinifloat) {
    for (size_t i = 0; i < n; ++i) codes[i] = static_cast<Code>(encode_minifloat_scalar(d.minifloat, x[i]));
  } else if (d.method == EncodeMethod::kThresholds) {
    for (size_t i = 0; i < n; ++i) codes[i] = static_cast<Code>(encode_thresholds_scalar(d.thresholds, x[i]));
  } else {
    for (size_t i = 0; i < n; ++i) codes[i] = static_cast<Code>(d.format.codec->encode(x[i]));
  }
}

template <typename Code>
void decode_generic(const ElementKernelData& d, const Code* codes, float* y, size_t n) {
  const uint32_t mask = num_codes(d.format) - 1u;
  const float* table = d.decode_table.data();
  for (size_t i = 0; i < n; ++i) y[i] = table[codes[i] & mask];
}

bool runs_avx512(const ElementKernelData& d) { return d.isa == Isa::kAvx512; }

template <typename Code>
void encode_dispatch(const ElementKernelData& d, const float* x, Code* codes, size_t n) {
#ifdef LOWBIT_ARCH_X86
  if (runs_avx512(d) && d.method != EncodeMethod::kReference) {
    avx512::encode(d, x, codes, n);
    return;
  }
#endif
  encode_generic(d, x, codes, n);
}

template <typename Code>
void decode_dispatch(const ElementKernelData& d, const Code* codes, float* y, size_t n) {
#ifdef LOWBIT_ARCH_X86
  if (runs_avx512(d)) {
    avx512::decode(d, codes, y, n);
    return;
  }
#endif
  decode_generic(d, codes, y, n);
}

}  // namespace

Expected<ElementKernel> ElementKernel::create(const ElementFormat& format, Isa isa) {
  if (format.bits > 16) {
    return make_error("element kernel '{}': formats of at most 16 bits, got {}", format.name, format.bits);
  }
  if (!isa_supported(isa, detect_cpu_features())) {
    return make_error("element kernel '{}': ISA {} is not supported by this CPU", format.name, isa_name(isa));
  }
  auto d = std::make_shared<ElementKernelData>();
  d->format = format;
  d->isa = isa_includes(isa, Isa::kAvx512) ? Isa::kAvx512 : Isa::kGeneric;
  d->decode_table = decode_table(format);
  if (format.bits <= 8) {
    LB_ASSIGN_OR_RETURN(d->thresholds, build_thresholds(format));
  }
  d->method = format.bits <= 8 ? EncodeMethod::kThresholds : EncodeMethod::kReference;
  if (const auto* s = std::get_if<MinifloatSpec>(&format.params);
      s != nullptr && format.kind == ElementKind::kMinifloat && minifloat_fast_eligible(*s)) {
    d->minifloat = make_minifloat_fast(format, *s);
    d->method = EncodeMethod::kMinifloat;
  }
  if (const auto* s = std::get_if<IntSpec>(&format.params); s != nullptr && format.kind == ElementKind::kInteger) {
    d->integer = IntFast{static_cast<float>(s->min_value), static_cast<float>(s->max_value),
                         num_codes(format) - 1u};
    // The generic path keeps the threshold table for integers of <= 8 bits.
    if (runs_avx512(*d)) d->method = EncodeMethod::kInteger;
  }
  return ElementKernel(std::move(d));
}

Expected<ElementKernel> ElementKernel::create(const ElementFormat& format) {
  return create(format, active_isa());
}

void ElementKernel::encode(const float* x, uint8_t* codes, size_t n) const {
  assert(data_->format.bits <= 8);
  encode_dispatch(*data_, x, codes, n);
}
void ElementKernel::encode(const float* x, uint16_t* codes, size_t n) const { encode_dispatch(*data_, x, codes, n); }

void ElementKernel::decode(const uint8_t* codes, float* y, size_t n) const {
  assert(data_->format.bits <= 8);
  decode_dispatch(*data_, codes, y, n);
}
void ElementKernel::decode(const uint16_t* codes, float* y, size_t n) const { decode_dispatch(*data_, codes, y, n); }

const ElementFormat& ElementKernel::format() const { return data_->format; }
Isa ElementKernel::isa() const { return data_->isa; }

const char* ElementKernel::encode_method() const {
  switch (data_->method) {
    case EncodeMethod::kMinifloat: return "minifloat";
    case EncodeMethod::kInteger: return "integer";
    case EncodeMethod::kThresholds: return "thresholds";
    case EncodeMethod::kReference: return "reference";
  }
  return "?";
}

}  // namespace lowbit
