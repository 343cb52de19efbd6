#include "cli/inspect_plot.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "cli/gnuplot.h"
#include "core/mapped_file.h"
#include "pipeline/inspect_summary.h"

namespace lowbit::cli {
namespace {

namespace fs = std::filesystem;

constexpr int kPanelWidth = 560;
constexpr int kPanelHeight = 400;

// The runs' rows of one point: [layers (+ final for the residual), channels].
std::vector<std::vector<float>> channel_rows(const ModelInspection& m, int point) {
  std::vector<std::vector<float>> rows;
  const int n = point == kResidualPoint ? m.n_layers + 1 : m.n_layers;
  for (int layer = 0; layer < n; ++layer) rows.push_back(point_stats(m, layer, point).channel_max);
  return rows;
}

struct Plotter {
  const InspectReport& report;
  fs::path dir;
  std::string terminal;
  std::string script;
  std::vector<std::string> pngs;

  std::string path(const std::string& name) const { return (dir / name).string(); }

  Status data(const std::string& name, const std::string& text) const { return write_file_atomic(path(name), text); }

  // Starts a PNG of `panels` side by side (columns × rows panels).
  void begin_png(const std::string& name, int columns, int rows, const std::string& title) {
    pngs.push_back(path(name));
    script += fmt::format("set terminal {} size {},{} font ',9'\nset termoption noenhanced\n", terminal,
                          kPanelWidth * columns, kPanelHeight * rows + 30);
    script += gnuplot_set_output(path(name)) + "reset\n";
    script += fmt::format("set multiplot layout {},{} title {}\n", rows, columns, gnuplot_quoted(title));
  }
  void end_png() { script += "unset multiplot\nset output\n"; }

  Status heat_map(int point) {
    const std::string pname = point_name(point);
    double hi = 0.0;
    double lo = HUGE_VAL;
    for (const InspectVariant& v : report.variants) {
      for (const std::vector<float>& row : channel_rows(v.result, point)) {
        for (float x : row) {
          hi = std::max(hi, static_cast<double>(x));
          if (x > 0.0f) lo = std::min(lo, static_cast<double>(x));
        }
      }
    }
    if (!(hi > 0.0)) return Status::ok_status();
    lo = std::max(lo, hi * 1e-4);
    begin_png("channel_max_" + pname + ".png", static_cast<int>(report.variants.size()), 1,
              fmt::format("max|x| per channel and layer: {}{}", pname,
                          point == kResidualPoint ? " (hidden state entering the layer; top row: final)" : ""));
    script += fmt::format(
        "set logscale cb\nset cbrange [{:g}:{:g}]\nset format cb '%.0e'\nset xlabel 'channel'\nset ylabel 'layer'\n"
        "set palette rgbformulae 22,13,-31\n",
        lo, hi);
    for (const InspectVariant& v : report.variants) {
      const std::vector<std::vector<float>> rows = channel_rows(v.result, point);
      std::string text;
      for (const std::vector<float>& row : rows) {
        for (size_t j = 0; j < row.size(); ++j) {
          text += fmt::format("{}{:.6g}", j == 0 ? "" : " ", std::max(static_cast<double>(row[j]), lo));
        }
        text += "\n";
      }
      const std::string file = fmt::format("channel_max_{}_{}.dat", pname, v.name);
      LB_RETURN_IF_ERROR(data(file, text));
      const size_t channels = rows.empty() ? 0 : rows[0].size();
      script += fmt::format("set title {}\nset xrange [-0.5:{}]\nset yrange [-0.5:{}]\n", gnuplot_quoted(v.name),
                            static_cast<double>(channels) - 0.5, static_cast<double>(rows.size()) - 0.5);
      script += fmt::format("plot {} matrix with image notitle\n", gnuplot_quoted(path(file)));
    }
    end_png();
    return Status::ok_status();
  }

