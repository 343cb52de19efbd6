#include "model_writers.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <tuple>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "io/gguf.h"
#include "model/llama_model.h"
#include "pipeline/hf_export.h"
#include "tokenizer/hf_tokenizer_writer.h"

namespace lowbit::testing {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

constexpr int32_t kTypeNormal = kGgufTokenNormal, kTypeUnknown = kGgufTokenUnknown, kTypeControl = kGgufTokenControl,
                  kTypeByte = kGgufTokenByte;

void append_raw(std::string& out, const void* data, size_t bytes) {
  out.append(static_cast<const char*>(data), bytes);
}

void append_floats(std::string& out, const std::vector<float>& v) { append_raw(out, v.data(), v.size() * 4); }

}  // namespace

Expected<SpmVocab> read_gguf_spm_vocab(const std::string& gguf_path) {
  LB_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::open(gguf_path));
  SpmVocab v;
  LB_ASSIGN_OR_RETURN(v.pieces, gguf.get_string_array("tokenizer.ggml.tokens"));
  LB_ASSIGN_OR_RETURN(std::vector<double> scores, gguf.get_float_array("tokenizer.ggml.scores"));
  LB_ASSIGN_OR_RETURN(std::vector<int64_t> types, gguf.get_int_array("tokenizer.ggml.token_type"));
  if (scores.size() != v.pieces.size() || types.size() != v.pieces.size()) {
    return make_error("{}: tokens, scores and token_type differ in length", gguf_path);
  }
  v.scores.assign(scores.begin(), scores.end());
  v.types.assign(types.begin(), types.end());
  v.unk_id = static_cast<int32_t>(gguf.get_int_or("tokenizer.ggml.unknown_token_id", 0));
  v.bos_id = static_cast<int32_t>(gguf.get_int_or("tokenizer.ggml.bos_token_id", 1));
  v.eos_id = static_cast<int32_t>(gguf.get_int_or("tokenizer.ggml.eos_token_id", 2));
  return v;
}

SpmVocab make_test_spm_vocab() {
  SpmVocab v;
  auto add = [&v](std::string piece, float score, int32_t type) {
    v.pieces.push_back(std::move(piece));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0, kTypeUnknown);
  add("<s>", 0, kTypeControl);
  add("</s>", 0, kTypeControl);
  for (int b = 0; b < 256; ++b) add(fmt::format("<0x{:02X}>", b), 0, kTypeByte);
  const char* merged[] = {"▁t", "he", "▁the", "▁a", "an", "▁an", "in", "▁o", "on", "ce", "▁on", "▁once"};
  float score = -1;
  for (const char* piece : merged) add(piece, score--, kTypeNormal);
  for (const char* c : {"▁", "e", "t", "a", "o", "n", "h", "i", "c", "s", "."}) add(c, score--, kTypeNormal);
  return v;
}

namespace {
SpmPieces to_pieces(const SpmVocab& v) { return {v.pieces, v.scores, v.types, v.unk_id, v.bos_id, v.eos_id}; }
}  // namespace

std::vector<std::string> spm_merges(const SpmVocab& vocab) { return spm_bpe_merges(to_pieces(vocab)); }

std::string spm_to_tokenizer_json(const SpmVocab& vocab) { return spm_tokenizer_json(to_pieces(vocab)); }

std::vector<float> permute_rope_rows(const std::vector<float>& w, int n_heads, int64_t cols, bool to_half_split) {
  const int64_t rows = static_cast<int64_t>(w.size()) / cols;
  const int64_t head_dim = rows / n_heads, half = head_dim / 2;
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t adjacent = h * head_dim + 2 * i + j;
        const int64_t split = h * head_dim + j * half + i;
        const int64_t src = to_half_split ? adjacent : split;
        const int64_t dst = to_half_split ? split : adjacent;
        std::memcpy(&out[dst * cols], &w[src * cols], cols * sizeof(float));
      }
    }
  }
  return out;
}

