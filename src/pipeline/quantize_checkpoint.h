// Resumable quantization: `lowbit quantize ... --resume` continues a killed run
// after its last finished decoder layer and writes the same bytes an
// uninterrupted run writes (docs/QUANTIZATION.md, "Resuming a killed run").
//
// After decoder layer i (0-based) the pipeline writes OUT.ckpt beside OUT.tmp:
//   [0, 8)          magic "LBCKPT1\n"
//   [8, 16)         u64 J: bytes of the JSON state
//   [16, 16 + J)    JSON state: {"version", "fingerprint": run_fingerprint(),
//                   "layers_done": i + 1, "n_layers",
//                   "writer": {"data_begin", "bytes", "crc32", "tensors"}  (LowbitFileWriter::State;
//                             crc32 of OUT.tmp's first "bytes" bytes),
//                   "modules": [ModuleReport, ...] (every field, exactly), "linear_params",
//                   "linear_bytes", "hidden_shape": [n_samples, seq_len, dim] ([] without calibration)}
//   next 8 bytes    u64 H: bytes of the hidden states (0 without calibration)
//   next H bytes    FP32 calibration hidden states after layer i [n_samples, seq_len, dim]
//   last 4 bytes    u32 CRC-32 (core/crc32.h) of every byte before it
// All integers little-endian. It is written as OUT.ckpt.tmp (fsync) and renamed,
// after OUT.tmp was flushed (fsync), so a SIGKILL or power loss at any moment
// leaves the previous checkpoint whole and OUT.tmp at least as long as it says.
// The writing runs on a thread of its own while the next layer's statistics pass
// reads the same hidden states; the pipeline joins it before that layer's first
// linear is quantized (and before the states are updated).
//
// On resume the checkpoint's fingerprint must equal this run's, its CRC must
// match, and OUT.tmp's first "bytes" bytes must match "crc32"; OUT.tmp is then cut
// to that length and the writer, the module reports and the hidden states are
// restored. Nothing else is carried: the rotation is re-derived from the recipe
// (deterministic), the calibration windows are re-read (deterministic in the seed),
// and every later layer depends only on its weights and the restored states.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/interrupt_cleanup.h"
#include "core/status.h"
#include "model/lowbit_file.h"
#include "pipeline/quantize_pipeline.h"

namespace lowbit {

// OUT.ckpt for output OUT.
std::string checkpoint_path(const std::string& output_path);

// The inputs that decide the output's bytes, as a resume compares them: the
// model, tokenizer and calibration files (absolute path, size and modification
// time; a folder: each file in it), the recipe document, the calibration shape
// and seed (`calibration`: what the output file records of it), the KV
// configuration, --threads, the build identity (PipelineOptions::build_id), the
// kernel level (LOWBIT_ISA) and the format versions.
nlohmann::json run_fingerprint(const Recipe& recipe, const PipelineOptions& o, const nlohmann::json& calibration);

// What a checkpoint restores.
struct QuantizeCheckpointData {
  int layers_done = 0;  // decoder layers finished: the run continues with layer layers_done
  LowbitFileWriter::State writer;
  std::vector<ModuleReport> modules;  // token_embedding and the finished layers' linears
  uint64_t linear_params = 0;
  uint64_t linear_bytes = 0;
  std::vector<float> hidden;  // [n_samples, seq_len, dim]; empty without calibration
};

// The exact round trip of a module report through the checkpoint's JSON.
nlohmann::json module_to_json(const ModuleReport& m);
Expected<ModuleReport> module_from_json(const nlohmann::json& j);

class QuantizeCheckpointer {
 public:
  // test_hook: PipelineOptions::test_hook, called with ("checkpoint_write", layers done) once
  // OUT.ckpt.tmp is written, before it is renamed (may be empty).
  QuantizeCheckpointer(const std::string& output_path, nlohmann::json fingerprint, int n_layers,
                       std::function<void(const std::string&, int64_t)> test_hook = {});
  QuantizeCheckpointer(const QuantizeCheckpointer&) = delete;
  QuantizeCheckpointer& operator=(const QuantizeCheckpointer&) = delete;
  // Removes the checkpoint once the run owns it (start() succeeded): the run
  // finished or failed with an error, and OUT.tmp is removed with it. Not run on
  // SIGKILL or SIGINT/SIGTERM, which leave both for --resume.
  ~QuantizeCheckpointer();

  // resume: loads and checks OUT.ckpt (none: a note, and the run starts from the
  // first layer); `hidden_floats` is the size the hidden states must have
  // (n_samples · seq_len · dim, 0 without calibration). Errors are one line and
  // leave the checkpoint and OUT.tmp as they are. Not resume: discards a stale
  // checkpoint (with a note).
  Expected<std::optional<QuantizeCheckpointData>> start(bool resume, size_t hidden_floats);

  // After `layers_done` decoder layers: flushes the writer (this thread) and starts
  // writing OUT.ckpt on a thread of its own (the CRC, the write and its fsync overlap
  // the next layer's statistics pass). `hidden` is read until finish_save() returns:
  // the caller must not change it before. Finishes an earlier save first.
  Status begin_save(int layers_done, LowbitFileWriter& writer, const QuantizeReport& report,
                    const std::vector<float>& hidden, const std::vector<int64_t>& hidden_shape);
  // Waits for the save in progress (none: returns at once) and returns its status;
  // once it returns ok, OUT.ckpt holds that save and the interrupt note names it.
  Status finish_save();
  bool saving() const { return writer_thread_.joinable(); }
  int saving_layers() const { return pending_layers_; }  // layers_done of the save in progress

  const std::string& path() const { return path_; }
  // What the saves finished so far cost: checkpoints written, their bytes, and the
  // seconds spent (flushing OUT.tmp and its CRC on the caller's thread, then writing
  // the checkpoint on its own thread, overlapping the next layer).
  int saves() const { return saves_; }
  uint64_t saved_bytes() const { return saved_bytes_; }
  double save_seconds() const { return save_seconds_; }

 private:
  Expected<QuantizeCheckpointData> load(size_t hidden_floats);
  void arm_interrupt_note(int layers_done);
  // OUT.ckpt.tmp written (magic, JSON, hidden states, CRC), fsync'd and renamed.
  Status write_file(const std::string& text, const float* hidden, size_t hidden_floats);

  std::string output_path_;
  std::string path_;  // OUT.ckpt
  nlohmann::json fingerprint_;
  int n_layers_ = 0;
  std::function<void(const std::string&, int64_t)> test_hook_;
  bool owned_ = false;          // start() succeeded: this run writes and finally removes the checkpoint
  uint64_t crc_bytes_ = 0;      // OUT.tmp's first crc_bytes_ bytes ...
  uint32_t crc_ = 0;            // ... have this CRC-32
  int saves_ = 0;
  uint64_t saved_bytes_ = 0;
  double save_seconds_ = 0.0;
  std::optional<NoteOnInterrupt> note_;  // "interrupted; rerun with --resume" once a checkpoint exists
  // The save in progress (begin_save .. finish_save); the thread writes only the pending_* fields.
  std::thread writer_thread_;
  int pending_layers_ = 0;
  Status pending_status_;
  uint64_t pending_bytes_ = 0;
  double pending_seconds_ = 0.0;
};

}  // namespace lowbit
