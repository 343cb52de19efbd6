#include "pipeline/layer_quantizer.h"

#include <chrono>
#include <deque>
#include <map>
#include <set>

#include "model/act_quant_linear.h"
#include "model/bf16_linear.h"
#include "model/decoder_block.h"
#include "model/online_hadamard_linear.h"
#include "model/quantized_linear.h"
#include "pipeline/activation_capture.h"
#include "pipeline/awq_fold.h"
#include "pipeline/linear_quantizer.h"
#include "pipeline/outlier_migration.h"
#include "pipeline/rotated_observer.h"
#include "quant/quantizers.h"

namespace lowbit {
namespace {

// The forward-order phases of step 3; the first linear of each is its input's leader.
const std::vector<std::vector<std::string>> kPhases = {
    {"q_proj", "k_proj", "v_proj"}, {"o_proj"}, {"gate_proj", "up_proj"}, {"down_proj"}};
constexpr AwqGroup kPhaseGroups[] = {AwqGroup::kQkv, AwqGroup::kOut, AwqGroup::kGateUp, AwqGroup::kDown};

LayerWeights copy_weights(const LayerWeights& w) { return w; }

std::string linear_name(int index, const std::string& suffix) { return fmt::format("layers.{}.{}", index, suffix); }

class LayerQuantizer {
 public:
  LayerQuantizer(const LayerQuantizerContext& ctx, int index, LayerWeights w)
      : ctx_(ctx), c_(*ctx.config), index_(index), w_(std::move(w)),
        comm_(ctx.comm != nullptr ? ctx.comm : &single_) {}

  Expected<std::vector<ModuleReport>> run() {
    for (const auto& phase : kPhases) {
      for (const std::string& suffix : phase) {
        const std::string name = linear_name(index_, suffix);
        const Matrix& m = linear_matrix(w_, suffix);
        LB_ASSIGN_OR_RETURN(const QuantRule* matched, ctx_.recipe->rule_for(name));
        LB_ASSIGN_OR_RETURN(rules_[suffix], resolve_rule(*matched, name, m.rows, m.cols));
      }
    }
    if (ctx_.calibration) {
      LB_RETURN_IF_ERROR(migrate());  // SmoothQuant / OS+ before every statistic the quantizers use
      LB_RETURN_IF_ERROR(statistics_pass());
    }
    if (ctx_.writer != nullptr) {
      LB_RETURN_IF_ERROR(
          ctx_.writer->add_fp32(fmt::format("layers.{}.attn_norm", index_), {c_.dim}, w_.attn_norm.data()));
      LB_RETURN_IF_ERROR(
          ctx_.writer->add_fp32(fmt::format("layers.{}.ffn_norm", index_), {c_.dim}, w_.ffn_norm.data()));
      for (const auto& [name, bias] :
           {std::pair{"attn_norm_bias", &w_.attn_norm_bias}, {"ffn_norm_bias", &w_.ffn_norm_bias}}) {
        if (!bias->empty()) {
          LB_RETURN_IF_ERROR(ctx_.writer->add_fp32(fmt::format("layers.{}.{}", index_, name), {c_.dim}, bias->data()));
        }
      }
    }
    std::optional<DecoderBlock> block;
    if (ctx_.calibration) {
      LB_ASSIGN_OR_RETURN(block, make_block());
    }
    for (size_t p = 0; p < kPhases.size(); ++p) {
      const std::string leader = linear_name(index_, kPhases[p][0]);
      if (block && ctx_.recipe->true_sequential && p > 0) {
        ActivationStats stats({.hessian = ctx_.hessian, .names = {leader}, .pool = ctx_.pool}, shard_starts());
        LB_RETURN_IF_ERROR(observe(*block, stats));
        LB_RETURN_IF_ERROR(stats.reduce(*comm_));
        if (input_abs_max_.count(leader)) input_abs_max_[leader] = stats.find(leader)->abs_max;
        if (needs_mean(p)) means_[leader] = stats.find(leader)->mean();
        hessians_[leader] = stats.take_hessian(leader);
      }
      const std::vector<double>* h = hessians_.count(leader) ? &hessians_[leader] : nullptr;
      for (const std::string& suffix : kPhases[p]) {
        LB_RETURN_IF_ERROR(quantize_one(suffix, h, block ? &*block : nullptr));
      }
      hessians_.erase(leader);
      means_.erase(leader);
    }
    if (block) {
      // In place: the quantized layer's outputs are the next layer's inputs.
      const CalibrationState& cal = *ctx_.calibration;
      if (ctx_.before_states_update) ctx_.before_states_update();
      if (index_ + 1 < c_.n_layers || ctx_.last_layer_states_needed) {
        LB_RETURN_IF_ERROR(cal.runner->run(*block, cal.x, cal.n_seq, cal.x, *ctx_.pool));
      }
    }
    return std::move(reports_);
  }

