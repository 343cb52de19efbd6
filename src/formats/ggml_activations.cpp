#include "formats/ggml_activations.h"

#include <algorithm>
#include <cmath>

#include "core/half.h"

namespace lowbit {
namespace {

constexpr int64_t kQ8_0Block = 32;
constexpr int64_t kQ8_KBlock = 256;

// Round to nearest, ties to even (the default FP environment; _mm256_round_ps with
// _MM_ROUND_NEAREST and ggml's nearest_int both round this way).
float rne(float v) { return std::nearbyint(v); }

// max |x| over one block of n.
float block_amax(const float* x, int64_t n) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  return amax;
}

}  // namespace

const std::vector<GgmlActType>& ggml_act_types() {
  static const std::vector<GgmlActType> kTypes = {
      {GgmlType::F32, "ggml_f32", 1, 32.0},
      {GgmlType::F16, "ggml_f16", 1, 16.0},
      {GgmlType::BF16, "ggml_bf16", 1, 16.0},
      {GgmlType::Q8_0, "ggml_q8_0", kQ8_0Block, 8.0 * 34 / 32},
      {GgmlType::Q8_1, "ggml_q8_1", kQ8_0Block, 8.0 * 36 / 32},
      {GgmlType::Q8_K, "ggml_q8_K", kQ8_KBlock, 8.0 * 292 / 256},
  };
  return kTypes;
}

const GgmlActType* find_ggml_act_type(GgmlType type) {
  for (const GgmlActType& t : ggml_act_types()) {
    if (t.type == type) return &t;
  }
  return nullptr;
}

const GgmlActType* find_ggml_act_type(std::string_view name) {
  for (const GgmlActType& t : ggml_act_types()) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

void ggml_q8_0_encode(const float* x, uint16_t* d_fp16, int8_t* q) {
  const float amax = block_amax(x, kQ8_0Block);
  const float d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  *d_fp16 = float_to_fp16(d);
  // |x · id| <= 127 up to one rounding of the product, so the code fits int8.
  for (int64_t i = 0; i < kQ8_0Block; ++i) q[i] = static_cast<int8_t>(rne(x[i] * id));
}

void ggml_q8_1_encode(const float* x, uint16_t* d_fp16, uint16_t* s_fp16, int8_t* q) {
  ggml_q8_0_encode(x, d_fp16, q);
  const float d = block_amax(x, kQ8_0Block) / 127.0f;  // the FP32 d the codes came from
  int sum = 0;
  for (int64_t i = 0; i < kQ8_0Block; ++i) sum += q[i];
  *s_fp16 = float_to_fp16(d * static_cast<float>(sum));
}

Status ggml_q8_1_sum_residuals(const float* x, int64_t n, float* e) {
  if (n % kQ8_0Block != 0) {
    return make_error("ggml_q8_1 activations: row length {} is not a multiple of the block size {}", n, kQ8_0Block);
  }
  int8_t q[kQ8_0Block];
  for (int64_t b = 0; b < n; b += kQ8_0Block) {
    for (int64_t i = 0; i < kQ8_0Block; ++i) {
      if (!std::isfinite(x[b + i])) return make_error("ggml_q8_1 activations: non-finite value at index {}", b + i);
    }
    uint16_t d = 0, s = 0;
    ggml_q8_1_encode(x + b, &d, &s, q);
    int sum = 0;
    for (int64_t i = 0; i < kQ8_0Block; ++i) sum += q[i];
    e[b / kQ8_0Block] = fp16_to_float(s) - fp16_to_float(d) * static_cast<float>(sum);
  }
  return Status::ok_status();
}

void ggml_q8_K_encode(const float* x, float* d, int8_t* q) {
  float amax = 0.0f;
  float max = 0.0f;  // the signed element of largest magnitude, the first on ties
  for (int64_t i = 0; i < kQ8_KBlock; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax == 0.0f) {
    *d = 0.0f;
    std::fill(q, q + kQ8_KBlock, int8_t{0});
    return;
  }
  const float iscale = -127.0f / max;
  for (int64_t i = 0; i < kQ8_KBlock; ++i) {
    q[i] = static_cast<int8_t>(std::min(127.0f, rne(iscale * x[i])));
  }
  *d = 1.0f / iscale;
}

Status ggml_round_activations(const GgmlActType& type, const float* x, int64_t n, float* out) {
  if (n % type.block_size != 0) {
    return make_error("{} activations: row length {} is not a multiple of the block size {}", type.name, n,
                      type.block_size);
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return make_error("{} activations: non-finite value at index {}", type.name, i);
  }
  switch (type.type) {
    case GgmlType::F32:
      std::copy(x, x + n, out);
      return Status::ok_status();
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_float(float_to_fp16(x[i]));
      return Status::ok_status();
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(float_to_bf16(x[i]));
      return Status::ok_status();
    case GgmlType::Q8_0:
    case GgmlType::Q8_1: {
      int8_t q[kQ8_0Block];
      for (int64_t b = 0; b < n; b += kQ8_0Block) {
        uint16_t d = 0;
        ggml_q8_0_encode(x + b, &d, q);
        const float df = fp16_to_float(d);
        for (int64_t i = 0; i < kQ8_0Block; ++i) out[b + i] = df * static_cast<float>(q[i]);
      }
      return Status::ok_status();
    }
    case GgmlType::Q8_K: {
      int8_t q[kQ8_KBlock];
      for (int64_t b = 0; b < n; b += kQ8_KBlock) {
        float d = 0.0f;
        ggml_q8_K_encode(x + b, &d, q);
        for (int64_t i = 0; i < kQ8_KBlock; ++i) out[b + i] = d * static_cast<float>(q[i]);
      }
      return Status::ok_status();
    }
    default: break;
  }
  return make_error("{}: not an activation type", type.name);
}

}  // namespace lowbit
