// The GGUF block-type encoders of gguf_blocks.h: the table, gguf_quantize and
// GgufBlockScales. Both encoders run the same two steps per block, so they give
// the same bytes: choose_header() on the block's values, then every element's
// nearest stored value under that header (gguf_block_codec.h).
#include "formats/gguf_blocks.h"

#include <algorithm>
#include <cmath>

#include "formats/gguf_block_codec.h"

namespace lowbit {
namespace gguf_codec {

const std::vector<Codec>& codecs() {
  static const std::vector<Codec> table = [] {
    std::vector<Codec> legacy = legacy_codecs();
    std::vector<Codec> kquants = kquant_codecs();
    // The order of gguf_blocks.h: Q8_0, Q6_K, Q5_K, Q4_K, Q5_0, Q5_1, Q4_0, Q4_1, Q3_K, Q2_K, IQ4_NL.
    const uint32_t order[] = {8, 14, 13, 12, 6, 7, 2, 3, 11, 10, kGgmlTypeIq4Nl};
    std::vector<Codec> all;
    for (const uint32_t id : order) {
      for (const std::vector<Codec>* part : {&legacy, &kquants}) {
        for (const Codec& c : *part) {
          if (c.info.type_id == id) all.push_back(c);
        }
      }
    }
    return all;
  }();
  return table;
}

const Codec* find_codec(uint32_t type_id) {
  for (const Codec& c : codecs()) {
    if (c.info.type_id == type_id) return &c;
  }
  return nullptr;
}

}  // namespace gguf_codec

using gguf_codec::Codec;
using gguf_codec::Header;
using gguf_codec::SubBlock;

namespace {

const Codec& codec_of(const GgufBlockType& type) { return *gguf_codec::find_codec(type.type_id); }

Status check_shape(const GgufBlockType& type, int64_t rows, int64_t cols) {
  if (rows < 1 || cols < 1) return make_error("{}: cannot store a [{}, {}] matrix", type.name, rows, cols);
  if (cols % type.block_size != 0) {
    return make_error("{}: a [{}, {}] matrix has rows of {} values, not a multiple of the block size {}", type.name,
                      rows, cols, cols, type.block_size);
  }
  return Status::ok_status();
}

Status check_importance(const GgufBlockType& type, std::span<const float> importance, int64_t n) {
  if (importance.empty()) return Status::ok_status();
  if (static_cast<int64_t>(importance.size()) != n) {
    return make_error("{}: importance has {} values for {} columns", type.name, importance.size(), n);
  }
  for (size_t j = 0; j < importance.size(); ++j) {
    if (!std::isfinite(importance[j]) || importance[j] < 0) {
      return make_error("{}: importance of column {} is {}, not a finite value >= 0", type.name, j, importance[j]);
    }
  }
  return Status::ok_status();
}

// The weights of one block: its slice of `importance`, or all 1 where that is
// empty or all zero (a block nobody weighs is still stored as well as it can be).
const float* block_weights(std::span<const float> importance, int64_t c0, int64_t n, const float* ones) {
  if (importance.empty()) return ones;
  const float* w = importance.data() + c0;
  return std::any_of(w, w + n, [](float v) { return v > 0; }) ? w : ones;
}

// Encodes one block: header chosen from x [block_size], codes nearest under it.
void encode_block(const Codec& c, const float* x, const float* w, gguf_codec::Scratch& s, uint8_t* out) {
  Header h;
  gguf_codec::choose_header(c, x, w, s, &h);
  std::array<SubBlock, gguf_codec::kMaxSubBlocks> p{};
  gguf_codec::sub_blocks_of(c, h, p.data());
  std::array<uint8_t, gguf_codec::kMaxBlock> codes{};
  for (int i = 0; i < c.info.block_size; ++i) {
    codes[i] = static_cast<uint8_t>(gguf_codec::nearest_code(c, p[i / c.sub_size], x[i]));
  }
  c.pack(h, codes.data(), out);
}

}  // namespace

const std::vector<GgufBlockType>& gguf_block_types() {
  static const std::vector<GgufBlockType> types = [] {
    std::vector<GgufBlockType> t;
    for (const Codec& c : gguf_codec::codecs()) t.push_back(c.info);
    return t;
  }();
  return types;
}

const GgufBlockType* find_gguf_block_type(std::string_view name) {
  for (const GgufBlockType& t : gguf_block_types()) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

const GgufBlockType* find_gguf_block_type(uint32_t type_id) {
  for (const GgufBlockType& t : gguf_block_types()) {
    if (t.type_id == type_id) return &t;
  }
  return nullptr;
}

Expected<uint64_t> gguf_matrix_bytes(const GgufBlockType& type, int64_t rows, int64_t cols) {
  LB_RETURN_IF_ERROR(check_shape(type, rows, cols));
  return static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols / type.block_size) * type.bytes_per_block;
}

Expected<QuantizedTensor> gguf_quantize(const GgufBlockType& type, const float* x, int64_t rows, int64_t cols,
                                        std::span<const float> importance) {
  LB_ASSIGN_OR_RETURN(const uint64_t bytes, gguf_matrix_bytes(type, rows, cols));
  LB_RETURN_IF_ERROR(check_importance(type, importance, cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      if (!std::isfinite(x[r * cols + c])) {
        return make_error("{}: value at row {}, column {} is {}, not finite", type.name, r, c, x[r * cols + c]);
      }
    }
  }
  const Codec& codec = codec_of(type);
  QuantizedTensor t;
  t.rows = rows;
  t.cols = cols;
  t.codes.resize(bytes);
  gguf_codec::Scratch scratch;
  const int64_t bs = type.block_size;
  uint8_t* out = t.codes.data();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c0 = 0; c0 < cols; c0 += bs) {
      const float* w = block_weights(importance, c0, bs, scratch.unit_weights.data());
      encode_block(codec, x + r * cols + c0, w, scratch, out);
      out += type.bytes_per_block;
    }
  }
  return t;
}

