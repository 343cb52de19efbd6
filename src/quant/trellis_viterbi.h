// The encoder of trellis-coded weights (formats/trellis_code.h): for one
// tail-biting sequence of target values (already divided by the group's scale),
// the bit string whose decoded values minimise Σ_i w_i (x_i − value_i)².
//
// Viterbi over the 2^L states. With K = 2^k, J = 2^(L−k), the predecessors of
// state s are the K states j·K + p (p < K) with j = s mod J (s keeps the high
// L − k bits of its predecessor as its low bits), so one step is
//   m[j]           = min_p cost_{t−1}[j·K + p]                       (a min over K neighbours)
//   cost_t[n·J + j] = err_t(n·J + j) + m[j]                           (contiguous in j)
// both loops without branches, which the compiler vectorises; the arithmetic is
// one subtraction, multiplications and additions in a fixed order, and min, so
// every ISA and thread count gives the same floats and the same bits. The cost
// rows of all steps are kept (steps · 2^L floats: 1 MB for tcq2), so the
// back-trace recomputes a state's best predecessor instead of storing it: ties
// go to the lowest predecessor index, at the end to the lowest state.
//
// Tail-biting (the string is circular: s_0 mod J = s_{T−1} >> k):
//   kTwoPass   QTIP's heuristic: an unconstrained pass; if its best path is not
//              already tail-biting, a second pass with the start and end
//              constrained to the overlap bits of that path's end state. A valid
//              string, not always the optimum. Production.
//   kExact     the constrained pass for every one of the J overlaps: the optimum,
//              at J times the cost (tests on small trellises).
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "formats/trellis_code.h"
#include "kernels/cpu_features.h"

namespace lowbit {

struct TrellisStepKernels;  // quant/trellis_viterbi_steps.h

enum class TailBiting { kTwoPass, kExact };

// Buffers and the codebook of one parameter set and sequence length; one per
// thread, reused for every sequence.
class TrellisEncoder {
 public:
  // steps: trellis steps per sequence (p.steps() in the stored form; tests use
  // short ones); needs L <= steps · k (each bit read at most once per state) and
  // 1 <= k <= 8, k < L <= 16. isa picks the build of the step loops (the bits do
  // not depend on it).
  static Expected<TrellisEncoder> create(const TrellisParams& p, int steps, Isa isa = active_isa());
  // The stored form's sequence length.
  static Expected<TrellisEncoder> create(const TrellisParams& p) { return create(p, p.steps()); }

  const TrellisParams& params() const { return p_; }
  int steps() const { return steps_; }
  int length() const { return steps_ * p_.values_per_step; }        // values per sequence
  int bytes() const { return (steps_ * p_.step_bits + 7) / 8; }       // of the bit string
  // sqrt(mean(value²)) over the 2^L · V codebook entries.
  double codebook_rms() const { return codebook_rms_; }

  // x [length()] targets, weight [length()] (>= 0) or null (all 1) -> bits
  // [bytes()]: bit i of the string is bit i % 8 of byte i / 8 (as stored).
  // Returns the path's cost Σ w (x − value)² as the Viterbi summed it (float).
  float encode(const float* x, const float* weight, TailBiting tail, uint8_t* bits);

 private:
  TrellisEncoder() = default;
  // One Viterbi pass: start states allowed where (s mod J) == overlap (all if
  // overlap < 0), end states where (s >> k) == overlap (all if < 0). Writes the
  // states of the best path to states_; returns its cost (inf if none).
  float pass(int overlap);
  void write_bits(const std::vector<uint32_t>& states, uint8_t* bits) const;

  TrellisParams p_;
  int steps_ = 0;
  double codebook_rms_ = 0.0;
  std::vector<float> values_;  // [V][2^L] codebook values, value j of state s at j·2^L + s
  std::vector<float> x_, w_;   // [length] the current sequence
  std::vector<float> cost_;    // [steps][2^L] path costs
  std::vector<float> start_;   // [2^L] 0 or +inf: the allowed start states of a pass
  std::vector<float> min_;     // [2^(L−k)] m of the current step
  std::vector<uint32_t> states_;  // [steps] best path of the last pass
  std::vector<uint32_t> best_;    // [steps] kExact: the best over the overlaps
  const TrellisStepKernels* kernels_ = nullptr;
};

}  // namespace lowbit
