#include "pipeline/export_gguf.h"

namespace lowbit {

Status check_gguf_export_options(const ExportOptions&) { return Status::ok_status(); }

Expected<ExportReport> export_gguf(const ExportOptions& options) {
  return make_error("export --to gguf: not implemented yet");
}

}  // namespace lowbit
