// The numbers of a perplexity run as they appear in reports: `lowbit ppl --json`
// and the Python package's lowbit.perplexity share this one list of keys, so the
// two cannot name or omit a metric differently.
#pragma once

#include <nlohmann/json.hpp>

#include "eval/perplexity.h"

namespace lowbit::cli {

// chunks, tokens_scored, ppl, ppl_stderr, nll, nll_stderr, seconds; with a base
// model also base_ppl, kld_{mean,stderr,median,p99,max}, top1_agree(_stderr),
// delta_p_{mean,stderr}. The caller adds what describes the run (paths, ctx, KV).
nlohmann::json ppl_metrics_json(const PplResult& r);

}  // namespace lowbit::cli