Status write_hf_checkpoint(const LoadedModel& m, const SpmVocab* vocab, const std::string& folder,
                           const HfWriteOptions& options) {
  const ModelConfig& c = m.config;
  LB_ASSIGN_OR_RETURN(ojson config, hf_config_json(c, options.dtype));
  config["bos_token_id"] = 1;
  config["eos_token_id"] = 2;
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) return make_error("{}: cannot create folder: {}", folder, ec.message());

  const bool permute = c.rope_layout == RopeLayout::kAdjacentPairs;
  std::deque<std::vector<float>> permuted;  // keeps permuted copies alive until written
  std::vector<SafetensorsWriteTensor> tensors;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) {
    tensors.push_back({name, options.dtype, std::move(shape), v.data()});
  };
  auto add_matrix = [&](const std::string& prefix, const Matrix& mat, int rope_heads) {
    const std::vector<float>* w = &mat.data;
    const std::vector<float>* b = &mat.bias;
    if (permute && rope_heads > 0) {
      w = &permuted.emplace_back(permute_rope_rows(mat.data, rope_heads, mat.cols, true));
      if (!mat.bias.empty()) b = &permuted.emplace_back(permute_rope_rows(mat.bias, rope_heads, 1, true));
    }
    add(prefix + ".weight", {mat.rows, mat.cols}, *w);
    if (!b->empty()) add(prefix + ".bias", {mat.rows}, *b);
  };
  const ModelWeights& w = m.weights;
  add("model.embed_tokens.weight", {c.vocab_size, c.dim}, w.token_embedding);
  for (int i = 0; i < c.n_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    const LayerWeights& l = w.layers[i];
    add(p + "input_layernorm.weight", {c.dim}, l.attn_norm);
    add_matrix(p + "self_attn.q_proj", l.q_proj, c.n_heads);
    add_matrix(p + "self_attn.k_proj", l.k_proj, c.n_kv_heads);
    add_matrix(p + "self_attn.v_proj", l.v_proj, 0);
    add_matrix(p + "self_attn.o_proj", l.o_proj, 0);
    add(p + "post_attention_layernorm.weight", {c.dim}, l.ffn_norm);
    add_matrix(p + "mlp.gate_proj", l.gate_proj, 0);
    add_matrix(p + "mlp.up_proj", l.up_proj, 0);
    add_matrix(p + "mlp.down_proj", l.down_proj, 0);
  }
  add("model.norm.weight", {c.dim}, w.output_norm);
  if (!c.tied_embeddings) add_matrix("lm_head", w.lm_head, 0);

  const fs::path dir(folder);
  LB_RETURN_IF_ERROR(write_file_atomic((dir / "config.json").string(), config.dump(2)));
  if (vocab != nullptr) {
    LB_RETURN_IF_ERROR(write_file_atomic((dir / "tokenizer.json").string(), spm_to_tokenizer_json(*vocab)));
  }
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  if (!options.sharded) return write_safetensors((dir / "model.safetensors").string(), tensors, metadata);

  // Two shards: the first half of the tensors (in name order above) and the rest.
  const size_t split = tensors.size() / 2;
  const std::vector<SafetensorsWriteTensor> parts[2] = {
      std::vector<SafetensorsWriteTensor>(tensors.begin(), tensors.begin() + split),
      std::vector<SafetensorsWriteTensor>(tensors.begin() + split, tensors.end())};
  ojson weight_map = ojson::object();
  uint64_t total = 0;
  for (int s = 0; s < 2; ++s) {
    const std::string name = fmt::format("model-{:05d}-of-00002.safetensors", s + 1);
    LB_RETURN_IF_ERROR(write_safetensors((dir / name).string(), parts[s], metadata));
    for (const auto& t : parts[s]) {
      weight_map[t.name] = name;
      uint64_t n = safetensors_dtype_info(t.dtype).bytes;
      for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
      total += n;
    }
  }
  const ojson index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  return write_file_atomic((dir / "model.safetensors.index.json").string(), index.dump(2));
}

Status write_llama2c_checkpoint(const LoadedModel& m, const std::string& path) {
  const ModelConfig& c = m.config;
  if (c.qkv_bias || c.head_dim * c.n_heads != c.dim || c.rope_theta != 10000.0 || c.rope_scaling.llama3) {
    return make_error("{}: llama2.c cannot hold this model (biases, head_dim != dim/n_heads, rope_theta {} or "
                      "RoPE scaling)", path, c.rope_theta);
  }
  const bool unpermute = c.rope_layout == RopeLayout::kHalfSplit;
  const ModelWeights& w = m.weights;
  std::string out;
  const int32_t header[7] = {c.dim, c.ffn_dim, c.n_layers, c.n_heads, c.n_kv_heads,
                             c.tied_embeddings ? c.vocab_size : -c.vocab_size, c.max_seq_len};
  append_raw(out, header, sizeof(header));
  append_floats(out, w.token_embedding);
  for (const auto& l : w.layers) append_floats(out, l.attn_norm);
  for (const auto& l : w.layers) {
    append_floats(out, unpermute ? permute_rope_rows(l.q_proj.data, c.n_heads, c.dim, false) : l.q_proj.data);
  }
  for (const auto& l : w.layers) {
    append_floats(out, unpermute ? permute_rope_rows(l.k_proj.data, c.n_kv_heads, c.dim, false) : l.k_proj.data);
  }
  for (const auto& l : w.layers) append_floats(out, l.v_proj.data);
  for (const auto& l : w.layers) append_floats(out, l.o_proj.data);
  for (const auto& l : w.layers) append_floats(out, l.ffn_norm);
  for (const auto& l : w.layers) append_floats(out, l.gate_proj.data);
  for (const auto& l : w.layers) append_floats(out, l.down_proj.data);
  for (const auto& l : w.layers) append_floats(out, l.up_proj.data);
  append_floats(out, w.output_norm);
  // freq_cis_real/imag [seq_len, head_dim/2] as llama2.c's export computes them.
  const int half = c.head_dim / 2;
  std::vector<float> re(static_cast<size_t>(c.max_seq_len) * half), im(re.size());
  for (int t = 0; t < c.max_seq_len; ++t) {
    for (int i = 0; i < half; ++i) {
      const double freq = 1.0 / std::pow(c.rope_theta, 2.0 * i / c.head_dim);
      re[static_cast<size_t>(t) * half + i] = static_cast<float>(std::cos(t * freq));
      im[static_cast<size_t>(t) * half + i] = static_cast<float>(std::sin(t * freq));
    }
  }
  append_floats(out, re);
  append_floats(out, im);
  if (!c.tied_embeddings) append_floats(out, w.lm_head.data);
  return write_file_atomic(path, out);
}

