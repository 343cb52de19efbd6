// QuantizedWeight -> PackedMatrix (packed_convert.h).
#include "model/packed_convert.h"

#include <cmath>
#include <cstring>

#include "core/half.h"
#include "formats/block_format.h"
#include "formats/element_format.h"
#include "formats/gguf_blocks.h"
#include "formats/ptq161_code.h"
#include "formats/trellis_code.h"
#include "formats/vq_code.h"

namespace lowbit {
namespace {

int64_t padded_cols(int64_t cols) { return ceil_div(cols, kPackedColAlign) * kPackedColAlign; }

// Scale code `index` of a QuantizedTensor's scale bytes (formats layer's byte order).
uint32_t scale_code(const std::vector<uint8_t>& bytes, int width, int64_t index) {
  return read_scale_code(bytes.data() + index * width, width);
}

bool lut4_scale_type(ScaleType t, bool* bf16) {
  switch (t) {
    case ScaleType::kFp16:
    case ScaleType::kUe4m3:
    case ScaleType::kE4m3: *bf16 = false; return true;
    case ScaleType::kBf16:
    case ScaleType::kE8m0: *bf16 = true; return true;
    default: return false;
  }
}

bool int8_is_twos_complement(const ElementFormat& e) {
  const std::vector<float> table = decode_table(e);
  for (int c = 0; c < 256; ++c) {
    if (c == 0x80) continue;  // restricted INT8 never emits -128
    if (table[c] != static_cast<float>(static_cast<int8_t>(c))) return false;
  }
  return true;
}

bool fp8_matches_e4m3(const ElementFormat& e) {
  const std::vector<float> table = decode_table(e);
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) == 0x7F) continue;  // NaN codes: never emitted
    if (table[c] != e4m3_value(static_cast<uint8_t>(c))) return false;
  }
  return true;
}

Expected<const BlockFormat*> format_of(const QuantizedWeight& q) { return find_block_format(q.format); }

// 2-byte scale codes of the stored scales, re-encoded exactly into FP16 or BF16.
Status convert_scales(const BlockFormat& f, const QuantizedTensor& t, const std::vector<uint8_t>& stored,
                      int64_t n_groups, bool bf16, HugePageVector<uint16_t>& out) {
  const int width = f.layout.scale_bytes;
  const int64_t stored_cols = scale_cols(f.layout, t.cols);
  out.assign(static_cast<size_t>(t.rows * n_groups), 0);  // groups past the stored ones cover padding only
  for (int64_t r = 0; r < t.rows; ++r) {
    for (int64_t g = 0; g < stored_cols; ++g) {
      const float v = decode_scale(f.spec.scale_type, scale_code(stored, width, r * stored_cols + g));
      const uint16_t h = bf16 ? float_to_bf16(v) : float_to_fp16(v);
      const float back = bf16 ? bf16_to_float(h) : fp16_to_float(h);
      if (!(back == v)) {
        return make_error("{}: scale {} of row {} group {} is not exact in {}", f.name(), v, r, g,
                          bf16 ? "bf16" : "fp16");
      }
      out[r * n_groups + g] = h;
    }
  }
  return Status::ok_status();
}

// The shape, groups, table and tensor scale of a grouped-table layout (kLut4 or
// kBits with 2^code_bits table entries); the codes are the caller's.
PackedMatrix grouped_table_header(const BlockFormat& f, const QuantizedTensor& t, PackedKind kind, int code_bits) {
  PackedMatrix p;
  p.kind = kind;
  if (kind == PackedKind::kBits) p.code_bits = code_bits;
  p.rows = t.rows;
  p.cols = t.cols;
  p.cols_padded = padded_cols(t.cols);
  p.group = f.layout.group_cols;
  p.asymmetric = f.spec.asymmetric;
  lut4_scale_type(f.spec.scale_type, &p.bf16_scales);
  const std::vector<float> table = decode_table(f.element);
  const float unit = std::ldexp(1.0f, f.spec.element_unit_log2);
  for (int c = 0; c < (1 << code_bits); ++c) p.lut[c] = std::isfinite(table[c]) ? table[c] * unit : 0.0f;
  p.tensor_scale = f.layout.tensor_scale ? t.tensor_scale : 1.0f;
  return p;
}

