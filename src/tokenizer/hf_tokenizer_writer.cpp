#include "tokenizer/hf_tokenizer_writer.h"

#include <algorithm>
#include <map>
#include <tuple>

#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "io/untrusted_json.h"

namespace lowbit {
namespace {

using ojson = nlohmann::ordered_json;

// Positions 1..size-1 where a UTF-8 character starts (continuation bytes are 10xxxxxx).
std::vector<size_t> char_boundaries(const std::string& s) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) cuts.push_back(i);
  }
  return cuts;
}

}  // namespace

std::vector<std::string> spm_bpe_merges(const SpmPieces& vocab) {
  std::map<std::string, int32_t> ids;
  for (size_t i = 0; i < vocab.pieces.size(); ++i) ids.emplace(vocab.pieces[i], static_cast<int32_t>(i));
  struct Merge {
    int32_t left, right;
    float score;
  };
  std::vector<Merge> merges;
  for (size_t i = 0; i < vocab.pieces.size(); ++i) {
    const std::string& piece = vocab.pieces[i];
    std::vector<Merge> local;
    for (size_t cut : char_boundaries(piece)) {
      auto l = ids.find(piece.substr(0, cut));
      auto r = ids.find(piece.substr(cut));
      if (l != ids.end() && r != ids.end()) local.push_back({l->second, r->second, vocab.scores[i]});
    }
    std::sort(local.begin(), local.end(),
              [](const Merge& a, const Merge& b) { return std::tie(a.left, a.right) < std::tie(b.left, b.right); });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) { return a.score > b.score; });
  std::vector<std::string> out;
  out.reserve(merges.size());
  for (const auto& m : merges) out.push_back(vocab.pieces[m.left] + " " + vocab.pieces[m.right]);
  return out;
}

std::string spm_tokenizer_json(const SpmPieces& vocab) {
  ojson added = ojson::array();
  for (size_t i = 0; i < vocab.pieces.size(); ++i) {
    if (vocab.types[i] != kGgufTokenUnknown && vocab.types[i] != kGgufTokenControl) continue;
    added.push_back({{"id", i}, {"content", vocab.pieces[i]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  ojson vocab_map = ojson::object();
  for (size_t i = 0; i < vocab.pieces.size(); ++i) vocab_map[vocab.pieces[i]] = i;
  const std::string& bos = vocab.pieces[vocab.bos_id];
  const ojson bos_token = {{"SpecialToken", {{"id", bos}, {"type_id", 0}}}};
  ojson j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers",
                      {{{"type", "Prepend"}, {"prepend", "▁"}},
                       {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}};
  j["pre_tokenizer"] = nullptr;
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {bos_token, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair",
       {bos_token, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, bos_token,
        {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
      {"special_tokens", {{bos, {{"id", bos}, {"ids", {vocab.bos_id}}, {"tokens", {bos}}}}}}};
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders",
                   {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}},
                    {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", vocab.pieces[vocab.unk_id]},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", true},
                {"byte_fallback", true},
                {"ignore_merges", false},
                {"vocab", vocab_map},
                {"merges", spm_bpe_merges(vocab)}};
  return dump_json(j, 2);
}

Expected<HfTokenizerFiles> hf_tokenizer_files_from_gguf(const GgufFile& gguf) {
  LB_ASSIGN_OR_RETURN(std::string model, gguf.get_string("tokenizer.ggml.model"));
  if (model != "llama") {
    return make_error("{}: tokenizer model '{}' is not converted to tokenizer.json (only SentencePiece \"llama\" "
                      "vocabularies are)",
                      gguf.path(), model);
  }
  SpmPieces v;
  LB_ASSIGN_OR_RETURN(v.pieces, gguf.get_string_array("tokenizer.ggml.tokens"));
  LB_ASSIGN_OR_RETURN(std::vector<double> scores, gguf.get_float_array("tokenizer.ggml.scores"));
  LB_ASSIGN_OR_RETURN(std::vector<int64_t> types, gguf.get_int_array("tokenizer.ggml.token_type"));
  if (scores.size() != v.pieces.size() || types.size() != v.pieces.size() || v.pieces.empty()) {
    return make_error("{}: tokenizer tokens, scores and token_type differ in length", gguf.path());
  }
  v.scores.assign(scores.begin(), scores.end());
  v.types.assign(types.begin(), types.end());
  const int64_t n = static_cast<int64_t>(v.pieces.size());
  auto id = [&](const char* key, int64_t fallback) -> Expected<int32_t> {
    const int64_t i = gguf.get_int_or(key, fallback);
    if (i < 0 || i >= n) return make_error("{}: {} = {} is outside the vocabulary of {}", gguf.path(), key, i, n);
    return static_cast<int32_t>(i);
  };
  LB_ASSIGN_OR_RETURN(v.unk_id, id("tokenizer.ggml.unknown_token_id", 0));
  LB_ASSIGN_OR_RETURN(v.bos_id, id("tokenizer.ggml.bos_token_id", 1));
  LB_ASSIGN_OR_RETURN(v.eos_id, id("tokenizer.ggml.eos_token_id", 2));
  HfTokenizerFiles files;
  files.tokenizer_json = spm_tokenizer_json(v);
  ojson config;
  config["add_bos_token"] = gguf.get_bool_or("tokenizer.ggml.add_bos_token", true);
  config["add_eos_token"] = gguf.get_bool_or("tokenizer.ggml.add_eos_token", false);
  config["bos_token"] = v.pieces[v.bos_id];
  config["eos_token"] = v.pieces[v.eos_id];
  config["unk_token"] = v.pieces[v.unk_id];
  config["clean_up_tokenization_spaces"] = false;
  config["legacy"] = true;
  config["tokenizer_class"] = "LlamaTokenizerFast";
  if (auto t = gguf.get_string("tokenizer.chat_template"); t.ok()) config["chat_template"] = *t;
  files.tokenizer_config_json = dump_json(config, 2);
  return files;
}

}  // namespace lowbit
