// The products a model's decoder blocks compute with, for measuring what an
// arithmetic costs in quality (`ppl --arith`, docs/EVALUATION.md): every linear of
// every block and the prompt attention's two products (q·kᵀ and P·V) take the
// arithmetic's products with FP32 sums; norms, RoPE, softmax, SiLU, the residual
// adds, the embedding and lm_head stay FP32.
//   bf16: operands rounded to BF16, exact products (Bf16Linear, attention_bf16)
//   fp8:  operands rounded to E4M3 (saturating at ±448), exact products (ApproxLinear, attention_approx)
//   lmul: L-Mul on operands with m-bit mantissas (kernels/lmul.h; ApproxLinear, attention_approx)
// The linears must be FP32 matrices (DenseLinear): the arithmetic replaces the
// product, not a quantized weight's decode.
#pragma once

#include <span>

#include "core/status.h"
#include "kernels/cpu_features.h"
#include "model/llama_model.h"

namespace lowbit {

enum class ProductKind { kBf16, kFp8E4m3, kLmul };

struct ProductArithmetic {
  ProductKind kind = ProductKind::kLmul;
  int lmul_mantissa = 3;  // m of L-Mul's operands, [1, 23]
  Isa isa = Isa::kGeneric;
};

// The arithmetics by name, for the CLI's choices and help ("bf16", "fp8", "lmul").
struct ProductKindInfo {
  const char* name;
  ProductKind kind;
  const char* help;
};
std::span<const ProductKindInfo> product_kinds();
// The entry of that name, null when none.
const ProductKindInfo* find_product_kind(const std::string& name);

// The kernel the products run (for --verbose): "bf16 (avx512bf16)", "lmul/avx512", ...
std::string product_kernel_name(const ProductArithmetic& arith);

// Replaces every decoder linear of `model` and sets its prompt attention. An error
// names the first linear that is not an FP32 matrix, or an out-of-range m.
Status attach_product_arithmetic(LlamaModel& model, const ProductArithmetic& arith);

}  // namespace lowbit