 private:
  // The FP32 block of the current weights; under a rotation with online_down, down_proj
  // (stored as W·H) is wrapped in the online transform, as the runtime will run it.
  Expected<DecoderBlock> make_block() const {
    LB_ASSIGN_OR_RETURN(DecoderBlock block,
                        DecoderBlock::create(c_, index_, copy_weights(w_), *ctx_.rope_freq_factors));
    if (bf16()) {
      for (std::string_view suffix : DecoderBlock::kLinearSuffixes) {
        LB_RETURN_IF_ERROR(block.replace_linear(suffix, bf16_linear(linear_matrix(w_, std::string(suffix)))));
      }
      block.set_prompt_attention(bf16_prompt_attention(active_isa()));
    }
    LB_RETURN_IF_ERROR(wrap_online_down(block));
    return block;
  }

  bool bf16() const { return ctx_.arithmetic == CalibArithmetic::kBf16; }

  // Whether a linear of phase p asks for bias correction, which needs its input's mean.
  bool needs_mean(size_t p) const {
    for (const std::string& suffix : kPhases[p]) {
      if (rules_.at(suffix).options.bias_correction) return true;
    }
    return false;
  }
  static std::unique_ptr<Linear> bf16_linear(const Matrix& m) { return std::make_unique<Bf16Linear>(m, active_isa()); }

  Status wrap_online_down(DecoderBlock& block) const {
    if (ctx_.online_down == nullptr) return Status::ok_status();
    return block.wrap_linear("down_proj", [&](std::unique_ptr<Linear> inner) -> std::unique_ptr<Linear> {
      return std::make_unique<OnlineHadamardLinear>(std::move(inner), *ctx_.online_down);
    });
  }

  std::vector<int64_t> shard_starts() const {
    return ctx_.shards != nullptr ? ctx_.shards->shard_starts : std::vector<int64_t>();
  }
  // The index of this rank's first token among all ranks' tokens.
  int64_t first_token() const { return ctx_.shards != nullptr ? ctx_.shards->first_token : 0; }
  // Tokens of the whole calibration (every rank's).
  int64_t total_tokens() const {
    const CalibrationState& cal = *ctx_.calibration;
    return ctx_.shards != nullptr ? ctx_.shards->total_tokens
                                  : static_cast<int64_t>(cal.n_seq) * cal.runner->seq_len();
  }

  // Runs `block` over the calibration inputs for its observer only: one sequence at a time
  // into a one-sequence buffer, so no second copy of the hidden states is needed. Under
  // online_down the observer gets down_proj's input rotated (x·H), what its weight multiplies.
  Status observe(const DecoderBlock& block, ActivationObserver& outer) {
    std::optional<RotatedInputObserver> rotated;
    if (ctx_.online_down != nullptr) rotated.emplace(outer, linear_name(index_, "down_proj"), *ctx_.online_down);
    InputsOnlyObserver observer(rotated ? static_cast<ActivationObserver&>(*rotated) : outer);
    const CalibrationState& cal = *ctx_.calibration;
    const int64_t per_seq = static_cast<int64_t>(cal.runner->seq_len()) * c_.dim;
    std::vector<float> out(static_cast<size_t>(per_seq));  // [seq_len, dim]
    for (int s = 0; s < cal.n_seq; ++s) {
      LB_RETURN_IF_ERROR(cal.runner->run(block, cal.x + s * per_seq, 1, out.data(), *ctx_.pool, &observer));
    }
    return Status::ok_status();
  }

