#include "pipeline/inspect_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include "pipeline/inspect_summary.h"

namespace lowbit {
namespace {

using nlohmann::json;

constexpr size_t kMassiveGroupsShown = 20;

// Printable token text: control bytes as \n, \t or \xNN, other bytes as they are.
std::string escape_token(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

json stats_json(const MatrixStats& s, bool with_median_abs) {
  json top = json::array();
  for (const ChannelValue& c : s.top) top.push_back({{"channel", c.channel}, {"max_abs", c.value}});
  json j = {{"tokens", s.n_tokens},
            {"channels", s.channels},
            {"absmax", s.absmax},
            {"rms", s.rms},
            {"kurtosis", s.kurtosis},
            {"channel_max_kurtosis", s.profile_kurtosis},
            {"median_channel_max", s.median_channel_max},
            {"max_median_ratio", s.max_median_ratio},
            {"near_zero_rel", s.near_zero_rel},
            {"near_zero_abs", s.near_zero_abs},
            {"top", top},
            {"channel_max", s.channel_max}};
  if (with_median_abs) j["median_abs"] = s.median_abs;
  return j;
}

// Massive activations of one (token, channel) over the layers they appear in.
struct MassiveGroup {
  int64_t row = 0;
  int64_t channel = 0;
  std::vector<int> layers;
  float value = 0.0f;  // the largest |value|, signed
  int value_layer = 0;
};

std::vector<MassiveGroup> group_massive(const std::vector<MassiveActivation>& list) {
  std::map<std::pair<int64_t, int64_t>, MassiveGroup> groups;
  for (const MassiveActivation& a : list) {
    MassiveGroup& g = groups[{a.token, a.channel}];
    g.row = a.token;
    g.channel = a.channel;
    g.layers.push_back(a.layer);
    if (std::fabs(a.value) > std::fabs(g.value)) {
      g.value = a.value;
      g.value_layer = a.layer;
    }
  }
  std::vector<MassiveGroup> out;
  for (auto& [key, g] : groups) {
    std::sort(g.layers.begin(), g.layers.end());
    out.push_back(std::move(g));
  }
  std::stable_sort(out.begin(), out.end(), [](const MassiveGroup& a, const MassiveGroup& b) {
    return std::fabs(a.value) > std::fabs(b.value);
  });
  return out;
}

// "2-5,7,9-26" for a sorted list of layers.
std::string ranges(const std::vector<int>& v) {
  std::string out;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += j == i ? std::to_string(v[i]) : fmt::format("{}-{}", v[i], v[j]);
    i = j + 1;
  }
  return out;
}

std::string layer_label(const ModelInspection& m, int layer) {
  return layer == m.n_layers ? std::string("final") : std::to_string(layer);
}

json variant_json(const InspectReport& report, const InspectVariant& v) {
  const ModelInspection& m = v.result;
  json layers = json::array();
  for (const LayerInspection& l : m.layers) {
    json inputs = json::object();
    for (size_t p = 0; p < kInputPoints.size(); ++p) {
      inputs[kInputPoints[p].name] = stats_json(l.inputs[p], false);
      inputs[kInputPoints[p].name]["linears"] = kInputPoints[p].linears;
    }
    layers.push_back({{"layer", l.layer},
                      {"residual", stats_json(m.residual[static_cast<size_t>(l.layer)], true)},
                      {"inputs", inputs}});
  }
  json massive = json::array();
  for (const MassiveActivation& a : m.massive) {
    const TokenPlace t = token_place(report, a.token);
    massive.push_back({{"layer", a.layer},
                       {"sample", t.sample},
                       {"position", t.position},
                       {"token", t.token},
                       {"token_text", t.text},
                       {"channel", a.channel},
                       {"value", a.value},
                       {"ratio_to_median", a.ratio}});
  }
  json outliers = json::array();
  for (const OutlierChannel& o : top_outlier_channels(m, report.top_k)) {
    outliers.push_back({{"layer", o.layer},
                        {"point", point_name(o.point)},
                        {"channel", o.channel},
                        {"max_abs", o.value},
                        {"ratio_to_median", o.ratio}});
  }
  json recurring = json::object();
  for (int point : {kResidualPoint, 0, 2}) {
    json list = json::array();
    for (const RecurringChannel& r : recurring_channels(m, point, report.top_k)) {
      list.push_back(
          {{"channel", r.channel}, {"layers", r.layers}, {"max_abs", r.max_value}, {"max_layer", r.max_layer}});
    }
    recurring[point_name(point)] = list;
  }
  const std::vector<PrecisionSuggestion> suggestions = suggest_mixed_precision(m);
  json suggested = json::array();
  for (const PrecisionSuggestion& s : suggestions) {
    suggested.push_back({{"layer", s.layer},
                         {"point", point_name(s.point)},
                         {"absmax", s.absmax},
                         {"median_absmax_over_layers", s.median_absmax},
                         {"linears", s.linears}});
  }
  return {{"description", v.description},
          {"seconds", m.seconds},
          {"layers", layers},
          {"final_residual", stats_json(m.residual.back(), true)},
          {"massive", {{"total", m.massive_total}, {"listed", m.massive.size()}, {"list", massive}}},
          {"top_outlier_channels", outliers},
          {"recurring_channels", recurring},
          {"mixed_precision",
           {{"rule", "input absmax > 10 x the median over layers of the same input point"},
            {"suggested", suggested},
            {"regex", suggestion_regex(suggestions)}}}};
}

void append_layer_table(std::string& out, const ModelInspection& m) {
  out += fmt::format("{:>5} {:<8} {:>5} {:>9} {:>8} {:>8} {:>9} {:>7} {:>7}  top channels (index:max|x|)\n", "layer",
                     "point", "chans", "absmax", "max/med", "kurt", "chmax-kt", "nz-rel", "nz-abs");
  auto line = [&](const std::string& layer, const char* point, const MatrixStats& s) {
    std::string top;
    for (const ChannelValue& c : s.top) top += fmt::format(" {}:{:.4g}", c.channel, c.value);
    out += fmt::format("{:>5} {:<8} {:>5} {:>9.4g} {:>8.1f} {:>8.1f} {:>9.1f} {:>6.2f}% {:>6.2f}% {}\n", layer, point,
                       s.channels, s.absmax, s.max_median_ratio, s.kurtosis, s.profile_kurtosis,
                       100.0 * s.near_zero_rel, 100.0 * s.near_zero_abs, top);
  };
  for (const LayerInspection& l : m.layers) {
    line(std::to_string(l.layer), "residual", m.residual[static_cast<size_t>(l.layer)]);
    for (size_t p = 0; p < kInputPoints.size(); ++p) line(std::to_string(l.layer), kInputPoints[p].name, l.inputs[p]);
  }
  line("final", "residual", m.residual.back());
}

void append_massive(std::string& out, const InspectReport& report, const ModelInspection& m) {
  out += fmt::format(
      "\nmassive activations in the residual stream (|h| > {:g} and > {:g} x median|h| of the layer): {} found{}\n",
      kMassiveAbsolute, kMassiveRatio, m.massive_total,
      m.massive_total > static_cast<int64_t>(m.massive.size()) ? fmt::format(", the {} largest kept", m.massive.size())
                                                               : std::string());
  if (m.massive.empty()) return;
  const std::vector<MassiveGroup> groups = group_massive(m.massive);
  out += fmt::format("{:>7} {:>5} {:>8} {:<16} {:>7} {:>10} {:>6} {:>9}  layers (residual entering layer i; "
                     "final = after the last)\n",
                     "sample", "pos", "token", "text", "channel", "max value", "at", "x median");
  for (size_t i = 0; i < groups.size() && i < kMassiveGroupsShown; ++i) {
    const MassiveGroup& g = groups[i];
    const TokenPlace t = token_place(report, g.row);
    const MatrixStats& s = m.residual[static_cast<size_t>(g.value_layer)];
    std::vector<int> layers = g.layers;
    std::string layer_text = ranges(layers);
    if (!layers.empty() && layers.back() == m.n_layers) {
      layers.pop_back();
      layer_text = ranges(layers) + (layers.empty() ? "" : ",") + "final";
    }
    out += fmt::format("{:>7} {:>5} {:>8} {:<16} {:>7} {:>10.5g} {:>6} {:>9.0f}  {}\n", t.sample, t.position, t.token,
                       "'" + t.text + "'", g.channel, g.value, layer_label(m, g.value_layer),
                       s.median_abs > 0 ? std::fabs(g.value) / s.median_abs : 0.0, layer_text);
  }
  if (groups.size() > kMassiveGroupsShown) {
    out += fmt::format("  ... {} more (token, channel) pairs in the JSON report\n", groups.size() - kMassiveGroupsShown);
  }
}

void append_outliers(std::string& out, const InspectReport& report, const ModelInspection& m) {
  out += fmt::format("\ntop outlier channels over all layers (max|x| / median channel max of the same matrix):\n");
  out += fmt::format("{:>5} {:<8} {:>7} {:>10} {:>8}\n", "layer", "point", "channel", "max|x|", "x median");
  for (const OutlierChannel& o : top_outlier_channels(m, report.top_k)) {
    out += fmt::format("{:>5} {:<8} {:>7} {:>10.5g} {:>8.1f}\n", o.layer, point_name(o.point), o.channel, o.value,
                       o.ratio);
  }
  out += fmt::format("channels most often in a layer's top {} (model dimensions, same index in every layer):\n",
                     report.top_k);
  for (int point : {kResidualPoint, 0, 2}) {
    std::string list;
    for (const RecurringChannel& r : recurring_channels(m, point, std::min(report.top_k, 6))) {
      list += fmt::format("  {} ({}/{} layers, max {:.4g} at {})", r.channel, r.layers, m.n_layers, r.max_value,
                          r.max_layer);
    }
    out += fmt::format("  {:<8}{}\n", point_name(point), list);
  }
  const std::vector<PrecisionSuggestion> suggestions = suggest_mixed_precision(m);
  out += "mixed precision: linears whose input absmax is > 10 x the median over layers of the same input point";
  if (suggestions.empty()) {
    out += ": none\n";
    return;
  }
  out += ":\n";
  for (const PrecisionSuggestion& s : suggestions) {
    std::string names;
    for (const std::string& n : s.linears) names += (names.empty() ? "" : " ") + n;
    out += fmt::format("  {:<40} input absmax {:.4g} ({:.0f} x median {:.4g})\n", names, s.absmax,
                       s.absmax / s.median_absmax, s.median_absmax);
  }
  out += fmt::format("  recipe rule \"match\": \"{}\"\n", suggestion_regex(suggestions));
}

// Median and maximum over layers of one statistic.
std::pair<double, double> median_max(const ModelInspection& m, int point, double MatrixStats::*field) {
  std::vector<float> v;
  double max = 0.0;
  const int n = point == kResidualPoint ? m.n_layers + 1 : m.n_layers;
  for (int layer = 0; layer < n; ++layer) {
    const double x = point_stats(m, layer, point).*field;
    v.push_back(static_cast<float>(x));
    max = std::max(max, x);
  }
  return {lower_median(std::move(v)), max};
}

void append_comparison(std::string& out, const InspectReport& report) {
  out += "\ncomparison (median / max over layers):\n";
  out += fmt::format("{:<8} {:<7} {:>21} {:>19} {:>19} {:>17}\n", "point", "variant", "absmax", "max/med", "kurtosis",
                     "massive");
  for (int point = kResidualPoint; point < static_cast<int>(kInputPoints.size()); ++point) {
    for (const InspectVariant& v : report.variants) {
      const auto [a_med, a_max] = median_max(v.result, point, &MatrixStats::absmax);
      const auto [r_med, r_max] = median_max(v.result, point, &MatrixStats::max_median_ratio);
      const auto [k_med, k_max] = median_max(v.result, point, &MatrixStats::kurtosis);
      out += fmt::format("{:<8} {:<7} {:>10.4g} {:>10.4g} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f}", point_name(point),
                         v.name, a_med, a_max, r_med, r_max, k_med, k_max);
      out += point == kResidualPoint ? fmt::format(" {:>17}\n", v.result.massive_total) : std::string("\n");
    }
  }
}

}  // namespace

TokenPlace token_place(const InspectReport& report, int64_t row) {
  TokenPlace t;
  if (report.windows == nullptr || report.windows->seq_len <= 0) return t;
  t.sample = static_cast<int>(row / report.windows->seq_len);
  t.position = static_cast<int>(row % report.windows->seq_len);
  if (row >= 0 && static_cast<size_t>(row) < report.windows->tokens.size()) {
    t.token = report.windows->tokens[static_cast<size_t>(row)];
    if (report.tokenizer != nullptr) t.text = escape_token(report.tokenizer->token_to_bytes(t.token));
  }
  return t;
}

nlohmann::json inspect_report_json(const InspectReport& report) {
  json variants = json::object();
  for (const InspectVariant& v : report.variants) variants[v.name] = variant_json(report, v);
  json points = json::array();
  for (const InputPoint& p : kInputPoints) points.push_back({{"name", p.name}, {"linears", p.linears}});
  return {{"model", report.model_path},
          {"calibration", report.calibration},
          {"top_k", report.top_k},
          {"input_points", points},
          {"definitions",
           {{"kurtosis", "Pearson mu4/mu2^2 of all values (3 for a Gaussian)"},
            {"channel_max_kurtosis", "Pearson kurtosis of the per-channel max|x| profile"},
            {"max_median_ratio", "max over channels of max|x| / median over channels of max|x|"},
            {"near_zero_rel", fmt::format("fraction of values with |x| < {:g} * absmax", kNearZeroRelative)},
            {"near_zero_abs", fmt::format("fraction of values with |x| < {:g}", kNearZeroAbsolute)},
            {"massive", fmt::format("residual entries with |h| > {:g} and |h| > {:g} * median|h| of that layer's "
                                    "hidden states (Sun et al. 2024)",
                                    kMassiveAbsolute, kMassiveRatio)},
            {"residual", "hidden state entering the layer; final_residual: after the last layer, before the norm"},
            {"massive.layer", "the residual stream entering that layer; n_layers = after the last layer"}}},
          {"notes", report.notes},
          {"variants", variants}};
}

std::string inspect_report_text(const InspectReport& report) {
  std::string out;
  const json& c = report.calibration;
  out += fmt::format("lowbit inspect {}: {} windows x {} tokens of {}, seed {}\n", report.model_path,
                     c.value("n_samples", 0), c.value("seq_len", 0), c.value("path", std::string()),
                     c.value("seed", uint64_t{0}));
  out += fmt::format(
      "columns: max/med = absmax / median channel max; kurt = kurtosis of all values (Gaussian 3); chmax-kt = "
      "kurtosis of the channel-max profile; nz-rel = |x| < {:g} x absmax; nz-abs = |x| < {:g}\n",
      kNearZeroRelative, kNearZeroAbsolute);
  for (const std::string& note : report.notes) out += "note: " + note + "\n";
  for (const InspectVariant& v : report.variants) {
    out += fmt::format("\n=== {}: {} ({:.1f} s) ===\n", v.name, v.description, v.result.seconds);
    append_layer_table(out, v.result);
    append_massive(out, report, v.result);
    append_outliers(out, report, v.result);
  }
  if (report.variants.size() > 1) append_comparison(out, report);
  return out;
}

}  // namespace lowbit
