#include "eval/synthetic_model.h"

#include <array>
#include <cstring>
#include <cmath>
#include <map>
#include <sstream>

#include "formats/block_format.h"
#include "formats/trellis_code.h"
#include "core/half.h"
#include "model/block_shapes.h"
#include "model/packed_linear.h"

namespace lowbit {
namespace {

ModelConfig preset(int dim, int layers, int heads, int kv_heads, int ffn, int vocab, bool tied) {
  ModelConfig c;
  c.dim = dim;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = dim / heads;
  c.ffn_dim = ffn;
  c.vocab_size = vocab;
  c.tied_embeddings = tied;
  c.max_seq_len = 2048;
  return c;
}

const std::map<std::string, ModelConfig>& presets() {
  static const std::map<std::string, ModelConfig> table = {
      {"tinyllama-1.1b", preset(2048, 22, 32, 4, 5632, 32000, false)},
      {"smollm2-135m", preset(576, 30, 9, 3, 1536, 49152, true)},
      {"stories260k", preset(64, 5, 8, 4, 172, 512, false)},
  };
  return table;
}

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// v[i] uniform in [-a, a], a = sqrt(3) * 0.02, from (seed, stream, i).
void fill_random(std::vector<float>& v, size_t n, uint64_t seed, uint64_t stream, ThreadPool& pool) {
  v.resize(n);
  const float a = std::sqrt(3.0f) * 0.02f;
  const uint64_t key = splitmix(seed ^ splitmix(stream));
  pool.parallel_for(static_cast<int64_t>(n), [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      const uint64_t h = splitmix(key + static_cast<uint64_t>(i));
      v[i] = (static_cast<float>(h >> 40) * 0x1.0p-24f * 2.0f - 1.0f) * a;
    }
  });
}

void random_matrix(Matrix& m, int64_t rows, int64_t cols, uint64_t seed, uint64_t stream, ThreadPool& pool) {
  m.rows = rows;
  m.cols = cols;
  fill_random(m.data, static_cast<size_t>(rows * cols), seed, stream, pool);
}

}  // namespace

std::string shape_names() {
  std::string s;
  for (const auto& [name, c] : presets()) s += (s.empty() ? "" : ", ") + name;
  return s + ", or dim=..,layers=..,heads=..,kv_heads=..,ffn=..,vocab=..[,tied=1][,ctx=N]";
}

Expected<ModelConfig> shape_config(const std::string& name_or_dims) {
  auto it = presets().find(name_or_dims);
  if (it != presets().end()) return it->second;
  if (name_or_dims.find('=') == std::string::npos) {
    return make_error("--shape '{}': not a known shape ({})", name_or_dims, shape_names());
  }
  std::map<std::string, int> v = {{"tied", 0}, {"ctx", 2048}};
  std::stringstream ss(name_or_dims);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos) return make_error("--shape: '{}' is not key=value", item);
    const std::string key = item.substr(0, eq);
    try {
      size_t used = 0;
      const int value = std::stoi(item.substr(eq + 1), &used);
      if (used != item.size() - eq - 1) throw std::invalid_argument(item);
      v[key] = value;
    } catch (const std::exception&) {
      return make_error("--shape: '{}' is not an integer", item);
    }
  }
  for (const char* key : {"dim", "layers", "heads", "kv_heads", "ffn", "vocab"}) {
    if (!v.count(key)) return make_error("--shape '{}': missing {}=", name_or_dims, key);
  }
  if (v.size() != 8) return make_error("--shape '{}': unknown key (known: {})", name_or_dims, shape_names());
  if (v["heads"] <= 0 || v["dim"] % v["heads"] != 0) return make_error("--shape: heads must divide dim");
  ModelConfig c = preset(v["dim"], v["layers"], v["heads"], v["kv_heads"], v["ffn"], v["vocab"], v["tied"] != 0);
  c.max_seq_len = v["ctx"];
  LB_RETURN_IF_ERROR(c.validate("--shape"));
  return c;
}

