// The linear-kernel table (kernels/kernel_table.h): names unique and named after
// their level; every entry this CPU runs against its scalar reference (integer
// entries bit for bit, FP32 ones within their error bound); every layer, and
// every layer of models assembled at each ISA level, reports an entry of the
// table and calls that entry's functions.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/thread_pool.h"
#include "eval/synthetic_model.h"
#include "kernels/kernel_table.h"
#include "model/decoder_block.h"
#include "model/packed_convert.h"
#include "model/packed_linear.h"
#include "test_int8_act_util.h"
#include "test_quant_util.h"
#include "test_util.h"

namespace lowbit {
namespace {

using testing::gaussian;
using testing::packed_weight;

const CpuFeatures& cpu() {
  static const CpuFeatures f = detect_cpu_features();
  return f;
}

// The levels this CPU runs, lowest first (generic always).
std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : kAllIsas) {
    if (isa_supported(isa, cpu())) out.push_back(isa);
  }
  return out;
}

// Formats whose packed matrices have each layout.
std::vector<const char*> formats_of(WeightLayout layout) {
  switch (layout) {
    case WeightLayout::kLut4: return {"int4_g128_asym", "nvfp4", "nf4_g64", "int4_g32_asym"};
    case WeightLayout::kLut4Integer: return {"int4_g128_asym", "int4_g128", "int4_g32_asym"};
    case WeightLayout::kInt8Row: return {"int8_pc"};
    case WeightLayout::kFp8Row: return {"fp8_e4m3"};
    case WeightLayout::kHalf: return {"fp16", "bf16"};
    case WeightLayout::kBits: return {"int2_g64", "int3_g128", "int2_g32_asym"};
    // Group 4096 runs past the SIMD kernels' int32 flush (kTrellisFlushCols) inside one group.
    case WeightLayout::kTrellis: return {"tcq2_g64", "tcq2p5_g128", "tcq3_g256", "tcq4_g4096"};
    case WeightLayout::kPtq161: return {"ptq161_s125_b192", "ptq161_s0_b32", "ptq161_s1000_b64", "ptq161_s333_b96"};
  }
  return {};
}

TEST(KernelTable, NamesAreUniqueAndNameTheirLevel) {
  std::set<std::string> names;
  ASSERT_FALSE(linear_kernels().empty());
  for (const LinearKernel& k : linear_kernels()) {
    const std::string name = k.name;
    EXPECT_TRUE(names.insert(name).second) << "duplicate " << name;
    EXPECT_EQ(find_linear_kernel(k.name), &k) << name;
    // "<family>/<level>[+<feature>]"
    const size_t slash = name.find('/');
    ASSERT_NE(slash, std::string::npos) << name;
    const std::string level = name.substr(slash + 1);
    EXPECT_EQ(level.substr(0, level.find('+')), isa_name(k.isa)) << name;
    switch (k.act) {
      case ActFormat::kFp32:
        EXPECT_TRUE(k.fp.gemv && k.fp.dequantize_rows && k.fp_bound && k.fp_reference) << name;
        EXPECT_EQ(k.fp.isa, k.isa) << name;
        EXPECT_GT(k.gemm_min_tokens, 1) << name;
        break;
      case ActFormat::kInt8:
        EXPECT_TRUE(k.exact && k.quantize_rows) << name;
        EXPECT_EQ(k.layout == WeightLayout::kInt8Row, k.w8a8.gemm && k.w8a8_reference) << name;
        EXPECT_EQ(k.layout == WeightLayout::kLut4Integer, k.w4a8 && k.w4a8_reference && k.group_sums) << name;
        EXPECT_EQ(k.gemm_min_tokens > 0, k.amx_w8a8 != nullptr || k.amx_w4a8 != nullptr) << name;
        if (k.w8a8.gemm != nullptr) {
          EXPECT_LE(k.w8a8.isa, k.isa) << name;
        }
        break;
      case ActFormat::kInt4:
        EXPECT_TRUE(k.exact && k.w4a4 && k.w4a4_reference) << name;
        EXPECT_EQ(k.layout, WeightLayout::kLut4Integer) << name;
        break;
    }
  }
  // Every layout has a portable FP32 entry, so every packed matrix has a kernel at every level.
  for (WeightLayout l : {WeightLayout::kLut4, WeightLayout::kInt8Row, WeightLayout::kFp8Row, WeightLayout::kHalf,
                         WeightLayout::kBits, WeightLayout::kTrellis, WeightLayout::kPtq161}) {
    for (const char* format : formats_of(l)) {
      const PackedMatrix w = packed_weight(format, 2, 64, 1);
      const LinearKernel* k = find_linear_kernel(w, ActFormat::kFp32, Isa::kGeneric);
      ASSERT_NE(k, nullptr) << format;
      EXPECT_EQ(k->isa, Isa::kGeneric) << format;
    }
  }
}

