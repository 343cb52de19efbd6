// `lowbit pareto`'s table and charts (cli/pareto_chart.h): the Markdown table
// for three series, character for character; the PNG/SVG charts with their data
// file and script, labels that gnuplot could mangle (quotes, underscores), a
// KLD of 0 on the log axis, and failures that leave no image or temporary file.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "cli/gnuplot.h"
#include "cli/pareto_chart.h"
#include "model_writers.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using cli::ParetoPoint;

std::vector<ParetoPoint> three_series() {
  // Out of order on purpose: the table sorts by series, then size.
  return {
      {"lowbit 4.50 bpw", "lowbit allocated", 98.2, 4.5, 0.011, 0.0002, 21.3, 0.15, 0.0105,
       "lowbit quantize m.gguf --bpw 4.5 -o a.lowbit"},
      {"q8_0", "llama.cpp", 180.0, 8.5, 0.0007, 0.00002, 20.81, 0.14, NAN, "llama-quantize m.gguf q8_0.gguf Q8_0"},
      {"w4 g128", "lowbit uniform", 92.0, 4.25, 0.05, 0.001, 22.5, 0.17, NAN,
       "lowbit quantize m.gguf --recipe w4g128 -o u.lowbit"},
      {"q4_K_M", "llama.cpp", 105.46, 4.89, 0.0152, 0.0003, 21.5, 0.15, NAN,
       "llama-quantize m.gguf q4_K_M.gguf Q4_K_M"},
      {"lowbit 4.00 bpw", "lowbit allocated", 88.1, 4.0, 0.03, 0.0005, 22.0, 0.16, 0.028,
       "lowbit quantize m.gguf --bpw 4 -o b.lowbit"},
  };
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

// The gnuplot on PATH, or "" (the caller skips).
std::string gnuplot_or_empty() {
  Expected<std::string> g = cli::find_gnuplot();
  return g.ok() ? *g : std::string();
}

#define LB_REQUIRE_GNUPLOT(var)                                                                    \
  const std::string var = gnuplot_or_empty();                                                      \
  if (var.empty()) {                                                                               \
    GTEST_SKIP() << "gnuplot not found on PATH (apt-get install gnuplot-nox): charts not checked"; \
  }

void expect_png_and_svgs(const std::vector<std::string>& images, const std::vector<ParetoPoint>& points) {
  ASSERT_EQ(images.size(), 4u);
  for (const std::string& image : images) {
    ASSERT_TRUE(fs::exists(image)) << image;
    const std::string bytes = read_file(image);
    if (image.ends_with(".png")) {
      EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << image;
    } else {
      EXPECT_TRUE(image.ends_with(".svg")) << image;
      for (const ParetoPoint& p : points) {
        EXPECT_NE(bytes.find(">" + p.label), std::string::npos) << image << " lacks the label " << p.label;
      }
    }
  }
}

TEST(ParetoMarkdown, ThreeSeriesSortedBySeriesThenSizeWithCommandFootnotes) {
  const std::string expected =
      "| series | label | MB | bpw | KLD ± | PPL ± | predicted KLD |\n"
      "|:---|:---|---:|---:|---:|---:|---:|\n"
      "| llama.cpp | q4_K_M[^1] | 105.46 | 4.89 | 0.015200 ± 0.000300 | 21.5000 ± 0.1500 | — |\n"
      "| llama.cpp | q8_0[^2] | 180.00 | 8.50 | 0.000700 ± 0.000020 | 20.8100 ± 0.1400 | — |\n"
      "| lowbit allocated | lowbit 4.00 bpw[^3] | 88.10 | 4.00 | 0.030000 ± 0.000500 | 22.0000 ± 0.1600 | 0.028000 |\n"
      "| lowbit allocated | lowbit 4.50 bpw[^4] | 98.20 | 4.50 | 0.011000 ± 0.000200 | 21.3000 ± 0.1500 | 0.010500 |\n"
      "| lowbit uniform | w4 g128[^5] | 92.00 | 4.25 | 0.050000 ± 0.001000 | 22.5000 ± 0.1700 | — |\n"
      "\n"
      "[^1]: `llama-quantize m.gguf q4_K_M.gguf Q4_K_M`\n"
      "[^2]: `llama-quantize m.gguf q8_0.gguf Q8_0`\n"
      "[^3]: `lowbit quantize m.gguf --bpw 4 -o b.lowbit`\n"
      "[^4]: `lowbit quantize m.gguf --bpw 4.5 -o a.lowbit`\n"
      "[^5]: `lowbit quantize m.gguf --recipe w4g128 -o u.lowbit`\n";
  EXPECT_EQ(cli::pareto_markdown(three_series()), expected);
}

TEST(ParetoMarkdown, EscapesPipesAndBackticksAndSharesFootnotes) {
  std::vector<ParetoPoint> points = {
      {"a|b", "s", 2, 4, 0.1, 0.01, 10, 1, NAN, "run `x` | tee\nlog"},
      {"c", "s", 1, 4, NAN, 0, 10, 1, NAN, "run `x` | tee\nlog"},
      {"no command", "s", 3, 4, 0.1, 0.01, 10, 1, NAN, ""},
  };
  const std::string md = cli::pareto_markdown(points);
  EXPECT_NE(md.find("| s | c[^1] | 1.00 | 4.00 | — | 10.0000 ± 1.0000 | — |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| s | a\\|b[^1] | 2.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| s | no command | 3.00 |"), std::string::npos) << md;
  // One footnote for the shared command, on one line, fenced past its backticks.
  EXPECT_TRUE(md.ends_with("\n\n[^1]: ``run `x` | tee log``\n")) << md;
  EXPECT_EQ(md.find("[^2]"), std::string::npos) << md;
}

TEST(ParetoCharts, WritesPngSvgDataAndScriptThatRedraws) {
  LB_REQUIRE_GNUPLOT(gnuplot);
  testing::ScopedTempDir dir("pareto_charts");
  const std::string prefix = dir.file("out/pareto");  // the folder "out" is created
  const std::vector<ParetoPoint> points = three_series();
  Expected<std::vector<std::string>> images = cli::write_pareto_charts(points, prefix, gnuplot, "SmolLM2-135M");
  ASSERT_TRUE(images.ok()) << images.status().message();
  const std::string abs = fs::absolute(prefix).string();
  EXPECT_EQ(*images,
            (std::vector<std::string>{abs + "_kld.png", abs + "_kld.svg", abs + "_ppl.png", abs + "_ppl.svg"}));
  expect_png_and_svgs(*images, points);
  EXPECT_EQ(names_in(dir.path() / "out"),
            (std::set<std::string>{"pareto.dat", "pareto.gp", "pareto_kld.png", "pareto_kld.svg", "pareto_ppl.png",
                                   "pareto_ppl.svg"}));
  // One block per series, one row per point, each row ending with its label.
  const std::string data = read_file(prefix + ".dat");
  EXPECT_NE(data.find("# series 0: llama.cpp\n105.46 4.89 0.0152 0.0003 21.5 0.15 NaN"), std::string::npos) << data;
  EXPECT_NE(data.find(" # q8_0\n\n\n# series 1: lowbit allocated\n88.1 "), std::string::npos) << data;
  EXPECT_NE(data.find(" # w4 g128\n"), std::string::npos) << data;

  // The script run by hand writes the final names, not the temporary ones.
  for (const std::string& image : *images) fs::remove(image);
  ASSERT_EQ(cli::run_program({gnuplot, prefix + ".gp"}, true), 0);
  expect_png_and_svgs(*images, points);
  EXPECT_EQ(names_in(dir.path() / "out").size(), 6u);
}

TEST(ParetoCharts, LabelsWithQuotesAndUnderscoresSurvive) {
  LB_REQUIRE_GNUPLOT(gnuplot);
  testing::ScopedTempDir dir("pareto_quotes");
  const std::vector<ParetoPoint> points = {
      {"it's_q4_K \"fast\"", "o'brien_series", 100, 4.5, 0.02, 0.001, 21, 0.1, 0.018, "cmd"},
      {"q8_0 \\n x_y", "o'brien_series", 180, 8.5, 0.001, 0.0001, 20, 0.1, NAN, "cmd"},
  };
  Expected<std::vector<std::string>> images =
      cli::write_pareto_charts(points, dir.file("q"), gnuplot, "title with 'quotes' and _under_scores_");
  ASSERT_TRUE(images.ok()) << images.status().message();
  expect_png_and_svgs(*images, points);
  for (const std::string& text : {std::string(">o'brien_series<"), std::string(">o'brien_series (predicted)<"),
                                  std::string(">title with 'quotes' and _under_scores_<")}) {
    EXPECT_NE(read_file(dir.file("q_kld.svg")).find(text), std::string::npos) << text;
  }
}

TEST(ParetoCharts, ZeroKldIsDrawnAtAFloorOnTheLogAxis) {
  LB_REQUIRE_GNUPLOT(gnuplot);
  testing::ScopedTempDir dir("pareto_zero");
  const std::vector<ParetoPoint> points = {
      {"f16", "reference", 270, 16, 0, 0, 20, 0.1, NAN, ""},
      {"q4", "reference", 90, 4, 0.02, 0.001, 22, 0.1, NAN, ""},
  };
  Expected<std::vector<std::string>> images = cli::write_pareto_charts(points, dir.file("z"), gnuplot, "zero");
  ASSERT_TRUE(images.ok()) << images.status().message();
  expect_png_and_svgs(*images, points);
  // The floor is a decade below the smallest positive KLD; the label says the value.
  EXPECT_NE(read_file(dir.file("z_kld.svg")).find(">f16 (KLD 0)<"), std::string::npos);
  EXPECT_NE(read_file(dir.file("z_ppl.svg")).find(">f16<"), std::string::npos);
  EXPECT_NE(read_file(dir.file("z.gp")).find("# reference, f16: KLD 0 drawn at 0.002 on the log axis\n"),
            std::string::npos);
  EXPECT_NE(read_file(dir.file("z.dat")).find("270 16 0 0 20 0.1 NaN 0.002 0.002 0.002 NaN # f16\n"),
            std::string::npos);
}

TEST(ParetoCharts, PrefixUnderAFileFailsNamingThePathAndWritesNothing) {
  LB_REQUIRE_GNUPLOT(gnuplot);
  testing::ScopedTempDir dir("pareto_blocked");
  std::ofstream(dir.file("blocker")) << "a file, not a folder";
  const std::string prefix = dir.file("blocker/sub/pareto");
  Expected<std::vector<std::string>> images = cli::write_pareto_charts(three_series(), prefix, gnuplot, "t");
  ASSERT_FALSE(images.ok());
  EXPECT_NE(images.status().message().find(dir.file("blocker/sub")), std::string::npos) << images.status().message();
  EXPECT_EQ(names_in(dir.path()), std::set<std::string>{"blocker"});
}

TEST(ParetoCharts, ReadOnlyFolderFailsNamingThePathAndWritesNothing) {
  LB_REQUIRE_GNUPLOT(gnuplot);
  testing::ScopedTempDir dir("pareto_readonly");
  const std::string folder = dir.file("ro");
  fs::create_directory(folder);
  ASSERT_EQ(chmod(folder.c_str(), 0555), 0);
  if (access(folder.c_str(), W_OK) == 0) {
    chmod(folder.c_str(), 0755);
    GTEST_SKIP() << "running with permission to write into a mode 0555 folder (root): read-only case not checked";
  }
  const std::string prefix = folder + "/pareto";
  Expected<std::vector<std::string>> images = cli::write_pareto_charts(three_series(), prefix, gnuplot, "t");
  chmod(folder.c_str(), 0755);
  ASSERT_FALSE(images.ok());
  EXPECT_NE(images.status().message().find(prefix), std::string::npos) << images.status().message();
  EXPECT_TRUE(names_in(folder).empty());
}

TEST(ParetoCharts, FailingGnuplotLeavesNoImageOrTemporaryFile) {
  testing::ScopedTempDir dir("pareto_failing");
  // Passes the terminal checks (gnuplot -e 'set terminal ...'); given the script
  // (gnuplot -e lowbit_tmp='.tmp' SCRIPT), starts the first image and fails.
  const std::string fake = dir.file("gnuplot");
  std::ofstream(fake) << "#!/bin/sh\n"
                         "[ $# -eq 2 ] && exit 0\n"
                         ": > \"${3%.gp}_kld.png.tmp\"\n"
                         "exit 3\n";
  ASSERT_EQ(chmod(fake.c_str(), 0755), 0);
  const std::string prefix = dir.file("charts/p");
  Expected<std::vector<std::string>> images = cli::write_pareto_charts(three_series(), prefix, fake, "t");
  ASSERT_FALSE(images.ok());
  EXPECT_NE(images.status().message().find(prefix + ".gp"), std::string::npos) << images.status().message();
  EXPECT_NE(images.status().message().find("exit status 3"), std::string::npos) << images.status().message();
  // The data file and the script stay, complete, to look into the failure.
  EXPECT_EQ(names_in(dir.file("charts")), (std::set<std::string>{"p.dat", "p.gp"}));
}

TEST(ParetoCharts, NoPointsOrNoTerminalIsAnError) {
  testing::ScopedTempDir dir("pareto_errors");
  Expected<std::vector<std::string>> none = cli::write_pareto_charts({}, dir.file("p"), "/bin/true", "t");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find(dir.file("p")), std::string::npos) << none.status().message();
  Expected<std::vector<std::string>> no_terminal =
      cli::write_pareto_charts(three_series(), dir.file("p"), "/bin/false", "t");
  ASSERT_FALSE(no_terminal.ok());
  EXPECT_NE(no_terminal.status().message().find("/bin/false"), std::string::npos) << no_terminal.status().message();
  EXPECT_TRUE(names_in(dir.path()).empty());
}

}  // namespace
}  // namespace lowbit
