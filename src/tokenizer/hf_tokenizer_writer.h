// Hugging Face tokenizer files from a vocabulary lowbit reads, so a model
// exported from GGUF (pipeline/hf_export.h) carries a tokenizer that
// transformers, vLLM and lowbit's own HF loader use.
//
// SentencePiece BPE vocabularies (GGUF tokenizer.ggml.model "llama": Llama 1/2,
// TinyLlama, Mistral v0.1, stories) are written as transformers' LlamaConverter
// writes them (legacy, byte fallback): model BPE over the pieces with
// byte_fallback, merges derived from the piece scores (every split of a piece into
// two pieces of the vocabulary, the merges ordered by the merged piece's score),
// normalizer Prepend("▁") + Replace(" " -> "▁"), no pre-tokenizer, a
// TemplateProcessing that adds BOS, decoder Replace/ByteFallback/Fuse/Strip.
// tokenizer_config.json carries add_bos_token / add_eos_token, the special
// tokens and the chat template. GPT-2 style byte-level BPE vocabularies
// (tokenizer.ggml.model "gpt2") are not written: their pre-tokenizer regex is
// per model (tokenizer.ggml.pre), and an error says so.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace lowbit {

class GgufFile;

// GGUF token types (tokenizer.ggml.token_type).
inline constexpr int32_t kGgufTokenNormal = 1, kGgufTokenUnknown = 2, kGgufTokenControl = 3, kGgufTokenByte = 6;

struct SpmPieces {
  std::vector<std::string> pieces;  // "▁" for spaces, byte pieces "<0xNN>"
  std::vector<float> scores;
  std::vector<int32_t> types;  // GGUF token types
  int32_t unk_id = 0;
  int32_t bos_id = 1;
  int32_t eos_id = 2;
};

// BPE merges "left right" derived from the piece scores (see above).
std::vector<std::string> spm_bpe_merges(const SpmPieces& vocab);
// tokenizer.json text.
std::string spm_tokenizer_json(const SpmPieces& vocab);

struct HfTokenizerFiles {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
};

// From the tokenizer.* keys of a GGUF header (a GGUF model, or a lowbit model
// file that copied them). Errors name the file and the tokenizer model.
Expected<HfTokenizerFiles> hf_tokenizer_files_from_gguf(const GgufFile& gguf);

}  // namespace lowbit