// The worst |got - want| / bound over the rows of a FP32 entry's GEMV (two row
// ranges, as the pool splits them), and its dequantized rows against the
// reference decode (one rounding: a contracted multiply-add, relative to the
// larger term, plus one for the minimum of asymmetric layouts).
void check_fp_entry(const LinearKernel& k, const PackedMatrix& w, const std::vector<float>& x) {
  PackedActivation a;
  prepare_activation(w, x.data(), a, k.fp.prepare_fixed16);
  std::vector<float> want(w.rows), got(w.rows, NAN);
  k.fp_reference(w, x.data(), 0, w.rows, want.data());
  const int64_t split = w.rows / 2;
  k.fp.gemv(w, a, 0, split, got.data());
  k.fp.gemv(w, a, split, w.rows, got.data() + split);
  for (int64_t r = 0; r < w.rows; ++r) {
    const double bound = k.fp_bound(w, a, r);
    ASSERT_LE(std::fabs(static_cast<double>(got[r]) - want[r]), bound)
        << "gemv row " << r << ": " << got[r] << " vs " << want[r];
  }
  std::vector<float> deq(static_cast<size_t>(w.rows * w.cols), NAN);
  k.fp.dequantize_rows(w, 0, split, deq.data());
  k.fp.dequantize_rows(w, split, w.rows, deq.data() + split * w.cols);
  for (int64_t i = 0; i < w.rows * w.cols; ++i) {
    const double ref = packed_value(w, i / w.cols, i % w.cols);
    const double tol = 0x1.0p-23 * (std::fabs(ref) + 1e-30) + (w.asymmetric ? 0x1.0p-23 : 0.0);
    ASSERT_LE(std::fabs(deq[i] - ref), tol) << "dequantized element " << i;
  }
}

// INT8 entries: the entry's quantizer gives the reference bytes, its group sums
// the reference sums, its GEMM (and AMX GEMM, where set) the reference bits.
void check_int8_entry(const LinearKernel& k, const PackedMatrix& w, const std::vector<float>& x, int64_t tokens) {
  Int8Activations want_a, a;
  quantize_activations_int8(x.data(), tokens, w.cols, w.cols_padded, want_a);
  reserve_int8_activations(tokens, w.cols_padded, a);
  k.quantize_rows(x.data(), w.cols, 0, tokens, a);
  ASSERT_EQ(a.u8, want_a.u8);
  ASSERT_EQ(a.scale, want_a.scale);
  std::vector<float> want(static_cast<size_t>(tokens * w.rows)), got(want.size(), NAN), amx(want.size(), NAN);
  const int64_t split = w.rows / 2;
  AmxActivations xa;
  if (k.gemm_min_tokens > 0) prepare_amx_activations(a, xa);
  if (k.w8a8.gemm != nullptr) {
    const std::vector<int32_t> rowsum = int8_row_sums(w);
    k.w8a8_reference(w, rowsum, a, 0, w.rows, want.data(), w.rows);
    k.w8a8.gemm(w, rowsum, a, 0, split, got.data(), w.rows);
    k.w8a8.gemm(w, rowsum, a, split, w.rows, got.data() + split, w.rows);
    if (k.amx_w8a8 != nullptr) k.amx_w8a8(w, xa, 0, w.rows, amx.data(), w.rows);
  } else {
    const std::vector<int32_t> want_sums = group_activation_sums(w, a);
    std::vector<int32_t> qsum(want_sums.size(), -1);
    k.group_sums(w, a, 0, tokens, qsum.data());
    ASSERT_EQ(qsum, want_sums);
    k.w4a8_reference(w, a, qsum, 0, w.rows, want.data(), w.rows);
    k.w4a8(w, a, qsum, 0, split, got.data(), w.rows);
    k.w4a8(w, a, qsum, split, w.rows, got.data() + split, w.rows);
    if (k.amx_w4a8 != nullptr) k.amx_w4a8(w, xa, qsum, 0, w.rows, amx.data(), w.rows);
  }
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(got[i], want[i]) << "token " << i / w.rows << " row " << i % w.rows;
    if (k.gemm_min_tokens > 0) {
      ASSERT_EQ(amx[i], want[i]) << "AMX token " << i / w.rows << " row " << i % w.rows;
    }
  }
}

