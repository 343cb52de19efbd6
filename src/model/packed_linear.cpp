#include "model/packed_linear.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "kernels/amx_gemm.h"

namespace lowbit {

Expected<std::unique_ptr<PackedLinear>> PackedLinear::create(PackedMatrix weight, std::vector<float> bias,
                                                             std::string label, Isa isa) {
  return create_shared(std::make_shared<const PackedMatrix>(std::move(weight)), std::move(bias), std::move(label), isa);
}

Expected<std::unique_ptr<PackedLinear>> PackedLinear::create_shared(std::shared_ptr<const PackedMatrix> weight,
                                                                    std::vector<float> bias, std::string label,
                                                                    Isa isa) {
  if (weight == nullptr) return make_error("packed linear '{}': no matrix", label);
  LB_RETURN_IF_ERROR(weight->validate());
  if (!bias.empty() && static_cast<int64_t>(bias.size()) != weight->rows) {
    return make_error("packed linear: bias has {} values for {} rows", bias.size(), weight->rows);
  }
  const PackedKernels k = packed_kernels(weight->kind, isa);
  return std::unique_ptr<PackedLinear>(new PackedLinear(std::move(weight), std::move(bias), std::move(label), k));
}

uint64_t PackedLinear::weight_bytes() const { return w_.storage_bytes() + bias_.size() * sizeof(float); }

std::string PackedLinear::kernel_name() const { return int8_act_ ? int_name_ : kernels_.name; }

std::string PackedLinear::describe() const { return label_ + " packed " + kernel_name(); }

std::string PackedLinear::integer_act_unsupported(const PackedMatrix& w, const ActQuantAttachment& act) {
  const ActQuantSpec& s = act.spec;
  if (s.format == "int4") {
    if (!w4a8_supported(w, nullptr)) {
      return fmt::format("no W4A4 kernel for the {} weight layout (integer 4-bit groups only)",
                         packed_kind_name(w.kind));
    }
    const int64_t group = s.granularity == ActGranularity::kGroup ? s.group : 0;
    if (!w4a4_supported(w, group)) {
      return fmt::format("W4A4 needs sub-blocks of 16k columns (weight group {}, act group {})", w.group, s.group);
    }
    return "";
  }
  if (s.format != "int8") return fmt::format("no integer kernel for {} activations", s.format);
  if (s.granularity == ActGranularity::kGroup) return "no integer kernel for per-group int8 activations";
  if (w.kind != PackedKind::kInt8Row && !w4a8_supported(w, nullptr)) {
    return fmt::format("no integer-activation kernel for the {} weight layout", packed_kind_name(w.kind));
  }
  return "";
}

Status PackedLinear::enable_integer_activations(const ActQuantAttachment& act, Isa isa) {
  const std::string why = integer_act_unsupported(w_, act);
  if (!why.empty()) return make_error("{}: {}", label_, why);
  if (act.spec.is_static() && !(act.static_threshold > 0.0f && std::isfinite(act.static_threshold))) {
    return make_error("{}: per-tensor static activation threshold {} must be positive and finite", label_,
                      act.static_threshold);
  }
  if (act.spec.format == "int4") {
    int8_act_ = true;
    w4a4_ = w4a4_kernel(isa);
    int_name_ = w4a4_kernel_name(isa);
    act_group_ = act.spec.granularity == ActGranularity::kGroup ? act.spec.group : 0;
  } else {
    LB_RETURN_IF_ERROR(enable_int8_activations(isa));
  }
  act_rule_.clip = act.spec.clip;
  act_rule_.static_threshold = act.spec.is_static() ? act.static_threshold : 0.0f;
  return Status::ok_status();
}

Status PackedLinear::enable_int8_activations(Isa isa) {
  if (w_.kind == PackedKind::kInt8Row) {
    rowsum_ = int8_row_sums(w_);
    w8a8_ = w8a8_kernels(isa);
    amx_min_tokens_ = isa >= Isa::kAmx ? kAmxMinTokensW8A8 : 0;
    // AMX for prompts, VNNI below kAmxMinTokensW8A8.
    int_name_ = amx_min_tokens_ > 0 ? "w8a8/amx+avx512vnni" : w8a8_.name;
  } else if (w4a8_supported(w_, nullptr)) {
    w4a8_ = w4a8_kernel(isa);
    group_sums_ = group_activation_sums_kernel(isa);
    amx_min_tokens_ = isa >= Isa::kAmx && w4a8_amx_supported(w_) ? kAmxMinTokensW4A8 : 0;
    int_name_ = isa >= Isa::kAvx512Vnni ? "w4a8/avx512vnni" : "w4a8/reference";
    if (amx_min_tokens_ > 0) int_name_ = "w4a8/amx+avx512vnni";
  } else {
    return make_error("{}: no integer-activation kernel for the {} layout", label_, packed_kind_name(w_.kind));
  }
  quantize_rows_ = quantize_rows_int8(isa);
  int8_act_ = true;
  act_rule_ = {};
  w4a4_ = nullptr;
  return Status::ok_status();
}

void PackedLinear::w4a4_forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const {
  Int4Activations a;  // [n_tokens, cols_padded / 2] packed INT4, shared read-only by the threads
  quantize_activations_int4(x, n_tokens, w_.cols, w_.cols_padded, act_group_, act_rule_, a);
  const std::vector<int32_t> qsum = w4a4_block_sums(w_, a);
  const int64_t out = w_.rows;
  pool.parallel_for(out, [&](int64_t r0, int64_t r1, int) { w4a4_(w_, a, qsum, r0, r1, y + r0, out); });
}

void PackedLinear::integer_forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const {
  if (w4a4_ != nullptr) return w4a4_forward(x, n_tokens, y, pool);
  const bool amx = amx_min_tokens_ > 0 && n_tokens >= amx_min_tokens_;
  // Shared read-only by the threads once filled (one parallel pass over tokens):
  Int8Activations a;          // [n_tokens, cols_padded] per-token INT8
  std::vector<int32_t> qsum;  // W4A8: [n_tokens, n_groups]
  AmxActivations xa;          // AMX: [tokens_padded, k_padded] signed q
  reserve_int8_activations(n_tokens, w_.cols_padded, a);
  if (w_.kind != PackedKind::kInt8Row) qsum.resize(static_cast<size_t>(n_tokens * w_.n_groups()));
  if (amx) reserve_amx_activations(n_tokens, w_.cols_padded, xa);
  pool.parallel_for(n_tokens, [&](int64_t t0, int64_t t1, int) {
    if (act_rule_.static_threshold > 0.0f || act_rule_.clip != 1.0f) {
      quantize_rows_int8_rule(x, w_.cols, t0, t1, act_rule_, a);  // static T or a clip: the portable quantizer
    } else {
      quantize_rows_(x, w_.cols, t0, t1, a);
    }
    if (!qsum.empty()) group_sums_(w_, a, t0, t1, qsum.data());
    if (amx) amx_activation_rows(a, t0, t1, xa);
  });
  const int64_t out = w_.rows;
  if (amx) {
    // Threads take whole 32-row blocks so that no block is padded twice.
    const int64_t blocks = (out + kAmxRowBlock - 1) / kAmxRowBlock;
    pool.parallel_for(blocks, [&](int64_t b0, int64_t b1, int) {
      const int64_t r0 = b0 * kAmxRowBlock, r1 = std::min(out, b1 * kAmxRowBlock);
      if (w_.kind == PackedKind::kInt8Row) {
        w8a8_amx(w_, xa, r0, r1, y + r0, out);
      } else {
        w4a8_amx(w_, xa, qsum, r0, r1, y + r0, out);
      }
    });
  } else if (w_.kind == PackedKind::kInt8Row) {
    pool.parallel_for(out, [&](int64_t r0, int64_t r1, int) { w8a8_.gemm(w_, rowsum_, a, r0, r1, y + r0, out); });
  } else {
    pool.parallel_for(out, [&](int64_t r0, int64_t r1, int) { w4a8_(w_, a, qsum, r0, r1, y + r0, out); });
  }
}

void PackedLinear::gemv(const float* x, float* y, ThreadPool& pool) const {
  PackedActivation a;  // [cols_padded] (+ group sums), shared read-only by the threads
  prepare_activation(w_, x, a, kernels_.prepare_fixed16);
  pool.parallel_for(w_.rows, [&](int64_t r0, int64_t r1, int) { kernels_.gemv(w_, a, r0, r1, y + r0); });
}

bool PackedLinear::shares_decode_input(const PackedLinear& other) const {
  const PackedMatrix &a = w_, &b = other.w_;
  return !int8_act_ && !other.int8_act_ && kernels_.gemv == other.kernels_.gemv &&
         kernels_.prepare_fixed16 == other.kernels_.prepare_fixed16 && a.kind == b.kind && a.cols == b.cols &&
         a.cols_padded == b.cols_padded && a.group == b.group && a.asymmetric == b.asymmetric &&
         a.bf16_scales == b.bf16_scales && a.code_bits == b.code_bits && std::equal(a.lut, a.lut + 16, b.lut);
}

void PackedLinear::gemv_shared_input(std::span<const PackedLinear* const> linears, const float* x,
                                     std::span<float* const> ys, ThreadPool& pool) {
  if (linears.empty()) return;
  const PackedLinear& first = *linears[0];
  PackedActivation a;  // [cols_padded] (+ group sums), shared read-only by the threads
  prepare_activation(first.w_, x, a, first.kernels_.prepare_fixed16);
  // Thread t takes share t of every layer, the rows parallel_for would give it:
  // the threads stay balanced (a split of the stacked rows left one thread
  // with the ends of three layers: 1% slower per TinyLlama layer).
  const int threads = pool.size();
  pool.parallel_for(threads, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) {
      for (size_t i = 0; i < linears.size(); ++i) {
        const int64_t rows = linears[i]->w_.rows, share = (rows + threads - 1) / threads;
        const int64_t b = std::min(rows, share * t), e = std::min(rows, b + share);
        if (b < e) first.kernels_.gemv(linears[i]->w_, a, b, e, ys[i] + b);
      }
    }
  });
  for (size_t i = 0; i < linears.size(); ++i) {
    const std::vector<float>& bias = linears[i]->bias_;
    for (size_t o = 0; o < bias.size(); ++o) ys[i][o] += bias[o];
  }
}