  // Which AWQ groups this layer folds: every linear of the group must use awq with one format.
  Expected<std::vector<AwqGroup>> awq_groups() const {
    std::vector<AwqGroup> groups;
    for (size_t p = 0; p < kPhases.size(); ++p) {
      int awq = 0;
      std::set<std::string> formats;
      for (const std::string& suffix : kPhases[p]) {
        const QuantRule& r = rules_.at(suffix);
        if (r.method == QuantMethod::kAwq) ++awq;
        formats.insert(r.format);
      }
      if (awq == 0) continue;
      if (kPhaseGroups[p] == AwqGroup::kDown && ctx_.online_down != nullptr) {
        return make_error("layers.{}: AWQ on down_proj cannot fold into up_proj under the rotation's online "
                          "Hadamard transform of its input (set \"online_down\": false or another method)",
                          index_);
      }
      if (awq != static_cast<int>(kPhases[p].size()) || formats.size() != 1) {
        return make_error("layers.{}: AWQ scales the shared input of {}: give them all method awq and one format",
                          index_, awq_group_name(kPhaseGroups[p]));
      }
      groups.push_back(kPhaseGroups[p]);
    }
    return groups;
  }

  // SmoothQuant and Outlier Suppression+ (pipeline/outlier_migration.h) on the groups the
  // recipe names: channel ranges and sampled rows from one pass of the FP32 layer, then
  // each group's shift/scale chosen and folded into w_.
  Status migrate() {
    const Recipe& r = *ctx_.recipe;
    std::vector<std::pair<AwqGroup, bool>> todo;  // (group, OS+)
    if (r.smooth) {
      for (AwqGroup g : r.smooth->groups) todo.emplace_back(g, false);
    }
    if (r.osp) {
      for (AwqGroup g : r.osp->groups) todo.emplace_back(g, true);
    }
    if (todo.empty()) return Status::ok_status();
    std::vector<std::string> leaders;
    for (const auto& [g, osp] : todo) {
      if (g == AwqGroup::kDown && ctx_.online_down != nullptr) {
        return make_error("layers.{}: smoothing down_proj cannot fold into up_proj under the rotation's online "
                          "Hadamard transform of its input (drop \"down\" from the groups)",
                          index_);
      }
      leaders.push_back(linear_name(index_, awq_group_linears(g)[0]));
    }
    const int tokens = std::max(r.smooth ? r.smooth->tokens : 1, r.osp ? r.osp->tokens : 1);
    ChannelRange range(leaders);
    RowSampler rows(leaders, (total_tokens() + tokens - 1) / tokens, tokens, first_token());
    {
      ObserverFanout fanout({&range, &rows});
      LB_ASSIGN_OR_RETURN(DecoderBlock fp_block, make_block());
      LB_RETURN_IF_ERROR(observe(fp_block, fanout));
    }
    LB_RETURN_IF_ERROR(range.reduce(*comm_));
    LB_RETURN_IF_ERROR(rows.gather(*comm_));
    for (const auto& [group, osp] : todo) {
      const std::vector<std::string> suffixes = awq_group_linears(group);
      const std::string leader = linear_name(index_, suffixes[0]);
      const ChannelRange::Range* rg = range.find(leader);
      const RowSampler::Rows* x = rows.find(leader);
      if (rg == nullptr || x == nullptr) return make_error("{}: no calibration rows for {}", leader, osp ? "OS+" : "SmoothQuant");
      std::vector<MigrationLinear> linears;
      std::deque<WeightFormat> formats;  // what linears point to
      for (const std::string& suffix : suffixes) {
        const QuantRule& rule = rules_.at(suffix);
        MigrationLinear l;
        l.weight = &linear_matrix(w_, suffix);
        if (!rule.keeps_fp32()) {
          LB_ASSIGN_OR_RETURN(WeightFormat f, rule_format(rule));
          l.weight_format = &formats.emplace_back(f);
        }
        l.act = rule.act;
        linears.push_back(l);
      }
      const int64_t in = x->in_features;
      MigrationResult m;
      if (osp) {
        // o_proj: one shift per KV group's channel (outlier_migration.h), so the ranges are merged over its heads.
        const ChannelRange::Range merged = group == AwqGroup::kOut ? gqa_union_range(*rg, c_) : ChannelRange::Range{};
        auto found = search_outlier_suppression(linears, group == AwqGroup::kOut ? merged : *rg, x->data.data(),
                                                x->n_rows, in, r.osp->grid, *ctx_.pool);
        if (!found.ok()) return found.status().with_context(leader + " OS+ search");
        m = std::move(found).value();
      } else {
        std::vector<float> abs_max(static_cast<size_t>(in));
        for (int64_t j = 0; j < in; ++j) abs_max[j] = std::max(std::fabs(rg->min[j]), std::fabs(rg->max[j]));
        if (r.smooth->search) {
          auto found = search_smoothquant_alpha(linears, abs_max, x->data.data(), x->n_rows, in, r.smooth->grid,
                                                *ctx_.pool);
          if (!found.ok()) return found.status().with_context(leader + " SmoothQuant search");
          m = std::move(found).value();
        } else {
          m.scale = smoothquant_scales(abs_max, linears, r.smooth->alpha);
          m.parameter = r.smooth->alpha;
        }
      }
      if (group == AwqGroup::kOut) m.scale = gqa_shared_channels(m.scale, c_);
      if (!m.shift.empty()) LB_RETURN_IF_ERROR(fold_channel_shift(w_, c_, index_, group, m.shift));
      LB_RETURN_IF_ERROR(fold_awq_scales(w_, c_, index_, group, m.scale));
      for (const std::string& suffix : suffixes) {
        MigrationNote& note = migration_[suffix];
        note.method = osp ? "osp" : "smooth";
        note.parameter = m.parameter;
        if (osp || r.smooth->search) note.errors = {m.error_plain, m.error};
      }
    }
    return Status::ok_status();
  }