// INT4 entries: the GEMM gives the reference bits, per token and per group of 32.
void check_int4_entry(const LinearKernel& k, const PackedMatrix& w, const std::vector<float>& x, int64_t tokens) {
  for (int64_t group : {0, 32}) {
    if (!w4a4_supported(w, group)) continue;
    Int4Activations a;
    quantize_activations_int4(x.data(), tokens, w.cols, w.cols_padded, group, {}, a);
    const std::vector<int32_t> qsum = w4a4_block_sums(w, a);
    std::vector<float> want(static_cast<size_t>(tokens * w.rows)), got(want.size(), NAN);
    k.w4a4_reference(w, a, qsum, 0, w.rows, want.data(), w.rows);
    const int64_t split = w.rows / 2;
    k.w4a4(w, a, qsum, 0, split, got.data(), w.rows);
    k.w4a4(w, a, qsum, split, w.rows, got.data() + split, w.rows);
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(got[i], want[i]) << "act group " << group << " token " << i / w.rows << " row " << i % w.rows;
    }
  }
}

// Every entry whose level this CPU supports, on every format of its layout that it
// accepts, over awkward shapes (row and column tails, one row, a long row).
TEST(KernelTable, EveryEntryMatchesItsReferenceAtEveryLevelThisCpuRuns) {
  int tested = 0;
  for (const LinearKernel& k : linear_kernels()) {
    if (!isa_supported(k.isa, cpu())) {
      std::printf("%-24s not run: this CPU lacks %s\n", k.name, isa_name(k.isa));
      continue;
    }
    int cases = 0;
    for (const char* format : formats_of(k.layout)) {
      // Trellis layouts hold whole 64-column sequences: their awkward shapes are multiples of 64.
      const std::vector<int64_t> col_cases =
          k.layout == WeightLayout::kTrellis ? std::vector<int64_t>{64, 576, 4160} : std::vector<int64_t>{31, 200, 4097};
      for (int64_t rows : {1, 17}) {
        for (int64_t cols : col_cases) {
          const PackedMatrix w = packed_weight(format, rows, cols, 7 + rows + cols);
          if (!weight_has_layout(w, k.layout) || (k.accepts != nullptr && !k.accepts(w, cpu()))) continue;
          SCOPED_TRACE(::testing::Message() << k.name << " " << format << " [" << rows << ", " << cols << "]");
          const int64_t tokens = k.act == ActFormat::kFp32 ? 1 : 3;
          const std::vector<float> x = gaussian(tokens, cols, 3 + cols, 1.0f);
          switch (k.act) {
            case ActFormat::kFp32: check_fp_entry(k, w, x); break;
            case ActFormat::kInt8: check_int8_entry(k, w, x, tokens); break;
            case ActFormat::kInt4: check_int4_entry(k, w, x, tokens); break;
          }
          if (::testing::Test::HasFatalFailure()) return;
          ++cases;
        }
      }
    }
    std::printf("%-24s %d cases\n", k.name, cases);
    EXPECT_GT(cases, 0) << k.name << ": no test matrix was accepted";
    ++tested;
  }
  ASSERT_GT(tested, 0) << "no entry of the table runs on this CPU";
}

