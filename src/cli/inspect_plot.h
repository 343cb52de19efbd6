// `lowbit inspect --plot DIR`: PNG plots of an inspect report drawn by gnuplot
// (cli/gnuplot.h), with the data files and the gnuplot script beside them so a
// plot can be redrawn or restyled:
//   channel_max_{residual,attn_in,down_in}.png  heat maps, layer × channel, of
//       max|x| (log colour scale shared by the panels), one panel per run
//       (none | rot | smooth) side by side; data channel_max_{point}_{run}.dat
//       (gnuplot "matrix": one row per layer, one column per channel);
//   absmax_per_layer.png  absmax of every input point per layer, one line per run;
//       data absmax_per_layer.dat;
//   channel_profile_{attn_in,down_in}.png  max|x| per channel of the layer whose
//       input has the largest absmax in the first run, one line per run; data
//       channel_profile_{point}.dat.
// Every file is written under a temporary name and renamed.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "pipeline/inspect_report.h"

namespace lowbit::cli {

// Writes the plots into `dir` (created when missing); returns the PNG paths.
Expected<std::vector<std::string>> write_inspect_plots(const InspectReport& report, const std::string& dir,
                                                       const std::string& gnuplot);

}  // namespace lowbit::cli