Status gguf_dequantize(const GgufBlockType& type, const QuantizedTensor& t, float* out) {
  LB_ASSIGN_OR_RETURN(const uint64_t bytes, gguf_matrix_bytes(type, t.rows, t.cols));
  if (t.codes.size() != bytes) {
    return make_error("{}: a [{}, {}] matrix takes {} bytes, the tensor holds {}", type.name, t.rows, t.cols, bytes,
                      t.codes.size());
  }
  const GgmlTypeTraits* traits = find_ggml_type(type.type_id);
  if (traits == nullptr) return make_error("{}: no reference dequantizer", type.name);
  traits->dequantize(t.codes.data(), out, t.rows * (t.cols / type.block_size));
  return Status::ok_status();
}

// --- GgufBlockScales ------------------------------------------------------------------

struct GgufBlockScales::Impl {
  const GgufBlockType* type = nullptr;  // the gguf_block_types() entry
  const Codec* codec = nullptr;
  int64_t rows = 0, cols = 0, blocks_per_row = 0;
  std::vector<Header> headers;    // [rows, blocks_per_row]
  std::vector<SubBlock> params;   // [rows, blocks_per_row, sub_blocks]
  std::vector<uint8_t> chosen;    // [blocks_per_row]
  std::vector<uint8_t> quantized; // [cols]
  std::vector<uint8_t> codes;     // [rows, cols] grid indexes
  gguf_codec::Scratch scratch;
};

