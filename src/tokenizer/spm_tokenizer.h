// SentencePiece-style BPE (GGUF "llama" vocab, llama2.c tokenizer.bin, Hugging
// Face tokenizer.json of the Llama 1/2 kind): spaces become "▁", a "▁" is put in
// front of the text, the text is cut into UTF-8 characters, characters missing
// from the vocabulary fall back to byte tokens "<0xAB>", and pairs merge by the
// table's priority (piece score, or merge rank). There is no pre-tokenization, so
// merges may cross word boundaries exactly as in SentencePiece.
#pragma once

#include <memory>

#include "tokenizer/bpe_merge.h"
#include "tokenizer/vocab_tokenizer.h"

namespace lowbit {

// Where a "▁" goes in front of plain text. llama.cpp prefixes the text and every
// fragment after a special token (kEveryFragment, HF normalizer Prepend);
// Hugging Face Metaspace prepend_scheme "first" only prefixes the start of the text.
enum class SpacePrefix { kNone, kFirstFragment, kEveryFragment };

struct SpmOptions {
  SpacePrefix space_prefix = SpacePrefix::kEveryFragment;
  bool escape_spaces = true;          // " " -> "▁" before merging, back when decoding
  bool split_at_space_marker = false;  // HF Metaspace split = true: merge per "▁word"
  int32_t unk_id = -1;                 // for characters with no piece and no byte token
};

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab, MergeTable merges, SpecialTokenSplitter specials,
                                              SpecialIds special_ids, SpmOptions options);

}  // namespace lowbit
