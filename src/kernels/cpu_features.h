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
// Kernels are chosen from the level once (see active_isa); tests and users force a
// lower level with LOWBIT_ISA=generic|avx2|avxvnni|avx512|avx512vnni|avx512bf16|amx.
#pragma once

#include <string>

#include "core/status.h"

namespace lowbit {

enum class Isa {
  kGeneric,     // baseline x86-64 (SSE2) or any other CPU: portable C++
  kAvx2,        // AVX2 + FMA + F16C + BMI2 (Haswell, Zen)
  kAvxVnni,     // AVX2 + AVX-VNNI (Alder Lake, Sapphire Rapids, Zen 5): a side branch, see above
  kAvx512,      // + AVX-512 F/BW/VL/DQ (Skylake-SP, Zen 4)
  kAvx512Vnni,  // + AVX512_VNNI int8 dot products (Cascade Lake)
  kAvx512Bf16,  // + AVX512_BF16 (Cooper Lake, Sapphire Rapids, Zen 4)
  kAmx,         // + AMX-TILE and AMX-INT8 tile matrix multiply (Sapphire Rapids)
};

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
};

// Reads CPUID and XCR0 (all false on non-x86 builds); where the CPU and OS have
// AMX, asks Linux once per process for the tile data permission.
CpuFeatures detect_cpu_features();

// Whether every instruction and register state of `isa` is available.
bool isa_supported(Isa isa, const CpuFeatures& features);
// The highest supported level.
Isa best_isa(const CpuFeatures& features);

// "generic", "avx2", "avx512", "avx512vnni", "avx512bf16", "amx".
const char* isa_name(Isa isa);
// Inverse of isa_name; the error lists the accepted names.
Expected<Isa> parse_isa(const std::string& name);

// The level to run: best_isa when `override_name` is empty, else the named one,
// which must be supported (error naming LOWBIT_ISA, the value and what is missing).
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