// The group scales (and minimums) of a grouped-table layout, re-encoded as FP16 or BF16.
Status convert_group_scales(const BlockFormat& f, const QuantizedTensor& t, PackedMatrix& p) {
  LB_RETURN_IF_ERROR(convert_scales(f, t, t.scales, p.n_groups(), p.bf16_scales, p.scales));
  if (p.asymmetric) LB_RETURN_IF_ERROR(convert_scales(f, t, t.mins, p.n_groups(), p.bf16_scales, p.mins));
  return Status::ok_status();
}

Expected<PackedMatrix> pack_lut4(const BlockFormat& f, const QuantizedTensor& t) {
  PackedMatrix p = grouped_table_header(f, t, PackedKind::kLut4, 4);
  const int64_t in_row = row_code_bytes(4, t.cols);
  p.codes.assign(static_cast<size_t>(p.rows * p.row_bytes()), 0);
  for (int64_t r = 0; r < p.rows; ++r) {
    const uint8_t* src = t.codes.data() + r * in_row;
    uint8_t* dst = p.codes.data() + r * p.row_bytes();
    for (int64_t c = 0; c < t.cols; ++c) {
      const uint32_t code = (src[c / 2] >> (4 * (c % 2))) & 0xF;
      const int64_t j = c % 32;
      dst[16 * (c / 32) + j % 16] |= static_cast<uint8_t>(j < 16 ? code : code << 4);
    }
  }
  LB_RETURN_IF_ERROR(convert_group_scales(f, t, p));
  return p;
}

// 2- / 3-bit codes in groups -> kBits (packed_matrix.h layout): the table is the
// element's decode table, scales and minimums as kLut4.
Expected<PackedMatrix> pack_bits(const BlockFormat& f, const QuantizedTensor& t) {
  PackedMatrix p = grouped_table_header(f, t, PackedKind::kBits, f.layout.code_bits);
  const int64_t block_bytes = 4 * p.code_bits;
  p.codes.assign(static_cast<size_t>(p.rows * p.row_bytes()), 0);
  for (int64_t r = 0; r < p.rows; ++r) {
    uint8_t* dst = p.codes.data() + r * p.row_bytes();
    for (int64_t c = 0; c < t.cols; ++c) {
      const uint32_t code = code_at(f, t, r, c);
      uint8_t* block = dst + (c / 32) * block_bytes;
      const int64_t h = (c % 32) / 16, i = c % 16;
      block[4 * h + i / 4] |= static_cast<uint8_t>((code & 3u) << (2 * (i % 4)));
      if (p.code_bits == 3) block[8 + 2 * h + i / 8] |= static_cast<uint8_t>(((code >> 2) & 1u) << (i % 8));
    }
  }
  LB_RETURN_IF_ERROR(convert_group_scales(f, t, p));
  return p;
}

Expected<PackedMatrix> pack_rows8(const BlockFormat& f, const QuantizedTensor& t, PackedKind kind) {
  PackedMatrix p;
  p.kind = kind;
  p.rows = t.rows;
  p.cols = t.cols;
  p.cols_padded = padded_cols(t.cols);
  p.codes.assign(static_cast<size_t>(p.rows * p.row_bytes()), 0);
  for (int64_t r = 0; r < p.rows; ++r) std::memcpy(p.codes.data() + r * p.row_bytes(), t.codes.data() + r * t.cols, t.cols);
  p.row_scales.resize(static_cast<size_t>(p.rows));
  const float unit = std::ldexp(1.0f, f.spec.element_unit_log2);
  for (int64_t r = 0; r < p.rows; ++r) {
    p.row_scales[r] = decode_scale(f.spec.scale_type, scale_code(t.scales, f.layout.scale_bytes, r)) * unit;
  }
  return p;
}

Expected<PackedMatrix> pack_half(const QuantizedTensor& t, PackedKind kind) {
  PackedMatrix p;
  p.kind = kind;
  p.rows = t.rows;
  p.cols = t.cols;
  p.cols_padded = padded_cols(t.cols);
  p.codes.assign(static_cast<size_t>(p.rows * p.row_bytes()), 0);
  for (int64_t r = 0; r < p.rows; ++r) {
    std::memcpy(p.codes.data() + r * p.row_bytes(), t.codes.data() + r * 2 * t.cols, 2 * t.cols);
  }
  return p;
}

