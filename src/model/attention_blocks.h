// How the causal prompt attention is cut into work: blocks of query rows, each scored
// only against the positions it sees; the FP32 path (DecoderBlock::attention) and the
// other-product paths (attention_bf16.h, attention_approx.h) share it.
#pragma once

#include <algorithm>
#include <cstdint>

namespace lowbit {

// Query rows per causal block of the prompt attention: block [r0, r0 + 64) is scored
// against positions [0, pos + r0 + 64) only, so a 512-token prompt computes 9/16 of
// the score square instead of all of it (128-row blocks: 5/8, measured no faster on 2
// threads).
inline constexpr int kAttnRowBlock = 64;

inline int causal_block_count(int n_tokens) { return (n_tokens + kAttnRowBlock - 1) / kAttnRowBlock; }

// One work item of a prompt's attention: query head `head`, rows [r0, r0 + rows),
// scored against positions [0, seen).
struct CausalBlock {
  int head = 0;
  int r0 = 0;
  int rows = 0;
  int seen = 0;
};

// Item `item` of n_heads · causal_block_count(n_tokens), for pools that split the items
// in contiguous ranges. Block b costs about b + 1 units (it sees (b + 1)·64 positions),
// so a head's blocks are visited zigzag (0, n-1, 1, n-2, ...): any even run of items
// pairs cheap blocks with dear ones, and a thread's range costs what its item count
// says (in order, the thread ending mid-head got that head's cheap half: 5% idle for
// 9 heads on 2 threads).
inline CausalBlock causal_block(int64_t item, int n_tokens, int pos) {
  const int n_blocks = causal_block_count(n_tokens);
  const int k = static_cast<int>(item % n_blocks);
  CausalBlock b;
  b.head = static_cast<int>(item / n_blocks);
  b.r0 = (k % 2 == 0 ? k / 2 : n_blocks - 1 - k / 2) * kAttnRowBlock;
  b.rows = std::min(kAttnRowBlock, n_tokens - b.r0);
  b.seen = pos + b.r0 + b.rows;
  return b;
}

}  // namespace lowbit
