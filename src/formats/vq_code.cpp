#include "formats/vq_code.h"

#include <charconv>

#include "core/half.h"

namespace lowbit {

namespace {
constexpr int kVqMaxGroup = 1 << 16;
}  // namespace

double VqParams::row_bits_per_weight(int64_t cols) const {
  if (cols <= 0) return 0.0;
  const double groups = static_cast<double>((cols + group - 1) / group);
  return static_cast<double>(stages) + 16.0 * groups / static_cast<double>(cols);
}

double VqParams::bits_per_weight(int64_t rows, int64_t cols) const {
  if (rows <= 0 || cols <= 0) return 0.0;
  return row_bits_per_weight(cols) +
         8.0 * static_cast<double>(codebook_bytes()) / (static_cast<double>(rows) * static_cast<double>(cols));
}

bool is_vq_format_name(std::string_view name) {
  return name.substr(0, 2) == "vq";
}

Expected<VqParams> parse_vq_format(std::string_view name) {
  const auto bad = [&](std::string_view why) {
    return make_error("VQ format '{}': {} (expected vq<S>x8_g<G>, S in 1..{}, G a multiple of {} up to {})", name,
                      why, kVqMaxStages, kVqDim, kVqMaxGroup);
  };
  if (!is_vq_format_name(name)) return bad("no vq prefix");
  if (name.size() < 3 || name[2] < '0' || name[2] > '9') return bad("no stage count after vq");
  const int stages = name[2] - '0';
  if (stages < 1 || stages > kVqMaxStages) return bad(fmt::format("{} stages", stages));
  const std::string_view dim_tag = "x8_g";
  if (name.substr(3, dim_tag.size()) != dim_tag) return bad("vectors must be x8 and followed by _g<group>");
  const std::string_view group_text = name.substr(3 + dim_tag.size());
  int group = 0;
  const auto [end, ec] = std::from_chars(group_text.data(), group_text.data() + group_text.size(), group);
  if (group_text.empty() || ec != std::errc() || end != group_text.data() + group_text.size())
    return bad(fmt::format("group '{}' is not a number", group_text));
  if (group <= 0 || group % kVqDim != 0 || group > kVqMaxGroup)
    return bad(fmt::format("group {} is not a multiple of {} in [{}, {}]", group, kVqDim, kVqDim, kVqMaxGroup));
  VqParams p;
  p.stages = stages;
  p.group = group;
  return p;
}

std::string vq_format_name(const VqParams& p) { return fmt::format("vq{}x{}_g{}", p.stages, kVqDim, p.group); }

Status vq_check_shape(const VqParams& p, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0 || cols % kVqDim != 0)
    return make_error("format {} stores matrices whose column count is a positive multiple of {}; got [{}, {}]",
                      vq_format_name(p), kVqDim, rows, cols);
  return Status();
}

int64_t vq_row_bytes(const VqParams& p, int64_t cols) { return cols / kVqDim * p.stages; }

int64_t vq_row_groups(const VqParams& p, int64_t cols) { return (cols + p.group - 1) / p.group; }

void vq_decode_vector(const VqParams& p, const float* codebooks, const uint8_t* codes, float scale, float* out) {
  float sum[kVqDim] = {};
  for (int s = 0; s < p.stages; ++s) {
    const float* c = codebooks + (static_cast<int64_t>(s) * kVqCentroids + codes[s]) * kVqDim;
    for (int j = 0; j < kVqDim; ++j) sum[j] += c[j];
  }
  for (int j = 0; j < kVqDim; ++j) out[j] = scale * sum[j];
}

void vq_decode_row(const VqParams& p, const float* codebooks, const uint8_t* codes, const uint16_t* scales,
                   int64_t cols, float* out) {
  for (int64_t v = 0; v < cols / kVqDim; ++v) {
    const float scale = fp16_to_float(scales[v * kVqDim / p.group]);
    vq_decode_vector(p, codebooks, codes + v * p.stages, scale, out + v * kVqDim);
  }
}

}  // namespace lowbit
