#include "model/config.h"

namespace lowbit {

const char* rope_layout_name(RopeLayout layout) {
  return layout == RopeLayout::kAdjacentPairs ? "adjacent-pairs" : "half-split";
}

Status ModelConfig::validate(const std::string& source) const {
  if (architecture != "llama" && architecture != "mistral" && architecture != "qwen2") {
    return make_error("{}: unknown architecture '{}' (lowbit supports llama, mistral, qwen2)",
                      source, architecture);
  }
  const struct {
    const char* name;
    int64_t value;
    int64_t max;
  } sizes[] = {{"n_layers", n_layers, kMaxLayers},
               {"dim", dim, kMaxWidth},
               {"n_heads", n_heads, kMaxWidth},
               {"n_kv_heads", n_kv_heads, kMaxWidth},
               {"head_dim", head_dim, kMaxWidth},
               {"ffn_dim", ffn_dim, kMaxWidth},
               {"vocab_size", vocab_size, kMaxVocab},
               {"max_seq_len", max_seq_len, kMaxSeqLen},
               {"q_dim (n_heads x head_dim)", int64_t{n_heads} * head_dim, kMaxWidth},
               {"kv_dim (n_kv_heads x head_dim)", int64_t{n_kv_heads} * head_dim, kMaxWidth}};
  for (const auto& s : sizes) {
    if (s.value <= 0) return make_error("{}: {} must be positive, got {}", source, s.name, s.value);
    if (s.value > s.max) {
      return make_error("{}: {} is {}, above lowbit's limit of {}", source, s.name, s.value, s.max);
    }
  }
  if (n_heads % n_kv_heads != 0) {
    return make_error("{}: n_heads {} is not a multiple of n_kv_heads {}", source, n_heads, n_kv_heads);
  }
  if (head_dim % 2 != 0) return make_error("{}: head_dim {} must be even for RoPE", source, head_dim);
  if (!(norm_eps > 0.0f)) return make_error("{}: norm_eps must be positive", source);
  if (!(rope_theta > 0.0)) return make_error("{}: rope_theta must be positive", source);
  if (rope_scaling.llama3 && !(rope_scaling.factor >= 1.0 && rope_scaling.low_freq_factor > 0 &&
                               rope_scaling.high_freq_factor > rope_scaling.low_freq_factor)) {
    return make_error("{}: invalid llama3 rope scaling parameters", source);
  }
  return Status::ok_status();
}

}  // namespace lowbit