// PTQ1.61 (formats/ptq161_code.h) -> kPtq161: salient columns to the front in
// ascending order, then the binarised ones, each part padded (32, whole blocks).
Expected<PackedMatrix> pack_ptq161(const Ptq161Params& f, const QuantizedTensor& t) {
  LB_ASSIGN_OR_RETURN(std::vector<int32_t> salient, ptq161_salient_columns(f, t));
  const int64_t ns = f.salient_cols(t.cols), nb = f.binary_cols(t.cols);
  PackedMatrix p;
  p.kind = PackedKind::kPtq161;
  p.rows = t.rows;
  p.cols = t.cols;
  p.group = f.block;
  p.salient_padded = padded_cols(ns);
  p.cols_padded = p.salient_padded + ceil_div(nb, f.block) * f.block;
  p.col_pos.assign(static_cast<size_t>(t.cols), -1);
  for (int64_t j = 0; j < ns; ++j) p.col_pos[salient[j]] = static_cast<int32_t>(j);
  int64_t i = 0;
  for (int64_t c = 0; c < t.cols; ++c) {
    if (p.col_pos[c] < 0) p.col_pos[c] = static_cast<int32_t>(p.salient_padded + i++);
  }
  p.codes.assign(static_cast<size_t>(p.rows * p.row_bytes()), 0);
  const int64_t rs = f.row_scales(t.cols);
  p.scales.assign(static_cast<size_t>(p.rows * rs), 0);
  for (int64_t r = 0; r < t.rows; ++r) {
    const uint8_t* q4 = t.codes.data() + f.mask_bytes(t.cols) + r * f.row_code_bytes(t.cols);
    const uint8_t* signs = q4 + (ns + 1) / 2;
    uint8_t* dst = p.codes.data() + r * p.row_bytes();
    for (int64_t j = 0; j < ns; ++j) {
      const uint32_t code = (q4[j / 2] >> (4 * (j % 2))) & 0xF;
      dst[16 * (j / 32) + (j % 16)] |= static_cast<uint8_t>((j % 32) < 16 ? code : code << 4);
    }
    std::memcpy(dst + p.salient_padded / 2, signs, static_cast<size_t>((nb + 7) / 8));
    for (int64_t k = 0; k < rs; ++k) {
      p.scales[r * rs + k] = static_cast<uint16_t>(t.scales[2 * (r * rs + k)] | (t.scales[2 * (r * rs + k) + 1] << 8));
    }
  }
  return p;
}

// Trellis-coded weights (formats/trellis_code.h) -> kTrellis: the stored arrays
// unchanged (codes byte for byte, FP16 scale bytes as little-endian codes).
Expected<PackedMatrix> pack_trellis(const std::string& format, const QuantizedTensor& t) {
  LB_ASSIGN_OR_RETURN(const TrellisParams tp, parse_trellis_format(format));
  LB_RETURN_IF_ERROR(trellis_check_shape(tp, t.rows, t.cols));
  const int64_t groups = trellis_row_groups(tp, t.cols);
  if (t.codes.size() != static_cast<size_t>(t.rows * trellis_row_bytes(tp, t.cols)) ||
      t.scales.size() != static_cast<size_t>(2 * t.rows * groups) || !t.mins.empty()) {
    return make_error("{}: stored sizes (codes {}, scales {}, mins {}) do not match [{}, {}]", format, t.codes.size(),
                      t.scales.size(), t.mins.size(), t.rows, t.cols);
  }
  PackedMatrix p;
  p.kind = PackedKind::kTrellis;
  p.rows = t.rows;
  p.cols = t.cols;
  p.cols_padded = t.cols;
  p.group = tp.group;
  p.trellis_state_bits = tp.state_bits;
  p.trellis_step_bits = tp.step_bits;
  p.trellis_values_per_step = tp.values_per_step;
  p.tensor_scale = t.tensor_scale;
  p.codes.assign(t.codes.begin(), t.codes.end());
  p.scales.assign(static_cast<size_t>(t.rows * groups), 0);
  for (size_t i = 0; i < p.scales.size(); ++i) {
    p.scales[i] = static_cast<uint16_t>(t.scales[2 * i] | (t.scales[2 * i + 1] << 8));
  }
  LB_RETURN_IF_ERROR(p.validate());
  return p;
}

}  // namespace

