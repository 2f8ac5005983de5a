// Runtime dispatch: detect the CPU once (CPUID *and* XGETBV on x86, since the
// OS must enable the wider register state; a VM can hide it), build the list
// of ISAs this build and CPU can run, and pick one table for the process.
#include "dispatch.h"
#include "kernels/tables.h"

#include <cstdint>
#include <cstdlib>
#include <mutex>
#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace batchnorm {
namespace {

struct Cpu {
  bool avx2 = false, avx512 = false, neon = false;
};

#if defined(__x86_64__) || defined(_M_X64)
uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}
#endif

Cpu detect() {
  Cpu cpu;
#if defined(__x86_64__) || defined(_M_X64)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return cpu;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12);
  if (!osxsave || !avx) return cpu;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;    // XMM and YMM saved by the OS
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;  // and opmask, ZMM0-15 high, ZMM16-31
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return cpu;
  cpu.avx2 = ymm_state && fma && (b & (1u << 5));
  cpu.avx512 = cpu.avx2 && zmm_state && (b & (1u << 16)) /* F */ && (b & (1u << 17)) /* DQ */ &&
               (b & (1u << 30)) /* BW */ && (b & (1u << 31)) /* VL */;
#elif defined(__aarch64__)
  cpu.neon = true;  // Advanced SIMD is part of the arm64 baseline
#endif
  return cpu;
}

struct Entry {
  const char* name;
  const KernelTable* (*table)();
  const NormKernelTable* (*norms)();
  bool runs;
};

struct Choice {
  std::vector<std::string> names;  // runnable, best last
  std::vector<Entry> entries;
  const KernelTable* table = nullptr;
  const NormKernelTable* norms = nullptr;
  std::string error;
};

const Choice& choice() {
  static std::once_flag once;
  static Choice* made = nullptr;  // immutable once built; shared by every worker_thread
  std::call_once(once, [] {
    auto* ch = new Choice();
    const Cpu cpu = detect();
    ch->entries.push_back({"scalar", &scalar_kernels, &scalar_norm_kernels, true});
#if defined(BATCHNORM_HAVE_NEON)
    ch->entries.push_back({"neon", &neon_kernels, &neon_norm_kernels, cpu.neon});
#endif
#if defined(BATCHNORM_HAVE_AVX2)
    ch->entries.push_back({"avx2", &avx2_kernels, &avx2_norm_kernels, cpu.avx2});
#endif
#if defined(BATCHNORM_HAVE_AVX512)
    ch->entries.push_back({"avx512", &avx512_kernels, &avx512_norm_kernels, cpu.avx512});
#endif
    (void)cpu;
    for (const Entry& e : ch->entries)
      if (e.runs) ch->names.push_back(e.name), ch->table = e.table(), ch->norms = e.norms();
    const char* forced = std::getenv("BATCHNORM_ISA");
    if (forced && *forced) {
      const std::string want(forced);
      ch->table = nullptr, ch->norms = nullptr;
      for (const Entry& e : ch->entries)
        if (want == e.name && e.runs) ch->table = e.table(), ch->norms = e.norms();
      if (!ch->table) {
        std::string list;
        for (const std::string& n : ch->names) list += (list.empty() ? "" : ", ") + n;
        bool built = false;
        for (const Entry& e : ch->entries) built = built || want == e.name;
        ch->error = "BATCHNORM_ISA=" + want +
                    (built ? " cannot run on this CPU" : " is not an ISA of this build") +
                    "; expected one of: " + list;
      }
    }
    made = ch;
  });
  return *made;
}

}  // namespace

const std::vector<std::string>& capabilities() { return choice().names; }

const KernelTable* kernels(std::string* error) {
  const Choice& ch = choice();
  if (!ch.table && error) *error = ch.error;
  return ch.table;
}

const NormKernelTable* norm_kernels() { return choice().norms; }

}  // namespace batchnorm
