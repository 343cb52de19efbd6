// Error handling for the whole library: functions return Status or Expected<T>;
// only main() turns an error into an exit code. Messages name the file, tensor,
// flag or value that is wrong, so one line tells the user what to fix.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace lowbit {

class Status {
 public:
  Status() = default;  // success
  static Status ok_status() { return Status(); }
  static Status error(std::string message) {
    Status s;
    s.message_ = std::move(message);
    s.failed_ = true;
    return s;
  }
  bool ok() const { return !failed_; }
  const std::string& message() const { return message_; }

  // Adds context in front: "reading model.gguf: tensor 'x' ..."
  Status with_context(const std::string& context) const {
    if (ok()) return *this;
    return error(context + ": " + message_);
  }

 private:
  std::string message_;
  bool failed_ = false;
};

template <typename... Args>
Status make_error(fmt::format_string<Args...> format, Args&&... args) {
  return Status::error(fmt::format(format, std::forward<Args>(args)...));
}

// Holds either a value or an error Status.
template <typename T>
class Expected {
 public:
  Expected(T value) : value_(std::move(value)) {}
  Expected(Status status) : status_(std::move(status)) { assert(!status_.ok()); }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace lowbit

#define LB_CONCAT_INNER(a, b) a##b
#define LB_CONCAT(a, b) LB_CONCAT_INNER(a, b)

// Returns the error of a Status-returning expression.
#define LB_RETURN_IF_ERROR(expr)                  \
  do {                                            \
    ::lowbit::Status lb_status_ = (expr);         \
    if (!lb_status_.ok()) return lb_status_;      \
  } while (0)

// Declares `lhs` from an Expected-returning expression or returns its error.
#define LB_ASSIGN_OR_RETURN(lhs, expr) \
  LB_ASSIGN_OR_RETURN_IMPL(LB_CONCAT(lb_expected_, __LINE__), lhs, expr)
#define LB_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
