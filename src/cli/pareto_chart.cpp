#include "cli/pareto_chart.h"

#include <algorithm>
#include <filesystem>
#include <tuple>

#include "cli/gnuplot.h"
#include "core/mapped_file.h"

namespace lowbit::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kMissing = "—";
constexpr int kWidth = 1000;
constexpr int kHeight = 700;
// gnuplot point types, filled and open forms of one shape per series: circle,
// square, triangle, diamond, down triangle, pentagon.
constexpr int kFilledMarker[] = {7, 5, 9, 13, 11, 15};
constexpr int kOpenMarker[] = {6, 4, 8, 12, 10, 14};
constexpr int kMarkers = sizeof(kFilledMarker) / sizeof(kFilledMarker[0]);

struct Series {
  std::string name;
  std::vector<ParetoPoint> points;  // in size order
};

// By series, then size (a NaN size last), keeping the given order of ties.
std::vector<ParetoPoint> sorted_points(const std::vector<ParetoPoint>& points) {
  std::vector<ParetoPoint> out = points;
  std::stable_sort(out.begin(), out.end(), [](const ParetoPoint& a, const ParetoPoint& b) {
    return std::tuple(a.series, std::isnan(a.size_mb), a.size_mb) <
           std::tuple(b.series, std::isnan(b.size_mb), b.size_mb);
  });
  return out;
}

std::vector<Series> group_series(const std::vector<ParetoPoint>& points) {
  std::vector<Series> out;
  for (const ParetoPoint& p : sorted_points(points)) {
    if (out.empty() || out.back().name != p.series) out.push_back({p.series, {}});
    out.back().points.push_back(p);
  }
  return out;
}

// `text` on one line: control characters (line breaks) become spaces.
std::string one_line(const std::string& text) {
  std::string out = text;
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return out;
}

