// Helpers shared by the KV-cache tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "kvcache/kv_spec.h"

namespace lowbit::testing {

// The spec `text` names; a parse error fails the calling test (and returns the default spec).
inline KvSpec parse_kv_spec_ok(const std::string& text) {
  auto s = parse_kv_spec(text);
  EXPECT_TRUE(s.ok()) << text << ": " << s.status().message();
  return s.ok() ? std::move(s).value() : KvSpec{};
}

}  // namespace lowbit::testing