// A layer built at a level runs the entry the table resolves, reports its name,
// and its decode output is the bits of calling that entry's functions directly
// (one thread: the pool gives the kernel the whole row range).
TEST(KernelTable, LayersRunTheEntryTheyName) {
  ThreadPool pool(1);
  struct Case {
    const char* format;
    LinearActivation act;
  };
  const Case cases[] = {{"int4_g128_asym", {}},
                        {"nvfp4", {}},
                        {"int8_pc", {}},
                        {"fp8_e4m3", {}},
                        {"bf16", {}},
                        {"int3_g128", {}},
                        {"int8_pc", {ActFormat::kInt8, {}, 0}},
                        {"int4_g128_asym", {ActFormat::kInt8, {}, 0}},
                        {"int4_g128", {ActFormat::kInt8, {}, 0}},
                        {"int4_g128_asym", {ActFormat::kInt4, {}, 32}}};
  const int64_t rows = 37, cols = 300, tokens = 3;
  for (Isa isa : supported_isas()) {
    for (const Case& c : cases) {
      SCOPED_TRACE(::testing::Message() << isa_name(isa) << " " << c.format << " " << act_format_name(c.act.format));
      const PackedMatrix w = packed_weight(c.format, rows, cols, 5);
      auto made = PackedLinear::create(packed_weight(c.format, rows, cols, 5), {}, c.format, c.act, isa);
      ASSERT_TRUE(made.ok()) << made.status().message();
      const PackedLinear& layer = **made;
      const LinearKernel* entry = find_linear_kernel(layer.kernel_name().c_str());
      ASSERT_NE(entry, nullptr) << layer.kernel_name() << " is not in the table";
      EXPECT_EQ(&layer.kernel(), entry);
      EXPECT_EQ(entry, find_linear_kernel(w, c.act.format, isa));
      EXPECT_TRUE(isa_includes(isa, entry->isa)) << entry->name;
      EXPECT_EQ(layer.describe(), std::string(c.format) + " packed " + entry->name);

      const int64_t n = c.act.format == ActFormat::kFp32 ? 1 : tokens;
      const std::vector<float> x = gaussian(n, cols, 9, 1.0f);
      std::vector<float> got(static_cast<size_t>(n * rows), NAN), want(got.size(), NAN);
      layer.forward(x.data(), n, got.data(), pool);
      switch (c.act.format) {
        case ActFormat::kFp32: {
          PackedActivation a;
          prepare_activation(w, x.data(), a, entry->fp.prepare_fixed16);
          entry->fp.gemv(w, a, 0, rows, want.data());
          break;
        }
        case ActFormat::kInt8: {
          ASSERT_LT(n, entry->gemm_min_tokens > 0 ? entry->gemm_min_tokens : n + 1);  // the decode kernels run
          Int8Activations a;
          reserve_int8_activations(n, w.cols_padded, a);
          entry->quantize_rows(x.data(), cols, 0, n, a);
          if (entry->w8a8.gemm != nullptr) {
            entry->w8a8.gemm(w, int8_row_sums(w), a, 0, rows, want.data(), rows);
          } else {
            std::vector<int32_t> qsum(static_cast<size_t>(n * w.n_groups()));
            entry->group_sums(w, a, 0, n, qsum.data());
            entry->w4a8(w, a, qsum, 0, rows, want.data(), rows);
          }
          break;
        }
        case ActFormat::kInt4: {
          Int4Activations a;
          quantize_activations_int4(x.data(), n, cols, w.cols_padded, c.act.group, c.act.rule, a);
          entry->w4a4(w, a, w4a4_block_sums(w, a), 0, rows, want.data(), rows);
          break;
        }
      }
      for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "output " << i;
    }
  }
}

// Integer activations on a layout without integer kernels, or a W4A4 group that
// does not cut the weight groups into 16k columns: create() says so, naming them.
TEST(KernelTable, LayersWithoutAnEntryAreRefused) {
  auto fp8 = PackedLinear::create(packed_weight("fp8_e4m3", 4, 64, 1), {}, "fp8_e4m3", {ActFormat::kInt8, {}, 0});
  ASSERT_FALSE(fp8.ok());
  EXPECT_NE(fp8.status().message().find("fp8"), std::string::npos) << fp8.status().message();
  auto nvfp4 = PackedLinear::create(packed_weight("nvfp4", 4, 64, 1), {}, "nvfp4", {ActFormat::kInt4, {}, 0});
  EXPECT_FALSE(nvfp4.ok());
  auto odd_group = PackedLinear::create(packed_weight("int4_g128_asym", 4, 256, 1), {}, "int4_g128_asym",
                                        {ActFormat::kInt4, {}, 24});
  EXPECT_FALSE(odd_group.ok());
}

