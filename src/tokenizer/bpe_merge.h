// The merge loop shared by every BPE flavour. A word starts as a sequence of token
// ids (characters or bytes); the adjacent pair with the highest priority is
// replaced by its merged token, leftmost first among equal priorities, until no
// adjacent pair has a rule. Priorities are
//  - SentencePiece BPE (llama.cpp llm_tokenizer_spm, llama2.c run.c): the score
//    of the merged piece, for every pair whose concatenation is a piece;
//  - ranked BPE (GPT-2, Hugging Face tokenizers): minus the rank in the merges list.
// The loop keeps a heap of candidate pairs over a linked list of symbols, so a word
// of n symbols costs O(n log n) rather than the O(n^2) of rescanning every pair.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/vocab.h"

namespace lowbit {

struct MergeRule {
  int32_t result = -1;
  float priority = 0.0f;  // higher merges first
};

class MergeTable {
 public:
  // Adds a rule unless the pair already has one (the first, best-ranked, wins).
  void add(int32_t left, int32_t right, int32_t result, float priority);
  const MergeRule* find(int32_t left, int32_t right) const;
  size_t size() const { return rules_.size(); }

 private:
  static uint64_t key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  std::unordered_map<uint64_t, MergeRule> rules_;
};

// Merges `ids` in place. Negative ids never merge.
void apply_merges(const MergeTable& table, std::vector<int32_t>& ids);

// SentencePiece BPE rules: for every piece that splits (at a UTF-8 character
// boundary) into two pieces of the vocabulary, the pair merges into it with the
// piece's score as priority. This is the same set of merges as looking up the
// concatenation of two symbols in the vocabulary, as llama.cpp and llama2.c do.
// `scores` has one entry per id.
MergeTable merges_from_scores(const Vocab& vocab, const std::vector<float>& scores);

// Ranked rules from (left, right) piece pairs in rank order. Pairs whose parts or
// concatenation are not pieces cannot produce a token and are skipped; the count
// of skipped pairs is returned through `skipped` if given.
MergeTable merges_from_ranked_pairs(const Vocab& vocab,
                                    const std::vector<std::pair<std::string, std::string>>& pairs,
                                    size_t* skipped = nullptr);

}  // namespace lowbit
