// An allocator for the large read-mostly arrays that decode streams once per
// token (packed weights) and for the bandwidth probe that measures the same
// streams: blocks of kHugePageMin bytes or more are placed on a 2 MiB boundary
// and advised MADV_HUGEPAGE before anything touches them, so that where
// transparent huge pages are enabled ("always" or "madvise") the kernel backs
// them with 2 MiB pages at the first fault.
//
// Why: a GEMV streams its weights with software prefetches that cross a 4 KiB
// page every 64 lines; on 4 KiB pages each crossing is a TLB miss and page
// walk, and the hardware prefetchers stop at every page end. On the
// development machine (2 cores, AVX-512), the 4-bit decode kernel streaming
// 570 MB went from 24.2-25.5 GB/s to 29.7-30.7 GB/s on 2 MiB pages, the probe's
// plain read from 24.3-26.5 to 28.4-28.8 GB/s (3 alternating runs each).
//
// Blocks are mapped with mmap and unmapped when freed, never handed back to
// malloc (huge_page_allocator.cpp says why).
//
// Only a hint: where the advice fails (no THP, another OS), the memory is
// ordinary pages and nothing else changes. The 2 MiB extents a block fills
// are advised, and its last partial one only when at least 3/4 full, so
// resident memory grows by at most 512 KiB per block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace lowbit {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;
inline constexpr size_t kHugePageMin = size_t{1} << 20;  // smaller blocks: plain operator new

// Raw blocks on a 2 MiB boundary, freed by huge_page_free. Throws
// std::bad_alloc like operator new.
void* huge_page_allocate(size_t bytes);
void huge_page_free(void* p, size_t bytes) noexcept;  // bytes: as allocated

struct HugePageFree {
  size_t bytes = 0;
  void operator()(void* p) const noexcept { huge_page_free(p, bytes); }
};
// An uninitialized array of n trivial T on huge pages (first touch by the caller,
// e.g. spread over threads).
template <typename T>
using HugePageBuffer = std::unique_ptr<T[], HugePageFree>;
template <typename T>
HugePageBuffer<T> huge_page_buffer(int64_t n) {
  const size_t bytes = static_cast<size_t>(n) * sizeof(T);
  return HugePageBuffer<T>(static_cast<T*>(huge_page_allocate(bytes)), HugePageFree{bytes});
}

template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() noexcept = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes >= kHugePageMin) return static_cast<T*>(huge_page_allocate(bytes));
    return static_cast<T*>(::operator new(bytes));
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n * sizeof(T) >= kHugePageMin) {
      huge_page_free(p, n * sizeof(T));
    } else {
      ::operator delete(p);
    }
  }
  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const noexcept {
    return true;
  }
};

// A vector whose large buffers are on huge pages where the system allows.
template <typename T>
using HugePageVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace lowbit
