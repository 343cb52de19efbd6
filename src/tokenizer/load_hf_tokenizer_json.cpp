// Hugging Face tokenizer.json with a BPE model, in its two common shapes:
//  - byte-level (GPT-2, SmolLM, Llama 3, Qwen2): pre_tokenizer ByteLevel, maybe in a
//    Sequence after Split / Digits;
//  - SentencePiece-like (Llama 1/2, Mistral): normalizer Prepend "▁" + Replace
//    " " -> "▁" or a Metaspace pre-tokenizer, byte_fallback, merges by rank.
// added_tokens are matched literally in the text. BOS/EOS come from a
// tokenizer_config.json beside the file when there is one, else from the
// post_processor template, else from well-known token names.
// Anything the file asks for that is not implemented is an error naming it, so a
// tokenizer never silently encodes differently from the reference.
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "io/untrusted_json.h"
#include "tokenizer/byte_bpe_tokenizer.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace lowbit {

namespace {

using nlohmann::json;

// What the pre_tokenizer and normalizer sections ask for.
struct Pipeline {
  bool byte_level = false;
  bool byte_level_prefix_space = false;
  std::vector<std::string> patterns;  // for byte-level, in order
  bool escape_spaces = false;         // " " -> "▁"
  SpacePrefix space_prefix = SpacePrefix::kNone;
  bool split_at_space_marker = false;
};

// A PCRE2 pattern matching `literal` exactly.
std::string escape_regex(std::string_view literal) {
  std::string out;
  for (const char c : literal) {
    if (std::string_view(R"(\^$.|?*+()[]{}-/)").find(c) != std::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// Sequences nested deeper than this are refused; real files nest one level.
constexpr int kMaxSequenceDepth = 8;

// Flattens {"type": "Sequence", key: [...]} into its steps.
Status flatten(const json& node, const char* section, const char* key, int depth, std::vector<json>& out) {
  if (node.is_null()) return Status::ok_status();
  if (node.is_object() && node.value("type", "") == "Sequence" && node.contains(key)) {
    if (depth >= kMaxSequenceDepth) {
      return make_error("{}: Sequence nested deeper than {} levels", section, kMaxSequenceDepth);
    }
    const json& children = node.at(key);
    if (!children.is_array()) return make_error("{}: Sequence '{}' is {}, expected an array", section, key,
                                                describe_json(children));
    for (const json& child : children) LB_RETURN_IF_ERROR(flatten(child, section, key, depth + 1, out));
  } else {
    out.push_back(node);
  }
  return Status::ok_status();
}

// The steps of root[section] (absent or null: none), Sequences flattened.
Expected<std::vector<json>> section_steps(const json& root, const char* section, const char* sequence_key) {
  std::vector<json> steps;
  if (root.contains(section)) LB_RETURN_IF_ERROR(flatten(root.at(section), section, sequence_key, 0, steps));
  return steps;
}

Status read_pre_tokenizer(const json& root, Pipeline& p) {
  LB_ASSIGN_OR_RETURN(const std::vector<json> steps, section_steps(root, "pre_tokenizer", "pretokenizers"));
  for (const json& step : steps) {
    const std::string type = step.value("type", "");
    if (type == "ByteLevel") {
      p.byte_level = true;
      p.byte_level_prefix_space = step.value("add_prefix_space", false);
      // Hugging Face prefixes every piece earlier steps produced; only whole
      // fragments between special tokens are prefixed here.
      if (p.byte_level_prefix_space && !p.patterns.empty()) {
        return make_error("pre_tokenizer ByteLevel with add_prefix_space after Split/Digits is not supported");
      }
      if (step.value("use_regex", true)) p.patterns.push_back(kGpt2Pattern);
    } else if (type == "Split") {
      const json& pattern = step.at("pattern");
      const std::string behavior = step.value("behavior", "Isolated");
      if (behavior != "Isolated" || step.value("invert", false)) {
        return make_error("pre_tokenizer Split with behavior '{}'{} is not supported", behavior,
                          step.value("invert", false) ? " and invert" : "");
      }
      if (pattern.contains("Regex")) {
        p.patterns.push_back(pattern.at("Regex").get<std::string>());
      } else {
        p.patterns.push_back(escape_regex(pattern.at("String").get<std::string>()));
      }
    } else if (type == "Digits") {
      p.patterns.push_back(step.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)");
    } else if (type == "Metaspace") {
      if (step.value("replacement", std::string(kSpaceMarker)) != kSpaceMarker) {
        return make_error("pre_tokenizer Metaspace with a replacement other than \"▁\" is not supported");
      }
      p.escape_spaces = true;
      p.split_at_space_marker = step.value("split", true);
      const std::string scheme = step.value("prepend_scheme", step.value("add_prefix_space", true) ? "always" : "never");
      p.space_prefix = scheme == "always"  ? SpacePrefix::kEveryFragment
                       : scheme == "first" ? SpacePrefix::kFirstFragment
                                           : SpacePrefix::kNone;
    } else {
      return make_error("pre_tokenizer '{}' is not supported", type);
    }
  }
  return Status::ok_status();
}

Status read_normalizer(const json& root, Pipeline& p) {
  LB_ASSIGN_OR_RETURN(const std::vector<json> steps, section_steps(root, "normalizer", "normalizers"));
  for (const json& step : steps) {
    const std::string type = step.value("type", "");
    if (type == "Prepend" && step.value("prepend", "") == kSpaceMarker) {
      p.space_prefix = SpacePrefix::kEveryFragment;
    } else if (type == "Replace" && step.at("pattern").value("String", "") == " " &&
               step.value("content", "") == kSpaceMarker) {
      p.escape_spaces = true;
    } else if (type == "NFC") {
      // Accepted as a no-op: text is taken to be NFC already (ordinary composed
      // UTF-8 is); decomposed input would encode differently from the reference.
    } else {
      return make_error("normalizer '{}' is not supported", type.empty() ? describe_json(step) : type);
    }
  }
  return Status::ok_status();
}

// bos_token / eos_token in tokenizer_config.json: a string or {"content": ...}.
std::string token_name(const json& config, const char* key) {
  if (!config.contains(key)) return {};
  const json& v = config.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v.at("content").is_string()) return v.at("content").get<std::string>();
  return {};
}

// The special token the post_processor puts before every single sequence, if any.
Expected<std::string> template_bos(const json& root) {
  LB_ASSIGN_OR_RETURN(const std::vector<json> steps, section_steps(root, "post_processor", "processors"));
  for (const json& step : steps) {
    if (step.value("type", "") != "TemplateProcessing" || !step.contains("single")) continue;
    const json& single = step.at("single");
    if (single.is_array() && !single.empty() && single[0].contains("SpecialToken")) {
      return single[0].at("SpecialToken").value("id", "");
    }
  }
  return std::string();
}

int32_t first_present(const Vocab& vocab, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (const int32_t id = vocab.find(name); id >= 0) return id;
  }
  return -1;
}

Expected<SpecialIds> read_special_ids(const std::string& path, const json& root, const Vocab& vocab) {
  SpecialIds ids;
  LB_ASSIGN_OR_RETURN(const std::string template_bos_name, template_bos(root));
  if (const std::string& bos = template_bos_name; !bos.empty()) {
    ids.bos = vocab.find(bos);
    ids.add_bos = ids.bos >= 0;
  } else {
    ids.bos = first_present(vocab, {"<s>", "<|begin_of_text|>", "<|startoftext|>", "<|im_start|>", "<|endoftext|>"});
  }
  ids.eos = first_present(vocab, {"</s>", "<|end_of_text|>", "<|im_end|>", "<|endoftext|>"});

  const std::string config_path = (std::filesystem::path(path).parent_path() / "tokenizer_config.json").string();
  if (!std::filesystem::exists(config_path)) return ids;
  LB_ASSIGN_OR_RETURN(const std::string text, read_text_file(config_path));
  LB_ASSIGN_OR_RETURN(const json config, parse_untrusted_json(text, config_path));
  if (!config.is_object()) return make_error("{}: not a JSON object", config_path);
  if (const std::string bos = token_name(config, "bos_token"); !bos.empty()) ids.bos = vocab.find(bos);
  if (const std::string eos = token_name(config, "eos_token"); !eos.empty()) ids.eos = vocab.find(eos);
  if (config.contains("add_bos_token") && config.at("add_bos_token").is_boolean()) {
    ids.add_bos = config.at("add_bos_token").get<bool>();
  }
  ids.add_bos = ids.add_bos && ids.bos >= 0;
  return ids;
}

// Merges are "left right" strings (tokenizers < 0.20) or ["left", "right"] pairs.
Expected<std::vector<std::pair<std::string, std::string>>> read_merges(const json& model) {
  std::vector<std::pair<std::string, std::string>> pairs;
  if (!model.contains("merges")) return pairs;
  const json& merges = model.at("merges");
  pairs.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    if (m.is_array() && m.size() == 2) {
      pairs.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      continue;
    }
    const std::string line = m.get<std::string>();
    const size_t space = line.find(' ', 1);
    if (space == std::string::npos) return make_error("model.merges[{}] = '{}' is not 'left right'", i, line);
    pairs.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  return pairs;
}

// A token id: an integer in [0, 2^31); `what` names the entry in the message.
Expected<int32_t> token_id(const json& v, const std::string& what) {
  constexpr int64_t kLimit = int64_t{1} << 31;
  if (v.is_number_unsigned() && v.get<uint64_t>() < static_cast<uint64_t>(kLimit)) {
    return static_cast<int32_t>(v.get<uint64_t>());
  }
  if (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() >= 0 && v.get<int64_t>() < kLimit) {
    return static_cast<int32_t>(v.get<int64_t>());
  }
  return make_error("{} has id {}, expected an integer in [0, 2^31)", what, describe_json(v));
}

// Ids index a dense table, so every id must be below the number of entries
// (model.vocab plus added_tokens, which may repeat vocab ids): a file naming
// id 16777215 with one entry is refused before anything is allocated.
Expected<Vocab> read_vocab(const json& root, const json& model, bool byte_pieces) {
  const json& entries = model.at("vocab");
  if (!entries.is_object()) return make_error("model.vocab is not an object");
  const json added = root.value("added_tokens", json::array());
  if (!added.is_array()) return make_error("added_tokens is {}, expected an array", describe_json(added));
  const int64_t n_entries = static_cast<int64_t>(entries.size() + added.size());
  int64_t max_id = -1;
  std::string max_what;
  std::vector<std::pair<int32_t, std::string>> vocab_ids;  // [entries.size()]: (id, piece)
  vocab_ids.reserve(entries.size());
  for (const auto& [piece, id_json] : entries.items()) {
    const std::string what = fmt::format("model.vocab['{}']", piece);
    LB_ASSIGN_OR_RETURN(const int32_t id, token_id(id_json, what));
    if (id > max_id) {
      max_id = id;
      max_what = what;
    }
    vocab_ids.emplace_back(id, piece);
  }
  std::vector<int32_t> added_ids;  // [added.size()]
  for (const json& t : added) {
    if (!t.is_object()) return make_error("added_tokens entry is {}, expected an object", describe_json(t));
    const std::string what = fmt::format("added_tokens entry '{}'", t.value("content", ""));
    if (!t.contains("id")) return make_error("{} has no id", what);
    LB_ASSIGN_OR_RETURN(const int32_t id, token_id(t.at("id"), what));
    if (id > max_id) {
      max_id = id;
      max_what = what;
    }
    added_ids.push_back(id);
  }
  if (max_id < 0) return make_error("model.vocab is empty");
  if (max_id >= n_entries) {
    return make_error("{} has id {}, but model.vocab and added_tokens hold only {} entries (ids must be dense)",
                      max_what, max_id, n_entries);
  }

  std::vector<std::string> pieces(max_id + 1);
  std::vector<TokenKind> kinds(max_id + 1, TokenKind::kUnused);
  for (const auto& [id, piece] : vocab_ids) {
    pieces[id] = piece;
    kinds[id] = byte_pieces && parse_byte_piece(piece) >= 0 ? TokenKind::kByte : TokenKind::kNormal;
  }
  for (size_t i = 0; i < added.size(); ++i) {
    pieces[added_ids[i]] = added[i].at("content").get<std::string>();
    kinds[added_ids[i]] = added[i].value("special", false) ? TokenKind::kControl : TokenKind::kUserDefined;
  }
  return Vocab(std::move(pieces), std::move(kinds));
}

Expected<std::unique_ptr<Tokenizer>> build(const std::string& path, const json& root) {
  if (!root.is_object() || !root.contains("model")) return make_error("no 'model' section");
  const json& model = root.at("model");
  if (const std::string type = model.value("type", "BPE"); type != "BPE") {
    return make_error("model type '{}' is not supported (only BPE)", type);
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && model.at(key).is_string() && !model.at(key).get<std::string>().empty()) {
      return make_error("model.{} is not supported", key);
    }
  }
  Pipeline pipeline;
  LB_RETURN_IF_ERROR(read_pre_tokenizer(root, pipeline));
  LB_RETURN_IF_ERROR(read_normalizer(root, pipeline));

  const bool byte_fallback = model.value("byte_fallback", false);
  LB_ASSIGN_OR_RETURN(Vocab vocab, read_vocab(root, model, !pipeline.byte_level && byte_fallback));
  LB_ASSIGN_OR_RETURN(const auto pairs, read_merges(model));
  size_t skipped = 0;
  MergeTable merges = merges_from_ranked_pairs(vocab, pairs, &skipped);
  if (skipped > 0) return make_error("{} of {} merges name pieces that are not in model.vocab", skipped, pairs.size());
  LB_ASSIGN_OR_RETURN(const SpecialIds special_ids, read_special_ids(path, root, vocab));
  SpecialTokenSplitter specials(vocab);

  if (pipeline.byte_level) {
    LB_ASSIGN_OR_RETURN(RegexSplitter splitter, RegexSplitter::compile(pipeline.patterns));
    ByteBpeOptions options;
    options.ignore_merges = model.value("ignore_merges", false);
    options.add_prefix_space = pipeline.byte_level_prefix_space;
    return make_byte_bpe_tokenizer(std::move(vocab), std::move(merges), std::move(specials), special_ids,
                                   std::move(splitter), options);
  }
  if (!pipeline.patterns.empty()) return make_error("Split/Digits pre-tokenizers need ByteLevel");
  SpmOptions options;
  options.space_prefix = pipeline.space_prefix;
  options.escape_spaces = pipeline.escape_spaces;
  options.split_at_space_marker = pipeline.split_at_space_marker;
  if (model.contains("unk_token") && model.at("unk_token").is_string()) {
    options.unk_id = vocab.find(model.at("unk_token").get<std::string>());
  }
  return make_spm_tokenizer(std::move(vocab), std::move(merges), std::move(specials), special_ids, options);
}

}  // namespace

Expected<std::unique_ptr<Tokenizer>> load_hf_tokenizer_json(const std::string& path) {
  LB_ASSIGN_OR_RETURN(const std::string text, read_text_file(path));
  // nlohmann::json reports wrong types and missing keys by exception; they end
  // here as an error naming the file.
  try {
    LB_ASSIGN_OR_RETURN(const json root, parse_untrusted_json(text, path));
    auto tokenizer = build(path, root);
    if (!tokenizer.ok()) return tokenizer.status().with_context(path);
    return tokenizer;
  } catch (const json::exception& e) {
    return make_error("{}: {}", path, e.what());
  }
}

}  // namespace lowbit
