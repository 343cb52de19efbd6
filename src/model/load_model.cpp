#include "model/loader.h"

namespace lowbit {

Expected<LoadedModel> read_model_info(const ModelSource& source) {
  LoadedModel m;
  m.config = source.config();
  m.summary = source.summary();
  LB_ASSIGN_OR_RETURN(m.tokenizer, source.tokenizer());
  LB_ASSIGN_OR_RETURN(m.act_quantizers, source.act_quantizers());
  LB_ASSIGN_OR_RETURN(m.rotation, source.rotation());
  return m;
}

Expected<ModelWeights> read_weights(const ModelSource& source) {
  const ModelConfig& c = source.config();
  ModelWeights w;
  LB_ASSIGN_OR_RETURN(w.token_embedding, source.token_embedding());
  w.layers.reserve(static_cast<size_t>(c.n_layers));
  for (int i = 0; i < c.n_layers; ++i) {
    LB_ASSIGN_OR_RETURN(LayerWeights layer, source.layer(i));
    w.layers.push_back(std::move(layer));
  }
  LB_ASSIGN_OR_RETURN(w.output_norm, source.output_norm());
  LB_ASSIGN_OR_RETURN(w.lm_head, source.lm_head());
  LB_ASSIGN_OR_RETURN(w.rope_freq_factors, source.rope_freq_factors());
  return w;
}

Expected<LoadedModel> read_model(const ModelSource& source) {
  LB_ASSIGN_OR_RETURN(ModelWeights weights, read_weights(source));
  LB_ASSIGN_OR_RETURN(LoadedModel m, read_model_info(source));
  m.weights = std::move(weights);
  LB_ASSIGN_OR_RETURN(m.quantized_linears, source.quantized_linears());
  return m;
}

namespace {

Expected<LoadedModel> read_opened(Expected<std::unique_ptr<ModelSource>> source) {
  if (!source.ok()) return source.status();
  return read_model(**source);
}

}  // namespace

Expected<LoadedModel> load_model(const std::string& path, const LoadOptions& options) {
  return read_opened(open_model_source(path, options));
}

Expected<LoadedModel> load_gguf_model(const std::string& path) { return read_opened(open_gguf_source(path, {})); }

Expected<LoadedModel> load_hf_model(const std::string& folder) { return read_opened(open_hf_source(folder, {})); }

Expected<LoadedModel> load_llama2c_model(const std::string& path, const std::string& tokenizer_path) {
  return read_opened(open_llama2c_source(path, {.tokenizer_path = tokenizer_path}));
}

}  // namespace lowbit
