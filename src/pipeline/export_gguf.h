// `lowbit export --to gguf`: a GGUF v3 file llama.cpp loads (architecture
// "llama", or "qwen2" when the config says so), from any model lowbit reads.
// export_gguf.cpp gives the per-tensor rules; docs/FORMAT.md the file.
#pragma once

#include "pipeline/export.h"

namespace lowbit {

// --type names one of f32, f16, bf16 or a llama.cpp block type (formats/gguf_blocks.h).
Status check_gguf_export_options(const ExportOptions& options);
Expected<ExportReport> export_gguf(const ExportOptions& options);

}  // namespace lowbit