// A Markdown table cell: on one line, '|' escaped.
std::string cell(const std::string& text) {
  std::string out;
  for (char c : one_line(text)) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

// A Markdown code span: fenced by one backtick more than the longest run inside,
// padded with spaces where the text starts or ends with a backtick.
std::string code_span(const std::string& text) {
  const std::string line = one_line(text);
  size_t longest = 0;
  size_t run = 0;
  for (char c : line) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  const std::string fence(longest + 1, '`');
  const bool pad = !line.empty() && (line.front() == '`' || line.back() == '`');
  return fence + (pad ? " " : "") + line + (pad ? " " : "") + fence;
}

std::string fixed(double v, int decimals) {
  return std::isfinite(v) ? fmt::format("{:.{}f}", v, decimals) : std::string(kMissing);
}

std::string with_stderr(double v, double stderr_v, int decimals) {
  return std::isfinite(v) ? fixed(v, decimals) + " ± " + fixed(stderr_v, decimals) : std::string(kMissing);
}

// A number for the data file; gnuplot skips a NaN.
std::string num(double v) { return std::isfinite(v) ? fmt::format("{:.9g}", v) : std::string("NaN"); }

// The KLD axis is logarithmic, where a KLD ≤ 0 (a file identical to the
// reference, or a difference at rounding level) cannot be drawn: such a KLD,
// and the lower end of an error bar, is drawn at a floor a decade below the
// smallest positive KLD (1e-6 when none is), and the script says so.
double kld_floor(const std::vector<ParetoPoint>& points) {
  double lo = HUGE_VAL;
  for (const ParetoPoint& p : points) {
    for (double v : {p.kld, p.predicted_kld}) {
      if (std::isfinite(v) && v > 0) lo = std::min(lo, v);
    }
  }
  return std::isfinite(lo) ? lo / 10 : 1e-6;
}

// KLD as drawn on the log axis: at least `floor`, NaN stays NaN.
double on_log_axis(double v, double floor) { return std::isnan(v) ? v : std::max(v, floor); }

// Columns of <prefix>.dat; the script's `using` clauses refer to them.
std::string chart_data(const std::vector<Series>& series, double floor, const std::string& title) {
  std::string text = fmt::format(
      "# lowbit pareto: {}\n"
      "# One block per series (gnuplot index 0, 1, ...), rows in size order. Columns:\n"
      "#   1 size_mb  2 bpw  3 kld  4 kld_stderr  5 ppl  6 ppl_stderr  7 predicted_kld\n"
      "#   8 kld  9 kld - stderr  10 kld + stderr  11 predicted_kld, as drawn on the log axis (at least {:g})\n"
      "# Each row ends with its label as a comment.\n",
      one_line(title), floor);
  for (size_t k = 0; k < series.size(); ++k) {
    text += fmt::format("{}# series {}: {}\n", k == 0 ? "" : "\n\n", k, one_line(series[k].name));
    for (const ParetoPoint& p : series[k].points) {
      text += fmt::format("{} {} {} {} {} {} {} {} {} {} {} # {}\n", num(p.size_mb), num(p.bpw), num(p.kld),
                          num(p.kld_stderr), num(p.ppl), num(p.ppl_stderr), num(p.predicted_kld),
                          num(on_log_axis(p.kld, floor)), num(on_log_axis(p.kld - p.kld_stderr, floor)),
                          num(on_log_axis(p.kld + p.kld_stderr, floor)), num(on_log_axis(p.predicted_kld, floor)),
                          one_line(p.label));
    }
  }
  return text;
}

struct ChartScript {
  const std::vector<Series>& series;
  double floor;
  std::string terminal;
  std::string title;
  std::string data;  // absolute path of <prefix>.dat
  std::string text;
  std::vector<std::string> images;

  // The labels of one chart, above and right of their points: accuracy falls
  // with size, so a series' line leaves its points down and to the right, clear
  // of the label.
  void labels(bool kld) {
    int id = 1;
    for (size_t k = 0; k < series.size(); ++k) {
      for (const ParetoPoint& p : series[k].points) {
        const double y = kld ? on_log_axis(p.kld, floor) : p.ppl;
        if (!std::isfinite(p.size_mb) || !std::isfinite(y)) continue;
        // A KLD drawn at the floor says its value, so the point is not read as measured there.
        const std::string label = kld && p.kld <= 0 ? fmt::format("{} (KLD {:g})", p.label, p.kld) : p.label;
        text += fmt::format("set label {} {} at {},{} offset character 1,0.6 left font ',7' textcolor lt {} front\n",
                            id++, gnuplot_quoted(label), num(p.size_mb), num(y), k + 1);
      }
    }
  }

  std::string plot_command(bool kld) const {
    std::string plot = "plot ";
    for (size_t k = 0; k < series.size(); ++k) {
      const int marker = static_cast<int>(k % kMarkers);
      plot += fmt::format("{}data index {} using 1:{} with yerrorlines lc {} pt {} ps 1.3 title {}",
                          k == 0 ? "" : ", \\\n     ", k, kld ? "8:9:10" : "5:($5-$6):($5+$6)", k + 1,
                          kFilledMarker[marker], gnuplot_quoted(series[k].name));
      const bool predicted = std::any_of(series[k].points.begin(), series[k].points.end(),
                                         [](const ParetoPoint& p) { return std::isfinite(p.predicted_kld); });
      if (kld && predicted) {
        plot += fmt::format(", \\\n     data index {} using 1:11 with linespoints dt 2 lc {} pt {} ps 1.3 title {}", k,
                            k + 1, kOpenMarker[marker], gnuplot_quoted(series[k].name + " (predicted)"));
      }
    }
    return plot + "\n";
  }

  // <prefix>_<name>.png and .svg of one chart.
  void chart(bool kld, const std::string& prefix) {
    text += fmt::format("\nreset\nset title {}\nset xlabel 'model size (MB = 1e6 bytes)'\nset ylabel {}\n",
                        gnuplot_quoted(title), kld ? "'mean KL divergence to the unquantized model'" : "'perplexity'");
    text += kld ? "set logscale y\n" : "";
    // Accuracy falls with size, so the top right corner is free for the key. The
    // axes end at the data (no rounding out to tics), and the offsets leave room
    // for the labels.
    text +=
        "set format y '%g'\nset grid\nset key top right box opaque\nset autoscale fix\n"
        "set offsets graph 0.03, graph 0.15, graph 0.08, graph 0.08\n";
    labels(kld);
    const std::string plot = plot_command(kld);
    const std::string name = prefix + (kld ? "_kld" : "_ppl");
    for (const std::string& term : {terminal, std::string("svg")}) {
      const std::string image = name + (term == "svg" ? ".svg" : ".png");
      images.push_back(image);
      text += fmt::format("set terminal {} size {},{} font ',10'\nset termoption noenhanced\n", term, kWidth, kHeight);
      text += gnuplot_set_output(image) + plot + "set output\n";
    }
  }
};

}  // namespace

