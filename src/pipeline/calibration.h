// Calibration data for post-training quantization: N random windows of L tokens,
// reproducible from a seed.
//  - A text file (WikiText-2, ...) is tokenized once and each window starts at a
//    uniform random offset in [0, n_tokens - L] (GPTQ's WikiText-2 loader).
//  - A JSONL corpus (one JSON object per line with a "text" field, e.g. C4) is
//    sampled as GPTQ samples C4: pick a uniform random document, re-pick until
//    one has at least L tokens, then take a uniform random L-token window of it.
//    Documents are tokenized only when picked.
// Random numbers come from std::mt19937_64 seeded with the seed, mapped to ranges
// by rejection (not std::uniform_int_distribution, whose output differs between
// standard libraries), so a seed gives the same windows everywhere.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {

enum class CalibrationBos {
  kNone,           // text tokens only
  kFirstToken,     // the first token of every window is replaced by BOS (llama.cpp imatrix)
  kDocumentStart,  // BOS in front of every document before sampling, as Hugging Face
                   // tokenizers add it for Llama (GPTQ); a window may start with it
};

struct CalibrationOptions {
  int n_samples = 128;
  int seq_len = 2048;
  uint64_t seed = 0;
  CalibrationBos bos = CalibrationBos::kNone;
};

// Where a window came from.
struct CalibrationWindow {
  int64_t document = 0;  // index into the documents (JSONL: non-blank lines in order); 0 for a text file
  int64_t offset = 0;    // first token's index in that document's tokens (BOS included under kDocumentStart)
};

struct CalibrationSet {
  int seq_len = 0;
  std::vector<int32_t> tokens;             // [n_samples, seq_len]
  std::vector<CalibrationWindow> windows;  // [n_samples]

  int n_samples() const { return static_cast<int>(windows.size()); }
  const int32_t* sample(int i) const { return tokens.data() + static_cast<size_t>(i) * seq_len; }
};

// Windows of one token sequence (a text tokenized once, BOS not yet added).
// `source` names it in errors.
Expected<CalibrationSet> sample_token_windows(const std::vector<int32_t>& text_tokens, int32_t bos_id,
                                              const CalibrationOptions& options, const std::string& source);

// GPTQ's document sampling over texts tokenized on demand.
Expected<CalibrationSet> sample_document_windows(const std::vector<std::string>& documents, const Tokenizer& tokenizer,
                                                 const CalibrationOptions& options, const std::string& source);

// The "text" field of every non-blank line of a JSONL file; errors name the file
// and the 1-based line number.
Expected<std::vector<std::string>> read_jsonl_texts(const std::string& path);

// A ".jsonl" path is sampled as documents, anything else as one text.
Expected<CalibrationSet> load_calibration(const std::string& path, const Tokenizer& tokenizer,
                                          const CalibrationOptions& options);

}  // namespace lowbit
