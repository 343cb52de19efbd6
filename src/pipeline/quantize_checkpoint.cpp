#include "pipeline/quantize_checkpoint.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <utility>

#include "core/atomic_file_writer.h"
#include "core/crc32.h"
#include "core/idle_priority.h"
#include "io/lowbit_container.h"
#include "io/untrusted_json.h"
#include "kernels/cpu_features.h"

namespace lowbit {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr char kMagic[9] = "LBCKPT1\n";
constexpr int kCheckpointVersion = 1;
constexpr uint64_t kMaxStateBytes = 1ull << 30;  // the JSON state; a model's index is a few MB
constexpr size_t kReadChunk = 1u << 20;  // OUT.tmp read back for its CRC, in pieces

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

// {"path": absolute, "bytes", "mtime_ns"} of a file; a folder lists its regular files.
json file_identity(const std::string& path) {
  if (path.empty()) return nullptr;
  std::error_code ec;
  const fs::path abs = fs::weakly_canonical(fs::absolute(path, ec), ec);
  auto stat_json = [](const fs::path& p) -> json {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return {{"missing", true}};
    return {{"bytes", static_cast<uint64_t>(st.st_size)},
            {"mtime_ns", static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec}};
  };
  json id = {{"path", abs.string()}};
  if (fs::is_directory(abs, ec)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(abs, ec)) {
      if (e.is_regular_file(ec)) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    json list = json::object();
    for (const fs::path& f : files) list[f.filename().string()] = stat_json(f);
    id["files"] = std::move(list);
  } else {
    id.update(stat_json(abs));
  }
  return id;
}

// The CRC-32 of bytes [begin, end) of `path`, continuing `crc` (the CRC of [0, begin)).
Expected<uint32_t> file_crc(const std::string& path, uint64_t begin, uint64_t end, uint32_t crc) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) return make_error("{}: cannot open: {}", path, std::strerror(errno));
  if (std::fseek(f.get(), static_cast<long>(begin), SEEK_SET) != 0) {
    return make_error("{}: cannot seek to byte {}: {}", path, begin, std::strerror(errno));
  }
  std::vector<uint8_t> buffer(kReadChunk);
  for (uint64_t at = begin; at < end;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buffer.size(), end - at));
    if (std::fread(buffer.data(), 1, n, f.get()) != n) {
      return make_error("{}: {} bytes, shorter than the {} the checkpoint records", path, at, end);
    }
    crc = crc32_update(crc, buffer.data(), n);
    at += n;
  }
  return crc;
}

void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

// Reads exactly `n` bytes and extends `crc` over them.
bool read_exact(std::FILE* f, void* out, size_t n, uint32_t& crc) {
  if (std::fread(out, 1, n, f) != n) return false;
  crc = crc32_update(crc, out, n);
  return true;
}

template <typename T>
json optional_json(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}
template <typename T>
std::optional<T> optional_from(const json& j) {
  if (j.is_null()) return std::nullopt;
  return j.get<T>();
}

// What a fingerprint key is, as the refusal message names it.
std::string fingerprint_key_name(const std::string& key) {
  static constexpr std::pair<const char*, const char*> kNames[] = {
      {"versions", "checkpoint or file format version"},
      {"build", "lowbit binary"},
      {"isa", "kernel level (LOWBIT_ISA)"},
      {"model", "model file (path, size or modification time)"},
      {"tokenizer", "--tokenizer file"},
      {"recipe", "recipe"},
      {"calibration", "calibration (--calib, --calib-samples, --calib-len, --seed, --calib-bos, --hessian, --calib-arith)"},
      {"calibration_file", "calibration file (size or modification time)"},
      {"kv", "KV configuration (--kv)"},
      {"threads", "--threads"}};
  for (const auto& [k, name] : kNames) {
    if (key == k) return name;
  }
  return key;
}

// The first top-level fingerprint key that differs, for the refusal message.
std::string first_difference(const json& theirs, const json& ours) {
  for (const auto& [key, value] : ours.items()) {
    if (!theirs.contains(key) || theirs[key] != value) return fingerprint_key_name(key);
  }
  for (const auto& [key, value] : theirs.items()) {
    if (!ours.contains(key)) return fingerprint_key_name(key);
  }
  return "fingerprint";
}

}  // namespace

std::string checkpoint_path(const std::string& output_path) { return output_path + ".ckpt"; }

json run_fingerprint(const Recipe& recipe, const PipelineOptions& o, const json& calibration) {
  return {{"versions",
           {{"checkpoint", kCheckpointVersion},
            {"lowbit_format", kLowbitFormatVersion},
            {"container", kLowbitContainerVersion}}},
          {"build", o.build_id},
          {"isa", isa_name(active_isa())},
          {"model", file_identity(o.model_path)},
          {"tokenizer", file_identity(o.load.tokenizer_path)},
          {"recipe", recipe.json},
          {"calibration", calibration},
          {"calibration_file", file_identity(o.calib_path)},
          {"kv", o.kv},
          {"threads", o.threads}};
}