  Status statistics_pass() {
    LB_ASSIGN_OR_RETURN(std::vector<AwqGroup> groups, awq_groups());
    std::vector<std::string> h_names;  // inputs whose H this pass collects
    bool means = false;                // and whether any of them needs x̄
    for (size_t p = 0; p < kPhases.size(); ++p) {
      if (p == 0 || !ctx_.recipe->true_sequential) {
        h_names.push_back(linear_name(index_, kPhases[p][0]));
        means |= needs_mean(p);
      }
    }
    std::vector<std::string> awq_names;
    int awq_tokens = 1;
    for (AwqGroup g : groups) {
      const std::string first = awq_group_linears(g)[0];
      awq_names.push_back(linear_name(index_, first));
      awq_tokens = std::max(awq_tokens, rules_.at(first).options.awq_tokens);
    }
    // Inputs of linears with per-tensor static activation quantizers: their max |x_j|.
    std::vector<std::string> act_names;
    for (const auto& [suffix, rule] : rules_) {
      if (rule.act && rule.act->is_static()) act_names.push_back(shared_input_key(linear_name(index_, suffix)));
    }
    const std::vector<int64_t> shards = shard_starts();
    ActivationStats h_stats(
        {.hessian = ctx_.hessian, .names = h_names, .pool = ctx_.pool, .channel_stats = means},  // H (and x̄)
        shards);
    ActivationStats abs_stats({.hessian = HessianPrecision::kNone, .names = awq_names}, shards);
    ActivationStats act_stats({.hessian = HessianPrecision::kNone, .names = act_names}, shards);
    RowSampler rows(awq_names, (total_tokens() + awq_tokens - 1) / awq_tokens, awq_tokens, first_token());
    std::vector<ActivationObserver*> observers = {&h_stats};
    if (!groups.empty()) observers.insert(observers.end(), {&abs_stats, &rows});
    if (!act_names.empty()) observers.push_back(&act_stats);
    ObserverFanout fanout(observers);
    {
      LB_ASSIGN_OR_RETURN(DecoderBlock fp_block, make_block());
      LB_RETURN_IF_ERROR(observe(fp_block, fanout));
    }
    // Every rank reduces every observer, used or not, so the collectives pair up.
    LB_RETURN_IF_ERROR(h_stats.reduce(*comm_));
    LB_RETURN_IF_ERROR(act_stats.reduce(*comm_));
    if (!groups.empty()) {
      LB_RETURN_IF_ERROR(abs_stats.reduce(*comm_));
      LB_RETURN_IF_ERROR(rows.gather(*comm_));
    }
    for (const std::string& name : act_names) {
      const InputStats* s = act_stats.find(name);
      if (s == nullptr) return make_error("{}: no calibration statistics for its activation threshold", name);
      input_abs_max_[name] = s->abs_max;
    }
    for (const std::string& name : h_names) {
      const InputStats* s = h_stats.find(name);
      if (s == nullptr) return make_error("{}: no calibration statistics were collected", name);
      if (means) means_[name] = s->mean();
      hessians_[name] = h_stats.take_hessian(name);  // moved: one [in, in] buffer at a time
    }
    for (AwqGroup g : groups) LB_RETURN_IF_ERROR(search_and_fold(g, abs_stats, rows));
    return Status::ok_status();
  }