void PackedLinear::gemm(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const {
  const int64_t rows = w_.rows, cols = w_.cols;
  // Tile height: about kTileBytes of FP32, a multiple of 16 rows.
  const int64_t tile = std::min(rows, std::max<int64_t>(16, kTileBytes / (4 * std::max<int64_t>(1, cols)) / 16 * 16));
  std::vector<float> buf(static_cast<size_t>(tile * cols));  // [tile, cols] dequantized rows
  for (int64_t r0 = 0; r0 < rows; r0 += tile) {
    const int64_t tr = std::min(tile, rows - r0);
    pool.parallel_for(tr, [&](int64_t b, int64_t e, int) { kernels_.dequantize_rows(w_, r0 + b, r0 + e, buf.data() + b * cols); });
    // y[:, r0:r0+tr] = x[n, cols] · tile[tr, cols]ᵀ
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_tokens), static_cast<int>(tr),
                static_cast<int>(cols), 1.0f, x, static_cast<int>(cols), buf.data(), static_cast<int>(cols), 0.0f,
                y + r0, static_cast<int>(rows));
  }
}

void PackedLinear::forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const {
  const int64_t in = w_.cols, out = w_.rows;
  if (int8_act_) {
    integer_forward(x, n_tokens, y, pool);
  } else if (n_tokens < kGemvMaxTokens) {
    for (int64_t t = 0; t < n_tokens; ++t) gemv(x + t * in, y + t * out, pool);
  } else {
    gemm(x, n_tokens, y, pool);
  }
  if (bias_.empty()) return;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t o = 0; o < out; ++o) y[t * out + o] += bias_[o];
  }
}

}  // namespace lowbit
