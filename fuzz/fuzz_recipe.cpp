// libFuzzer harness: a recipe JSON file (`lowbit quantize -r FILE`): load_recipe
// parses and checks it, then every rule is looked up for the tensor names of a
// Llama layer, as the quantize pipeline does (regex "match" rules included).
#include <cstdint>

#include "fuzz/fuzz_input.h"
#include "pipeline/recipe.h"

namespace {
const lowbit::fuzz::InputFile& input() {
  static const lowbit::fuzz::InputFile file("recipe.json");
  return file;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  auto recipe = load_recipe(input().write(data, size));
  if (!recipe.ok()) return 0;
  const ModelConfig config = smollm2_135m_config();
  for (const char* name : {"layers.0.q_proj", "layers.3.down_proj", "lm_head", "token_embedding"}) {
    auto rule = recipe->rule_for(name);
    if (!rule.ok()) continue;
    if (auto resolved = resolve_rule(**rule, name, 576, 1536); resolved.ok() && !resolved->keeps_fp32()) {
      (void)rule_bits_per_weight(*resolved, 576, 1536);
    }
  }
  (void)recipe->needs_calibration(config);
  (void)recipe_size(*recipe, config);
  return 0;
}
