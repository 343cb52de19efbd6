// Byte-level BPE (GPT-2, SmolLM, Llama 3, Qwen2: GGUF "gpt2" vocab or a Hugging
// Face tokenizer.json with a ByteLevel pre-tokenizer). Text is cut into words by
// the pre-tokenizer regexes, each byte of a word becomes its GPT-2 stand-in
// character (byte_unicode.h), and the characters merge by rank within the word.
// Words repeat a lot in real text, so each encode() call caches the ids of the
// words it has already merged.
#pragma once

#include <memory>

#include "tokenizer/bpe_merge.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/vocab_tokenizer.h"

namespace lowbit {

struct ByteBpeOptions {
  bool ignore_merges = false;     // a word that is itself a token is emitted whole
  // HF ByteLevel add_prefix_space: " " before every plain fragment (text between
  // special tokens) that does not start with one.
  bool add_prefix_space = false;
};

std::unique_ptr<Tokenizer> make_byte_bpe_tokenizer(Vocab vocab, MergeTable merges, SpecialTokenSplitter specials,
                                                   SpecialIds special_ids, RegexSplitter splitter,
                                                   ByteBpeOptions options);

}  // namespace lowbit
