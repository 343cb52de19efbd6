#include "model/product_arithmetic.h"

#include <fmt/format.h>

#include <array>
#include <memory>
#include <string>

#include "kernels/approx_gemm.h"
#include "kernels/lmul.h"
#include "model/approx_linear.h"
#include "model/attention_approx.h"
#include "model/bf16_linear.h"

namespace lowbit {
namespace {

ApproxArith approx_arith(const ProductArithmetic& a) {
  return {a.kind == ProductKind::kLmul ? ApproxProduct::kLmul : ApproxProduct::kFp8E4m3, a.lmul_mantissa};
}

}  // namespace

std::span<const ProductKindInfo> product_kinds() {
  static const std::array<ProductKindInfo, 3> table = {{
      {"bf16", ProductKind::kBf16, "operands rounded to BF16, exact products"},
      {"fp8", ProductKind::kFp8E4m3, "operands rounded to FP8 E4M3 (saturating at 448), exact products"},
      {"lmul", ProductKind::kLmul, "L-Mul (Luo & Sun 2024) on operands with --lmul-mantissa bits"},
  }};
  return table;
}

const ProductKindInfo* find_product_kind(const std::string& name) {
  for (const ProductKindInfo& k : product_kinds()) {
    if (name == k.name) return &k;
  }
  return nullptr;
}

std::string product_kernel_name(const ProductArithmetic& arith) {
  if (arith.kind == ProductKind::kBf16) {
    return bf16_micro_kernel_for(arith.isa) == &bf16_micro_kernel_reference ? "bf16/generic" : "bf16/avx512bf16";
  }
  return find_approx_dot_kernel(approx_arith(arith).product, arith.isa).name;
}

Status attach_product_arithmetic(LlamaModel& model, const ProductArithmetic& arith) {
  if (arith.kind == ProductKind::kLmul && (arith.lmul_mantissa < 1 || arith.lmul_mantissa > kLmulMaxMantissa)) {
    return make_error("L-Mul mantissa bits {}: expected 1 to {}", arith.lmul_mantissa, kLmulMaxMantissa);
  }
  const ApproxArith approx = approx_arith(arith);
  const Isa isa = arith.isa;
  for (const std::string& name : model.linear_names()) {
    if (name.rfind("layers.", 0) != 0) continue;  // the blocks' linears, not lm_head
    const Linear* layer = model.find_linear(name);
    const Matrix* m = layer->dense_matrix();
    if (m == nullptr) {
      return make_error("linear '{}' is {}, not an FP32 matrix: the product arithmetic needs FP32 weights", name,
                        layer->describe());
    }
    std::unique_ptr<Linear> replacement;
    if (arith.kind == ProductKind::kBf16) {
      replacement = std::make_unique<Bf16Linear>(*m, isa);
    } else {
      replacement = std::make_unique<ApproxLinear>(*m, approx, isa);
    }
    LB_RETURN_IF_ERROR(model.replace_linear(name, std::move(replacement)));
  }
  if (arith.kind == ProductKind::kBf16) {
    model.set_prompt_attention(bf16_prompt_attention(isa));
  } else {
    model.set_prompt_attention([approx, isa](const ModelConfig& c, const float* q, int n, int pos, const float* k,
                                             const float* v, float* out, ThreadPool& pool) {
      attention_approx(c, q, n, pos, k, v, out, pool, approx, isa);
    });
  }
  return Status::ok_status();
}

}  // namespace lowbit
