// A quantized (or any) Llama-family model in lowbit's own file, as the
// quantization pipeline writes it and `lowbit info|generate|ppl` read it. The
// byte layout is the container of io/lowbit_container.h; this file fixes what is
// in it (docs/FORMAT.md is the full description):
//   header keys   lowbit.format_version (u32), lowbit.config (JSON ModelConfig),
//                 lowbit.recipe (JSON, the recipe document), lowbit.calibration
//                 (JSON, {} when none), lowbit.source (JSON {"path", "format"}),
//                 optional lowbit.kv (JSON KV-cache configuration, used by ppl/generate),
//                 optional lowbit.rotation (JSON, model/rotation_spec.h),
//                 lowbit.trellis_codebook (u32, kTrellisCodebookVersion; required
//                 where a record is trellis-coded: files of the old codebook are refused),
//                 tokenizer.* copied from a GGUF source
//   index         {"tensors": [record, ...]}, one record per stored tensor, in the
//                 order written: token_embedding, then per layer attn_norm, the
//                 seven linears (and q/k/v biases), ffn_norm; output_norm, lm_head
//                 (untied only), rope_freqs (when present)
//   record        {"name", "shape": [rows, cols] (vectors: [n]), "format": name,
//                  "spec": {...} (scaled formats) or "gguf": {"type", "block_size",
//                  "bytes_per_block"} (GGUF block types: the tensor bytes in "codes"),
//                  "codes", "scales", "mins": blob refs,
//                  "tensor_scale", optional "outliers": {"count", "data"},
//                  optional "lowrank": {"rank", "format", "u": part, "v": part},
//                  optional "method",
//                  optional "act": the linear's activation quantizer, the spec of
//                  quant/act_quant.h plus "threshold" (FP32 T, per-tensor static only)}
// Every tensor is stored as a QuantizedWeight under a format name: a scaled
// format, a GGUF block type (quant/weight_format.h), or "fp32" (raw floats in
// codes) for norms and unquantized tensors.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/lowbit_container.h"
#include "model/config.h"
#include "model/weights.h"
#include "quant/quantized_weight.h"

namespace lowbit {

constexpr uint32_t kLowbitFormatVersion = 1;
constexpr const char* kTrellisCodebookKey = "lowbit.trellis_codebook";

nlohmann::json config_to_json(const ModelConfig& config);
Expected<ModelConfig> config_from_json(const nlohmann::json& j, const std::string& source);

// What the header records besides the config.
struct LowbitFileInfo {
  ModelConfig config;
  nlohmann::json recipe = nlohmann::json::object();       // the recipe document
  nlohmann::json calibration = nlohmann::json::object();  // {} when none was used
  nlohmann::json source = nlohmann::json::object();       // {"path", "format"}
  nlohmann::json kv = nullptr;  // lowbit.kv: a KV configuration (kvcache/kv_config_file.h); null = none
  // lowbit.rotation: the QuaRot rotation the weights carry (model/rotation_spec.h
  // JSON plus a descriptive "transforms"); null = none. The runtime wraps down_proj
  // in its online transform when "online_down" is true.
  nlohmann::json rotation = nullptr;
};

class LowbitFileWriter {
 public:
  // What it takes to continue the file in another process (a resumed
  // quantization, pipeline/quantize_checkpoint.h): `path`.tmp's first `bytes`
  // bytes hold the header image (ending at `data_begin`) and the blobs of the index
  // records `tensors`.
  struct State {
    uint64_t data_begin = 0;
    uint64_t bytes = 0;
    nlohmann::json tensors = nlohmann::json::array();
  };

  // Starts `path`.tmp with the header. `tokenizer_gguf`, when not null, is a GGUF
  // file whose tokenizer.* keys are copied.
  static Expected<LowbitFileWriter> create(const std::string& path, const LowbitFileInfo& info,
                                           const GgufFile* tokenizer_gguf);

  // A tensor in any storage; shape [rows, cols] for matrices, [n] for vectors
  // (stored as rows = 1). `method` is recorded for `lowbit info` ("" = none).
  Status add(const std::string& name, const std::vector<int64_t>& shape, const QuantizedWeight& q,
             const std::string& method);
  // Continues `path`.tmp left by an earlier process at `state` (its tail after
  // state.bytes is cut off).
  static Expected<LowbitFileWriter> reopen(const std::string& path, State state);
  // The state after the tensors added so far; call sync() before recording it.
  State state() const { return {container_.data_begin(), container_.bytes_written(), tensors_}; }
  // Flushes the bytes written so far to the disk.
  Status sync() { return container_.sync(); }
  // SIGINT/SIGTERM leave `path`.tmp from now on (a checkpoint refers to it).
  void keep_on_interrupt() { container_.keep_on_interrupt(); }
  const std::string& temp_path() const { return container_.temp_path(); }

  // An FP32 vector or matrix, stored raw.
  Status add_fp32(const std::string& name, const std::vector<int64_t>& shape, const float* data);
  // Sets `key` of the record of tensor `name`, already added (e.g. "act": the
  // linear's activation quantizer). Error when no such tensor was added.
  Status set_record_field(const std::string& name, const std::string& key, nlohmann::json value);

  // Writes the index and renames the file into place. Without this call the
  // destructor removes the temporary file.
  Status finish();

  uint64_t bytes_written() const { return container_.bytes_written(); }

 private:
  explicit LowbitFileWriter(ContainerWriter container) : container_(std::move(container)) {}
  Expected<nlohmann::json> write_part(const std::string& what, const std::string& format, const QuantizedTensor& t);

  ContainerWriter container_;
  nlohmann::json tensors_ = nlohmann::json::array();
};

class LowbitModelFile {
 public:
  static Expected<LowbitModelFile> open(const std::string& path);

  const std::string& path() const { return container_->path(); }
  const LowbitFileInfo& info() const { return info_; }
  const ModelConfig& config() const { return info_.config; }
  const GgufFile& header() const { return container_->header(); }
  bool has(const std::string& name) const { return records_.count(name) != 0; }

  // The stored form of a tensor; its shape must be `shape`. Errors name the file and tensor.
  Expected<QuantizedWeight> read(const std::string& name, const std::vector<int64_t>& shape) const;
  // The same dequantized to FP32; the tensor's mapped pages are then dropped (drop_pages).
  Expected<std::vector<float>> read_fp32(const std::string& name, const std::vector<int64_t>& shape) const;
  // Drops the resident pages of every blob of tensor `name` (its bytes were read
  // and converted; ContainerReader::drop_pages). No-op for an unknown name.
  void drop_pages(const std::string& name) const;
  // Whether a stored tensor is in a non-FP32 storage.
  bool is_quantized(const std::string& name) const;
  // Field `key` of the record of `name`; null when the tensor or the field is absent.
  const nlohmann::json* record_field(const std::string& name, const std::string& key) const;

  // One row per stored tensor: dtype = format name, bytes = stored bytes.
  FileSummary summary() const;

 private:
  explicit LowbitModelFile(std::unique_ptr<ContainerReader> container) : container_(std::move(container)) {}
  Expected<QuantizedTensor> read_part(const nlohmann::json& part, const std::string& format, int64_t rows, int64_t cols,
                                      const std::string& what) const;

  std::unique_ptr<ContainerReader> container_;
  LowbitFileInfo info_;
  std::map<std::string, const nlohmann::json*> records_;  // into container_->index()
};

}  // namespace lowbit