json module_to_json(const ModuleReport& m) {
  return {{"name", m.name},
          {"method", m.method},
          {"format", m.format},
          {"fallback_from", m.fallback_from},
          {"rows", m.rows},
          {"cols", m.cols},
          {"bits_per_weight", m.bits_per_weight},
          {"stored_bytes", m.stored_bytes},
          {"weight_rel_error", m.weight_rel_error},
          {"output_rel_error", optional_json(m.output_rel_error)},
          {"awq_alpha", optional_json(m.awq_alpha)},
          {"migration", m.migration},
          {"migration_parameter", optional_json(m.migration_parameter)},
          {"migration_error_plain", optional_json(m.migration_error_plain)},
          {"migration_error", optional_json(m.migration_error)},
          {"dead_columns", m.dead_columns},
          {"outliers", m.outliers},
          {"lorc_rank", m.lorc_rank},
          {"adaquant_codes_changed", m.adaquant_codes_changed},
          {"adaquant_scales_changed", m.adaquant_scales_changed},
          {"bias_corrected", m.bias_corrected},
          {"seconds", m.seconds}};
}

Expected<ModuleReport> module_from_json(const json& j) {
  ModuleReport m;
  try {
    m.name = j.at("name").get<std::string>();
    m.method = j.at("method").get<std::string>();
    m.format = j.at("format").get<std::string>();
    m.fallback_from = j.at("fallback_from").get<std::string>();
    m.rows = j.at("rows").get<int64_t>();
    m.cols = j.at("cols").get<int64_t>();
    m.bits_per_weight = j.at("bits_per_weight").get<double>();
    m.stored_bytes = j.at("stored_bytes").get<uint64_t>();
    m.weight_rel_error = j.at("weight_rel_error").get<double>();
    m.output_rel_error = optional_from<double>(j.at("output_rel_error"));
    m.awq_alpha = optional_from<float>(j.at("awq_alpha"));
    m.migration = j.at("migration").get<std::string>();
    m.migration_parameter = optional_from<float>(j.at("migration_parameter"));
    m.migration_error_plain = optional_from<double>(j.at("migration_error_plain"));
    m.migration_error = optional_from<double>(j.at("migration_error"));
    m.dead_columns = j.at("dead_columns").get<int>();
    m.outliers = j.at("outliers").get<size_t>();
    m.lorc_rank = j.at("lorc_rank").get<int>();
    m.adaquant_codes_changed = j.at("adaquant_codes_changed").get<int64_t>();
    m.adaquant_scales_changed = j.at("adaquant_scales_changed").get<int64_t>();
    m.bias_corrected = j.at("bias_corrected").get<bool>();
    m.seconds = j.at("seconds").get<double>();
  } catch (const json::exception& e) {
    return make_error("module report: {}", e.what());
  }
  return m;
}

QuantizeCheckpointer::QuantizeCheckpointer(const std::string& output_path, json fingerprint, int n_layers,
                                           std::function<void(const std::string&, int64_t)> test_hook)
    : output_path_(output_path),
      path_(checkpoint_path(output_path)),
      fingerprint_(std::move(fingerprint)),
      n_layers_(n_layers),
      test_hook_(std::move(test_hook)) {}

QuantizeCheckpointer::~QuantizeCheckpointer() {
  if (writer_thread_.joinable()) writer_thread_.join();  // an error path: its result no longer matters
  if (!owned_) return;
  note_.reset();
  std::error_code ec;
  fs::remove(path_, ec);
}

void QuantizeCheckpointer::arm_interrupt_note(int layers_done) {
  note_.reset();
  note_.emplace(fmt::format("interrupted after layer {}/{}; {}.tmp and {} are kept: rerun with --resume to continue",
                            layers_done, n_layers_, output_path_, path_));
}