// Models assembled at each level: every linear is a packed layer whose entry is
// the table's for its weight, activation and level; every kernel name the
// assembly reports (what --verbose, bench and JSON print) is an entry of the table.
TEST(KernelTable, EveryNameAModelReportsIsAnEntryThatRuns) {
  ThreadPool pool(2);
  const ModelConfig config = shape_config("dim=64,layers=2,heads=8,kv_heads=4,ffn=172,vocab=512").value();
  // Several layouts in one model: q/k/v integer 4-bit, o INT8 rows, gate/up NVFP4, down FP8, head BF16.
  auto format_for = [](const std::string& name) -> Expected<std::string> {
    if (name == "lm_head") return std::string("bf16");
    if (name.ends_with("o_proj")) return std::string("int8_pc");
    if (name.ends_with("gate_proj") || name.ends_with("up_proj")) return std::string("nvfp4");
    if (name.ends_with("down_proj")) return std::string("fp8_e4m3");
    return std::string("int4_g32_asym");
  };
  for (Isa isa : supported_isas()) {
    for (bool int8 : {false, true}) {
      SCOPED_TRACE(::testing::Message() << isa_name(isa) << (int8 ? " int8 activations" : ""));
      AttachOptions attach;
      attach.isa = isa;
      attach.int8_activations = int8;
      auto built = build_synthetic_model(config, format_for, 3, pool, attach);
      ASSERT_TRUE(built.ok()) << built.status().message();
      ASSERT_FALSE(built->report.packed.empty());
      for (const auto& [name, n] : built->report.packed) {
        EXPECT_NE(find_linear_kernel(name.c_str()), nullptr) << "reported kernel " << name << " is not in the table";
      }
      std::vector<std::string> names = {"lm_head"};
      for (int l = 0; l < config.n_layers; ++l) {
        for (std::string_view s : DecoderBlock::kLinearSuffixes) names.push_back(fmt::format("layers.{}.{}", l, s));
      }
      for (const std::string& name : names) {
        const Linear* lin = built->model.find_linear(name);
        ASSERT_NE(lin, nullptr) << name;
        const PackedLinear* p = lin->packed_linear();
        ASSERT_NE(p, nullptr) << name << ": " << lin->describe();
        const LinearKernel* entry = find_linear_kernel(p->packed(), p->activation().format, isa);
        EXPECT_EQ(&p->kernel(), entry) << name;
        EXPECT_EQ(find_linear_kernel(p->kernel_name().c_str()), entry) << name;
        EXPECT_GT(built->report.packed.count(p->kernel_name()), 0u) << name << " runs an unreported kernel";
        const bool integer = int8 && find_linear_kernel(p->packed(), ActFormat::kInt8, isa) != nullptr;
        EXPECT_EQ(p->activation().format, integer ? ActFormat::kInt8 : ActFormat::kFp32) << name;
      }
    }
  }
}

// What `lowbit bench` prints (and writes to JSON) under each forced level: every
// kernel name on its "kernels" line is an entry of the table at or below that
// level, for FP32 activations, --act int8 (W4A8 named after the kernel that
// runs, which it was not before the table) and a recipe's activation spec.
TEST(KernelTable, BenchPrintsOnlyTableNames) {
  if (std::string(LOWBIT_CLI_PATH).empty()) GTEST_SKIP() << "built without the CLI (LOWBIT_CORE_ONLY)";
  const std::string json = (std::filesystem::temp_directory_path() /
                            ("lowbit_kernel_table_" + std::to_string(getpid()) + "_bench.json"))
                               .string();
  for (Isa isa : supported_isas()) {
    for (const char* args : {"--recipe w4g128-rtn", "--recipe w4g128-rtn --act int8", "--recipe w8a8-dyn"}) {
      SCOPED_TRACE(::testing::Message() << isa_name(isa) << " " << args);
      const testing::CommandResult r =
          testing::run_lowbit(std::string("bench --shape stories260k ") + args +
                                  " -p 8 -n 2 --reps 1 --no-bandwidth --json " + json,
                              std::string("LOWBIT_ISA=") + isa_name(isa));
      ASSERT_EQ(r.exit_code, 0) << r.output;
      const std::string line = nlohmann::json::parse(std::ifstream(json))["kernels"].get<std::string>();
      int names = 0;
      // "lut4/avx2 x14, bf16/... x1; activations w8a8/avx2 x14"
      for (size_t b = 0; b < line.size();) {
        size_t e = line.find_first_of(",;", b);
        if (e == std::string::npos) e = line.size();
        std::string item = line.substr(b, e - b);
        b = e + 1;
        while (!item.empty() && item.front() == ' ') item.erase(0, 1);
        if (item.rfind("activations ", 0) == 0) item.erase(0, 12);
        if (item.rfind("dequantized", 0) == 0 || item.rfind("simulated", 0) == 0 || item.rfind("f32", 0) == 0) continue;
        const std::string name = item.substr(0, item.rfind(" x"));
        const LinearKernel* k = find_linear_kernel(name.c_str());
        ASSERT_NE(k, nullptr) << "\"" << name << "\" printed by bench is not in the table: " << line;
        EXPECT_TRUE(isa_includes(isa, k->isa)) << name;
        ++names;
      }
      EXPECT_GT(names, 0) << line;
    }
  }
  std::filesystem::remove(json);
}

}  // namespace
}  // namespace lowbit
