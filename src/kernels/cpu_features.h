// Which SIMD instruction sets this CPU and OS let lowbit use, detected once.
//
// An ISA level is usable only when the CPU reports its instructions (CPUID) and
// the OS saves the register state they need (XCR0 via XGETBV: YMM for AVX2,
// opmask + ZMM for AVX-512, XTILECFG + XTILEDATA for AMX); a CPU with AVX-512
// under an OS that does not enable ZMM state must not run AVX-512 code. AMX
// also needs the process's permission on Linux (arch_prctl ARCH_REQ_XCOMP_PERM
// for XTILEDATA, asked once at detection; without it the first tile
// instruction faults), so a refused request makes AMX unsupported. The levels
// are ordered, each one including the previous:
//   generic < avx2 < avx512 < avx512vnni < avx512bf16 < amx,
// with one side branch: avxvnni = avx2 + AVX-VNNI (the VEX-encoded 256-bit
// vpdpbusd of Alder Lake and later client CPUs, also on Sapphire Rapids and Zen 5),
// ordered between avx2 and avx512 but not included in avx512 (Skylake-SP,
// Zen 4 and Ice Lake have AVX-512 without it). So never compare a level with
// kAvxVnni: table rows of that level carry a predicate that checks the CPU
// feature (kernels/kernel_table.cpp).
//
// On 64-bit ARM the levels come from the Linux auxiliary vector (getauxval
// AT_HWCAP / AT_HWCAP2: the kernel reports what the CPU has and the OS enables):
//   generic < neon < neon-dotprod < neon-i8mm,
// neon = Advanced SIMD (every aarch64 CPU), neon-dotprod = + SDOT/UDOT (ARMv8.2
// dotprod: Cortex-A55/A76 and later, Neoverse, Apple M), neon-i8mm = + SMMLA/USDOT
// (ARMv8.6 I8MM: Neoverse V1/N2, Graviton 3, Apple M2). The two families never
// mix: a build has the kernels of its own family only (CMakeLists.txt selects
// the files by suffix), the other family's levels are refused by resolve_isa, and
// isa_includes never lets a level of one family run a row of the other.
// Kernels are chosen from the level once (see active_isa); tests and users force a
// lower level with LOWBIT_ISA=generic|avx2|avxvnni|avx512|avx512vnni|avx512bf16|amx
// (x86) or generic|neon|neon-dotprod|neon-i8mm (ARM).
#pragma once

#include <string>

#include "core/status.h"

// The family of SIMD kernels this build holds: code that names a kernel of one
// family (dispatchers, the kernel table) is compiled under its macro only.
#if defined(__x86_64__) || defined(__i386__)
#define LOWBIT_ARCH_X86 1
#elif defined(__aarch64__)
#define LOWBIT_ARCH_ARM64 1
#endif

