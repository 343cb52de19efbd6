// `lowbit formats` end to end: --table JSON for every required element format
// (non-finite values as strings, -0.0 kept), --eval JSON for every scaled format
// and identical numbers on every ISA, --list, and rejected inputs.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "formats/block_format.h"
#include "test_util.h"

namespace {

using lowbit::testing::CommandResult;
using lowbit::testing::count_lines;
using lowbit::testing::run_lowbit;

std::string temp_json(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("lowbit_block_cli_" + std::to_string(getpid()) + "_" + name + ".json"))
      .string();
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  nlohmann::json j;
  in >> j;
  std::filesystem::remove(path);
  return j;
}

TEST(BlockCli, TableJsonListsEveryCode) {
  struct Case {
    const char* name;
    int bits;
  };
  const Case cases[] = {{"fp8_e4m3", 8}, {"fp8_e5m2", 8}, {"fp6_e2m3", 6}, {"fp6_e3m2", 6}, {"fp4_e2m1", 4},
                        {"e8m0", 8},     {"ue4m3", 7},    {"nf4", 4},      {"posit4_1", 4}, {"posit8_0", 8},
                        {"posit8_2", 8}, {"int4", 4},     {"int8", 8}};
  for (const Case& c : cases) {
    const std::string path = temp_json(c.name);
    const CommandResult r = run_lowbit(std::string("formats --table ") + c.name + " --json " + path);
    ASSERT_EQ(r.exit_code, 0) << c.name << ": " << r.output;
    const nlohmann::json j = read_json(path);
    EXPECT_EQ(j["format"], c.name);
    ASSERT_EQ(j["codes"].size(), size_t{1} << c.bits) << c.name;
    for (size_t i = 0; i < j["codes"].size(); ++i) {
      EXPECT_EQ(j["codes"][i]["code"], i) << c.name;
      const nlohmann::json& v = j["codes"][i]["value"];
      EXPECT_TRUE(v.is_number() || v == "nan" || v == "inf" || v == "-inf") << c.name << " code " << i << ": " << v;
    }
  }
}

TEST(BlockCli, TableJsonNamesSpecialValues) {
  auto value_of = [](const char* format, int code) {
    const std::string path = temp_json(std::string(format) + "_special");
    const CommandResult r = run_lowbit(std::string("formats --table ") + format + " --json " + path);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return read_json(path)["codes"][code]["value"];
  };
  const nlohmann::json negative_zero = value_of("fp4_e2m1", 0x8);
  ASSERT_TRUE(negative_zero.is_number());
  EXPECT_EQ(negative_zero.get<double>(), 0.0);
  EXPECT_TRUE(std::signbit(negative_zero.get<double>())) << "-0.0 must stay -0.0";
  EXPECT_EQ(value_of("fp4_e2m1", 0x7), 6.0);
  EXPECT_EQ(value_of("fp8_e4m3", 0x7e), 448.0);
  EXPECT_EQ(value_of("fp8_e4m3", 0x7f), "nan");
  EXPECT_EQ(value_of("fp8_e5m2", 0x7c), "inf");
  EXPECT_EQ(value_of("fp8_e5m2", 0xfc), "-inf");
  EXPECT_EQ(value_of("fp8_e5m2", 0x7b), 57344.0);
  EXPECT_EQ(value_of("e8m0", 127), 1.0);
  EXPECT_EQ(value_of("e8m0", 0xff), "nan");
  EXPECT_EQ(value_of("posit8_0", 0x80), "nan");  // NaR
  EXPECT_EQ(value_of("posit8_0", 0x40), 1.0);
  EXPECT_EQ(value_of("int8", 0x7f), 127.0);
  EXPECT_EQ(value_of("int4", 0xf), -1.0);
  EXPECT_EQ(value_of("nf4", 7), 0.0);
}

TEST(BlockCli, EvalReportsEveryScaledFormatTheSameOnEveryIsa) {
  const std::string path = temp_json("eval");
  const CommandResult r = run_lowbit("formats --eval --input laplace --rows 8 --cols 300 --seed 3 --json " + path);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = read_json(path);
  EXPECT_EQ(j["input"], "laplace");
  EXPECT_EQ(j["rows"], 8);
  EXPECT_EQ(j["cols"], 300);
  ASSERT_EQ(j["results"].size(), lowbit::block_formats().size());
  for (const nlohmann::json& e : j["results"]) {
    // int2_g64 on Laplace: about 5 dB; 2-bit codes with one scale per 300-value row: about 2 dB.
    const bool two_bit_rows = e["format"] == "int2_pc_asym";
    EXPECT_GT(e["snr_db"].get<double>(), two_bit_rows ? 1.5 : 4.0) << e["format"];
    EXPECT_GT(e["bits_per_element"].get<double>(), 2.0) << e["format"];
    EXPECT_GE(e["mse"].get<double>(), 0.0);
    EXPECT_GE(e["max_abs_error"].get<double>(), 0.0);
    EXPECT_NE(r.output.find(e["format"].get<std::string>()), std::string::npos);
  }
  const std::string generic_path = temp_json("eval_generic");
  const CommandResult g = run_lowbit("formats --eval --input laplace --rows 8 --cols 300 --seed 3 --json " +
                                     generic_path, "LOWBIT_ISA=generic");
  ASSERT_EQ(g.exit_code, 0) << g.output;
  nlohmann::json generic = read_json(generic_path);
  EXPECT_EQ(generic["isa"], "generic");
  EXPECT_EQ(generic["results"], j["results"]);
}

TEST(BlockCli, ListShowsBitsAndDescriptions) {
  const CommandResult r = run_lowbit("formats --list");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const lowbit::BlockFormat& f : lowbit::block_formats()) {
    EXPECT_NE(r.output.find(f.name()), std::string::npos) << f.name();
  }
  EXPECT_NE(r.output.find("nvfp4              4.5000"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("posit8_2"), std::string::npos);
  EXPECT_EQ(run_lowbit("formats").output, r.output);  // --list is the default
}

TEST(BlockCli, BadRequestsFailWithOneLine) {
  for (const std::string& args : {std::string("formats --table fp16"), std::string("formats --table no_such_format"),
                                  std::string("formats --eval --formats int4_g128,nope")}) {
    const CommandResult r = run_lowbit(args);
    EXPECT_EQ(r.exit_code, 1) << args;
    EXPECT_EQ(count_lines(r.output), 1u) << args << ":\n" << r.output;
    EXPECT_EQ(r.output.rfind("lowbit: error: ", 0), 0u) << r.output;
  }
  EXPECT_NE(run_lowbit("formats --eval --input cauchy").exit_code, 0);
  EXPECT_NE(run_lowbit("formats --rows 4").exit_code, 0);  // --rows needs --eval
  EXPECT_NE(run_lowbit("formats --table int4 --eval").exit_code, 0);
  const CommandResult isa = run_lowbit("formats --list", "LOWBIT_ISA=sse9");
  EXPECT_EQ(isa.exit_code, 1);
  EXPECT_NE(isa.output.find("LOWBIT_ISA"), std::string::npos) << isa.output;
}

}  // namespace
