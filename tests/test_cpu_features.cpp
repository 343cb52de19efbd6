// ISA detection and the LOWBIT_ISA override: the level order, what each level
// requires (instructions and OS register state), and name round trips.
#include <gtest/gtest.h>

#include "kernels/cpu_features.h"

namespace lowbit {
namespace {

CpuFeatures everything() {
  CpuFeatures f;
  f.avx = f.avx2 = f.fma = f.f16c = f.bmi2 = true;
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx512vnni = f.avx512bf16 = true;
  f.os_ymm = f.os_zmm = true;
  return f;
}

TEST(CpuFeatures, NamesRoundTrip) {
  for (Isa isa : kAllIsas) {
    auto parsed = parse_isa(isa_name(isa));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, isa);
  }
  auto bad = parse_isa("sse9");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("sse9"), std::string::npos);
  EXPECT_NE(bad.status().message().find("avx512vnni"), std::string::npos);
}

TEST(CpuFeatures, BestIsaFollowsTheLevels) {
  CpuFeatures f = everything();
  EXPECT_EQ(best_isa(f), Isa::kAvx512Bf16);
  f.avx512bf16 = false;
  EXPECT_EQ(best_isa(f), Isa::kAvx512Vnni);
  f.avx512vnni = false;
  EXPECT_EQ(best_isa(f), Isa::kAvx512);
  f.avx512dq = false;
  EXPECT_EQ(best_isa(f), Isa::kAvx2);
  f.f16c = false;
  EXPECT_EQ(best_isa(f), Isa::kGeneric);
  EXPECT_EQ(best_isa(CpuFeatures{}), Isa::kGeneric);
}

// AMX needs the instructions, the tile state in XCR0 and the Linux permission,
// and sits above avx512bf16: forcing avx512bf16 turns it off.
TEST(CpuFeatures, AmxNeedsCpuOsAndPermission) {
  CpuFeatures f = everything();
  EXPECT_FALSE(isa_supported(Isa::kAmx, f));
  f.amx_tile = f.amx_int8 = f.os_amx = f.amx_permitted = true;
  EXPECT_EQ(best_isa(f), Isa::kAmx);
  EXPECT_NE(describe_cpu_features(f).find("amx_int8"), std::string::npos) << describe_cpu_features(f);
  f.amx_permitted = false;  // arch_prctl(ARCH_REQ_XCOMP_PERM) refused
  EXPECT_EQ(best_isa(f), Isa::kAvx512Bf16);
  EXPECT_NE(describe_cpu_features(f).find("amx refused"), std::string::npos) << describe_cpu_features(f);
  f.amx_permitted = true;
  f.os_amx = false;  // XCR0 bits 17/18 clear
  EXPECT_EQ(best_isa(f), Isa::kAvx512Bf16);
  f.os_amx = true;
  f.amx_int8 = false;
  EXPECT_EQ(best_isa(f), Isa::kAvx512Bf16);
  f.amx_int8 = true;
  auto lower = resolve_isa("avx512bf16", f);
  ASSERT_TRUE(lower.ok());
  EXPECT_LT(*lower, Isa::kAmx);
  auto amx = resolve_isa("amx", f);
  ASSERT_TRUE(amx.ok());
  EXPECT_EQ(*amx, Isa::kAmx);
  EXPECT_FALSE(resolve_isa("amx", everything()).ok());
}

// AVX-VNNI is a side branch: above avx2 where a CPU has it without AVX-512
// (Alder Lake), never part of the avx512 levels (a Skylake-SP or Zen 4 lacks it).
TEST(CpuFeatures, AvxVnniIsASideBranch) {
  CpuFeatures f;
  f.avx = f.avx2 = f.fma = f.f16c = f.bmi2 = f.os_ymm = true;
  EXPECT_EQ(best_isa(f), Isa::kAvx2);
  EXPECT_FALSE(isa_supported(Isa::kAvxVnni, f));
  f.avx_vnni = true;
  EXPECT_EQ(best_isa(f), Isa::kAvxVnni);
  EXPECT_NE(describe_cpu_features(f).find("avx_vnni"), std::string::npos) << describe_cpu_features(f);
  f.os_ymm = false;  // the OS does not save YMM state
  EXPECT_FALSE(isa_supported(Isa::kAvxVnni, f));
  CpuFeatures g = everything();  // AVX-512 up to BF16, no AVX-VNNI
  EXPECT_FALSE(isa_supported(Isa::kAvxVnni, g));
  EXPECT_FALSE(resolve_isa("avxvnni", g).ok());
  g.avx_vnni = true;
  EXPECT_TRUE(isa_supported(Isa::kAvxVnni, g));
  EXPECT_EQ(best_isa(g), Isa::kAvx512Bf16);
}

