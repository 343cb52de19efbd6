// The `lowbit inspect` report: the statistics of one or more runs of inspect_model
// (the model as loaded, rotated, smoothed) as JSON (everything, channel maxima
// included) and as a text report (per layer one line per input point, the massive
// activations, the overall top outlier channels, mixed-precision suggestions and
// a comparison of the runs).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pipeline/calibration.h"
#include "pipeline/inspect.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {

struct InspectReport {
  std::string model_path;
  nlohmann::json calibration;                  // path, n_samples, seq_len, seed, bos
  const CalibrationSet* windows = nullptr;     // the tokens (massive activations name theirs)
  const Tokenizer* tokenizer = nullptr;        // token text; may be null
  int top_k = 8;
  std::vector<InspectVariant> variants;        // variants[0] is the model as loaded
  std::vector<std::string> notes;              // printed and stored as they are
};

// Where a row of the calibration matrix comes from.
struct TokenPlace {
  int sample = 0;
  int position = 0;
  int32_t token = 0;
  std::string text;  // the token's bytes with control characters escaped ("" without a tokenizer)
};
TokenPlace token_place(const InspectReport& report, int64_t row);

nlohmann::json inspect_report_json(const InspectReport& report);
std::string inspect_report_text(const InspectReport& report);

}  // namespace lowbit
