// The heap of the WebAssembly module. One call at a time runs in it (no
// threads), so it is an arena: bn_reserve(bytes) gives JS one block at the
// start of the heap for a call's arrays (the same block every call, memory
// grown when a call needs more), and the kernels' scratch (operator new)
// goes after it, bumped, and is dropped as a whole when the next kernel call
// starts (drop_scratch, exports.cc). free does nothing: a call's scratch is
// a few arrays of C or C * units entries, small beside its tensor.
//
// When memory cannot grow (WebAssembly memory ends at 4 GiB), bn_reserve
// returns 0 and operator new traps; the JS side turns either into a
// RangeError and, after a trap, starts a fresh instance.
#include <stddef.h>
#include <stdint.h>

extern "C" unsigned char __heap_base;  // where the linker's static data and stack end

namespace {

constexpr uintptr_t kAlign = 16;
constexpr uintptr_t kPage = 65536;

uintptr_t g_data_end = 0;  // the end of bn_reserve's block
uintptr_t g_top = 0;       // the next free byte

uintptr_t align_up(uintptr_t p) { return (p + kAlign - 1) & ~(kAlign - 1); }
uintptr_t heap_start() { return align_up(reinterpret_cast<uintptr_t>(&__heap_base)); }

// Makes [0, end) addressable; false when memory cannot grow that far.
bool ensure(uint64_t end) {
  const uint64_t have = uint64_t(__builtin_wasm_memory_size(0)) * kPage;
  if (end <= have) return true;
  const uint64_t pages = (end - have + kPage - 1) / kPage;
  return pages <= 65536 && __builtin_wasm_memory_grow(0, size_t(pages)) != size_t(-1);
}

void* bump(size_t bytes) {
  const uintptr_t p = align_up(g_top ? g_top : heap_start());
  const uint64_t end = uint64_t(p) + bytes;
  if (!ensure(end)) __builtin_trap();
  g_top = uintptr_t(end);
  return reinterpret_cast<void*>(p);
}

}  // namespace

// A block of `bytes` at the start of the heap for one call's arrays (0 when
// memory cannot hold it); drops the previous call's scratch.
extern "C" __attribute__((export_name("bn_reserve"))) uintptr_t bn_reserve(double bytes) {
  const uintptr_t start = heap_start();
  if (!(bytes >= 0) || uint64_t(start) + uint64_t(bytes) > (uint64_t(1) << 32) - kPage ||
      !ensure(uint64_t(start) + uint64_t(bytes)))
    return 0;
  g_data_end = g_top = align_up(start + uintptr_t(bytes));
  return start;
}

namespace batchnorm {
void drop_scratch() { g_top = g_data_end; }
}  // namespace batchnorm

void* operator new(size_t n) { return bump(n); }
void* operator new[](size_t n) { return bump(n); }
void operator delete(void*) noexcept {}
void operator delete[](void*) noexcept {}
void operator delete(void*, size_t) noexcept {}
void operator delete[](void*, size_t) noexcept {}

// What the compiler may call for copies and fills it does not inline.
extern "C" {
void* memcpy(void* d, const void* s, size_t n) { return __builtin_memcpy(d, s, n); }
void* memmove(void* d, const void* s, size_t n) { return __builtin_memmove(d, s, n); }
void* memset(void* d, int v, size_t n) { return __builtin_memset(d, v, n); }
}
