#include "model/packed_linear.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#include "kernels/amx_gemm.h"

namespace lowbit {

PackedLinear::PackedLinear(std::shared_ptr<const PackedMatrix> w, std::vector<float> bias, std::string label,
                           const LinearKernel* kernel, const LinearActivation& act)
    : storage_(std::move(w)), w_(*storage_), bias_(std::move(bias)), label_(std::move(label)), kernel_(kernel),
      act_(act) {
  if (kernel_->w8a8.gemm != nullptr) rowsum_ = int8_row_sums(w_);
}

Expected<std::unique_ptr<PackedLinear>> PackedLinear::create(PackedMatrix weight, std::vector<float> bias,
                                                             std::string label, const LinearActivation& act, Isa isa) {
  return create_shared(std::make_shared<const PackedMatrix>(std::move(weight)), std::move(bias), std::move(label), act,
                       isa);
}

Expected<std::unique_ptr<PackedLinear>> PackedLinear::create_shared(std::shared_ptr<const PackedMatrix> weight,
                                                                    std::vector<float> bias, std::string label,
                                                                    const LinearActivation& act, Isa isa) {
  if (weight == nullptr) return make_error("packed linear '{}': no matrix", label);
  LB_RETURN_IF_ERROR(weight->validate());
  if (!bias.empty() && static_cast<int64_t>(bias.size()) != weight->rows) {
    return make_error("packed linear: bias has {} values for {} rows", bias.size(), weight->rows);
  }
  const float t = act.rule.static_threshold;
  if (act.format != ActFormat::kFp32 && (!(t >= 0.0f) || !std::isfinite(t) || !(act.rule.clip > 0.0f))) {
    return make_error("{}: per-tensor static activation threshold {} must be positive and finite (clip {})", label, t,
                      act.rule.clip);
  }
  if (act.format == ActFormat::kInt4 && !w4a4_supported(*weight, act.group)) {
    return make_error("{}: W4A4 needs integer 4-bit groups cut into sub-blocks of 16k columns (weight group {}, act "
                      "group {})",
                      label, weight->group, act.group);
  }
  const LinearKernel* k = find_linear_kernel(*weight, act.format, isa);
  if (k == nullptr) {
    return make_error("{}: no kernel for {} activations on the {} weight layout", label, act_format_name(act.format),
                      packed_kind_name(weight->kind));
  }
  return std::unique_ptr<PackedLinear>(new PackedLinear(std::move(weight), std::move(bias), std::move(label), k, act));
}

Expected<std::unique_ptr<PackedLinear>> PackedLinear::with_activation(const LinearActivation& act, Isa isa) const {
  return create_shared(storage_, bias_, label_, act, isa);
}

uint64_t PackedLinear::weight_bytes() const { return w_.storage_bytes() + bias_.size() * sizeof(float); }

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

Expected<LinearActivation> PackedLinear::integer_activation(const PackedMatrix& w, const ActQuantAttachment& act) {
  const std::string why = integer_act_unsupported(w, act);
  if (!why.empty()) return make_error("{}", why);
  if (act.spec.is_static() && !(act.static_threshold > 0.0f && std::isfinite(act.static_threshold))) {
    return make_error("per-tensor static activation threshold {} must be positive and finite", act.static_threshold);
  }
  LinearActivation a;
  a.format = act.spec.format == "int4" ? ActFormat::kInt4 : ActFormat::kInt8;
  a.rule.clip = act.spec.clip;
  a.rule.static_threshold = act.spec.is_static() ? act.static_threshold : 0.0f;
  a.group = a.format == ActFormat::kInt4 && act.spec.granularity == ActGranularity::kGroup ? act.spec.group : 0;
  return a;
}

void PackedLinear::int4_forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const {
  Int4Activations a;  // [n_tokens, cols_padded / 2] packed INT4, shared read-only by the threads
  quantize_activations_int4(x, n_tokens, w_.cols, w_.cols_padded, act_.group, act_.rule, a);
  const std::vector<int32_t> qsum = w4a4_block_sums(w_, a);
  const int64_t out = w_.rows;
  const W4A4Fn gemm = kernel_->w4a4;
  pool.parallel_for(out, [&](int64_t r0, int64_t r1, int) { gemm(w_, a, qsum, r0, r1, y + r0, out); });
}

void PackedLinear::int8_forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const {
  const LinearKernel& k = *kernel_;
  const bool amx = k.gemm_min_tokens > 0 && n_tokens >= k.gemm_min_tokens;
  const bool w8a8 = k.w8a8.gemm != nullptr;
  // Per token with clip 1: the entry's quantizer; a static T or a clip: the portable one (the same codes).
  const bool default_rule = act_.rule.static_threshold == 0.0f && act_.rule.clip == 1.0f;
  // Shared read-only by the threads once filled (one parallel pass over tokens):
  Int8Activations a;          // [n_tokens, cols_padded] per-token INT8
  std::vector<int32_t> qsum;  // W4A8: [n_tokens, n_groups]
  AmxActivations xa;          // AMX: [tokens_padded, k_padded] signed q
  reserve_int8_activations(n_tokens, w_.cols_padded, a);
  if (!w8a8) qsum.resize(static_cast<size_t>(n_tokens * w_.n_groups()));
  if (amx) reserve_amx_activations(n_tokens, w_.cols_padded, xa);
  pool.parallel_for(n_tokens, [&](int64_t t0, int64_t t1, int) {
    if (default_rule) {
      k.quantize_rows(x, w_.cols, t0, t1, a);
    } else {
      quantize_rows_int8_rule(x, w_.cols, t0, t1, act_.rule, a);
    }
    if (!qsum.empty()) k.group_sums(w_, a, t0, t1, qsum.data());
    if (amx) amx_activation_rows(a, t0, t1, xa);
  });
  const int64_t out = w_.rows;
  if (amx) {
    // Threads take whole 32-row blocks so that no block is padded twice.
    const int64_t blocks = (out + kAmxRowBlock - 1) / kAmxRowBlock;
    pool.parallel_for(blocks, [&](int64_t b0, int64_t b1, int) {
      const int64_t r0 = b0 * kAmxRowBlock, r1 = std::min(out, b1 * kAmxRowBlock);
      if (w8a8) {
        k.amx_w8a8(w_, xa, r0, r1, y + r0, out);
      } else {
        k.amx_w4a8(w_, xa, qsum, r0, r1, y + r0, out);
      }
    });
  } else if (w8a8) {
    pool.parallel_for(out, [&](int64_t r0, int64_t r1, int) { k.w8a8.gemm(w_, rowsum_, a, r0, r1, y + r0, out); });
  } else {
    pool.parallel_for(out, [&](int64_t r0, int64_t r1, int) { k.w4a8(w_, a, qsum, r0, r1, y + r0, out); });
  }
}

namespace {

// Rows per work item of a decode GEMV: at least 64 and at most 64 items per
// layer, a multiple of 16 (the kernels take rows in pairs and fours). The
// boundaries depend on the row count only, never on the thread count.
int64_t gemv_item_rows(int64_t rows) { return std::max<int64_t>(64, (rows / 64 + 15) / 16 * 16); }

// The decode GEMVs of ws[i] into ys[i] on the prepared activation a. The work
// items, (layer, first row) in order, go through one shared counter, so a
// thread whose core or memory path is slower takes fewer (a fixed half each
// left the faster core waiting 4% of a w3-tcq token). Every row is computed by
// the same kernel code whichever thread takes it.
void gemv_by_items(const PackedKernels& k, const PackedActivation& a, std::span<const PackedMatrix* const> ws,
                   std::span<float* const> ys, ThreadPool& pool) {
  std::vector<std::pair<size_t, int64_t>> items;
  for (size_t i = 0; i < ws.size(); ++i) {
    const int64_t rows = ws[i]->rows, step = gemv_item_rows(rows);
    for (int64_t r = 0; r < rows; r += step) items.emplace_back(i, r);
  }
  const auto n_items = static_cast<int64_t>(items.size());
  std::atomic<int64_t> next{0};
  pool.parallel_for(std::min<int64_t>(pool.size(), n_items), [&](int64_t, int64_t, int) {
    for (int64_t j = next.fetch_add(1, std::memory_order_relaxed); j < n_items;
         j = next.fetch_add(1, std::memory_order_relaxed)) {
      const auto [i, r0] = items[static_cast<size_t>(j)];
      const PackedMatrix& w = *ws[i];
      k.gemv(w, a, r0, std::min(w.rows, r0 + gemv_item_rows(w.rows)), ys[i] + r0);
    }
  });
}

}  // namespace

void PackedLinear::gemv(const float* x, float* y, ThreadPool& pool) const {
  const PackedKernels& k = kernel_->fp;
  PackedActivation a;  // [cols_padded] (+ group sums), shared read-only by the threads
  prepare_activation(w_, x, a, k.prepare_fixed16);
  const PackedMatrix* w = &w_;
  gemv_by_items(k, a, {&w, 1}, {&y, 1}, pool);
}

bool PackedLinear::shares_decode_input(const PackedLinear& other) const {
  const PackedMatrix &a = w_, &b = other.w_;
  return act_.format == ActFormat::kFp32 && kernel_ == other.kernel_ && a.kind == b.kind && a.cols == b.cols &&
         a.cols_padded == b.cols_padded && a.group == b.group && a.asymmetric == b.asymmetric &&
         a.bf16_scales == b.bf16_scales && a.code_bits == b.code_bits && std::equal(a.lut, a.lut + 16, b.lut) &&
         a.salient_padded == b.salient_padded && a.col_pos == b.col_pos;
}

void PackedLinear::gemv_shared_input(std::span<const PackedLinear* const> linears, const float* x,
                                     std::span<float* const> ys, ThreadPool& pool) {
  if (linears.empty()) return;
  const PackedLinear& first = *linears[0];
  const PackedKernels& k = first.kernel_->fp;
  PackedActivation a;  // [cols_padded] (+ group sums), shared read-only by the threads
  prepare_activation(first.w_, x, a, k.prepare_fixed16);
  std::vector<const PackedMatrix*> ws;  // every layer's rows in one queue, gemv()'s row blocks
  for (const PackedLinear* l : linears) ws.push_back(&l->w_);
  gemv_by_items(k, a, ws, ys, pool);
  for (size_t i = 0; i < linears.size(); ++i) {
    add_row_bias(ys[i], 1, linears[i]->bias_);
  }
}

void PackedLinear::gemm(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const {
  const int64_t rows = w_.rows, cols = w_.cols;
  // Tile height: about kTileBytes of FP32, a multiple of 16 rows.
  const int64_t tile = std::min(rows, std::max<int64_t>(16, kTileBytes / (4 * std::max<int64_t>(1, cols)) / 16 * 16));
  std::vector<float> buf(static_cast<size_t>(tile * cols));  // [tile, cols] dequantized rows
  for (int64_t r0 = 0; r0 < rows; r0 += tile) {
    const int64_t tr = std::min(tile, rows - r0);
    pool.parallel_for(tr, [&](int64_t b, int64_t e, int) {
      kernel_->fp.dequantize_rows(w_, r0 + b, r0 + e, buf.data() + b * cols);
    });
    // y[:, r0:r0+tr] = x[n, cols] · tile[tr, cols]ᵀ
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_tokens), static_cast<int>(tr),
                static_cast<int>(cols), 1.0f, x, static_cast<int>(cols), buf.data(), static_cast<int>(cols), 0.0f,
                y + r0, static_cast<int>(rows));
  }
}

void PackedLinear::forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const {
  const int64_t in = w_.cols, out = w_.rows;
  if (act_.format == ActFormat::kInt8) {
    int8_forward(x, n_tokens, y, pool);
  } else if (act_.format == ActFormat::kInt4) {
    int4_forward(x, n_tokens, y, pool);
  } else if (n_tokens < kernel_->gemm_min_tokens) {
    for (int64_t t = 0; t < n_tokens; ++t) gemv(x + t * in, y + t * out, pool);
  } else {
    gemm(x, n_tokens, y, pool);
  }
  add_row_bias(y, n_tokens, bias_);
}

}  // namespace lowbit
