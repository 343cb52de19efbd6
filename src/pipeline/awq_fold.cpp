#include "pipeline/awq_fold.h"

#include <cmath>

namespace lowbit {
namespace {

void scale_columns(Matrix& m, const std::vector<float>& s) {
  for (int64_t r = 0; r < m.rows; ++r) {
    float* row = m.data.data() + r * m.cols;
    for (int64_t c = 0; c < m.cols; ++c) row[c] *= s[c];
  }
}

void divide_row(Matrix& m, int64_t r, float s) {
  float* row = m.data.data() + r * m.cols;
  for (int64_t c = 0; c < m.cols; ++c) row[c] /= s;
  if (!m.bias.empty()) m.bias[r] /= s;
}

}  // namespace

const char* awq_group_name(AwqGroup g) {
  switch (g) {
    case AwqGroup::kQkv: return "q/k/v";
    case AwqGroup::kOut: return "o";
    case AwqGroup::kGateUp: return "gate/up";
    case AwqGroup::kDown: return "down";
  }
  return "?";
}

std::vector<std::string> awq_group_linears(AwqGroup g) {
  switch (g) {
    case AwqGroup::kQkv: return {"q_proj", "k_proj", "v_proj"};
    case AwqGroup::kOut: return {"o_proj"};
    case AwqGroup::kGateUp: return {"gate_proj", "up_proj"};
    case AwqGroup::kDown: return {"down_proj"};
  }
  return {};
}

int64_t awq_group_width(AwqGroup g, const ModelConfig& c) {
  switch (g) {
    case AwqGroup::kQkv:
    case AwqGroup::kGateUp: return c.dim;
    case AwqGroup::kOut: return c.q_dim();
    case AwqGroup::kDown: return c.ffn_dim;
  }
  return 0;
}

std::vector<float> gqa_shared_channels(const std::vector<float>& v, const ModelConfig& c) {
  const int group = c.n_heads / c.n_kv_heads;
  const int hd = c.head_dim;
  std::vector<float> out(v.size());
  for (int g = 0; g < c.n_kv_heads; ++g) {
    for (int d = 0; d < hd; ++d) {
      double sum = 0.0;
      for (int h = g * group; h < (g + 1) * group; ++h) sum += v[static_cast<size_t>(h * hd + d)];
      const float mean = static_cast<float>(sum / group);
      for (int h = g * group; h < (g + 1) * group; ++h) out[static_cast<size_t>(h * hd + d)] = mean;
    }
  }
  return out;
}

Status fold_awq_scales(LayerWeights& w, const ModelConfig& c, int layer, AwqGroup group, const std::vector<float>& s) {
  const int64_t width = awq_group_width(group, c);
  if (static_cast<int64_t>(s.size()) != width) {
    return make_error("layers.{}: AWQ {} scales have {} channels, expected {}", layer, awq_group_name(group), s.size(),
                      width);
  }
  for (size_t j = 0; j < s.size(); ++j) {
    if (!(s[j] > 0.0f) || !std::isfinite(s[j])) {
      return make_error("layers.{}: AWQ {} scale of channel {} is {} (must be positive and finite)", layer,
                        awq_group_name(group), j, s[j]);
    }
  }
  switch (group) {
    case AwqGroup::kQkv:
      for (int64_t j = 0; j < width; ++j) w.attn_norm[j] /= s[j];
      for (size_t j = 0; j < w.attn_norm_bias.size(); ++j) w.attn_norm_bias[j] /= s[j];
      scale_columns(w.q_proj, s);
      scale_columns(w.k_proj, s);
      scale_columns(w.v_proj, s);
      break;
    case AwqGroup::kGateUp:
      for (int64_t j = 0; j < width; ++j) w.ffn_norm[j] /= s[j];
      for (size_t j = 0; j < w.ffn_norm_bias.size(); ++j) w.ffn_norm_bias[j] /= s[j];
      scale_columns(w.gate_proj, s);
      scale_columns(w.up_proj, s);
      break;
    case AwqGroup::kOut: {
      const int per_kv = c.n_heads / c.n_kv_heads;
      const int hd = c.head_dim;
      for (int h = 0; h < c.n_heads; ++h) {
        for (int d = 0; d < hd; ++d) {
          const float lead = s[static_cast<size_t>((h / per_kv) * per_kv * hd + d)];
          if (s[static_cast<size_t>(h * hd + d)] != lead) {
            return make_error(
                "layers.{}: AWQ o scales differ within KV group at channel {} (head {}): not foldable "
                "into v_proj",
                layer, h * hd + d, h);
          }
        }
      }
      for (int g = 0; g < c.n_kv_heads; ++g) {
        for (int d = 0; d < hd; ++d) divide_row(w.v_proj, g * hd + d, s[static_cast<size_t>(g * per_kv * hd + d)]);
      }
      scale_columns(w.o_proj, s);
      break;
    }
    case AwqGroup::kDown:
      for (int64_t k = 0; k < width; ++k) divide_row(w.up_proj, k, s[k]);
      scale_columns(w.down_proj, s);
      break;
  }
  return Status::ok_status();
}

}  // namespace lowbit
