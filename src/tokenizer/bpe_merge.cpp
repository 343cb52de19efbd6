#include "tokenizer/bpe_merge.h"

#include <algorithm>
#include <queue>

#include "tokenizer/utf8.h"

namespace lowbit {

void MergeTable::add(int32_t left, int32_t right, int32_t result, float priority) {
  rules_.emplace(key(left, right), MergeRule{result, priority});
}

const MergeRule* MergeTable::find(int32_t left, int32_t right) const {
  const auto it = rules_.find(key(left, right));
  return it == rules_.end() ? nullptr : &it->second;
}

namespace {

struct Symbol {
  int32_t id;
  int32_t prev;  // index of the previous live symbol, -1 at the start
  int32_t next;  // index of the next live symbol, -1 at the end
};

struct Candidate {
  float priority;
  int32_t left;  // index of the left symbol; its position in the word breaks ties
  int32_t right;
  int32_t left_id;
  int32_t right_id;
  int32_t result;
};

// Heap order: highest priority on top, then the leftmost pair.
struct CandidateLess {
  bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.priority != b.priority) return a.priority < b.priority;
    return a.left > b.left;
  }
};

}  // namespace

void apply_merges(const MergeTable& table, std::vector<int32_t>& ids) {
  const auto n = static_cast<int32_t>(ids.size());
  if (n < 2) return;
  std::vector<Symbol> symbols(n);  // [n], merged-away symbols are unlinked
  for (int32_t i = 0; i < n; ++i) symbols[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1};

  std::vector<Candidate> storage;
  storage.reserve(n);
  std::priority_queue<Candidate, std::vector<Candidate>, CandidateLess> heap(CandidateLess{},
                                                                            std::move(storage));
  const auto push_pair = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const int32_t a = symbols[left].id;
    const int32_t b = symbols[right].id;
    if (a < 0 || b < 0) return;
    if (const MergeRule* rule = table.find(a, b)) heap.push({rule->priority, left, right, a, b, rule->result});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i, i + 1);

  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& left = symbols[c.left];
    // Stale if either side was merged since the pair was queued.
    if (left.next != c.right || left.id != c.left_id || symbols[c.right].id != c.right_id) continue;
    Symbol& right = symbols[c.right];
    left.id = c.result;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.left;
    right.id = -1;
    right.prev = right.next = -1;
    push_pair(left.prev, c.left);
    push_pair(c.left, left.next);
  }

  // Symbol 0 is never merged away (merges fold the right symbol into the left).
  ids.clear();
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
}

MergeTable merges_from_scores(const Vocab& vocab, const std::vector<float>& scores) {
  MergeTable table;
  for (int32_t id = 0; id < vocab.size(); ++id) {
    const std::string& piece = vocab.piece(id);
    if (piece.empty()) continue;
    size_t split = std::min(utf8_sequence_length(static_cast<uint8_t>(piece[0])), piece.size());
    while (split < piece.size()) {
      const std::string_view whole(piece);
      const int32_t left = vocab.find(whole.substr(0, split));
      const int32_t right = left >= 0 ? vocab.find(whole.substr(split)) : -1;
      if (right >= 0) table.add(left, right, id, scores[id]);
      split += utf8_sequence_length(static_cast<uint8_t>(piece[split]));
    }
  }
  return table;
}

MergeTable merges_from_ranked_pairs(const Vocab& vocab,
                                    const std::vector<std::pair<std::string, std::string>>& pairs,
                                    size_t* skipped) {
  MergeTable table;
  size_t n_skipped = 0;
  std::string joined;
  for (size_t rank = 0; rank < pairs.size(); ++rank) {
    const auto& [a, b] = pairs[rank];
    joined.assign(a).append(b);
    const int32_t left = vocab.find(a);
    const int32_t right = vocab.find(b);
    const int32_t result = vocab.find(joined);
    if (left < 0 || right < 0 || result < 0) {
      ++n_skipped;
      continue;
    }
    table.add(left, right, result, -static_cast<float>(rank));
  }
  if (skipped != nullptr) *skipped = n_skipped;
  return table;
}

}  // namespace lowbit
