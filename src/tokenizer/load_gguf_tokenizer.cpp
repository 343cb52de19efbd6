// Tokenizer from GGUF metadata (tokenizer.ggml.*), following llama.cpp
// llama_vocab::impl::load for the "llama" (SentencePiece BPE) and "gpt2"
// (byte-level BPE) models.
#include <fmt/format.h>

#include "io/gguf.h"
#include "tokenizer/byte_bpe_tokenizer.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {

namespace {

Expected<std::vector<TokenKind>> read_token_kinds(const GgufFile& gguf, size_t n_tokens) {
  std::vector<TokenKind> kinds(n_tokens, TokenKind::kNormal);
  if (gguf.find("tokenizer.ggml.token_type") == nullptr) return kinds;
  LB_ASSIGN_OR_RETURN(const std::vector<int64_t> types, gguf.get_int_array("tokenizer.ggml.token_type"));
  if (types.size() < n_tokens) {
    return make_error("{}: tokenizer.ggml.token_type has {} entries for {} tokens", gguf.path(), types.size(),
                      n_tokens);
  }
  for (size_t i = 0; i < n_tokens; ++i) {
    // Codes 0 (undefined) and unknown values encode as normal text.
    kinds[i] = types[i] >= 1 && types[i] <= 6 ? static_cast<TokenKind>(types[i]) : TokenKind::kNormal;
  }
  return kinds;
}

SpecialIds read_special_ids(const GgufFile& gguf, int32_t n_vocab, int64_t default_bos, int64_t default_eos,
                            bool default_add_bos) {
  SpecialIds ids;
  ids.bos = checked_token_id(gguf.get_int_or("tokenizer.ggml.bos_token_id", default_bos), n_vocab);
  ids.eos = checked_token_id(gguf.get_int_or("tokenizer.ggml.eos_token_id", default_eos), n_vocab);
  ids.add_bos = gguf.get_bool_or("tokenizer.ggml.add_bos_token", default_add_bos) && ids.bos >= 0;
  return ids;
}

Expected<std::unique_ptr<Tokenizer>> load_llama(const GgufFile& gguf, std::vector<std::string> tokens,
                                                std::vector<TokenKind> kinds) {
  std::vector<float> scores(tokens.size(), 0.0f);
  if (gguf.find("tokenizer.ggml.scores") != nullptr) {
    LB_ASSIGN_OR_RETURN(const std::vector<double> file_scores, gguf.get_float_array("tokenizer.ggml.scores"));
    if (file_scores.size() < tokens.size()) {
      return make_error("{}: tokenizer.ggml.scores has {} entries for {} tokens", gguf.path(), file_scores.size(),
                        tokens.size());
    }
    for (size_t i = 0; i < tokens.size(); ++i) scores[i] = static_cast<float>(file_scores[i]);
  }
  Vocab vocab(std::move(tokens), std::move(kinds));
  MergeTable merges = merges_from_scores(vocab, scores);
  SpecialTokenSplitter specials(vocab);
  // llama.cpp defaults for SentencePiece vocabularies: BOS 1, EOS 2, add BOS.
  const SpecialIds special_ids = read_special_ids(gguf, vocab.size(), 1, 2, true);
  SpmOptions options;
  options.space_prefix = gguf.get_bool_or("tokenizer.ggml.add_space_prefix", true) ? SpacePrefix::kEveryFragment
                                                                                      : SpacePrefix::kNone;
  options.unk_id = checked_token_id(gguf.get_int_or("tokenizer.ggml.unknown_token_id", 0), vocab.size());
  return make_spm_tokenizer(std::move(vocab), std::move(merges), std::move(specials), special_ids, options);
}

Expected<std::unique_ptr<Tokenizer>> load_gpt2(const GgufFile& gguf, std::vector<std::string> tokens,
                                               std::vector<TokenKind> kinds) {
  LB_ASSIGN_OR_RETURN(const std::vector<std::string> merge_lines, gguf.get_string_array("tokenizer.ggml.merges"));
  std::string pre = "default";
  if (gguf.find("tokenizer.ggml.pre") != nullptr) {
    LB_ASSIGN_OR_RETURN(pre, gguf.get_string("tokenizer.ggml.pre"));
  }
  auto preset = find_pretokenizer_preset(pre);
  if (!preset.ok()) return preset.status().with_context(fmt::format("{}: tokenizer.ggml.pre", gguf.path()));
  auto splitter = RegexSplitter::compile(preset->patterns);
  if (!splitter.ok()) return splitter.status().with_context(gguf.path());

  // Each merge is "left right"; llama.cpp splits at the first space after the
  // first byte, so a left part that is itself " " still parses.
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(merge_lines.size());
  for (size_t i = 0; i < merge_lines.size(); ++i) {
    const std::string& line = merge_lines[i];
    const size_t space = line.find(' ', 1);
    if (space == std::string::npos) {
      return make_error("{}: tokenizer.ggml.merges[{}] = '{}' is not 'left right'", gguf.path(), i, line);
    }
    pairs.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  Vocab vocab(std::move(tokens), std::move(kinds));
  MergeTable merges = merges_from_ranked_pairs(vocab, pairs);
  SpecialTokenSplitter specials(vocab);
  const SpecialIds special_ids = read_special_ids(gguf, vocab.size(), -1, -1, preset->add_bos);
  ByteBpeOptions options;
  options.ignore_merges = preset->ignore_merges;
  return make_byte_bpe_tokenizer(std::move(vocab), std::move(merges), std::move(specials), special_ids,
                                 std::move(splitter).value(), options);
}

}  // namespace

Expected<std::unique_ptr<Tokenizer>> load_gguf_tokenizer(const GgufFile& gguf) {
  LB_ASSIGN_OR_RETURN(const std::string model, gguf.get_string("tokenizer.ggml.model"));
  LB_ASSIGN_OR_RETURN(std::vector<std::string> tokens, gguf.get_string_array("tokenizer.ggml.tokens"));
  if (tokens.empty()) return make_error("{}: tokenizer.ggml.tokens is empty", gguf.path());
  if (tokens.size() > static_cast<size_t>(INT32_MAX)) {
    return make_error("{}: tokenizer.ggml.tokens has {} entries", gguf.path(), tokens.size());
  }
  LB_ASSIGN_OR_RETURN(std::vector<TokenKind> kinds, read_token_kinds(gguf, tokens.size()));
  if (model == "llama") return load_llama(gguf, std::move(tokens), std::move(kinds));
  if (model == "gpt2") return load_gpt2(gguf, std::move(tokens), std::move(kinds));
  return make_error("{}: tokenizer.ggml.model '{}' is not supported (supported: llama, gpt2)", gguf.path(), model);
}

Expected<std::unique_ptr<Tokenizer>> load_gguf_tokenizer_file(const std::string& path) {
  LB_ASSIGN_OR_RETURN(const GgufFile gguf, GgufFile::open(path));
  return load_gguf_tokenizer(gguf);
}

}  // namespace lowbit
