// Text <-> token ids. Two algorithms cover the Llama family:
//  - SentencePiece-style BPE with piece scores and byte fallback (GGUF "llama"
//    vocab, llama2.c tokenizer.bin, tokenizer.model, tokenizer.json with Metaspace);
//  - byte-level BPE with ranked merges (GGUF "gpt2" vocab, tokenizer.json ByteLevel).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace lowbit {

class GgufFile;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Encodes text without BOS/EOS. Special-token strings in the text (e.g. "<s>",
  // "<|im_start|>") are matched as special tokens, as llama.cpp does with
  // parse_special = true.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;

  // encode(), or an error where the text exceeds a limit of the tokenizer's
  // pre-tokenizer regex (pretokenize.h: a tokenizer.json pattern that backtracks
  // catastrophically). Front ends encoding user text call this; encode() itself
  // cannot fail and leaves such a fragment without pre-tokenization.
  virtual Expected<std::vector<int32_t>> encode_checked(std::string_view text) const { return encode(text); }

  // The bytes one token stands for (byte-fallback tokens give their byte,
  // "▁" becomes a space, byte-level BPE symbols are mapped back to bytes).
  virtual std::string token_to_bytes(int32_t id) const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 if none
  virtual int32_t eos_id() const = 0;  // -1 if none
  // Whether prompts start with BOS for this model (GGUF tokenizer.ggml.add_bos_token).
  virtual bool add_bos() const = 0;

  std::string decode(const std::vector<int32_t>& ids) const {
    std::string out;
    for (int32_t id : ids) out += token_to_bytes(id);
    return out;
  }
};

// From the tokenizer.ggml.* metadata of a GGUF file (model "llama" or "gpt2").
Expected<std::unique_ptr<Tokenizer>> load_gguf_tokenizer(const GgufFile& gguf);
// The same from a GGUF path (the tokenizer keeps no reference to the file).
Expected<std::unique_ptr<Tokenizer>> load_gguf_tokenizer_file(const std::string& path);

// llama2.c tokenizer.bin: i32 max_token_length, then per token f32 score,
// i32 length, bytes.
Expected<std::unique_ptr<Tokenizer>> load_llama2c_tokenizer(const std::string& path, int32_t vocab_size);

// Hugging Face tokenizer.json (BPE model; ByteLevel or Metaspace pre-tokenizer).
Expected<std::unique_ptr<Tokenizer>> load_hf_tokenizer_json(const std::string& path);

// SentencePiece tokenizer.model through libsentencepiece.
Expected<std::unique_ptr<Tokenizer>> load_sentencepiece_model(const std::string& path);

}  // namespace lowbit