Expected<std::optional<QuantizeCheckpointData>> QuantizeCheckpointer::start(bool resume, size_t hidden_floats) {
  std::error_code ec;
  const bool exists = fs::exists(path_, ec);
  if (!resume) {
    if (exists) {
      std::fprintf(stderr, "note: %s: discarding the checkpoint of an earlier run (--resume continues it)\n",
                   path_.c_str());
      fs::remove(path_, ec);
    }
    owned_ = true;
    return std::optional<QuantizeCheckpointData>();
  }
  if (!exists) {
    std::fprintf(stderr, "note: --resume: no checkpoint %s; starting from the first layer\n", path_.c_str());
    owned_ = true;
    return std::optional<QuantizeCheckpointData>();
  }
  LB_ASSIGN_OR_RETURN(QuantizeCheckpointData data, load(hidden_floats));
  // OUT.tmp's prefix must be the bytes the checkpoint was taken after.
  const std::string tmp = output_path_ + ".tmp";
  auto crc = file_crc(tmp, 0, data.writer.bytes, 0);
  if (!crc.ok()) return make_error("--resume: {}; rerun without --resume to start over", crc.status().message());
  if (*crc != crc_) {
    return make_error("--resume: {}: its first {} bytes do not match the checkpoint {} (CRC-32 {:08x}, recorded "
                      "{:08x}); rerun without --resume to start over",
                      tmp, data.writer.bytes, path_, *crc, crc_);
  }
  std::fprintf(stderr, "resuming %s after layer %d/%d (%s)\n", tmp.c_str(), data.layers_done, n_layers_,
               path_.c_str());
  owned_ = true;
  arm_interrupt_note(data.layers_done);
  return std::optional<QuantizeCheckpointData>(std::move(data));
}

Expected<QuantizeCheckpointData> QuantizeCheckpointer::load(size_t hidden_floats) {
  const std::string rerun = "; rerun without --resume to start over";
  File f(std::fopen(path_.c_str(), "rb"));
  if (!f) return make_error("--resume: {}: cannot open: {}", path_, std::strerror(errno));
  struct stat st {};
  if (fstat(fileno(f.get()), &st) != 0) return make_error("--resume: {}: cannot stat", path_);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const auto corrupt = [&](const char* what) {
    return make_error("--resume: {}: corrupt checkpoint ({}){}", path_, what, rerun);
  };
  uint32_t crc = 0;
  uint8_t head[16];
  if (size < sizeof(head) + 12 || !read_exact(f.get(), head, sizeof(head), crc)) return corrupt("truncated");
  if (std::memcmp(head, kMagic, 8) != 0) return corrupt("not a lowbit checkpoint");
  const uint64_t state_bytes = get_u64(head + 8);
  if (state_bytes > kMaxStateBytes || state_bytes > size - sizeof(head) - 12) return corrupt("state length");
  std::string text(state_bytes, '\0');
  uint8_t len[8];
  if (!read_exact(f.get(), text.data(), text.size(), crc) || !read_exact(f.get(), len, 8, crc)) {
    return corrupt("truncated");
  }
  const uint64_t hidden_bytes = get_u64(len);
  if (hidden_bytes != size - sizeof(head) - state_bytes - 12 || hidden_bytes % sizeof(float) != 0) {
    return corrupt("length");
  }
  QuantizeCheckpointData data;
  data.hidden.resize(hidden_bytes / sizeof(float));
  uint8_t stored[4];
  if (!read_exact(f.get(), data.hidden.data(), hidden_bytes, crc) || std::fread(stored, 1, 4, f.get()) != 4) {
    return corrupt("truncated");
  }
  const uint32_t expected = static_cast<uint32_t>(stored[0]) | static_cast<uint32_t>(stored[1]) << 8 |
                            static_cast<uint32_t>(stored[2]) << 16 | static_cast<uint32_t>(stored[3]) << 24;
  if (crc != expected) return corrupt(fmt::format("CRC-32 {:08x}, recorded {:08x}", crc, expected).c_str());

  LB_ASSIGN_OR_RETURN(json state, parse_untrusted_json(text, "--resume: " + path_));
  if (!state.is_object() || state.value("version", 0) != kCheckpointVersion) {
    return make_error("--resume: {}: checkpoint version {}, this build reads {}{}", path_,
                      state.is_object() && state.contains("version") ? describe_json(state["version"]) : "none",
                      kCheckpointVersion, rerun);
  }
  const json& theirs = state.contains("fingerprint") ? state["fingerprint"] : json();
  if (theirs != fingerprint_) {
    return make_error("--resume: {}: written by a run with a different {} (resume with the same model, recipe, "
                      "calibration and flags){}",
                      path_, first_difference(theirs.is_object() ? theirs : json::object(), fingerprint_), rerun);
  }
  if (hidden_bytes != hidden_floats * sizeof(float)) {
    return make_error("--resume: {}: {} bytes of hidden states, this run's calibration needs {}{}", path_,
                      hidden_bytes, hidden_floats * sizeof(float), rerun);
  }
  try {
    data.layers_done = state.at("layers_done").get<int>();
    if (state.at("n_layers").get<int>() != n_layers_ || data.layers_done < 1 || data.layers_done > n_layers_) {
      return corrupt("layer count");
    }
    const json& w = state.at("writer");
    data.writer.data_begin = w.at("data_begin").get<uint64_t>();
    data.writer.bytes = w.at("bytes").get<uint64_t>();
    crc_ = w.at("crc32").get<uint32_t>();
    crc_bytes_ = data.writer.bytes;
    data.writer.tensors = w.at("tensors");
    for (const json& m : state.at("modules")) {
      LB_ASSIGN_OR_RETURN(ModuleReport r, module_from_json(m));
      data.modules.push_back(std::move(r));
    }
    data.linear_params = state.at("linear_params").get<uint64_t>();
    data.linear_bytes = state.at("linear_bytes").get<uint64_t>();
  } catch (const json::exception& e) {
    return make_error("--resume: {}: {}{}", path_, e.what(), rerun);
  }
  return data;
}

