#include "pipeline/restorative_lora.h"

#include <fmt/format.h>

#include <cstdio>

#include "core/progress.h"
#include "model/decoder_block.h"
#include "model/loader.h"
#include "pipeline/recipe.h"

namespace lowbit {
namespace {

// The shapes that must agree between the pretrained and the quantized model.
Status check_same_shape(const ModelConfig& a, const ModelConfig& b, const std::string& quantized_path) {
  if (a.n_layers != b.n_layers || a.dim != b.dim || a.n_heads != b.n_heads || a.n_kv_heads != b.n_kv_heads ||
      a.head_dim != b.head_dim || a.ffn_dim != b.ffn_dim || a.vocab_size != b.vocab_size) {
    return make_error("{}: not a quantization of the model ({} layers, dim {}, ffn {}, vocab {} against {}, {}, {}, {})",
                      quantized_path, b.n_layers, b.dim, b.ffn_dim, b.vocab_size, a.n_layers, a.dim, a.ffn_dim,
                      a.vocab_size);
  }
  return Status::ok_status();
}

// The FP32 lowbit file every tensor of MODEL is copied into (the decoder linears after the merge).
constexpr const char* kMergedRecipe = R"json({"name": "restored-f32",
  "description": "restorative LoRA (PTQ1.61 preprocessing): W + s B A, every tensor FP32",
  "rules": [{"match": "^(token_embedding|lm_head)$", "method": "none", "format": "fp32"}],
  "default": {"method": "none", "format": "fp32"}})json";

}  // namespace

Expected<RestoreReport> restorative_lora(const RestoreOptions& o) {
  LB_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> source, open_model_source(o.model_path, o.load));
  LB_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> qsource, open_model_source(o.quantized_path, {}));
  const ModelConfig& c = source->config();
  LB_RETURN_IF_ERROR(check_same_shape(c, qsource->config(), o.quantized_path));
  LB_ASSIGN_OR_RETURN(std::optional<RotationSpec> rotation, qsource->rotation());
  if (rotation) {
    return make_error("{}: carries a rotation; restorative LoRA trains in the pretrained model's basis (quantize "
                      "without one)", o.quantized_path);
  }
  LB_ASSIGN_OR_RETURN(auto act, qsource->act_quantizers());
  if (!act.empty()) {
    return make_error("{}: quantizes activations ({}); restorative LoRA takes weight-only quantized models",
                      o.quantized_path, act.begin()->first);
  }
  LB_ASSIGN_OR_RETURN(auto quantized, qsource->quantized_linears());
  if (quantized.empty()) return make_error("{}: no quantized linear: nothing to restore", o.quantized_path);

  PipelineOptions po;
  po.model_path = o.model_path;
  po.load = o.load;
  po.calib_path = o.calib_path;
  po.calibration = o.calibration;
  LB_ASSIGN_OR_RETURN(CalibrationSet windows, pipeline_calibration(*source, po, false, nullptr));
  LB_ASSIGN_OR_RETURN(ModelWeights pretrained, read_weights(*source));
  LB_ASSIGN_OR_RETURN(ModelWeights base, read_weights(*qsource));

  RestoreReport report;
  report.n_windows = windows.n_samples();
  report.seq_len = windows.seq_len;
  // Adapters on the linears the file quantizes: only weights the second PTQ will quantize change.
  LoraTrainOptions train = o.train;
  train.target = [&quantized](int layer, int k) {
    return quantized.count(fmt::format("layers.{}.{}", layer, DecoderBlock::kLinearSuffixes[static_cast<size_t>(k)])) >
           0;
  };
  const LoraAdapters none = make_lora_adapters(c, train.rank, train.alpha, train.seed, train.target);
  report.adapter_params = none.n_parameters();
  LB_ASSIGN_OR_RETURN(report.loss_pretrained, lora_mean_loss(c, pretrained, none, windows.tokens, windows.seq_len));
  LB_ASSIGN_OR_RETURN(report.loss_quantized, lora_mean_loss(c, base, none, windows.tokens, windows.seq_len));
  if (o.progress) {
    std::fprintf(stderr, "restore: %d windows x %d tokens; loss %.4f pretrained, %.4f quantized; %lld adapter "
                 "parameters (rank %d)\n", report.n_windows, report.seq_len, report.loss_pretrained,
                 report.loss_quantized, static_cast<long long>(report.adapter_params), train.rank);
  }
  ProgressBar bar("restore", train.steps, o.progress, ProgressUnits::kCount);
  LB_ASSIGN_OR_RETURN(LoraAdapters lora,
                      train_lora(c, base, windows.tokens, windows.seq_len, train, &report.train,
                                 [&](int done, double loss) { bar.update(done, fmt::format("loss {:.4f}", loss)); }));
  bar.finish();
  LB_ASSIGN_OR_RETURN(report.loss_restored, lora_mean_loss(c, base, lora, windows.tokens, windows.seq_len));

  // W' = W + s B A, written layer by layer through the quantize pipeline as FP32.
  LB_ASSIGN_OR_RETURN(Recipe recipe, parse_recipe(nlohmann::json::parse(kMergedRecipe), "restorative LoRA"));
  PipelineOptions wo;
  wo.model_path = o.model_path;
  wo.load = o.load;
  wo.output_path = o.output_path;
  wo.threads = o.threads;
  wo.progress = false;
  wo.checkpoint = false;
  wo.transform_layer = [&lora](int index, LayerWeights& w) {
    merge_lora_layer(lora, index, w);
    return Status::ok_status();
  };
  LB_ASSIGN_OR_RETURN(report.written, quantize_model(recipe, wo));
  return report;
}

}  // namespace lowbit
