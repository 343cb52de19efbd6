#include "pipeline/export_gguf_types.h"

#include <cmath>
#include <cstring>

#include "formats/gguf_blocks.h"
#include "io/ggml_types.h"
#include "quant/quantized_weight.h"

namespace lowbit {
namespace {

constexpr int64_t kLegacyBlock = 32;  // elements of a Q4_0 / Q4_1 / Q8_0 block

// llama.h llama_ftype of a file mostly in one type, and llama.cpp's shape
// fallback (llama-quant.cpp tensor_type_fallback), by type name.
struct TypeFacts {
  const char* name;
  int llama_ftype;
  const char* fallback;
};
constexpr TypeFacts kTypeFacts[] = {
    {"f32", 0, ""},       {"f16", 1, ""},       {"bf16", 32, ""},     {"q4_0", 2, ""},      {"q4_1", 3, ""},
    {"q8_0", 7, ""},      {"q5_0", 8, ""},      {"q5_1", 9, ""},      {"q2_K", 10, "q4_0"}, {"q3_K", 12, "q4_0"},
    {"q4_K", 15, "q5_0"}, {"q5_K", 17, "q5_1"}, {"q6_K", 18, "q8_0"}, {"iq4_nl", 25, ""},
};

GgufOutputType make_type(std::string name, uint32_t type_id, int64_t block_size) {
  GgufOutputType t{std::move(name), type_id, block_size, 0, ""};
  for (const TypeFacts& f : kTypeFacts) {
    if (t.name == f.name) {
      t.llama_ftype = f.llama_ftype;
      t.fallback = f.fallback;
    }
  }
  return t;
}

// --------------------------------------------------------------- exact rules

// Scale code k of row r (FP16, little-endian) in a group-scaled tensor.
uint16_t group_code(const std::vector<uint8_t>& array, int64_t r, int64_t scale_cols, int64_t k) {
  const uint8_t* p = array.data() + 2 * (r * scale_cols + k);
  return static_cast<uint16_t>(p[0] | p[1] << 8);
}

void put_u16(uint8_t* dst, uint16_t v) {
  dst[0] = static_cast<uint8_t>(v);
  dst[1] = static_cast<uint8_t>(v >> 8);
}

// The integer value of every code of a format whose codes decode to integers in
// [lo, hi]; empty when some code decodes to anything else.
std::vector<int> integer_levels(const BlockFormat& f, int lo, int hi) {
  std::vector<int> levels;
  for (float v : decode_table(f.element)) {
    if (!(v >= lo && v <= hi) || v != std::floor(v)) return {};
    levels.push_back(static_cast<int>(v));
  }
  return levels;
}

// Group-scaled by FP16 scales over groups of 32k elements, no tensor scale, no
// element unit: the shared shape of the three block-type rules.
bool fp16_groups_of_32(const BlockFormat* f) {
  return f != nullptr && f->spec.granularity == ScaleGranularity::kGroup && f->spec.scale_type == ScaleType::kFp16 &&
         f->spec.group_cols % kLegacyBlock == 0 && !f->spec.tensor_scale && f->spec.element_unit_log2 == 0 &&
         f->spec.rule == ScaleRule::kAbsMax;
}

bool is_q4_1_like(const BlockFormat* f) {
  return fp16_groups_of_32(f) && f->spec.asymmetric && f->layout.code_bits == 4 && !integer_levels(*f, 0, 15).empty();
}
bool is_q4_0_like(const BlockFormat* f) {
  return fp16_groups_of_32(f) && !f->spec.asymmetric && f->layout.code_bits == 4 && !integer_levels(*f, -8, 7).empty();
}
bool is_q8_0_like(const BlockFormat* f) {
  return fp16_groups_of_32(f) && !f->spec.asymmetric && f->layout.code_bits == 8 &&
         !integer_levels(*f, -128, 127).empty();
}

// Codes of row r, unpacked: [cols].
std::vector<int> row_levels(const BlockFormat& f, const QuantizedTensor& t, int64_t r, const std::vector<int>& levels) {
  std::vector<int> out(static_cast<size_t>(t.cols));
  const int64_t row_bytes = row_code_bytes(f.layout.code_bits, t.cols);
  const uint8_t* row = t.codes.data() + r * row_bytes;
  for (int64_t c = 0; c < t.cols; ++c) {
    const uint32_t code = f.layout.code_bits == 8 ? row[c] : (row[c / 2] >> (4 * (c % 2))) & 0x0F;
    out[static_cast<size_t>(c)] = levels[code];
  }
  return out;
}

// One legacy block of 32 levels per (row, block), with the group's header bytes:
// Q4_1 [d, m, qs[16]], Q4_0 [d, qs[16]], Q8_0 [d, qs[32]].
enum class Legacy { kQ4_0, kQ4_1, kQ8_0 };

Expected<std::vector<uint8_t>> to_legacy_blocks(const BlockFormat* f, const QuantizedTensor& t, Legacy kind) {
  if (t.cols % kLegacyBlock != 0) return make_error("{}: {} columns are not a multiple of 32", f->name(), t.cols);
  const std::vector<int> levels = kind == Legacy::kQ4_1   ? integer_levels(*f, 0, 15)
                                  : kind == Legacy::kQ4_0 ? integer_levels(*f, -8, 7)
                                                          : integer_levels(*f, -128, 127);
  const size_t block_bytes = kind == Legacy::kQ4_1 ? 20 : kind == Legacy::kQ4_0 ? 18 : 34;
  const int64_t blocks_per_row = t.cols / kLegacyBlock;
  const int64_t scale_cols = ceil_div(t.cols, f->spec.group_cols);
  std::vector<uint8_t> out(static_cast<size_t>(t.rows * blocks_per_row) * block_bytes);
  for (int64_t r = 0; r < t.rows; ++r) {
    const std::vector<int> q = row_levels(*f, t, r, levels);
    for (int64_t b = 0; b < blocks_per_row; ++b) {
      uint8_t* block = out.data() + static_cast<size_t>(r * blocks_per_row + b) * block_bytes;
      const int64_t group = b * kLegacyBlock / f->spec.group_cols;
      put_u16(block, group_code(t.scales, r, scale_cols, group));
      const int* x = q.data() + b * kLegacyBlock;
      if (kind == Legacy::kQ8_0) {
        for (int i = 0; i < kLegacyBlock; ++i) block[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(x[i]));
        continue;
      }
      uint8_t* qs = block + 2;
      int bias = 8;  // Q4_0 stores code + 8
      if (kind == Legacy::kQ4_1) {
        put_u16(block + 2, group_code(t.mins, r, scale_cols, group));
        qs = block + 4;
        bias = 0;
      }
      for (int i = 0; i < kLegacyBlock / 2; ++i) {
        qs[i] = static_cast<uint8_t>((x[i] + bias) | (x[i + kLegacyBlock / 2] + bias) << 4);
      }
    }
  }
  return out;
}

Expected<std::vector<uint8_t>> copy_codes(const BlockFormat*, const QuantizedTensor& t) { return t.codes; }

bool is_fp32(const BlockFormat* f) { return f == nullptr; }
bool is_fp16(const BlockFormat* f) { return f != nullptr && f->name() == "fp16"; }
bool is_bf16(const BlockFormat* f) { return f != nullptr && f->name() == "bf16"; }

const GgufExactRule kExactRules[] = {
    {"fp32: the same bytes", static_cast<uint32_t>(GgmlType::F32), &is_fp32, &copy_codes},
    {"fp16: the same bytes", static_cast<uint32_t>(GgmlType::F16), &is_fp16, &copy_codes},
    {"bf16: the same bytes", static_cast<uint32_t>(GgmlType::BF16), &is_bf16, &copy_codes},
    {"asymmetric UINT4 with FP16 scale and minimum per group of 32k: Q4_1 blocks, each carrying its group's "
     "scale and minimum",
     static_cast<uint32_t>(GgmlType::Q4_1), &is_q4_1_like,
     [](const BlockFormat* f, const QuantizedTensor& t) { return to_legacy_blocks(f, t, Legacy::kQ4_1); }},
    {"symmetric integers in [-8, 7] with an FP16 scale per group of 32k: Q4_0 blocks (code + 8)",
     static_cast<uint32_t>(GgmlType::Q4_0), &is_q4_0_like,
     [](const BlockFormat* f, const QuantizedTensor& t) { return to_legacy_blocks(f, t, Legacy::kQ4_0); }},
    {"symmetric INT8 with an FP16 scale per group of 32k: Q8_0 blocks", static_cast<uint32_t>(GgmlType::Q8_0),
     &is_q8_0_like,
     [](const BlockFormat* f, const QuantizedTensor& t) { return to_legacy_blocks(f, t, Legacy::kQ8_0); }},
};

}  // namespace

const std::vector<GgufOutputType>& gguf_output_types() {
  static const std::vector<GgufOutputType> types = [] {
    std::vector<GgufOutputType> t = {make_type("f32", static_cast<uint32_t>(GgmlType::F32), 1),
                                     make_type("f16", static_cast<uint32_t>(GgmlType::F16), 1),
                                     make_type("bf16", static_cast<uint32_t>(GgmlType::BF16), 1)};
    for (const GgufBlockType& b : gguf_block_types()) t.push_back(make_type(b.name, b.type_id, b.block_size));
    return t;
  }();
  return types;
}

const GgufOutputType* find_gguf_output_type(std::string_view name) {
  for (const GgufOutputType& t : gguf_output_types()) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const GgufOutputType* find_gguf_output_type(uint32_t type_id) {
  for (const GgufOutputType& t : gguf_output_types()) {
    if (t.type_id == type_id) return &t;
  }
  return nullptr;
}

std::string gguf_output_type_names() {
  std::string names;
  for (const GgufOutputType& t : gguf_output_types()) names += (names.empty() ? "" : ", ") + t.name;
  return names;
}

const GgufOutputType& gguf_type_for_row(const GgufOutputType& wanted, int64_t cols) {
  const GgufOutputType* t = &wanted;
  while (cols % t->block_size != 0) {
    const GgufOutputType* next = find_gguf_output_type(t->fallback.empty() ? "f16" : t->fallback);
    t = next != nullptr ? next : find_gguf_output_type("f16");
  }
  return *t;
}

Expected<std::vector<uint8_t>> gguf_encode(const GgufOutputType& type, const float* x, int64_t rows, int64_t cols) {
  if (cols % type.block_size != 0) {
    return make_error("{}: row length {} is not a multiple of {}", type.name, cols, type.block_size);
  }
  if (type.name == "f32") {
    std::vector<uint8_t> out(static_cast<size_t>(rows * cols) * sizeof(float));
    if (!out.empty()) std::memcpy(out.data(), x, out.size());
    return out;
  }
  if (type.name == "f16" || type.name == "bf16") {
    // lowbit's fp16 / bf16 formats store the codes row-major, little-endian: GGUF's bytes.
    LB_ASSIGN_OR_RETURN(QuantizedTensor t, quantize_matrix(type.name == "f16" ? "fp16" : "bf16", x, rows, cols));
    return std::move(t.codes);
  }
  const GgufBlockType* block = find_gguf_block_type(type.name);
  if (block == nullptr) return make_error("gguf: no encoder for type {}", type.name);
  LB_ASSIGN_OR_RETURN(QuantizedTensor t, gguf_quantize(*block, x, rows, cols));
  return std::move(t.codes);
}

Expected<std::vector<float>> gguf_decode(uint32_t type_id, std::span<const uint8_t> bytes, int64_t rows,
                                         int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  if (const GgufBlockType* block = find_gguf_block_type(type_id); block != nullptr) {
    QuantizedTensor t;
    t.rows = rows;
    t.cols = cols;
    t.codes.assign(bytes.begin(), bytes.end());
    LB_RETURN_IF_ERROR(gguf_dequantize(*block, t, out.data()));
    return out;
  }
  const GgmlTypeTraits* traits = find_ggml_type(type_id);
  if (traits == nullptr) return make_error("gguf: lowbit cannot decode type {}", ggml_type_name(type_id));
  const int64_t n_blocks = rows * cols / traits->block_size;
  if (cols % traits->block_size != 0 || bytes.size() != static_cast<size_t>(n_blocks) * traits->bytes_per_block) {
    return make_error("gguf: {} bytes do not hold a [{}, {}] {} tensor", bytes.size(), rows, cols, traits->name);
  }
  traits->dequantize(bytes.data(), out.data(), n_blocks);
  return out;
}

const GgufExactRule* find_gguf_exact_rule(const std::string& format) {
  const BlockFormat* f = nullptr;
  if (format != kFp32Storage) {
    auto found = find_block_format(format);
    if (!found.ok()) return nullptr;
    f = *found;
  }
  return find_gguf_exact_rule(f);
}

const GgufExactRule* find_gguf_exact_rule(const BlockFormat* f) {
  for (const GgufExactRule& rule : kExactRules) {
    if (rule.applies(f)) return &rule;
  }
  return nullptr;
}

}  // namespace lowbit
