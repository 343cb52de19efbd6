// PackedMatrix (packed_matrix.h): sizes, the scalar reference decode and GEMV.
#include "kernels/packed_matrix.h"

#include <cmath>
#include <cstring>

#include "core/half.h"

namespace lowbit {

const char* packed_kind_name(PackedKind kind) {
  switch (kind) {
    case PackedKind::kLut4: return "lut4";
    case PackedKind::kInt8Row: return "int8";
    case PackedKind::kFp8Row: return "fp8";
    case PackedKind::kFp16: return "fp16";
    case PackedKind::kBf16: return "bf16";
    case PackedKind::kBits: return "bits";
    case PackedKind::kTrellis: return "trellis";
    case PackedKind::kPtq161: return "ptq161";
  }
  return "?";
}

int64_t PackedMatrix::row_bytes() const {
  switch (kind) {
    case PackedKind::kLut4: return cols_padded / 2;
    case PackedKind::kInt8Row:
    case PackedKind::kFp8Row: return cols_padded;
    case PackedKind::kFp16:
    case PackedKind::kBf16: return cols_padded * 2;
    case PackedKind::kBits: return cols_padded / 32 * 4 * code_bits;
    case PackedKind::kTrellis: return cols_padded / kTrellisSeqLen * trellis().seq_bytes();
    case PackedKind::kPtq161: return salient_padded / 2 + (cols_padded - salient_padded) / 8;
  }
  return 0;
}

uint64_t PackedMatrix::storage_bytes() const {
  return codes.size() + 2 * (scales.size() + mins.size()) + 4 * (row_scales.size() + col_pos.size()) + 4;
}

namespace {

// kPtq161's shape rules (packed_matrix.h): padded parts, one scale set per row,
// positions in range and distinct.
Status validate_ptq161(const PackedMatrix& w) {
  const int64_t bin = w.cols_padded - w.salient_padded;
  if (w.rows < 0 || w.cols < 0 || w.group < 32 || w.group % 32 != 0 || w.salient_padded < 0 ||
      w.salient_padded % 32 != 0 || bin < 0 || bin % w.group != 0) {
    return make_error("packed ptq161: shape [{}, {}], {} salient + {} binary positions, blocks of {}", w.rows, w.cols,
                      w.salient_padded, bin, w.group);
  }
  if (w.codes.size() != static_cast<size_t>(w.rows * w.row_bytes()) ||
      w.scales.size() != static_cast<size_t>(w.rows * w.ptq161_row_scales()) || !w.mins.empty() ||
      w.col_pos.size() != static_cast<size_t>(w.cols)) {
    return make_error("packed ptq161: {} code bytes, {} scales, {} positions for [{}, {}]", w.codes.size(),
                      w.scales.size(), w.col_pos.size(), w.rows, w.cols);
  }
  std::vector<uint8_t> used(static_cast<size_t>(w.cols_padded), 0);
  for (int64_t c = 0; c < w.cols; ++c) {
    const int32_t p = w.col_pos[c];
    if (p < 0 || p >= w.cols_padded || used[p]) return make_error("packed ptq161: column {} at position {}", c, p);
    used[p] = 1;
  }
  return Status::ok_status();
}

}  // namespace

Status PackedMatrix::validate() const {
  if (kind == PackedKind::kPtq161) return validate_ptq161(*this);
  const char* k = packed_kind_name(kind);
  if (rows < 0 || cols < 0 || cols_padded < cols || cols_padded % kPackedColAlign != 0 ||
      cols_padded >= cols + kPackedColAlign) {
    return make_error("packed {}: shape [{}, {}] padded to {} columns", k, rows, cols, cols_padded);
  }
  if (codes.size() != static_cast<size_t>(rows * row_bytes())) {
    return make_error("packed {}: {} code bytes for [{}, {}]", k, codes.size(), rows, cols_padded);
  }
  if (kind == PackedKind::kBits && code_bits != 2 && code_bits != 3) {
    return make_error("packed bits: {}-bit codes (2 or 3 supported)", code_bits);
  }
  if (kind == PackedKind::kTrellis) {
    const TrellisParams p = trellis();
    const bool known = p.state_bits == 12 && ((p.step_bits >= 2 && p.step_bits <= 4 && p.values_per_step == 1) ||
                                              (p.step_bits == 5 && p.values_per_step == 2));
    if (!known) {
      return make_error("packed trellis: L {} k {} V {} is not a parameter set of formats/trellis_code.h",
                        p.state_bits, p.step_bits, p.values_per_step);
    }
    if (cols != cols_padded || cols % kTrellisSeqLen != 0 || group <= 0 || group % kTrellisSeqLen != 0) {
      return make_error("packed trellis: [{}, {}] (padded {}) group {}: columns and group must be multiples of {}",
                        rows, cols, cols_padded, group, kTrellisSeqLen);
    }
    if (scales.size() != static_cast<size_t>(rows * n_groups()) || !mins.empty() || !row_scales.empty()) {
      return make_error("packed trellis: {} scales for {} groups ({} mins, {} row scales: none expected)",
                        scales.size(), rows * n_groups(), mins.size(), row_scales.size());
    }
  }
  if (packed_grouped(kind)) {
    if (group < 16 || group % 16 != 0) return make_error("packed {}: group {} is not a multiple of 16", k, group);
    const size_t n = static_cast<size_t>(rows * n_groups());
    if (scales.size() != n || mins.size() != (asymmetric ? n : 0)) {
      return make_error("packed {}: {} scales / {} mins for {} groups", k, scales.size(), mins.size(), n);
    }
  }
  if ((kind == PackedKind::kInt8Row || kind == PackedKind::kFp8Row) && row_scales.size() != static_cast<size_t>(rows)) {
    return make_error("packed {}: {} row scales for {} rows", k, row_scales.size(), rows);
  }
  return Status::ok_status();
}

TrellisParams PackedMatrix::trellis() const {
  TrellisParams p;
  p.state_bits = trellis_state_bits;
  p.step_bits = trellis_step_bits;
  p.values_per_step = trellis_values_per_step;
  p.group = group;
  return p;
}

void prepare_activation(const PackedMatrix& w, const float* x, PackedActivation& a, Fixed16Prepare fixed16) {
  a.x.assign(static_cast<size_t>(w.cols_padded), 0.0f);
  if (w.kind == PackedKind::kPtq161) {  // gathered into the packed order; sums in position order
    for (int64_t c = 0; c < w.cols; ++c) a.x[w.col_pos[c]] = x[c];
    a.fixed.valid = false;
    a.xsum.assign(static_cast<size_t>(1 + w.ptq161_blocks()), 0.0f);
    for (int64_t p = 0; p < w.salient_padded; ++p) a.xsum[0] += a.x[p];
    for (int64_t p = w.salient_padded; p < w.cols_padded; ++p) a.xsum[1 + (p - w.salient_padded) / w.group] += a.x[p];
    return;
  }
  std::memcpy(a.x.data(), x, static_cast<size_t>(w.cols) * sizeof(float));
  a.xsum.clear();
  a.fixed.valid = false;
  if (fixed16 != nullptr) fixed16(w, a);  // leaves a.fixed invalid where the layout does not take it
  // The fixed-point kernels read their own integer group sums; xsum is for the FP32 ones.
  if (a.fixed.valid || !packed_grouped(w.kind) || !w.asymmetric) return;
  const int64_t ng = w.n_groups();
  a.xsum.assign(static_cast<size_t>(ng), 0.0f);
  for (int64_t g = 0; g < ng; ++g) {
    const int64_t end = std::min<int64_t>(w.cols_padded, (g + 1) * w.group);
    float s = 0.0f;
    for (int64_t c = g * w.group; c < end; ++c) s += a.x[c];
    a.xsum[g] = s;
  }
}

float e4m3_value(uint8_t code) {
  // E4M3 bits placed in binary16 (exponent bias 15 instead of 7) scale the value by
  // 2^-8 for normals and subnormals alike.
  const uint16_t h = static_cast<uint16_t>(((code & 0x7F) << 7) | ((code & 0x80) << 8));
  return fp16_to_float(h) * 256.0f;
}

uint32_t lut4_code(const PackedMatrix& w, int64_t r, int64_t c) {
  const uint8_t* row = w.codes.data() + r * w.row_bytes();
  const int64_t b = c / 32, j = c % 32;
  const uint8_t byte = row[b * 16 + (j % 16)];
  return j < 16 ? (byte & 0xF) : (byte >> 4);
}

namespace {

// The table index of column c of a grouped layout.
uint32_t grouped_code(const PackedMatrix& w, int64_t r, int64_t c) {
  return w.kind == PackedKind::kBits ? bits_code(w, r, c) : lut4_code(w, r, c);
}

}  // namespace

uint32_t bits_code(const PackedMatrix& w, int64_t r, int64_t c) {
  const uint8_t* block = w.codes.data() + r * w.row_bytes() + (c / 32) * 4 * w.code_bits;
  const int64_t h = (c % 32) / 16, i = c % 16;
  uint32_t code = (block[4 * h + i / 4] >> (2 * (i % 4))) & 3u;
  if (w.code_bits == 3) code |= ((block[8 + 2 * h + i / 8] >> (i % 8)) & 1u) << 2;
  return code;
}

uint32_t ptq161_code(const PackedMatrix& w, int64_t r, int64_t p) {
  const uint8_t* row = w.codes.data() + r * w.row_bytes();
  if (p < w.salient_padded) {
    const uint8_t byte = row[(p / 32) * 16 + (p % 16)];
    return (p % 32) < 16 ? (byte & 0xF) : (byte >> 4);
  }
  const int64_t i = p - w.salient_padded;
  return (row[w.salient_padded / 2 + i / 8] >> (i % 8)) & 1u;
}

float packed_value(const PackedMatrix& w, int64_t r, int64_t c) {
  switch (w.kind) {
    case PackedKind::kPtq161: {
      const int64_t p = w.col_pos[c];
      const uint16_t* sc = w.scales.data() + r * w.ptq161_row_scales();
      const uint32_t code = ptq161_code(w, r, p);
      if (p < w.salient_padded) return fp16_to_float(sc[0]) * static_cast<float>(code) + fp16_to_float(sc[1]);
      const int64_t b = (p - w.salient_padded) / w.group;
      const float alpha = fp16_to_float(sc[2 + 2 * b]), mu = fp16_to_float(sc[3 + 2 * b]);
      return code != 0 ? mu + alpha : mu - alpha;
    }
    case PackedKind::kLut4:
    case PackedKind::kBits: {
      const int64_t g = r * w.n_groups() + c / w.group;
      float v = w.lut[grouped_code(w, r, c)] * half_code_to_float(w.scales[g], w.bf16_scales);
      if (w.asymmetric) v += half_code_to_float(w.mins[g], w.bf16_scales);
      return v * w.tensor_scale;
    }
    case PackedKind::kInt8Row:
      return static_cast<float>(static_cast<int8_t>(w.codes[r * w.row_bytes() + c])) * w.row_scales[r] * w.tensor_scale;
    case PackedKind::kFp8Row: return e4m3_value(w.codes[r * w.row_bytes() + c]) * w.row_scales[r] * w.tensor_scale;
    case PackedKind::kTrellis: {
      const TrellisParams p = w.trellis();
      const uint8_t* seq = w.codes.data() + r * w.row_bytes() + c / kTrellisSeqLen * p.seq_bytes();
      const int i = static_cast<int>(c % kTrellisSeqLen);
      const uint32_t state = trellis_state(p, seq, i / p.values_per_step);
      const float v = static_cast<float>(trellis_state_value(state, i % p.values_per_step)) *
                      fp16_to_float(w.scales[r * w.n_groups() + c / w.group]);
      return v * w.tensor_scale;
    }
    case PackedKind::kFp16:
    case PackedKind::kBf16: {
      const uint8_t* p = w.codes.data() + r * w.row_bytes() + 2 * c;
      const uint16_t h = static_cast<uint16_t>(p[0] | (p[1] << 8));
      return (w.kind == PackedKind::kFp16 ? fp16_to_float(h) : bf16_to_float(h)) * w.tensor_scale;
    }
  }
  return 0.0f;
}

void gemv_packed_reference(const PackedMatrix& w, const float* x, int64_t r0, int64_t r1, float* y) {
  for (int64_t r = r0; r < r1; ++r) {
    double s = 0.0;
    for (int64_t c = 0; c < w.cols; ++c) s += static_cast<double>(packed_value(w, r, c)) * x[c];
    y[r - r0] = static_cast<float>(s);
  }
}

double packed_gemv_bound(const PackedMatrix& w, const float* x, int64_t r) {
  if (w.kind == PackedKind::kPtq161) {
    // The kernels sum s q x', m x' (salient) and alpha (2 P_b - S_b), mu S_b (binarised):
    // each of P_b and S_b costs |alpha| and |mu| times its inputs' magnitude, 2 P_b - S_b
    // at most 3 |alpha| sum |x'|; the reference rounds each decoded value (2 roundings).
    // Recursive summation over at most salient_padded (salient) or group (a block)
    // terms, the lane tree (<= 16) and the 2 + 2 * blocks final terms bounds the depth.
    const uint16_t* sc = w.scales.data() + r * w.ptq161_row_scales();
    double mag = 0.0;
    for (int64_t c = 0; c < w.cols; ++c) {
      const int64_t p = w.col_pos[c];
      double a = 0.0;
      if (p < w.salient_padded) {
        a = std::fabs(fp16_to_float(sc[0]) * 15.0) + std::fabs(fp16_to_float(sc[1]));
      } else {
        const int64_t b = (p - w.salient_padded) / w.group;
        a = 3.0 * std::fabs(fp16_to_float(sc[2 + 2 * b])) + std::fabs(fp16_to_float(sc[3 + 2 * b]));
      }
      mag += a * std::fabs(static_cast<double>(x[c]));
    }
    const double depth =
        static_cast<double>(w.salient_padded + w.group + 2 * w.ptq161_blocks()) + 2.0 + 16.0 + 2.0;
    return depth * 0x1.0p-24 * mag + 1e-30;
  }
  double mag = 0.0;  // sum over the products the kernels form, in absolute value
  for (int64_t c = 0; c < w.cols; ++c) {
    double a = std::fabs(static_cast<double>(packed_value(w, r, c)));
    if (packed_grouped(w.kind)) {
      const int64_t g = r * w.n_groups() + c / w.group;
      a = std::fabs(static_cast<double>(w.lut[grouped_code(w, r, c)]) * half_code_to_float(w.scales[g], w.bf16_scales));
      if (w.asymmetric) a += std::fabs(static_cast<double>(half_code_to_float(w.mins[g], w.bf16_scales)));
      a *= std::fabs(static_cast<double>(w.tensor_scale));
    }
    mag += a * std::fabs(static_cast<double>(x[c]));
  }
  const double depth = static_cast<double>(w.cols_padded) / 16.0 + (w.group > 0 ? w.group / 16.0 : 0.0) + 8.0;
  return depth * 0x1.0p-24 * mag + 1e-30;
}

}  // namespace lowbit