std::string pareto_markdown(const std::vector<ParetoPoint>& points) {
  std::string out =
      "| series | label | MB | bpw | KLD ± | PPL ± | predicted KLD |\n"
      "|:---|:---|---:|---:|---:|---:|---:|\n";
  std::vector<std::string> commands;  // footnote n: commands[n - 1]
  for (const ParetoPoint& p : sorted_points(points)) {
    std::string label = cell(p.label);
    if (!p.command.empty()) {
      auto it = std::find(commands.begin(), commands.end(), p.command);
      if (it == commands.end()) it = commands.insert(commands.end(), p.command);
      label += fmt::format("[^{}]", it - commands.begin() + 1);
    }
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", cell(p.series), label, fixed(p.size_mb, 2),
                       fixed(p.bpw, 2), with_stderr(p.kld, p.kld_stderr, 6), with_stderr(p.ppl, p.ppl_stderr, 4),
                       fixed(p.predicted_kld, 6));
  }
  if (!commands.empty()) out += "\n";
  for (size_t i = 0; i < commands.size(); ++i) out += fmt::format("[^{}]: {}\n", i + 1, code_span(commands[i]));
  return out;
}

Expected<std::vector<std::string>> write_pareto_charts(const std::vector<ParetoPoint>& points,
                                                       const std::string& prefix, const std::string& gnuplot,
                                                       const std::string& title) {
  if (points.empty()) return make_error("{}: no models to chart", prefix);
  if (prefix.empty() || fs::path(prefix).filename().empty()) {
    return make_error("'{}': the chart prefix needs a file name part", prefix);
  }
  Expected<std::string> terminal = png_terminal(gnuplot);
  if (!terminal.ok()) return terminal.status();
  const fs::path dir = fs::path(prefix).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir)) {
      return make_error("{}: cannot create the folder for the charts {}_* ({})", dir.string(), prefix,
                        ec ? ec.message() : "not a folder");
    }
  }

  const std::vector<Series> series = group_series(points);
  const double floor = kld_floor(points);
  const std::string absolute = fs::absolute(prefix).string();
  ChartScript script{series, floor, *terminal, title, absolute + ".dat", "", {}};
  script.text = fmt::format("# lowbit pareto: {}\n# Model size against KL divergence and perplexity; redraw with\n",
                            one_line(title));
  script.text += fmt::format("#   gnuplot {}\n", one_line(absolute + ".gp"));
  for (const Series& s : series) {
    for (const ParetoPoint& p : s.points) {
      if (p.kld <= 0) {
        script.text += fmt::format("# {}, {}: KLD {:g} drawn at {:g} on the log axis\n", one_line(s.name),
                                   one_line(p.label), p.kld, floor);
      }
    }
  }
  script.text += gnuplot_prologue() + "data = " + gnuplot_quoted(script.data) + "\n";
  script.chart(true, absolute);
  script.chart(false, absolute);

  LB_RETURN_IF_ERROR(write_file_atomic(prefix + ".dat", chart_data(series, floor, title)));
  LB_RETURN_IF_ERROR(write_file_atomic(prefix + ".gp", script.text));
  LB_RETURN_IF_ERROR(run_gnuplot_script(gnuplot, prefix + ".gp", script.images));
  return script.images;
}

}  // namespace lowbit::cli
