#include "pipeline/calibration.h"

#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "io/untrusted_json.h"

namespace lowbit {
namespace {

// Uniform in [0, n), n > 0: raw draws below 2^64 mod n are rejected so the
// remaining range is a multiple of n (unbiased, and the same on every platform).
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t threshold = (0 - n) % n;  // 2^64 mod n
  uint64_t r = rng();
  while (r < threshold) r = rng();
  return r % n;
}

Status check_options(const CalibrationOptions& o, int32_t bos_id, const std::string& source) {
  if (o.n_samples <= 0) return make_error("{}: calibration needs at least one sample, got {}", source, o.n_samples);
  if (o.seq_len <= 0) return make_error("{}: calibration length must be positive, got {}", source, o.seq_len);
  if (o.bos != CalibrationBos::kNone && bos_id < 0) {
    return make_error("{}: calibration asks for BOS but the tokenizer has none", source);
  }
  return Status::ok_status();
}

CalibrationSet empty_set(const CalibrationOptions& o) {
  CalibrationSet set;
  set.seq_len = o.seq_len;
  set.tokens.reserve(static_cast<size_t>(o.n_samples) * o.seq_len);
  set.windows.reserve(static_cast<size_t>(o.n_samples));
  return set;
}

// Appends tokens[offset, offset + seq_len) as a window, BOS first under kFirstToken.
void append_window(const std::vector<int32_t>& tokens, int64_t document, int64_t offset, int32_t bos_id,
                   const CalibrationOptions& o, CalibrationSet& set) {
  const size_t start = set.tokens.size();
  set.tokens.insert(set.tokens.end(), tokens.begin() + offset, tokens.begin() + offset + o.seq_len);
  if (o.bos == CalibrationBos::kFirstToken) set.tokens[start] = bos_id;
  set.windows.push_back({document, offset});
}

Expected<std::vector<int32_t>> tokenize(const Tokenizer& tokenizer, const std::string& text, CalibrationBos bos) {
  std::vector<int32_t> tokens;
  if (bos == CalibrationBos::kDocumentStart) tokens.push_back(tokenizer.bos_id());
  LB_ASSIGN_OR_RETURN(const std::vector<int32_t> body, tokenizer.encode_checked(text));
  tokens.insert(tokens.end(), body.begin(), body.end());
  return tokens;
}

}  // namespace

Expected<CalibrationSet> sample_token_windows(const std::vector<int32_t>& text_tokens, int32_t bos_id,
                                              const CalibrationOptions& o, const std::string& source) {
  LB_RETURN_IF_ERROR(check_options(o, bos_id, source));
  std::vector<int32_t> with_bos;
  const std::vector<int32_t>* tokens = &text_tokens;
  if (o.bos == CalibrationBos::kDocumentStart) {
    with_bos.reserve(text_tokens.size() + 1);
    with_bos.push_back(bos_id);
    with_bos.insert(with_bos.end(), text_tokens.begin(), text_tokens.end());
    tokens = &with_bos;
  }
  const int64_t n = static_cast<int64_t>(tokens->size());
  if (n < o.seq_len) {
    return make_error("{}: {} tokens, fewer than the calibration length {}", source, n, o.seq_len);
  }
  std::mt19937_64 rng(o.seed);
  CalibrationSet set = empty_set(o);
  for (int i = 0; i < o.n_samples; ++i) {
    const int64_t offset = static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(n - o.seq_len + 1)));
    append_window(*tokens, 0, offset, bos_id, o, set);
  }
  return set;
}

Expected<CalibrationSet> sample_document_windows(const std::vector<std::string>& documents, const Tokenizer& tokenizer,
                                                 const CalibrationOptions& o, const std::string& source) {
  LB_RETURN_IF_ERROR(check_options(o, tokenizer.bos_id(), source));
  if (documents.empty()) return make_error("{}: no documents", source);
  std::mt19937_64 rng(o.seed);
  std::map<int64_t, std::vector<int32_t>> tokenized;  // documents picked so far
  int64_t long_enough = 0;                            // of those, with >= seq_len tokens
  CalibrationSet set = empty_set(o);
  for (int i = 0; i < o.n_samples; ++i) {
    const std::vector<int32_t>* tokens = nullptr;
    int64_t doc = 0;
    while (tokens == nullptr) {
      if (long_enough == 0 && tokenized.size() == documents.size()) {
        return make_error("{}: none of the {} documents has {} tokens (the calibration length)", source,
                          documents.size(), o.seq_len);
      }
      doc = static_cast<int64_t>(uniform_below(rng, documents.size()));
      auto [it, inserted] = tokenized.try_emplace(doc);
      if (inserted) {
        auto tokens_of_doc = tokenize(tokenizer, documents[doc], o.bos);
        if (!tokens_of_doc.ok()) return tokens_of_doc.status().with_context(source);
        it->second = std::move(tokens_of_doc).value();
        if (static_cast<int64_t>(it->second.size()) >= o.seq_len) ++long_enough;
      }
      if (static_cast<int64_t>(it->second.size()) >= o.seq_len) tokens = &it->second;
    }
    const uint64_t n_starts = tokens->size() - static_cast<size_t>(o.seq_len) + 1;
    append_window(*tokens, doc, static_cast<int64_t>(uniform_below(rng, n_starts)), tokenizer.bos_id(), o, set);
  }
  return set;
}

Expected<std::vector<std::string>> read_jsonl_texts(const std::string& path) {
  LB_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  std::vector<std::string> texts;
  size_t begin = 0;
  for (int64_t line_no = 1; begin < text.size(); ++line_no) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + begin, end - begin);
    begin = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const Expected<nlohmann::json> parsed = parse_untrusted_json(line, fmt::format("{}:{}", path, line_no));
    if (!parsed.ok() || !parsed->is_object()) return make_error("{}:{}: not a JSON object", path, line_no);
    const nlohmann::json& j = parsed.value();
    auto field = j.find("text");
    if (field == j.end() || !field->is_string()) {
      return make_error("{}:{}: no string field \"text\"", path, line_no);
    }
    texts.push_back(field->get<std::string>());
  }
  return texts;
}

Expected<CalibrationSet> load_calibration(const std::string& path, const Tokenizer& tokenizer,
                                          const CalibrationOptions& options) {
  if (path.ends_with(".jsonl")) {
    LB_ASSIGN_OR_RETURN(std::vector<std::string> documents, read_jsonl_texts(path));
    return sample_document_windows(documents, tokenizer, options, path);
  }
  LB_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  auto tokens = tokenizer.encode_checked(text);
  if (!tokens.ok()) return tokens.status().with_context(path);
  return sample_token_windows(*tokens, tokenizer.bos_id(), options, path);
}

}  // namespace lowbit
