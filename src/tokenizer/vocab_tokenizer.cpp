#include "tokenizer/vocab_tokenizer.h"

namespace lowbit {

int32_t checked_token_id(int64_t id, int32_t vocab_size) {
  return id >= 0 && id < vocab_size ? static_cast<int32_t>(id) : -1;
}

}  // namespace lowbit
