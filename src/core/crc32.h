// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320: zlib's crc32(), PNG, gzip),
// so a checksum can be checked with any standard tool (python3 -c
// "import zlib; print(zlib.crc32(open(F,'rb').read()))").
//
// Slice-by-8 (Kounavis & Berry, "A Systematic Approach to Building High
// Performance Software-Based CRC Generators", 2005): eight 256-entry tables
// consume 8 bytes per step, about 2 GB/s, so checksumming the calibration hidden
// states of a checkpoint costs little next to writing them. The tables are
// computed at compile time (no mutable state).
#pragma once

#include <cstddef>
#include <cstdint>

namespace lowbit {

// The CRC of `data` appended to bytes whose CRC is `crc` (0 for none):
// crc32_update(crc32_update(0, a), b) == crc32 of a followed by b.
uint32_t crc32_update(uint32_t crc, const void* data, size_t bytes);

}  // namespace lowbit