  Status search_and_fold(AwqGroup group, const ActivationStats& abs_stats, const RowSampler& rows) {
    const std::vector<std::string> suffixes = awq_group_linears(group);
    const std::string leader = linear_name(index_, suffixes[0]);
    const InputStats* s = abs_stats.find(leader);
    const RowSampler::Rows* x = rows.find(leader);
    if (s == nullptr || x == nullptr) return make_error("{}: no calibration rows for the AWQ search", leader);
    const std::vector<double> mean = s->mean_abs();
    std::vector<float> mean_abs(mean.begin(), mean.end());
    if (group == AwqGroup::kOut) mean_abs = gqa_shared_channels(mean_abs, c_);
    std::vector<const float*> weights;
    std::vector<int64_t> out_rows;
    for (const std::string& suffix : suffixes) {
      weights.push_back(linear_matrix(w_, suffix).data.data());
      out_rows.push_back(linear_matrix(w_, suffix).rows);
    }
    const QuantRule& rule = rules_.at(suffixes[0]);
    LB_ASSIGN_OR_RETURN(const WeightFormat format, rule_format(rule));
    auto found = search_awq_scales(format, weights, out_rows, awq_group_width(group, c_), x->data.data(), x->n_rows,
                                   mean_abs, AwqSearch{rule.options.awq_grid});
    if (!found.ok()) return found.status().with_context(leader + " AWQ search");
    const std::vector<float>& scale = found->scales;
    LB_RETURN_IF_ERROR(fold_awq_scales(w_, c_, index_, group, scale));
    for (const std::string& suffix : suffixes) awq_alpha_[suffix] = found->alpha;
    // The folded input is x / s: max|x_j| ← max|x_j| / s_j,
    auto m = input_abs_max_.find(leader);
    if (m != input_abs_max_.end()) {
      for (size_t j = 0; j < scale.size(); ++j) m->second[j] /= scale[j];
    }
    // the mean x̄_j ← x̄_j / s_j,
    auto x_mean = means_.find(leader);
    if (x_mean != means_.end()) {
      for (size_t j = 0; j < scale.size(); ++j) x_mean->second[j] /= scale[j];
    }
    // and H_jk ← H_jk / (s_j s_k).
    auto h = hessians_.find(leader);
    if (h != hessians_.end()) {
      const int64_t n = static_cast<int64_t>(scale.size());
      for (int64_t j = 0; j < n; ++j) {
        for (int64_t k = 0; k < n; ++k) h->second[j * n + k] /= static_cast<double>(scale[j]) * scale[k];
      }
    }
    return Status::ok_status();
  }