std::string packed_unsupported_reason(const QuantizedWeight& q) {
  if (!q.outliers.empty()) return "sparse outliers";
  if (q.rank > 0) return "low-rank correction";
  if (is_ptq161_format_name(q.format)) {
    return parse_ptq161_format(q.format).ok() ? "" : "format '" + q.format + "' is not a ptq161 format";
  }
  if (find_gguf_block_type(q.format) != nullptr) return "GGUF block type " + q.format + " (no packed kernel yet)";
  if (is_vq_format_name(q.format)) return "VQ codes " + q.format + " (no packed kernel: a comparison format)";
  if (is_trellis_format_name(q.format)) {
    auto p = parse_trellis_format(q.format);
    return p.ok() ? "" : p.status().message();
  }
  auto found = format_of(q);
  if (!found.ok()) return "format '" + q.format + "' is not a block format";
  const BlockFormat& f = **found;
  const BlockLayout& l = f.layout;
  const std::string& e = f.element.name;
  if (l.granularity == ScaleGranularity::kNone && (e == "fp16" || e == "bf16")) return "";
  if (l.code_bits == 4 || l.code_bits == 3 || l.code_bits == 2) {
    bool bf16 = false;
    if (l.granularity != ScaleGranularity::kGroup || l.group_cols % 16 != 0) {
      return fmt::format("{}-bit codes need groups of 16k", l.code_bits);
    }
    if (!lut4_scale_type(f.spec.scale_type, &bf16)) {
      return fmt::format("{}-bit scales must be exact in fp16 or bf16", l.code_bits);
    }
    return "";
  }
  const bool row_fp32 = l.granularity == ScaleGranularity::kRow && f.spec.scale_type == ScaleType::kFp32;
  if (l.code_bits == 8 && row_fp32 && !f.spec.asymmetric) {
    if (e == "int8" && int8_is_twos_complement(f.element)) return "";
    if (e == "fp8_e4m3" && fp8_matches_e4m3(f.element)) return "";
  }
  return fmt::format("no packed kernel for {} ({}-bit {}, {} scales)", f.name(), l.code_bits, e,
                     granularity_name(l.granularity));
}

Expected<PackedMatrix> pack_quantized_weight(const QuantizedWeight& q) {
  const std::string why = packed_unsupported_reason(q);
  if (!why.empty()) return make_error("{}: {}", q.format, why);
  if (is_trellis_format_name(q.format)) return pack_trellis(q.format, q.tensor);
  if (is_ptq161_format_name(q.format)) {
    LB_ASSIGN_OR_RETURN(Ptq161Params f, parse_ptq161_format(q.format));
    LB_ASSIGN_OR_RETURN(PackedMatrix p, pack_ptq161(f, q.tensor));
    LB_RETURN_IF_ERROR(p.validate());
    return p;
  }
  LB_ASSIGN_OR_RETURN(const BlockFormat* f, format_of(q));
  const QuantizedTensor& t = q.tensor;
  if (t.rows < 0 || t.cols < 0 || t.codes.size() != static_cast<size_t>(t.rows * row_code_bytes(f->layout.code_bits, t.cols)) ||
      t.scales.size() != static_cast<size_t>(scale_count(f->layout, t.rows, t.cols) * f->layout.scale_bytes)) {
    return make_error("{}: stored sizes (codes {}, scales {}) do not match [{}, {}]", q.format, t.codes.size(),
                      t.scales.size(), t.rows, t.cols);
  }
  if (f->spec.asymmetric && t.mins.size() != t.scales.size()) {
    return make_error("{}: {} minimum bytes for {} scale bytes", q.format, t.mins.size(), t.scales.size());
  }
  Expected<PackedMatrix> p = make_error("unreachable");
  const std::string& e = f->element.name;
  if (e == "fp16") {
    p = pack_half(t, PackedKind::kFp16);
  } else if (e == "bf16") {
    p = pack_half(t, PackedKind::kBf16);
  } else if (f->layout.code_bits == 4) {
    p = pack_lut4(*f, t);
  } else if (f->layout.code_bits < 4) {
    p = pack_bits(*f, t);
  } else if (e == "int8") {
    p = pack_rows8(*f, t, PackedKind::kInt8Row);
  } else {
    p = pack_rows8(*f, t, PackedKind::kFp8Row);
  }
  if (!p.ok()) return p.status();
  LB_RETURN_IF_ERROR(p->validate());
  return p;
}

}  // namespace lowbit