namespace {

// The runtime layer of q (packed where a kernel exists), counted in the report.
Expected<std::unique_ptr<Linear>> attach_linear(QuantizedWeight q, std::vector<float> bias, const AttachOptions& attach,
                                                AttachReport& report) {
  std::string reason;
  LB_ASSIGN_OR_RETURN(std::unique_ptr<Linear> lin, make_quantized_linear(std::move(q), std::move(bias), attach, &reason));
  if (reason.empty()) {
    ++report.packed[lin->packed_linear()->kernel_name()];
  } else {
    ++report.dequantized[reason];
  }
  return lin;
}

// A trellis-coded layer (formats/trellis_code.h) of m's shape: every bit string is
// a valid code, so its codes are random bytes (a hash of the FP32 values' bits)
// and its scales 0.02 / 51.6 (the codebook's RMS), giving weights
// of the same spread as the other formats' without running an encoder.
Expected<std::unique_ptr<Linear>> random_trellis_linear(const std::string& name, Matrix m, const std::string& format,
                                                        const AttachOptions& attach, AttachReport& report) {
  LB_ASSIGN_OR_RETURN(const TrellisParams p, parse_trellis_format(format));
  LB_RETURN_IF_ERROR(trellis_check_shape(p, m.rows, m.cols).with_context(name));
  QuantizedWeight q;
  q.format = format;
  q.tensor.rows = m.rows;
  q.tensor.cols = m.cols;
  q.tensor.codes.resize(static_cast<size_t>(m.rows * trellis_row_bytes(p, m.cols)));
  for (size_t i = 0; i < q.tensor.codes.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &m.data[i % m.data.size()], 4);
    q.tensor.codes[i] = static_cast<uint8_t>(splitmix(bits ^ (static_cast<uint64_t>(i) << 32)));
  }
  const uint16_t scale = float_to_fp16(0.02f / 51.6f);
  q.tensor.scales.resize(static_cast<size_t>(2 * m.rows * trellis_row_groups(p, m.cols)));
  for (size_t i = 0; i < q.tensor.scales.size(); i += 2) {
    q.tensor.scales[i] = static_cast<uint8_t>(scale & 0xFF);
    q.tensor.scales[i + 1] = static_cast<uint8_t>(scale >> 8);
  }
  return attach_linear(std::move(q), std::move(m.bias), attach, report);
}

// The runtime layer of one random matrix: dense for "fp32", else quantized with
// RTN and handed to make_quantized_linear (packed where a kernel exists). The FP32
// matrix is freed on return, so building a model holds one FP32 matrix at a time.
Expected<std::unique_ptr<Linear>> runtime_linear(const std::string& name, Matrix m, const FormatForLinear& format_for,
                                                 ThreadPool& pool, const AttachOptions& attach, AttachReport& report) {
  LB_ASSIGN_OR_RETURN(std::string format, format_for(name));
  if (format == kFp32Storage) return std::unique_ptr<Linear>(std::make_unique<DenseLinear>(std::move(m)));
  if (is_trellis_format_name(format)) return random_trellis_linear(name, std::move(m), format, attach, report);
  // Rows quantize independently under per-row and per-group scales: split them
  // over the pool, then join the parts. A tensor scale (NVFP4) or 2-D tiles need the whole matrix.
  LB_ASSIGN_OR_RETURN(const BlockFormat* f, find_block_format(format));
  const bool splittable = !f->layout.tensor_scale && f->layout.granularity != ScaleGranularity::kTensor &&
                          f->layout.granularity != ScaleGranularity::kBlock2D;
  const int parts = splittable ? pool.size() : 1;
  std::vector<Expected<QuantizedTensor>> pieces(static_cast<size_t>(parts), make_error("not run"));
  const int64_t chunk = ceil_div(m.rows, parts);
  pool.parallel_for(parts, [&](int64_t b, int64_t e, int) {
    for (int64_t p = b; p < e; ++p) {
      const int64_t r0 = std::min(m.rows, p * chunk), r1 = std::min(m.rows, r0 + chunk);
      pieces[p] = quantize_matrix(format, m.data.data() + r0 * m.cols, r1 - r0, m.cols);
    }
  });
  QuantizedWeight q;
  q.format = format;
  q.tensor.rows = m.rows;
  q.tensor.cols = m.cols;
  q.tensor.tensor_scale = pieces[0].ok() ? pieces[0]->tensor_scale : 1.0f;
  m.data = std::vector<float>();
  for (auto& piece : pieces) {
    if (!piece.ok()) return piece.status().with_context(name);
    q.tensor.codes.insert(q.tensor.codes.end(), piece->codes.begin(), piece->codes.end());
    q.tensor.scales.insert(q.tensor.scales.end(), piece->scales.begin(), piece->scales.end());
    q.tensor.mins.insert(q.tensor.mins.end(), piece->mins.begin(), piece->mins.end());
    piece = make_error("joined");
  }
  return attach_linear(std::move(q), std::move(m.bias), attach, report);
}

}  // namespace

