#include "eval/logit_diff.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "eval/metrics.h"

namespace lowbit {
namespace {

constexpr char kMagic[8] = {'L', 'B', 'L', 'O', 'G', 'I', 'T', '1'};
constexpr int64_t kHeaderBytes = 16;

}  // namespace

void add_logit_row_diff(const float* recorded, const float* logits, int vocab, LogitDiff& d) {
  d.rows += 1;
  if (std::memcmp(recorded, logits, static_cast<size_t>(vocab) * sizeof(float)) == 0) d.identical_rows += 1;
  for (int i = 0; i < vocab; ++i) {
    d.max_abs_delta = std::max(d.max_abs_delta, std::fabs(static_cast<double>(recorded[i]) - logits[i]));
  }
  std::vector<double> p, q;
  log_softmax(recorded, vocab, p);
  log_softmax(logits, vocab, q);
  const double kld = kl_divergence(p, q);
  d.kld_sum += kld;
  d.kld_max = std::max(d.kld_max, kld);
  if (argmax(p) != argmax(q)) d.flipped_argmax += 1;
}

Expected<LogitRecorder> LogitRecorder::create(const std::string& path, int vocab) {
  LB_ASSIGN_OR_RETURN(AtomicFileWriter writer, AtomicFileWriter::create(path));
  const int64_t v = vocab;
  LB_RETURN_IF_ERROR(writer.write(kMagic, sizeof(kMagic)));
  LB_RETURN_IF_ERROR(writer.write(&v, sizeof(v)));
  return LogitRecorder(std::move(writer), vocab);
}

Status LogitRecorder::add(const float* logits) {
  return writer_.write(logits, static_cast<uint64_t>(vocab_) * sizeof(float));
}

Status LogitRecorder::commit() { return writer_.commit(); }

Expected<LogitComparer> LogitComparer::open(const std::string& path, int vocab) {
  LogitComparer c;
  c.path_ = path;
  c.vocab_ = vocab;
  c.file_.reset(std::fopen(path.c_str(), "rb"));
  if (c.file_ == nullptr) return make_error("{}: cannot open ({})", path, std::strerror(errno));
  char magic[8];
  int64_t v = 0;
  if (std::fread(magic, 1, 8, c.file_.get()) != 8 || std::memcmp(magic, kMagic, 8) != 0 ||
      std::fread(&v, sizeof(v), 1, c.file_.get()) != 1) {
    return make_error("{}: not a logit record (ppl --save-logits)", path);
  }
  if (v != vocab) return make_error("{}: logits of vocab {}, this model has {}", path, v, vocab);
  std::fseek(c.file_.get(), 0, SEEK_END);
  const int64_t bytes = std::ftell(c.file_.get()) - kHeaderBytes;
  const int64_t row_bytes = static_cast<int64_t>(vocab) * sizeof(float);
  if (bytes < 0 || bytes % row_bytes != 0) return make_error("{}: truncated logit record", path);
  c.recorded_rows_ = bytes / row_bytes;
  std::fseek(c.file_.get(), kHeaderBytes, SEEK_SET);
  c.row_.resize(static_cast<size_t>(vocab));
  return c;
}

Status LogitComparer::add(const float* logits) {
  if (diff_.rows >= recorded_rows_) {
    return make_error("{}: holds {} rows, this run scores more (another text, --ctx or --chunks?)", path_,
                      recorded_rows_);
  }
  if (std::fread(row_.data(), sizeof(float), row_.size(), file_.get()) != row_.size()) {
    return make_error("{}: read failed at row {}", path_, diff_.rows);
  }
  add_logit_row_diff(row_.data(), logits, vocab_, diff_);
  return Status::ok_status();
}

Expected<LogitDiff> LogitComparer::finish() {
  if (diff_.rows != recorded_rows_) {
    return make_error("{}: holds {} rows, this run scored {} (another text, --ctx or --chunks?)", path_,
                      recorded_rows_, diff_.rows);
  }
  return diff_;
}

}  // namespace lowbit