namespace lowbit {

enum class Isa {
  kGeneric,     // baseline x86-64 (SSE2) or any other CPU: portable C++
  kAvx2,        // AVX2 + FMA + F16C + BMI2 (Haswell, Zen)
  kAvxVnni,     // AVX2 + AVX-VNNI (Alder Lake, Sapphire Rapids, Zen 5): a side branch, see above
  kAvx512,      // + AVX-512 F/BW/VL/DQ (Skylake-SP, Zen 4)
  kAvx512Vnni,  // + AVX512_VNNI int8 dot products (Cascade Lake)
  kAvx512Bf16,  // + AVX512_BF16 (Cooper Lake, Sapphire Rapids, Zen 4)
  kAmx,         // + AMX-TILE and AMX-INT8 tile matrix multiply (Sapphire Rapids)
  // 64-bit ARM (a family of its own, see above).
  kNeon,         // Advanced SIMD (asimd)
  kNeonDotprod,  // + SDOT/UDOT (asimddp)
  kNeonI8mm,     // + SMMLA/UMMLA/USDOT (i8mm)
};

// Every level of both families, in the enum's order (tests filter it with isa_supported).
inline constexpr Isa kAllIsas[] = {Isa::kGeneric,    Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512,      Isa::kAvx512Vnni,
                                   Isa::kAvx512Bf16, Isa::kAmx,  Isa::kNeon,    Isa::kNeonDotprod, Isa::kNeonI8mm};

// Whether a kernel written for level `row` may run at level `level`: generic runs
// everywhere, others at their own or a higher level of the same family.
bool isa_includes(Isa level, Isa row);
// Whether `isa` is an ARM level.
bool isa_is_arm(Isa isa);

struct CpuFeatures {
  // CPUID
  bool avx = false;
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool bmi2 = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;
  bool avx_vnni = false;  // leaf 7 subleaf 1 EAX bit 4 (VEX vpdpbusd on 256-bit registers)
  bool gfni = false;      // leaf 7 ECX bit 8 (not a level: the lut4 VNNI GEMV checks it itself)
  bool avx512vbmi = false;  // leaf 7 ECX bit 1 (not a level: with gfni, the predicate of the tcq/avx512vnni+vbmi+gfni row)
  bool amx_tile = false;  // leaf 7 EDX bit 24
  bool amx_int8 = false;  // leaf 7 EDX bit 25
  bool amx_bf16 = false;  // leaf 7 EDX bit 22 (reported, not used by a kernel yet)
  // XCR0: the OS saves the state
  bool os_ymm = false;  // bits 1, 2 (SSE, AVX)
  bool os_zmm = false;  // bits 1, 2, 5, 6, 7 (+ opmask, ZMM_Hi256, Hi16_ZMM)
  bool os_amx = false;  // bits 17, 18 (XTILECFG, XTILEDATA)
  // Linux granted this process XTILEDATA (always true where no permission is needed)
  bool amx_permitted = false;
  // 64-bit ARM, from getauxval(AT_HWCAP) / getauxval(AT_HWCAP2) (the kernel reports
  // only what it enables; all false on x86 builds).
  bool asimd = false;     // HWCAP_ASIMD: Advanced SIMD
  bool asimddp = false;   // HWCAP_ASIMDDP: SDOT/UDOT
  bool i8mm = false;      // HWCAP2_I8MM: SMMLA/UMMLA/USDOT
  bool fphp = false;      // HWCAP_FPHP: scalar FP16 arithmetic (reported, not a level)
  bool asimdhp = false;   // HWCAP_ASIMDHP: vector FP16 arithmetic (reported, not a level)
  bool arm_bf16 = false;  // HWCAP2_BF16: BFDOT/BFMMLA (reported, not a level)
};

// Reads CPUID and XCR0 on x86 (where the CPU and OS have AMX, asks Linux once per
// process for the tile data permission), the auxiliary vector on aarch64 Linux;
// all false elsewhere.
CpuFeatures detect_cpu_features();

// Whether every instruction and register state of `isa` is available.
bool isa_supported(Isa isa, const CpuFeatures& features);
// The highest supported level.
Isa best_isa(const CpuFeatures& features);

// "generic", "avx2", "avxvnni", "avx512", "avx512vnni", "avx512bf16", "amx", "neon",
// "neon-dotprod", "neon-i8mm".
const char* isa_name(Isa isa);
// Inverse of isa_name; the error lists the accepted names.
Expected<Isa> parse_isa(const std::string& name);

// The level to run: best_isa when `override_name` is empty, else the named one,
// which must be supported (error naming LOWBIT_ISA, the value and what is missing;
// a level of the other family: one line saying so and listing this CPU's levels).
Expected<Isa> resolve_isa(const std::string& override_name, const CpuFeatures& features);

// The process-wide choice, resolved once from the CPU and LOWBIT_ISA. An invalid
// or unsupported LOWBIT_ISA is ignored with one warning on stderr; front ends
// that prefer to fail call resolve_isa(lowbit_isa_env(), ...) themselves.
Isa active_isa();
// The LOWBIT_ISA environment value, "" when unset.
std::string lowbit_isa_env();

// One line for --verbose: "avx2 fma f16c bmi2 avx512f ... amx_int8 (os: ymm zmm amx)";
// "(amx refused)" when the OS would save tiles but denied the permission.
std::string describe_cpu_features(const CpuFeatures& features);

}  // namespace lowbit
