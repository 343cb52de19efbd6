// Helpers shared by the recipe, lowbit-file and quantization-pipeline tests.
#pragma once

#include <gtest/gtest.h>

#include <utility>

#include "core/status.h"

namespace lowbit::testing {

// The value of an Expected that must hold one; a failure records its message.
template <typename T>
T get(Expected<T> e) {
  EXPECT_TRUE(e.ok()) << e.status().message();
  return std::move(e).value();
}

}  // namespace lowbit::testing
