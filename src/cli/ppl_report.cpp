#include "cli/ppl_report.h"

namespace lowbit::cli {

nlohmann::json ppl_metrics_json(const PplResult& r) {
  nlohmann::json j = {
      {"chunks", r.chunks},         {"tokens_scored", r.tokens_scored}, {"ppl", r.ppl},
      {"ppl_stderr", r.ppl_stderr}, {"nll", r.nll_mean},                {"nll_stderr", r.nll_stderr},
      {"seconds", r.seconds},
  };
  if (r.has_base) {
    j["base_ppl"] = r.base_ppl;
    j["kld_mean"] = r.kld_mean;
    j["kld_stderr"] = r.kld_stderr;
    j["kld_median"] = r.kld_median;
    j["kld_p99"] = r.kld_p99;
    j["kld_max"] = r.kld_max;
    j["top1_agree"] = r.top1_agree;
    j["top1_agree_stderr"] = r.top1_agree_stderr;
    j["delta_p_mean"] = r.delta_p_mean;
    j["delta_p_stderr"] = r.delta_p_stderr;
  }
  return j;
}

}  // namespace lowbit::cli
