// PTQ1.61 stored form (ptq161_code.h): names, sizes and the reference decoder.
#include "formats/ptq161_code.h"

#include <charconv>

#include "core/half.h"

namespace lowbit {
namespace {

constexpr std::string_view kPrefix = "ptq161_";

// Parses the decimal after `key` at the start of s; advances s.
bool take_number(std::string_view& s, char key, int& out) {
  if (s.empty() || s[0] != key) return false;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data() + 1, end, out);
  if (ec != std::errc() || p == s.data() + 1) return false;
  s.remove_prefix(static_cast<size_t>(p - s.data()));
  return true;
}

uint16_t read_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

}  // namespace

bool is_ptq161_format_name(std::string_view name) { return name.substr(0, kPrefix.size()) == kPrefix; }

Expected<Ptq161Params> parse_ptq161_format(std::string_view name) {
  if (!is_ptq161_format_name(name)) return make_error("'{}' is not a ptq161 format name", name);
  std::string_view s = name.substr(kPrefix.size());
  Ptq161Params p;
  const bool salient = take_number(s, 's', p.salient_permille);
  const bool separated = salient && s.substr(0, 1) == "_";
  if (separated) s.remove_prefix(1);
  if (!separated || !take_number(s, 'b', p.block) || !s.empty()) {
    return make_error("'{}': expected ptq161_s<salient per mille>_b<binary block>, e.g. ptq161_s125_b192", name);
  }
  if (p.salient_permille < 0 || p.salient_permille > 1000) {
    return make_error("'{}': salient share {} per mille is outside 0 .. 1000", name, p.salient_permille);
  }
  if (p.block < 32 || p.block > 4096 || p.block % 32 != 0) {
    return make_error("'{}': binary block {} is not a multiple of 32 in 32 .. 4096", name, p.block);
  }
  return p;
}

std::string ptq161_format_name(const Ptq161Params& p) {
  return "ptq161_s" + std::to_string(p.salient_permille) + "_b" + std::to_string(p.block);
}

Ptq161Sizes ptq161_sizes(const Ptq161Params& p, int64_t rows, int64_t cols) {
  return {static_cast<uint64_t>(p.mask_bytes(cols) + rows * p.row_code_bytes(cols)),
          static_cast<uint64_t>(rows * p.row_scales(cols) * 2)};
}

Status ptq161_check_shape(const Ptq161Params& p, int64_t rows, int64_t cols) {
  if (rows < 1 || cols < 1 || cols > (int64_t{1} << 30)) {
    return make_error("{}: cannot store a [{}, {}] matrix", ptq161_format_name(p), rows, cols);
  }
  return Status::ok_status();
}

Expected<std::vector<int32_t>> ptq161_salient_columns(const Ptq161Params& p, const QuantizedTensor& t) {
  const std::string name = ptq161_format_name(p);
  LB_RETURN_IF_ERROR(ptq161_check_shape(p, t.rows, t.cols));
  const Ptq161Sizes want = ptq161_sizes(p, t.rows, t.cols);
  if (t.codes.size() != want.codes || t.scales.size() != want.scales || !t.mins.empty()) {
    return make_error("{}: stored sizes (codes {}, scales {}, mins {}) do not match [{}, {}] (codes {}, scales {})",
                      name, t.codes.size(), t.scales.size(), t.mins.size(), t.rows, t.cols, want.codes, want.scales);
  }
  std::vector<int32_t> salient;
  for (int64_t c = 0; c < p.mask_bytes(t.cols) * 8; ++c) {
    if (((t.codes[c / 8] >> (c % 8)) & 1u) == 0) continue;
    if (c >= t.cols) return make_error("{}: mask bit {} set past the {} columns", name, c, t.cols);
    salient.push_back(static_cast<int32_t>(c));
  }
  if (static_cast<int64_t>(salient.size()) != p.salient_cols(t.cols)) {
    return make_error("{}: the mask marks {} salient columns of {}, the format says {}", name, salient.size(), t.cols,
                      p.salient_cols(t.cols));
  }
  return salient;
}

Status ptq161_dequantize(const Ptq161Params& p, const QuantizedTensor& t, float* out) {
  LB_ASSIGN_OR_RETURN(std::vector<int32_t> salient, ptq161_salient_columns(p, t));
  const int64_t cols = t.cols, ns = p.salient_cols(cols), nb = p.binary_cols(cols);
  const int64_t rcb = p.row_code_bytes(cols), rs = p.row_scales(cols);
  for (int64_t r = 0; r < t.rows; ++r) {
    const uint8_t* q4 = t.codes.data() + p.mask_bytes(cols) + r * rcb;  // [ceil(ns / 2)]
    const uint8_t* signs = q4 + (ns + 1) / 2;                            // [ceil(nb / 8)]
    const uint8_t* sc = t.scales.data() + r * rs * 2;                    // [rs] FP16
    float* row = out + r * cols;
    const float s = fp16_to_float(read_u16(sc)), m = fp16_to_float(read_u16(sc + 2));
    for (int64_t j = 0; j < ns; ++j) {
      row[salient[j]] = s * static_cast<float>((q4[j / 2] >> (4 * (j % 2))) & 0xF) + m;
    }
    int64_t i = 0, next = 0;  // i: binarised column index; next: index into salient
    for (int64_t c = 0; c < cols; ++c) {
      if (next < ns && salient[next] == c) {
        ++next;
        continue;
      }
      const uint8_t* ab = sc + 4 + 4 * (i / p.block);
      const float alpha = fp16_to_float(read_u16(ab)), mu = fp16_to_float(read_u16(ab + 2));
      row[c] = ((signs[i / 8] >> (i % 8)) & 1u) ? mu + alpha : mu - alpha;
      ++i;
    }
    if (i != nb) return make_error("{}: row {} decoded {} binary columns, expected {}", ptq161_format_name(p), r, i, nb);
  }
  return Status::ok_status();
}

}  // namespace lowbit