TEST(CpuFeatures, OsStateIsRequired) {
  CpuFeatures f = everything();
  f.os_zmm = false;  // CPU has AVX-512 but the OS does not save ZMM registers
  EXPECT_EQ(best_isa(f), Isa::kAvx2);
  EXPECT_FALSE(isa_supported(Isa::kAvx512, f));
  f.os_ymm = false;
  EXPECT_EQ(best_isa(f), Isa::kGeneric);
}

TEST(CpuFeatures, OverrideResolves) {
  CpuFeatures f = everything();
  f.avx512bf16 = false;
  auto best = resolve_isa("", f);
  ASSERT_TRUE(best.ok());
  EXPECT_EQ(*best, Isa::kAvx512Vnni);
  auto generic = resolve_isa("generic", CpuFeatures{});
  ASSERT_TRUE(generic.ok());
  EXPECT_EQ(*generic, Isa::kGeneric);
  auto lower = resolve_isa("avx2", f);
  ASSERT_TRUE(lower.ok());
  EXPECT_EQ(*lower, Isa::kAvx2);
  auto unsupported = resolve_isa("avx512bf16", f);
  ASSERT_FALSE(unsupported.ok());
  EXPECT_NE(unsupported.status().message().find("LOWBIT_ISA=avx512bf16"), std::string::npos)
      << unsupported.status().message();
  auto unknown = resolve_isa("neon", f);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("LOWBIT_ISA"), std::string::npos);
}

// A 64-bit ARM CPU as getauxval reports it: Advanced SIMD, dotprod, i8mm.
CpuFeatures arm_everything() {
  CpuFeatures f;
  f.asimd = f.asimddp = f.i8mm = true;
  f.fphp = f.asimdhp = f.arm_bf16 = true;
  return f;
}

TEST(CpuFeatures, ArmLevelsFollowHwcaps) {
  CpuFeatures f = arm_everything();
  EXPECT_EQ(best_isa(f), Isa::kNeonI8mm);
  f.i8mm = false;
  EXPECT_EQ(best_isa(f), Isa::kNeonDotprod);
  EXPECT_FALSE(isa_supported(Isa::kNeonI8mm, f));
  f.asimddp = false;
  EXPECT_EQ(best_isa(f), Isa::kNeon);
  // i8mm without dotprod (no such CPU) does not make a level skip one.
  f.i8mm = true;
  EXPECT_EQ(best_isa(f), Isa::kNeon);
  f = CpuFeatures{};
  EXPECT_EQ(best_isa(f), Isa::kGeneric);
  // No x86 level on an ARM CPU, no ARM level on an x86 one.
  for (Isa isa : {Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512, Isa::kAvx512Vnni, Isa::kAvx512Bf16, Isa::kAmx}) {
    EXPECT_FALSE(isa_supported(isa, arm_everything())) << isa_name(isa);
  }
  for (Isa isa : {Isa::kNeon, Isa::kNeonDotprod, Isa::kNeonI8mm}) {
    EXPECT_FALSE(isa_supported(isa, everything())) << isa_name(isa);
  }
  EXPECT_EQ(describe_cpu_features(arm_everything()), "asimd asimddp i8mm fphp asimdhp bf16");
}