Expected<SyntheticModel> build_synthetic_model(const ModelConfig& config, const FormatForLinear& format_for,
                                               uint64_t seed, ThreadPool& pool, const AttachOptions& attach) {
  LB_RETURN_IF_ERROR(config.validate("synthetic model"));
  const ModelConfig& c = config;
  AttachReport report;
  // Streams: 0 the embedding, then 7 per layer in kLinearSuffixes order, then an untied head.
  uint64_t stream = 0;
  std::vector<float> embedding;  // [vocab, dim]
  fill_random(embedding, static_cast<size_t>(c.vocab_size) * c.dim, seed, stream++, pool);
  const auto shapes = block_linear_shapes(c);
  std::vector<DecoderBlock> blocks;
  blocks.reserve(static_cast<size_t>(c.n_layers));
  for (int i = 0; i < c.n_layers; ++i) {
    LayerWeights norms;
    norms.attn_norm.assign(static_cast<size_t>(c.dim), 1.0f);
    norms.ffn_norm.assign(static_cast<size_t>(c.dim), 1.0f);
    std::array<std::unique_ptr<Linear>, 7> linears;
    for (size_t k = 0; k < linears.size(); ++k) {
      Matrix m;
      random_matrix(m, shapes[k].rows, shapes[k].cols, seed, stream++, pool);
      const std::string name = fmt::format("layers.{}.{}", i, DecoderBlock::kLinearSuffixes[k]);
      LB_ASSIGN_OR_RETURN(linears[k], runtime_linear(name, std::move(m), format_for, pool, attach, report));
    }
    LB_ASSIGN_OR_RETURN(DecoderBlock block, DecoderBlock::create(c, i, std::move(norms), std::move(linears), {}));
    blocks.push_back(std::move(block));
  }
  Matrix head;  // [vocab, dim]: a tied head starts as a copy of the table (quantized on its own, or kept FP32)
  if (c.tied_embeddings) {
    head.rows = c.vocab_size;
    head.cols = c.dim;
    head.data = embedding;
  } else {
    random_matrix(head, c.vocab_size, c.dim, seed, stream++, pool);
  }
  LB_ASSIGN_OR_RETURN(std::unique_ptr<Linear> lm_head,
                      runtime_linear("lm_head", std::move(head), format_for, pool, attach, report));
  LB_ASSIGN_OR_RETURN(TokenEmbedding table, TokenEmbedding::fp32(std::move(embedding), c.dim));
  LB_ASSIGN_OR_RETURN(LlamaModel model,
                      LlamaModel::assemble(c, std::move(table), std::vector<float>(static_cast<size_t>(c.dim), 1.0f),
                                           std::move(blocks), std::move(lm_head), false));
  return SyntheticModel{std::move(model), std::move(report)};
}

}  // namespace lowbit