GgufBlockScales::GgufBlockScales(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GgufBlockScales::GgufBlockScales(GgufBlockScales&&) noexcept = default;
GgufBlockScales& GgufBlockScales::operator=(GgufBlockScales&&) noexcept = default;
GgufBlockScales::~GgufBlockScales() = default;

Expected<GgufBlockScales> GgufBlockScales::create(const GgufBlockType& type, int64_t rows, int64_t cols) {
  LB_RETURN_IF_ERROR(check_shape(type, rows, cols));
  auto impl = std::make_unique<Impl>();
  impl->type = find_gguf_block_type(type.type_id);
  impl->codec = &codec_of(type);
  impl->rows = rows;
  impl->cols = cols;
  impl->blocks_per_row = cols / type.block_size;
  const size_t blocks = static_cast<size_t>(rows * impl->blocks_per_row);
  impl->headers.resize(blocks);
  impl->params.resize(blocks * impl->codec->sub_blocks);
  impl->chosen.assign(static_cast<size_t>(impl->blocks_per_row), 0);
  impl->quantized.assign(static_cast<size_t>(cols), 0);
  impl->codes.assign(static_cast<size_t>(rows * cols), 0);
  return GgufBlockScales(std::move(impl));
}

const GgufBlockType& GgufBlockScales::type() const { return *impl_->type; }
int64_t GgufBlockScales::group_cols() const { return impl_->codec->info.block_size; }

Status GgufBlockScales::choose(const float* x, int64_t c0, int64_t n, std::span<const float> importance) {
  Impl& m = *impl_;
  const GgufBlockType& type = m.codec->info;
  if (n != type.block_size || c0 < 0 || c0 % type.block_size != 0 || c0 + n > m.cols) {
    return make_error("{}: columns [{}, {}) of {} are not one block of {}", type.name, c0, c0 + n, m.cols,
                      type.block_size);
  }
  LB_RETURN_IF_ERROR(check_importance(type, importance, n));
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t j = 0; j < n; ++j) {
      if (!std::isfinite(x[r * n + j])) {
        return make_error("{}: value at row {}, column {} is {}, not finite", type.name, r, c0 + j, x[r * n + j]);
      }
    }
  }
  const int64_t b = c0 / type.block_size;
  const float* w = block_weights(importance, 0, n, m.scratch.unit_weights.data());
  const int sub = m.codec->sub_blocks;
  for (int64_t r = 0; r < m.rows; ++r) {
    const size_t block = static_cast<size_t>(r * m.blocks_per_row + b);
    gguf_codec::choose_header(*m.codec, x + r * n, w, m.scratch, &m.headers[block]);
    gguf_codec::sub_blocks_of(*m.codec, m.headers[block], &m.params[block * sub]);
  }
  m.chosen[b] = 1;
  return Status::ok_status();
}

void GgufBlockScales::quantize_column(int64_t c, const float* x, float* q) {
  Impl& m = *impl_;
  const int64_t bs = m.codec->info.block_size;
  const int64_t b = c / bs;
  const int j = static_cast<int>((c % bs) / m.codec->sub_size);
  const int sub = m.codec->sub_blocks;
  for (int64_t r = 0; r < m.rows; ++r) {
    const SubBlock& p = m.params[static_cast<size_t>((r * m.blocks_per_row + b) * sub + j)];
    const int k = gguf_codec::nearest_code(*m.codec, p, x[r]);
    m.codes[static_cast<size_t>(r * m.cols + c)] = static_cast<uint8_t>(k);
    q[r] = gguf_codec::stored_value(*m.codec, p, k);
  }
  m.quantized[static_cast<size_t>(c)] = 1;
}

Expected<QuantizedTensor> GgufBlockScales::pack() const {
  const Impl& m = *impl_;
  const GgufBlockType& type = m.codec->info;
  for (int64_t b = 0; b < m.blocks_per_row; ++b) {
    if (!m.chosen[b]) return make_error("{}: the headers of block {} (columns {}..{}) were never chosen", type.name, b,
                                        b * type.block_size, (b + 1) * type.block_size - 1);
  }
  for (int64_t c = 0; c < m.cols; ++c) {
    if (!m.quantized[c]) return make_error("{}: column {} was never quantized", type.name, c);
  }
  QuantizedTensor t;
  t.rows = m.rows;
  t.cols = m.cols;
  t.codes.resize(static_cast<size_t>(m.rows * m.blocks_per_row) * type.bytes_per_block);
  uint8_t* out = t.codes.data();
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t b = 0; b < m.blocks_per_row; ++b) {
      m.codec->pack(m.headers[static_cast<size_t>(r * m.blocks_per_row + b)],
                    &m.codes[static_cast<size_t>(r * m.cols + b * type.block_size)], out);
      out += type.bytes_per_block;
    }
  }
  return t;
}

}  // namespace lowbit
