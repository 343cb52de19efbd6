#include "cli/inspect_plot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "core/mapped_file.h"
#include "pipeline/inspect_summary.h"

extern char** environ;

namespace lowbit::cli {
namespace {

namespace fs = std::filesystem;

constexpr int kPanelWidth = 560;
constexpr int kPanelHeight = 400;

// Runs `argv` and returns its exit status (-1 when it could not start); stderr
// goes to /dev/null when quiet.
int run_program(const std::vector<std::string>& args, bool quiet) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (quiet) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A path as a gnuplot single-quoted string ('' stands for one quote).
std::string quoted(const std::string& path) {
  std::string out = "'";
  for (char c : path) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

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
    script += fmt::format("set terminal {} size {},{} font ',9'\nset termoption noenhanced\nset output {}\nreset\n",
                          terminal,
                          kPanelWidth * columns, kPanelHeight * rows + 30, quoted(path(name) + ".tmp"));
    script += fmt::format("set multiplot layout {},{} title {}\n", rows, columns, quoted(title));
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
      script += fmt::format("set title {}\nset xrange [-0.5:{}]\nset yrange [-0.5:{}]\n", quoted(v.name),
                            static_cast<double>(channels) - 0.5, static_cast<double>(rows.size()) - 0.5);
      script += fmt::format("plot {} matrix with image notitle\n", quoted(path(file)));
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
      script += fmt::format("set title {}\nplot ", quoted(point_name(point)));
      for (size_t k = 0; k < report.variants.size(); ++k) {
        script += fmt::format("{}{} using 1:{} with linespoints pt 7 ps 0.5 title {}", k == 0 ? "" : ", ",
                              quoted(path("absmax_per_layer.dat")), column++, quoted(report.variants[k].name));
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
      script += fmt::format("{}{} using 1:{} with lines title {}", k == 0 ? "" : ", ", quoted(path(file)), k + 2,
                            quoted(report.variants[k].name));
    }
    script += fmt::format("\nunset logscale y\nset title {}\nplot {} using 1:2 with impulses title {}\n",
                          quoted(report.variants[0].name + ", linear scale"), quoted(path(file)),
                          quoted(report.variants[0].name));
    end_png();
    return Status::ok_status();
  }
};

}  // namespace

Expected<std::string> find_gnuplot() {
  const char* env = std::getenv("PATH");
  const std::string dirs = env != nullptr ? env : "";
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string d = dirs.substr(start, end - start);
    if (!d.empty()) {
      const fs::path candidate = fs::path(d) / "gnuplot";
      if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
    start = end + 1;
  }
  return make_error(
      "--plot: gnuplot not found on PATH; install it (Debian: apt-get install gnuplot-nox, or "
      "scripts/install_deps.sh) or leave out --plot");
}

Expected<std::vector<std::string>> write_inspect_plots(const InspectReport& report, const std::string& dir,
                                                       const std::string& gnuplot) {
  if (report.variants.empty()) return make_error("--plot: nothing to plot");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) return make_error("--plot {}: cannot create the folder ({})", dir, ec.message());
  Plotter plot{report, fs::absolute(dir), "", "", {}};
  if (run_program({gnuplot, "-e", "set terminal pngcairo"}, true) == 0) {
    plot.terminal = "pngcairo";
  } else if (run_program({gnuplot, "-e", "set terminal png"}, true) == 0) {
    plot.terminal = "png";
  } else {
    return make_error("--plot: {} has neither the pngcairo nor the png terminal", gnuplot);
  }
  for (int point : {kResidualPoint, 0, 3}) LB_RETURN_IF_ERROR(plot.heat_map(point));
  LB_RETURN_IF_ERROR(plot.absmax_per_layer());
  for (int point : {0, 3}) LB_RETURN_IF_ERROR(plot.channel_profile(point));

  const std::string script = plot.path("inspect.gp");
  LB_RETURN_IF_ERROR(write_file_atomic(script, plot.script));
  const int rc = run_program({gnuplot, script}, false);
  if (rc != 0) return make_error("--plot: {} {} failed (exit status {})", gnuplot, script, rc);
  for (const std::string& png : plot.pngs) {
    fs::rename(png + ".tmp", png, ec);
    if (ec) return make_error("--plot: {} was not written ({})", png, ec.message());
  }
  return plot.pngs;
}

}  // namespace lowbit::cli
