#include "model/llamacpp_linear.h"

#include <cblas.h>

#include <limits>

#include "formats/ggml_activations.h"

namespace lowbit {
namespace {

constexpr int64_t kQ8_1Block = 32;

const char* act_type_name(GgmlType weight) {
  const GgmlTypeTraits* t = find_ggml_type(static_cast<uint32_t>(weight));
  return t != nullptr ? find_ggml_act_type(t->act_type)->name + 5 : "?";  // "ggml_q8_1" -> "q8_1"
}

}  // namespace

Status LlamaCppLinear::check(const LinearGgmlStorage& storage, int64_t out, int64_t in) {
  const GgmlTypeTraits* traits = find_ggml_type(static_cast<uint32_t>(storage.type));
  const std::optional<ActQuantSpec> spec = llamacpp_act_spec(storage.type);
  if (traits == nullptr || !spec) {
    return make_error("llama.cpp arithmetic: weight type {} needs no activation rounding",
                      ggml_type_name(static_cast<uint32_t>(storage.type)));
  }
  const int64_t block = spec->granularity == ActGranularity::kGroup ? spec->group : 1;
  if (in % block != 0) {
    return make_error("llama.cpp arithmetic: {} activations need rows of a multiple of {}, the layer has {}",
                      spec->format, block, in);
  }
  const size_t mins = traits->min_offset >= 0 ? static_cast<size_t>(out * (in / kQ8_1Block)) : 0;
  if (storage.block_mins.size() != mins) {
    return make_error("llama.cpp arithmetic: a {} weight [{}, {}] needs {} block minimums, got {}", traits->name, out,
                      in, mins, storage.block_mins.size());
  }
  return Status::ok_status();
}

Expected<std::unique_ptr<LlamaCppLinear>> LlamaCppLinear::create(std::unique_ptr<Linear> inner,
                                                                 const LinearGgmlStorage& storage) {
  if (inner == nullptr) return make_error("llama.cpp arithmetic: no inner linear");
  LB_RETURN_IF_ERROR(check(storage, inner->out_features(), inner->in_features()));
  LB_ASSIGN_OR_RETURN(ActQuantizer rounding, ActQuantizer::create(*llamacpp_act_spec(storage.type)));
  return std::unique_ptr<LlamaCppLinear>(
      new LlamaCppLinear(std::move(inner), storage.type, std::move(rounding), storage.block_mins));
}

void LlamaCppLinear::forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const {
  const int64_t in = in_features();
  const int64_t out = out_features();
  std::vector<float> xq(static_cast<size_t>(n_tokens * in));  // [n_tokens, in]
  bool ok = rounding_.apply(x, n_tokens, in, xq.data(), 0.0f, &pool).ok();
  std::vector<float> e;  // [n_tokens, in / 32] Q8_1 block residuals
  const int64_t nb = in / kQ8_1Block;
  if (ok && !mins_.empty()) {
    e.resize(static_cast<size_t>(n_tokens * nb));
    for (int64_t t = 0; t < n_tokens && ok; ++t) ok = ggml_q8_1_sum_residuals(x + t * in, in, e.data() + t * nb).ok();
  }
  if (!ok) {
    std::fill(y, y + n_tokens * out, std::numeric_limits<float>::quiet_NaN());
    return;
  }
  inner_->forward(xq.data(), n_tokens, y, pool);
  if (!mins_.empty()) {
    // y[n_tokens, out] += e[n_tokens, nb] · m[out, nb]ᵀ
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_tokens), static_cast<int>(out),
                static_cast<int>(nb), 1.0f, e.data(), static_cast<int>(nb), mins_.data(), static_cast<int>(nb), 1.0f,
                y, static_cast<int>(out));
  }
}

std::string LlamaCppLinear::describe() const {
  return fmt::format("{} · llama.cpp {} x {}", inner_->describe(), ggml_type_name(static_cast<uint32_t>(type_)),
                     act_type_name(type_));
}

Status attach_llamacpp_arith(LlamaModel& model, const std::map<std::string, LinearGgmlStorage>& storage,
                             LlamaCppArithReport* report) {
  for (const std::string& name : model.linear_names()) {
    auto it = storage.find(name);
    if (it == storage.end() || !llamacpp_act_spec(it->second.type)) {
      if (report != nullptr) {
        ++(*report)[it == storage.end() ? "no GGUF type (exact)"
                                        : ggml_type_name(static_cast<uint32_t>(it->second.type)) + " (exact)"];
      }
      continue;
    }
    Linear* current = model.find_linear(name);
    if (current == nullptr) return make_error("llama.cpp arithmetic for '{}': the model has no such layer", name);
    const Status valid = LlamaCppLinear::check(it->second, current->out_features(), current->in_features());
    if (!valid.ok()) return valid.with_context("linear '" + name + "'");
    // Checked above, so building the wrapper cannot fail.
    LB_RETURN_IF_ERROR(model.wrap_linear(name, [&](std::unique_ptr<Linear> inner) -> std::unique_ptr<Linear> {
      return std::move(LlamaCppLinear::create(std::move(inner), it->second)).value();
    }));
    if (report != nullptr) {
      ++(*report)[fmt::format("{} x {}", ggml_type_name(static_cast<uint32_t>(it->second.type)),
                              act_type_name(it->second.type))];
    }
  }
  return Status::ok_status();
}

}  // namespace lowbit