  Status quantize_one(const std::string& suffix, const std::vector<double>* h, DecoderBlock* block) {
    const std::string name = linear_name(index_, suffix);
    const auto start = std::chrono::steady_clock::now();
    const QuantRule& rule = rules_.at(suffix);
    Matrix& m = linear_matrix(w_, suffix);
    if (ctx_.on_module) ctx_.on_module(name, m.rows * m.cols);
    const auto mean = means_.find(shared_input_key(name));
    LB_ASSIGN_OR_RETURN(LinearQuantResult r,
                        quantize_linear(rule, name, m.data.data(), m.rows, m.cols, h,
                                        mean != means_.end() ? &mean->second : nullptr, ctx_.pool));
    const bool new_bias = !r.bias_delta.empty() && m.bias.empty();
    if (!r.bias_delta.empty()) {
      // The mean output error goes into the bias (FP32, created when absent).
      if (new_bias) m.bias.assign(static_cast<size_t>(m.rows), 0.0f);
      for (int64_t i = 0; i < m.rows; ++i) m.bias[i] += r.bias_delta[i];
    }
    if (ctx_.writer != nullptr) {
      LB_RETURN_IF_ERROR(ctx_.writer->add(name, {m.rows, m.cols}, r.weight, quant_method_name(r.method)));
      if (!m.bias.empty()) LB_RETURN_IF_ERROR(ctx_.writer->add_fp32(name + ".bias", {m.rows}, m.bias.data()));
    }
    std::optional<ActQuantAttachment> act;
    if (rule.act) {
      LB_ASSIGN_OR_RETURN(act, act_attachment(name, *rule.act));
      if (ctx_.writer != nullptr) {
        LB_RETURN_IF_ERROR(ctx_.writer->set_record_field(name, "act", act_attachment_json(*act)));
      }
    }
    ModuleReport report;
    report.name = name;
    report.method = quant_method_name(r.method);
    report.format = r.weight.format;
    report.fallback_from = r.fallback_from;
    report.rows = m.rows;
    report.cols = m.cols;
    report.stored_bytes = r.weight.storage_bytes() + (new_bias ? static_cast<uint64_t>(m.rows) * 4 : 0);
    report.bits_per_weight = 8.0 * static_cast<double>(report.stored_bytes) / static_cast<double>(m.rows * m.cols);
    if (r.adaquant) {
      report.adaquant_codes_changed = r.adaquant->codes_changed;
      report.adaquant_scales_changed = r.adaquant->scales_changed;
    }
    report.bias_corrected = !r.bias_delta.empty();
    report.weight_rel_error = r.weight_rel_error;
    report.output_rel_error = r.output_rel_error;
    if (awq_alpha_.count(suffix)) report.awq_alpha = awq_alpha_[suffix];
    if (migration_.count(suffix)) {
      const MigrationNote& note = migration_[suffix];
      report.migration = note.method;
      report.migration_parameter = note.parameter;
      if (note.errors) {
        report.migration_error_plain = note.errors->first;
        report.migration_error = note.errors->second;
      }
    }
    report.dead_columns = r.dead_columns;
    report.outliers = r.weight.outliers.size();
    report.lorc_rank = r.weight.rank;
    if (block != nullptr) {
      LB_ASSIGN_OR_RETURN(std::unique_ptr<QuantizedLinear> q, QuantizedLinear::create(std::move(r.weight), m.bias));
      LB_RETURN_IF_ERROR(block->replace_linear(suffix, bf16() ? bf16_linear(q->dequantized()) : std::move(q)));
      if (act) {
        // The following phases and layers see this linear's quantized activations too.
        LB_ASSIGN_OR_RETURN(ActQuantizer quantizer, ActQuantizer::create(act->spec));
        const float threshold = act->static_threshold;
        LB_RETURN_IF_ERROR(block->wrap_linear(suffix, [&](std::unique_ptr<Linear> inner) -> std::unique_ptr<Linear> {
          return std::move(ActQuantLinear::create(std::move(inner), quantizer, threshold)).value();
        }));
      }
      if (suffix == "down_proj") LB_RETURN_IF_ERROR(wrap_online_down(*block));  // outermost
    }
    m = Matrix();  // this layer's FP32 copy of the linear is no longer needed
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    reports_.push_back(std::move(report));
    return Status::ok_status();
  }

  // A rule's activation quantizer for linear `name`; per-tensor static: T = clip · max_j max|x_j|
  // over the calibration inputs (a zero input gets T = 1: any positive T keeps it zero).
  Expected<ActQuantAttachment> act_attachment(const std::string& name, const ActQuantSpec& spec) const {
    ActQuantAttachment a{spec, 0.0f};
    if (!spec.is_static()) return a;
    auto it = input_abs_max_.find(shared_input_key(name));
    if (it == input_abs_max_.end()) {
      return make_error("{}: per-tensor static activations need calibration data (--calib)", name);
    }
    float amax = 0.0f;
    for (float v : it->second) amax = std::max(amax, v);
    a.static_threshold = amax > 0.0f ? spec.clip * amax : 1.0f;
    return a;
  }

  const LayerQuantizerContext& ctx_;
  const ModelConfig& c_;
  int index_;
  LayerWeights w_;  // FP32, AWQ scales folded in
  SingleProcess single_;
  Communicator* comm_;  // ctx_.comm, or single_
  std::map<std::string, QuantRule> rules_;               // by suffix, resolved for the linear's shape
  std::map<std::string, std::vector<double>> hessians_;  // by leader name, [in, in]
  std::map<std::string, std::vector<double>> means_;     // by leader name, [in]: x̄ for bias correction
  std::map<std::string, float> awq_alpha_;               // by suffix
  struct MigrationNote {
    std::string method;  // "smooth" | "osp"
    float parameter = 0.0f;
    std::optional<std::pair<double, double>> errors;  // E without / with, when searched
  };
  std::map<std::string, MigrationNote> migration_;  // by suffix
  std::map<std::string, std::vector<float>> input_abs_max_;  // by leader name, [in]: static act thresholds
  std::vector<ModuleReport> reports_;
};

}  // namespace

Expected<std::vector<ModuleReport>> quantize_layer(const LayerQuantizerContext& ctx, int index, LayerWeights w) {
  return LayerQuantizer(ctx, index, std::move(w)).run();
}

}  // namespace lowbit