Status QuantizeCheckpointer::begin_save(int layers_done, LowbitFileWriter& writer, const QuantizeReport& report,
                                        const std::vector<float>& hidden, const std::vector<int64_t>& hidden_shape) {
  LB_RETURN_IF_ERROR(finish_save());
  const auto start = std::chrono::steady_clock::now();
  // OUT.tmp on disk first: the checkpoint may only describe bytes that are there.
  LB_RETURN_IF_ERROR(writer.sync());
  LowbitFileWriter::State w = writer.state();
  LB_ASSIGN_OR_RETURN(crc_, file_crc(writer.temp_path(), crc_bytes_, w.bytes, crc_));
  crc_bytes_ = w.bytes;
  // From the first checkpoint on, an interrupt keeps OUT.tmp for --resume (before
  // the checkpoint exists, a kept OUT.tmp is only a stale file a fresh run replaces).
  writer.keep_on_interrupt();

  json modules = json::array();
  for (const ModuleReport& m : report.modules) modules.push_back(module_to_json(m));
  const json state = {{"version", kCheckpointVersion},
                      {"fingerprint", fingerprint_},
                      {"layers_done", layers_done},
                      {"n_layers", n_layers_},
                      {"writer",
                       {{"data_begin", w.data_begin},
                        {"bytes", w.bytes},
                        {"crc32", crc_},
                        {"tensors", std::move(w.tensors)}}},
                      {"modules", std::move(modules)},
                      {"linear_params", report.linear_params},
                      {"linear_bytes", report.linear_bytes},
                      {"hidden_shape", hidden_shape}};
  pending_layers_ = layers_done;
  pending_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // The file itself (the hidden states are nearly all of it: 604 MB for 128 × 2048
  // tokens of a 576-wide model, a few seconds with its fsync) is written by a thread
  // while the next layer's statistics pass runs; `hidden` must not change until
  // finish_save() (the pipeline joins before the layer's first linear and before
  // it updates the states).
  writer_thread_ = std::thread([this, text = dump_json(state), data = hidden.data(), floats = hidden.size()] {
    enter_idle_priority();  // core/idle_priority.h: off the workers' cores while they compute
    const auto t0 = std::chrono::steady_clock::now();
    pending_status_ = write_file(text, data, floats);
    pending_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  });
  return Status::ok_status();
}

Status QuantizeCheckpointer::write_file(const std::string& text, const float* hidden, size_t hidden_floats) {
  const uint64_t hidden_bytes = hidden_floats * sizeof(float);
  LB_ASSIGN_OR_RETURN(AtomicFileWriter out, AtomicFileWriter::create(path_));
  uint32_t crc = 0;
  auto write = [&](const void* data, uint64_t n) {
    crc = crc32_update(crc, data, n);
    return out.write(data, n);
  };
  uint8_t u64[8];
  LB_RETURN_IF_ERROR(write(kMagic, 8));
  put_u64(u64, text.size());
  LB_RETURN_IF_ERROR(write(u64, 8));
  LB_RETURN_IF_ERROR(write(text.data(), text.size()));
  put_u64(u64, hidden_bytes);
  LB_RETURN_IF_ERROR(write(u64, 8));
  crc = crc32_update(crc, hidden, hidden_bytes);
  LB_RETURN_IF_ERROR(out.write_direct(hidden, hidden_bytes));
  const uint8_t tail[4] = {static_cast<uint8_t>(crc), static_cast<uint8_t>(crc >> 8), static_cast<uint8_t>(crc >> 16),
                           static_cast<uint8_t>(crc >> 24)};
  LB_RETURN_IF_ERROR(out.write(tail, 4));
  pending_bytes_ = out.offset();
  if (test_hook_) {
    LB_RETURN_IF_ERROR(out.sync());  // so a kill here leaves the whole OUT.ckpt.tmp, as a kill in rename would
    test_hook_("checkpoint_write", pending_layers_);
  }
  return out.commit();
}

Status QuantizeCheckpointer::finish_save() {
  if (!writer_thread_.joinable()) return Status::ok_status();
  writer_thread_.join();
  const int layers_done = pending_layers_;
  pending_layers_ = 0;
  save_seconds_ += pending_seconds_;
  LB_RETURN_IF_ERROR(pending_status_);
  arm_interrupt_note(layers_done);
  ++saves_;
  saved_bytes_ += pending_bytes_;
  return Status::ok_status();
}

}  // namespace lowbit