LoadedModel make_random_model(const ModelConfig& config, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-0.5f, 0.5f);
  auto fill = [&](int64_t n, float scale, float offset) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = offset + scale * uniform(rng);
    return v;
  };
  auto matrix = [&](int64_t rows, int64_t cols, bool bias) {
    Matrix m;
    m.rows = rows;
    m.cols = cols;
    m.data = fill(rows * cols, 1.0f / std::sqrt(static_cast<float>(cols)), 0.0f);
    if (bias) m.bias = fill(rows, 0.2f, 0.0f);
    return m;
  };
  const ModelConfig& c = config;
  LoadedModel m;
  m.config = c;
  m.weights.token_embedding = fill(static_cast<int64_t>(c.vocab_size) * c.dim, 1.0f, 0.0f);
  for (int i = 0; i < c.n_layers; ++i) {
    LayerWeights l;
    l.attn_norm = fill(c.dim, 1.0f, 1.0f);
    l.q_proj = matrix(c.q_dim(), c.dim, c.qkv_bias);
    l.k_proj = matrix(c.kv_dim(), c.dim, c.qkv_bias);
    l.v_proj = matrix(c.kv_dim(), c.dim, c.qkv_bias);
    l.o_proj = matrix(c.dim, c.q_dim(), false);
    l.ffn_norm = fill(c.dim, 1.0f, 1.0f);
    l.gate_proj = matrix(c.ffn_dim, c.dim, false);
    l.up_proj = matrix(c.ffn_dim, c.dim, false);
    l.down_proj = matrix(c.dim, c.ffn_dim, false);
    m.weights.layers.push_back(std::move(l));
  }
  m.weights.output_norm = fill(c.dim, 1.0f, 1.0f);
  if (!c.tied_embeddings) m.weights.lm_head = matrix(c.vocab_size, c.dim, false);
  return m;
}

LoadedModel clone_weights(const LoadedModel& m) {
  LoadedModel out;
  out.config = m.config;
  out.weights = m.weights;
  out.summary = m.summary;
  return out;
}

Expected<std::vector<float>> forward_logits(const LoadedModel& m, const std::vector<int32_t>& tokens) {
  LB_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::create(m.config, m.weights));
  std::unique_ptr<KvCache> cache = model.make_fp32_cache(static_cast<int>(tokens.size()));
  ThreadPool pool(1);
  std::vector<float> logits(tokens.size() * static_cast<size_t>(m.config.vocab_size));  // [n_tokens, vocab]
  LB_RETURN_IF_ERROR(model.forward(tokens.data(), static_cast<int>(tokens.size()), 0, *cache, logits.data(), pool));
  return logits;
}

MaxDiff max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  MaxDiff d;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const float diff = std::fabs(a[i] - b[i]);
    if (!(diff <= d.value)) {  // NaN counts as worst
      d.value = diff;
      d.index = i;
      if (std::isnan(diff)) break;
    }
  }
  return d;
}

ScopedTempDir::ScopedTempDir(const std::string& tag) {
  std::random_device rd;
  const uint64_t nonce = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  path_ = fs::temp_directory_path() / fmt::format("lowbit_{}_{}_{:016x}", tag, ::getpid(), nonce);
  fs::create_directories(path_);
}

ScopedTempDir::~ScopedTempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

}  // namespace lowbit::testing
