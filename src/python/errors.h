// Library errors as Python exceptions: a failed Status raises lowbit.LowbitError
// (a RuntimeError subclass, registered in module.cpp) with the library's one-line
// message. Wrong Python arguments (dtype, shape, unknown keyword values) raise
// ValueError / TypeError through pybind11 before the library is called.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

#include "core/status.h"

namespace lowbit::python {

class LowbitError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline void throw_if_error(const Status& status) {
  if (!status.ok()) throw LowbitError(status.message());
}

template <typename T>
T value_or_throw(Expected<T> expected) {
  if (!expected.ok()) throw LowbitError(expected.status().message());
  return std::move(expected).value();
}

}  // namespace lowbit::python