  Status absmax_per_layer() {
    // Columns: layer, then for each point (residual first) and each run its absmax; NaN where absent.
    const ModelInspection& first = report.variants[0].result;
    std::string text = "# layer";
    std::vector<int> points = {kResidualPoint};
    for (int p = 0; p < static_cast<int>(kInputPoints.size()); ++p) points.push_back(p);
    for (int point : points) {
      for (const InspectVariant& v : report.variants) text += fmt::format(" {}:{}", point_name(point), v.name);
    }
    text += "\n";
    for (int layer = 0; layer <= first.n_layers; ++layer) {
      text += std::to_string(layer);
      for (int point : points) {
        for (const InspectVariant& v : report.variants) {
          const bool present = point == kResidualPoint || layer < v.result.n_layers;
          text += present ? fmt::format(" {:.6g}", point_stats(v.result, layer, point).absmax) : std::string(" NaN");
        }
      }
      text += "\n";
    }
    LB_RETURN_IF_ERROR(data("absmax_per_layer.dat", text));
    begin_png("absmax_per_layer.png", 3, 2, "absmax per layer (residual: entering the layer; last point: final)");
    script += "set logscale y\nset xlabel 'layer'\nset ylabel 'max |x|'\nset key top left\nset grid\n";
    int column = 2;
    for (int point : points) {
      script += fmt::format("set title {}\nplot ", gnuplot_quoted(point_name(point)));
      for (size_t k = 0; k < report.variants.size(); ++k) {
        script += fmt::format("{}{} using 1:{} with linespoints pt 7 ps 0.5 title {}", k == 0 ? "" : ", ",
                              gnuplot_quoted(path("absmax_per_layer.dat")), column++,
                              gnuplot_quoted(report.variants[k].name));
      }
      script += "\n";
    }
    end_png();
    return Status::ok_status();
  }

  Status channel_profile(int point) {
    const std::string pname = point_name(point);
    const ModelInspection& first = report.variants[0].result;
    int layer = 0;
    for (int l = 0; l < first.n_layers; ++l) {
      if (point_stats(first, l, point).absmax > point_stats(first, layer, point).absmax) layer = l;
    }
    const size_t channels = point_stats(first, layer, point).channel_max.size();
    std::string text = "# channel";
    for (const InspectVariant& v : report.variants) text += " " + v.name;
    text += "\n";
    for (size_t j = 0; j < channels; ++j) {
      text += std::to_string(j);
      for (const InspectVariant& v : report.variants) {
        text += fmt::format(" {:.6g}", point_stats(v.result, layer, point).channel_max[j]);
      }
      text += "\n";
    }
    const std::string file = "channel_profile_" + pname + ".dat";
    LB_RETURN_IF_ERROR(data(file, text));
    begin_png("channel_profile_" + pname + ".png", 2, 1,
              fmt::format("max|x| per channel, {} of layer {} (the largest absmax)", pname, layer));
    script += "set logscale y\nset xlabel 'channel'\nset ylabel 'max |x|'\nset key top right\nset grid\n";
    script += fmt::format("set xrange [0:{}]\n", channels == 0 ? 0 : channels - 1);
    script += "set title 'all runs'\nplot ";
    for (size_t k = 0; k < report.variants.size(); ++k) {
      script += fmt::format("{}{} using 1:{} with lines title {}", k == 0 ? "" : ", ", gnuplot_quoted(path(file)),
                            k + 2, gnuplot_quoted(report.variants[k].name));
    }
    script += fmt::format("\nunset logscale y\nset title {}\nplot {} using 1:2 with impulses title {}\n",
                          gnuplot_quoted(report.variants[0].name + ", linear scale"), gnuplot_quoted(path(file)),
                          gnuplot_quoted(report.variants[0].name));
    end_png();
    return Status::ok_status();
  }
};

}  // namespace

Expected<std::vector<std::string>> write_inspect_plots(const InspectReport& report, const std::string& dir,
                                                       const std::string& gnuplot) {
  if (report.variants.empty()) return make_error("--plot: nothing to plot");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) return make_error("--plot {}: cannot create the folder ({})", dir, ec.message());
  Expected<std::string> terminal = png_terminal(gnuplot);
  if (!terminal.ok()) return terminal.status().with_context("--plot");
  Plotter plot{report, fs::absolute(dir), *terminal, gnuplot_prologue(), {}};
  for (int point : {kResidualPoint, 0, 3}) LB_RETURN_IF_ERROR(plot.heat_map(point));
  LB_RETURN_IF_ERROR(plot.absmax_per_layer());
  for (int point : {0, 3}) LB_RETURN_IF_ERROR(plot.channel_profile(point));

  const std::string script = plot.path("inspect.gp");
  LB_RETURN_IF_ERROR(write_file_atomic(script, plot.script));
  LB_RETURN_IF_ERROR(run_gnuplot_script(gnuplot, script, plot.pngs).with_context("--plot"));
  return plot.pngs;
}

}  // namespace lowbit::cli
