#include "formats/trellis_code.h"

#include <charconv>

#include "core/half.h"

namespace lowbit {

namespace {

struct TrellisCodeBits {
  std::string_view tag;  // after "tcq"
  int step_bits;
  int values_per_step;
};
// The parameter sets of the file comment; every one has L = 12.
constexpr TrellisCodeBits kTrellisSets[] = {{"2", 2, 1}, {"2p5", 5, 2}, {"3", 3, 1}, {"4", 4, 1}};
constexpr int kTrellisStateBits = 12;
constexpr int kTrellisMaxGroup = 1 << 16;

}  // namespace

double TrellisParams::bits_per_weight(int64_t cols) const {
  if (cols <= 0) return 0.0;
  const double groups = static_cast<double>((cols + group - 1) / group);
  return code_bits_per_weight() + 16.0 * groups / static_cast<double>(cols);
}

uint32_t trellis_state(const TrellisParams& p, const uint8_t* seq, int t) {
  const int n = p.seq_bits();
  int bit = (t * p.step_bits) % n;
  uint32_t state = 0;
  for (int j = 0; j < p.state_bits; ++j) {
    state |= static_cast<uint32_t>((seq[bit >> 3] >> (bit & 7)) & 1u) << j;
    bit = bit + 1 == n ? 0 : bit + 1;
  }
  return state;
}

bool is_trellis_format_name(std::string_view name) { return name.substr(0, 3) == "tcq"; }

Expected<TrellisParams> parse_trellis_format(std::string_view name) {
  const auto bad = [&](std::string_view why) {
    return make_error("trellis format '{}': {} (expected tcq2_gG, tcq2p5_gG, tcq3_gG or tcq4_gG, G a multiple of {})",
                      name, why, kTrellisSeqLen);
  };
  if (!is_trellis_format_name(name)) return bad("no tcq prefix");
  const size_t sep = name.find("_g");
  if (sep == std::string_view::npos) return bad("no _g<group> suffix");
  const std::string_view tag = name.substr(3, sep - 3);
  const std::string_view group_text = name.substr(sep + 2);
  TrellisParams p;
  p.state_bits = kTrellisStateBits;
  bool found = false;
  for (const TrellisCodeBits& set : kTrellisSets) {
    if (set.tag != tag) continue;
    p.step_bits = set.step_bits;
    p.values_per_step = set.values_per_step;
    found = true;
  }
  if (!found) return bad(fmt::format("unknown bit width '{}'", tag));
  int group = 0;
  const auto [end, ec] = std::from_chars(group_text.data(), group_text.data() + group_text.size(), group);
  if (ec != std::errc() || end != group_text.data() + group_text.size() || group_text.empty())
    return bad(fmt::format("group '{}' is not a number", group_text));
  if (group <= 0 || group % kTrellisSeqLen != 0 || group > kTrellisMaxGroup)
    return bad(fmt::format("group {} is not a multiple of {} in [{}, {}]", group, kTrellisSeqLen, kTrellisSeqLen,
                           kTrellisMaxGroup));
  p.group = group;
  return p;
}

std::string trellis_format_name(const TrellisParams& p) {
  for (const TrellisCodeBits& set : kTrellisSets)
    if (set.step_bits == p.step_bits && set.values_per_step == p.values_per_step)
      return fmt::format("tcq{}_g{}", set.tag, p.group);
  return fmt::format("tcq?k{}v{}_g{}", p.step_bits, p.values_per_step, p.group);
}

Status trellis_check_shape(const TrellisParams& p, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0 || cols % kTrellisSeqLen != 0)
    return make_error("format {} stores matrices whose column count is a positive multiple of {}; got [{}, {}]",
                      trellis_format_name(p), kTrellisSeqLen, rows, cols);
  return Status();
}

int64_t trellis_row_bytes(const TrellisParams& p, int64_t cols) { return cols / kTrellisSeqLen * p.seq_bytes(); }

int64_t trellis_row_groups(const TrellisParams& p, int64_t cols) { return (cols + p.group - 1) / p.group; }

void trellis_decode_row(const TrellisParams& p, const uint8_t* codes, const uint16_t* scales, int64_t cols,
                        float* out) {
  for (int64_t q = 0; q < cols / kTrellisSeqLen; ++q) {
    const uint8_t* seq = codes + q * p.seq_bytes();
    for (int t = 0; t < p.steps(); ++t) {
      const uint32_t state = trellis_state(p, seq, t);
      for (int j = 0; j < p.values_per_step; ++j) {
        const int64_t c = q * kTrellisSeqLen + t * p.values_per_step + j;
        const float scale = fp16_to_float(scales[c / p.group]);
        out[c] = scale * static_cast<float>(trellis_state_value(state, j));
      }
    }
  }
}

}  // namespace lowbit
