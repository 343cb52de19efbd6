#include "kernels/cpu_features.h"

#include <cstdio>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define LOWBIT_X86 1
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__linux__) && defined(__aarch64__)
#include <sys/auxv.h>
#define LOWBIT_ARM64_AUXV 1
#endif

namespace lowbit {
namespace {

#ifdef LOWBIT_X86
struct CpuidRegs {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs cpuid(unsigned leaf, unsigned subleaf) {
  CpuidRegs r;
  if (!__get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx)) return CpuidRegs{};
  return r;
}

// XGETBV(0) without needing -mxsave for the _xgetbv intrinsic.
unsigned long long read_xcr0() {
  unsigned eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

bool bit(unsigned reg, int b) { return ((reg >> b) & 1u) != 0; }

// Linux (5.16+) keeps AMX tile data disabled until a process asks for it:
// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA). Asked once per process
// (the grant is process-wide and a repeat is a no-op). Any failure, including
// a kernel too old to know the call, counts as refused: AMX stays off.
bool request_amx_permission() {
#if defined(__linux__) && defined(__x86_64__)
  static const bool granted = [] {
    constexpr long kArchReqXcompPerm = 0x1023;
    constexpr long kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return granted;
#else
  return true;
#endif
}
#endif

#ifdef LOWBIT_ARM64_AUXV
// Linux arm64 hwcap bits (arch/arm64/include/uapi/asm/hwcap.h), spelled here so
// that older headers without the newer names still build.
constexpr unsigned long kHwcapFphp = 1ul << 9, kHwcapAsimd = 1ul << 1, kHwcapAsimdhp = 1ul << 10,
                        kHwcapAsimddp = 1ul << 20;
constexpr unsigned long kHwcap2I8mm = 1ul << 13, kHwcap2Bf16 = 1ul << 14;
#endif

constexpr const char* kIsaNames[] = {"generic", "avx2",   "avxvnni",      "avx512",   "avx512vnni",
                                     "avx512bf16", "amx", "neon", "neon-dotprod", "neon-i8mm"};
constexpr int kIsaCount = static_cast<int>(sizeof(kIsaNames) / sizeof(kIsaNames[0]));
// Highest first, for best_isa.
constexpr Isa kX86Levels[] = {Isa::kAmx, Isa::kAvx512Bf16, Isa::kAvx512Vnni, Isa::kAvx512, Isa::kAvxVnni, Isa::kAvx2};
constexpr Isa kArmLevels[] = {Isa::kNeonI8mm, Isa::kNeonDotprod, Isa::kNeon};

// The CPU is an ARM one (every aarch64 Linux reports Advanced SIMD).
bool arm_cpu(const CpuFeatures& f) { return f.asimd; }

// "generic, avx2, avx512" : the levels this CPU supports, lowest first.
std::string supported_levels(const CpuFeatures& f) {
  std::string s = "generic";
  for (int i = 1; i < kIsaCount; ++i) {
    if (isa_supported(static_cast<Isa>(i), f)) s += std::string(", ") + kIsaNames[i];
  }
  return s;
}

}  // namespace

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
#ifdef LOWBIT_X86
  const unsigned max_leaf = __get_cpuid_max(0, nullptr);
  const CpuidRegs l1 = cpuid(1, 0);
  const bool osxsave = bit(l1.ecx, 27);
  f.avx = bit(l1.ecx, 28);
  f.fma = bit(l1.ecx, 12);
  f.f16c = bit(l1.ecx, 29);
  if (osxsave) {
    const unsigned long long xcr0 = read_xcr0();
    f.os_ymm = (xcr0 & 0x6) == 0x6;
    f.os_zmm = (xcr0 & 0xe6) == 0xe6;
    f.os_amx = (xcr0 & 0x60000) == 0x60000;
  }
  if (max_leaf >= 7) {
    const CpuidRegs l7 = cpuid(7, 0);
    f.avx2 = bit(l7.ebx, 5);
    f.bmi2 = bit(l7.ebx, 8);
    f.avx512f = bit(l7.ebx, 16);
    f.avx512dq = bit(l7.ebx, 17);
    f.avx512bw = bit(l7.ebx, 30);
    f.avx512vl = bit(l7.ebx, 31);
    f.avx512vnni = bit(l7.ecx, 11);
    f.gfni = bit(l7.ecx, 8);
    f.avx512vbmi = bit(l7.ecx, 1);
    if (l7.eax >= 1) {
      const CpuidRegs l71 = cpuid(7, 1);
      f.avx512bf16 = bit(l71.eax, 5);
      f.avx_vnni = bit(l71.eax, 4);
    }
    f.amx_bf16 = bit(l7.edx, 22);
    f.amx_tile = bit(l7.edx, 24);
    f.amx_int8 = bit(l7.edx, 25);
  }
  if (f.amx_tile && f.os_amx) f.amx_permitted = request_amx_permission();
#endif
#ifdef LOWBIT_ARM64_AUXV
  const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
  f.asimd = (hwcap & kHwcapAsimd) != 0;
  f.asimddp = (hwcap & kHwcapAsimddp) != 0;
  f.fphp = (hwcap & kHwcapFphp) != 0;
  f.asimdhp = (hwcap & kHwcapAsimdhp) != 0;
  f.i8mm = (hwcap2 & kHwcap2I8mm) != 0;
  f.arm_bf16 = (hwcap2 & kHwcap2Bf16) != 0;
#endif
  return f;
}

bool isa_supported(Isa isa, const CpuFeatures& f) {
  const bool avx2 = f.avx && f.avx2 && f.fma && f.f16c && f.bmi2 && f.os_ymm;
  const bool avx512 = avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.os_zmm;
  switch (isa) {
    case Isa::kGeneric: return true;
    case Isa::kAvx2: return avx2;
    case Isa::kAvxVnni: return avx2 && f.avx_vnni;
    case Isa::kAvx512: return avx512;
    case Isa::kAvx512Vnni: return avx512 && f.avx512vnni;
    case Isa::kAvx512Bf16: return avx512 && f.avx512vnni && f.avx512bf16;
    case Isa::kAmx:
      return avx512 && f.avx512vnni && f.avx512bf16 && f.amx_tile && f.amx_int8 && f.os_amx && f.amx_permitted;
    case Isa::kNeon: return f.asimd;
    case Isa::kNeonDotprod: return f.asimd && f.asimddp;
    case Isa::kNeonI8mm: return f.asimd && f.asimddp && f.i8mm;
  }
  return false;
}

bool isa_is_arm(Isa isa) { return isa >= Isa::kNeon; }

bool isa_includes(Isa level, Isa row) {
  if (row == Isa::kGeneric) return true;
  return isa_is_arm(level) == isa_is_arm(row) && row <= level;
}

Isa best_isa(const CpuFeatures& f) {
  for (Isa isa : kArmLevels) {
    if (isa_supported(isa, f)) return isa;
  }
  for (Isa isa : kX86Levels) {
    if (isa_supported(isa, f)) return isa;
  }
  return Isa::kGeneric;
}

const char* isa_name(Isa isa) { return kIsaNames[static_cast<int>(isa)]; }

Expected<Isa> parse_isa(const std::string& name) {
  for (int i = 0; i < kIsaCount; ++i) {
    if (name == kIsaNames[i]) return static_cast<Isa>(i);
  }
  // scripts/test_isa_levels.sh reads the levels from this message's "(expected ...)".
  return make_error(
      "unknown ISA '{}' (expected generic, avx2, avxvnni, avx512, avx512vnni, avx512bf16, amx, neon, neon-dotprod or "
      "neon-i8mm)",
      name);
}

Expected<Isa> resolve_isa(const std::string& override_name, const CpuFeatures& features) {
  if (override_name.empty()) return best_isa(features);
  auto isa = parse_isa(override_name);
  if (!isa.ok()) return isa.status().with_context("LOWBIT_ISA");
  if (*isa != Isa::kGeneric && isa_is_arm(*isa) != arm_cpu(features)) {
    return make_error("LOWBIT_ISA={}: an {} level, and this is an {} CPU (its levels: {})", override_name,
                      isa_is_arm(*isa) ? "ARM" : "x86", arm_cpu(features) ? "ARM" : "x86", supported_levels(features));
  }
  if (!isa_supported(*isa, features)) {
    return make_error("LOWBIT_ISA={}: not supported by this CPU/OS (has: {}; best: {})", override_name,
                      describe_cpu_features(features), isa_name(best_isa(features)));
  }
  return *isa;
}

std::string lowbit_isa_env() {
  const char* v = std::getenv("LOWBIT_ISA");
  return v != nullptr ? std::string(v) : std::string();
}

Isa active_isa() {
  static const Isa chosen = [] {
    const CpuFeatures features = detect_cpu_features();
    auto isa = resolve_isa(lowbit_isa_env(), features);
    if (isa.ok()) return *isa;
    std::fprintf(stderr, "lowbit: warning: %s; using %s\n", isa.status().message().c_str(),
                 isa_name(best_isa(features)));
    return best_isa(features);
  }();
  return chosen;
}

std::string describe_cpu_features(const CpuFeatures& f) {
  std::string s;
  auto add = [&s](bool present, const char* name) {
    if (!present) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(f.avx, "avx");
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.f16c, "f16c");
  add(f.bmi2, "bmi2");
  add(f.avx512f, "avx512f");
  add(f.avx512bw, "avx512bw");
  add(f.avx512vl, "avx512vl");
  add(f.avx_vnni, "avx_vnni");
  add(f.avx512dq, "avx512dq");
  add(f.avx512vnni, "avx512vnni");
  add(f.avx512bf16, "avx512bf16");
  add(f.gfni, "gfni");
  add(f.avx512vbmi, "avx512vbmi");
  add(f.amx_tile, "amx_tile");
  add(f.amx_int8, "amx_int8");
  add(f.amx_bf16, "amx_bf16");
  add(f.asimd, "asimd");
  add(f.asimddp, "asimddp");
  add(f.i8mm, "i8mm");
  add(f.fphp, "fphp");
  add(f.asimdhp, "asimdhp");
  add(f.arm_bf16, "bf16");
  if (s.empty()) s = "no SIMD extensions";
  if (arm_cpu(f)) return s;  // the OS state below is x86's XCR0
  s += " (os:";
  s += f.os_ymm ? " ymm" : "";
  s += f.os_zmm ? " zmm" : "";
  s += f.os_amx ? " amx" : "";
  s += (f.os_ymm || f.os_zmm || f.os_amx) ? ")" : " none)";
  if (f.amx_tile && f.os_amx && !f.amx_permitted) s += " (amx refused)";
  return s;
}

}  // namespace lowbit
