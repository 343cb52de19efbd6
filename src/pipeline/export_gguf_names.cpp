#include "pipeline/export_gguf_names.h"

#include <fmt/format.h>

namespace lowbit {
namespace {

struct NamePair {
  const char* lowbit;
  const char* gguf;
};

constexpr NamePair kModelTensors[] = {
    {"token_embedding", "token_embd"}, {"output_norm", "output_norm"}, {"lm_head", "output"}, {"rope_freqs", "rope_freqs"}};

constexpr NamePair kLayerTensors[] = {
    {"attn_norm", "attn_norm"}, {"q_proj", "attn_q"},    {"k_proj", "attn_k"},   {"v_proj", "attn_v"},
    {"o_proj", "attn_output"},  {"ffn_norm", "ffn_norm"}, {"gate_proj", "ffn_gate"}, {"up_proj", "ffn_up"},
    {"down_proj", "ffn_down"}};

}  // namespace

std::string gguf_tensor_name(int layer, const std::string& role) {
  const bool bias = role.ends_with(".bias");
  const std::string base = bias ? role.substr(0, role.size() - 5) : role;
  const std::string suffix = bias ? ".bias" : ".weight";
  if (layer < 0) {
    for (const NamePair& p : kModelTensors) {
      if (base == p.lowbit) return p.gguf + suffix;
    }
    return "";
  }
  for (const NamePair& p : kLayerTensors) {
    if (base == p.lowbit) return fmt::format("blk.{}.{}{}", layer, p.gguf, suffix);
  }
  return "";
}

}  // namespace lowbit