TEST(CpuFeatures, ArmOverrideResolvesAndRefusesX86Levels) {
  CpuFeatures f = arm_everything();
  f.i8mm = false;
  for (const char* name : {"generic", "neon", "neon-dotprod"}) {
    auto isa = resolve_isa(name, f);
    ASSERT_TRUE(isa.ok()) << name << ": " << isa.status().message();
    EXPECT_STREQ(isa_name(*isa), name);
  }
  auto i8mm = resolve_isa("neon-i8mm", f);
  ASSERT_FALSE(i8mm.ok());
  EXPECT_NE(i8mm.status().message().find("LOWBIT_ISA=neon-i8mm"), std::string::npos) << i8mm.status().message();
  // An x86 level on ARM (and the reverse): one line naming the value and this CPU's levels.
  auto avx2 = resolve_isa("avx2", f);
  ASSERT_FALSE(avx2.ok());
  EXPECT_EQ(avx2.status().message(),
            "LOWBIT_ISA=avx2: an x86 level, and this is an ARM CPU (its levels: generic, neon, neon-dotprod)");
  auto neon = resolve_isa("neon", everything());
  ASSERT_FALSE(neon.ok());
  EXPECT_EQ(neon.status().message().find('\n'), std::string::npos);
  EXPECT_NE(neon.status().message().find("an ARM level, and this is an x86 CPU"), std::string::npos)
      << neon.status().message();
}

// Kernels of one family never run at a level of the other; generic ones run everywhere.
TEST(CpuFeatures, LevelsIncludeOnlyTheirFamily) {
  EXPECT_TRUE(isa_includes(Isa::kNeonI8mm, Isa::kNeonDotprod));
  EXPECT_TRUE(isa_includes(Isa::kNeonDotprod, Isa::kNeon));
  EXPECT_FALSE(isa_includes(Isa::kNeon, Isa::kNeonDotprod));
  EXPECT_TRUE(isa_includes(Isa::kNeon, Isa::kGeneric));
  EXPECT_TRUE(isa_includes(Isa::kAmx, Isa::kAvx2));
  EXPECT_FALSE(isa_includes(Isa::kAvx2, Isa::kAvx512));
  for (Isa arm : {Isa::kNeon, Isa::kNeonDotprod, Isa::kNeonI8mm}) {
    for (Isa x86 : {Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512, Isa::kAvx512Vnni, Isa::kAvx512Bf16, Isa::kAmx}) {
      EXPECT_FALSE(isa_includes(arm, x86)) << isa_name(arm) << " " << isa_name(x86);
      EXPECT_FALSE(isa_includes(x86, arm)) << isa_name(x86) << " " << isa_name(arm);
    }
  }
}

TEST(CpuFeatures, DetectionAgreesWithTheCompilerRuntime) {
  const CpuFeatures f = detect_cpu_features();
#if defined(__x86_64__)
  __builtin_cpu_init();
  EXPECT_EQ(f.avx2, static_cast<bool>(__builtin_cpu_supports("avx2")));
  EXPECT_EQ(f.fma, static_cast<bool>(__builtin_cpu_supports("fma")));
  EXPECT_EQ(f.avx512f, static_cast<bool>(__builtin_cpu_supports("avx512f")));
  EXPECT_EQ(f.avx512bw, static_cast<bool>(__builtin_cpu_supports("avx512bw")));
  EXPECT_EQ(f.avx512vnni, static_cast<bool>(__builtin_cpu_supports("avx512vnni")));
  EXPECT_EQ(f.amx_tile, static_cast<bool>(__builtin_cpu_supports("amx-tile")));
  EXPECT_EQ(f.amx_int8, static_cast<bool>(__builtin_cpu_supports("amx-int8")));
#endif
#if defined(__aarch64__)
  // Every aarch64 Linux CPU has Advanced SIMD, so the best level is at least neon.
  EXPECT_TRUE(f.asimd);
  EXPECT_TRUE(isa_is_arm(best_isa(f)));
#endif
  // The active level is supported, and it is the best one unless LOWBIT_ISA asks for less.
  EXPECT_TRUE(isa_supported(active_isa(), f));
  if (lowbit_isa_env().empty()) {
    EXPECT_EQ(active_isa(), best_isa(f));
  }
  EXPECT_FALSE(describe_cpu_features(f).empty());
}

}  // namespace
}  // namespace lowbit
