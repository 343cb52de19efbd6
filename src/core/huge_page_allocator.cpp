#include "core/huge_page_allocator.h"

#include <cstdlib>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace lowbit {

void* huge_page_allocate(size_t bytes) {
  // aligned_alloc wants a multiple of the alignment; the tail past `bytes` is
  // never touched, so it costs address space only.
  const size_t rounded = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  void* p = std::aligned_alloc(kHugePageBytes, rounded);
  if (p == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // The 2 MiB extents the block fills, and the last partial one when it is at
  // least 3/4 full: advising it makes its first touch fault in a whole huge
  // page, so at most 512 KiB per block go unused.
  const size_t advised = bytes % kHugePageBytes >= kHugePageBytes / 4 * 3 ? rounded : bytes / kHugePageBytes * kHugePageBytes;
  if (advised > 0) madvise(p, advised, MADV_HUGEPAGE);  // a hint: its failure leaves ordinary pages
#endif
  return p;
}

void huge_page_free(void* p) noexcept { std::free(p); }

}  // namespace lowbit
