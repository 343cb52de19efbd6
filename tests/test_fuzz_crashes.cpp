// Reproducers of crashes found by fuzzing the loaders (issue 18): each input
// is generated into a temp folder and run through the lowbit executable, which
// must answer with one line "lowbit: error: ..." naming the file and field,
// and exit code 1 (not a signal, not an uncaught exception).
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/atomic_file_writer.h"
#include "core/mapped_file.h"
#include "model/loader.h"
#include "model_writers.h"
#include "test_util.h"

namespace lowbit {
namespace {

using testing::CommandResult;
using testing::run_lowbit;
using testing::ScopedTempDir;

void expect_user_error(const CommandResult& r, const std::string& key1, const std::string& key2) {
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(testing::count_lines(r.output), 1u) << r.output;
  EXPECT_EQ(r.output.rfind("lowbit: error: ", 0), 0u) << r.output;
  EXPECT_NE(r.output.find(key1), std::string::npos) << "expected: " << key1 << "\ngot: " << r.output;
  EXPECT_NE(r.output.find(key2), std::string::npos) << "expected: " << key2 << "\ngot: " << r.output;
}

std::string nested_arrays(size_t depth, const std::string& inner = "1") {
  return std::string(depth, '[') + inner + std::string(depth, ']');
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A safetensors file whose header is `header` and whose data is empty.
void write_safetensors_header(const std::string& path, const std::string& header) {
  const uint64_t n = header.size();
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &n, 8);
  write_text(path, bytes + header);
}

ModelConfig tiny_llama_config() {
  ModelConfig c;
  c.architecture = "llama";
  c.n_layers = 1;
  c.dim = 32;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.ffn_dim = 48;
  c.vocab_size = static_cast<int>(testing::make_test_spm_vocab().pieces.size());
  c.max_seq_len = 64;
  c.norm_eps = 1e-6f;
  c.rope_layout = RopeLayout::kAdjacentPairs;
  return c;
}

// A good HF checkpoint folder that each test breaks in one place.
class FuzzCrashes : public ::testing::Test {
 protected:
  std::string write_checkpoint() {
    const LoadedModel m = testing::make_random_model(tiny_llama_config(), 3);
    const testing::SpmVocab vocab = testing::make_test_spm_vocab();
    const std::string folder = dir_.file("m");
    const Status s = testing::write_hf_checkpoint(m, &vocab, folder);
    EXPECT_TRUE(s.ok()) << s.message();
    return folder;
  }
  ScopedTempDir dir_{"fuzz_crashes"};
};

TEST_F(FuzzCrashes, SafetensorsShapeNestedDeep) {
  const std::string folder = write_checkpoint();
  ASSERT_TRUE(load_hf_model(folder).ok());
  write_safetensors_header(folder + "/model.safetensors",
                           R"({"w":{"dtype":"F32","shape":)" + nested_arrays(200000) + R"(,"data_offsets":[0,0]}})");
  expect_user_error(run_lowbit("info '" + folder + "'"), "model.safetensors", "nested deeper than 64");
}

TEST_F(FuzzCrashes, SafetensorsShapeEntryIsAnArray) {
  const std::string folder = write_checkpoint();
  write_safetensors_header(folder + "/model.safetensors",
                           R"({"w":{"dtype":"F32","shape":[[[1]]],"data_offsets":[0,0]}})");
  expect_user_error(run_lowbit("info '" + folder + "'"), "model.safetensors", "tensor 'w': shape entry an array");
}

TEST_F(FuzzCrashes, SafetensorsShapeProductOverflows) {
  const std::string folder = write_checkpoint();
  // 2^62 x 3 overflows int64 before the 0 would make the product 0.
  write_safetensors_header(folder + "/model.safetensors",
                           R"({"w":{"dtype":"F32","shape":[4611686018427387904,3,0],"data_offsets":[0,0]}})");
  expect_user_error(run_lowbit("info '" + folder + "'"), "model.safetensors: tensor 'w': shape [4611686018427387904",
                    "overflows (more than 2^63 bytes)");
}

TEST_F(FuzzCrashes, ConfigNestedDeep) {
  const std::string folder = write_checkpoint();
  write_text(folder + "/config.json", R"({"hidden_act":)" + nested_arrays(200000) + "}");
  expect_user_error(run_lowbit("info '" + folder + "'"), "config.json", "nested deeper than 64");
}

TEST_F(FuzzCrashes, TokenizerSequenceNestedDeep) {
  const std::string folder = write_checkpoint();
  std::string nested = R"({"type":"ByteLevel"})";
  // 100,000 levels: beyond the parse depth limit.
  std::string open, close;
  for (int i = 0; i < 100000; ++i) {
    open += R"({"type":"Sequence","pretokenizers":[)";
    close += "]}";
  }
  write_text(folder + "/tokenizer.json",
             R"({"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":)" + open + nested + close + "}");
  expect_user_error(run_lowbit("info '" + folder + "'"), "tokenizer.json", "nested deeper than 64");
  // 20 levels: parses, and flatten() refuses it.
  open.clear();
  close.clear();
  for (int i = 0; i < 20; ++i) {
    open += R"({"type":"Sequence","pretokenizers":[)";
    close += "]}";
  }
  write_text(folder + "/tokenizer.json",
             R"({"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":)" + open + nested + close + "}");
  expect_user_error(run_lowbit("info '" + folder + "'"), "tokenizer.json",
                    "pre_tokenizer: Sequence nested deeper than 8 levels");
}

// A pre-tokenizer regex that backtracks catastrophically on the prompt: PCRE2's
// match limit stops it, and the prompt fails naming the pattern (it used to be
// split silently as though the pattern had not matched).
TEST_F(FuzzCrashes, TokenizerRegexTooComplexForTheText) {
  const std::string folder = write_checkpoint();
  write_text(folder + "/tokenizer.json",
             R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"c":2},"merges":[]},)"
             R"("pre_tokenizer":{"type":"Sequence","pretokenizers":[)"
             R"({"type":"Split","pattern":{"Regex":"(a*)*[bc]"},"behavior":"Isolated","invert":false},)"
             R"({"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]}})");
  ASSERT_EQ(run_lowbit("generate '" + folder + "' --prompt aab -n 1").exit_code, 0);
  expect_user_error(run_lowbit("generate '" + folder + "' --prompt " + std::string(40, 'a') + " -n 1"),
                    "--prompt: pre-tokenizer pattern '(a*)*[bc]'", "match limit exceeded");
}

TEST_F(FuzzCrashes, TokenizerIdIsHugeFloat) {
  const std::string folder = write_checkpoint();
  write_text(folder + "/tokenizer.json", R"({"model":{"type":"BPE","vocab":{"a":0,"b":1e30}}})");
  expect_user_error(run_lowbit("info '" + folder + "'"), "tokenizer.json",
                    "model.vocab['b'] has id 1e+30, expected an integer in [0, 2^31)");
}

TEST_F(FuzzCrashes, TokenizerSparseHugeId) {
  const std::string folder = write_checkpoint();
  write_text(folder + "/tokenizer.json", R"({"model":{"vocab":{"a":16777215}}})");
  expect_user_error(run_lowbit("info '" + folder + "'"), "tokenizer.json",
                    "model.vocab['a'] has id 16777215, but model.vocab and added_tokens hold only 1 entries");
}

// Rewrites the index of a .lowbit container (it lies just before the 40-byte
// footer, whose u64 at +8 is its offset and at +16 its length).
void edit_lowbit_index(const std::string& path, const std::function<void(nlohmann::json&)>& edit) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GE(bytes.size(), 40u);
  std::string footer = bytes.substr(bytes.size() - 40);
  uint64_t offset = 0;
  std::memcpy(&offset, footer.data() + 8, 8);
  nlohmann::json index = nlohmann::json::parse(bytes.substr(offset, bytes.size() - 40 - offset));
  edit(index);
  const std::string text = index.dump();
  const uint64_t n = text.size();
  std::memcpy(footer.data() + 16, &n, 8);
  write_text(path, bytes.substr(0, offset) + text + footer);
}

TEST_F(FuzzCrashes, LowbitIndexFieldsOfTheWrongType) {
  const std::string folder = write_checkpoint();
  const std::string good = dir_.file("good.lbq");
  const CommandResult q = run_lowbit("quantize '" + folder + "' --recipe w4g128-rtn --no-progress -t 2 -o " + good);
  ASSERT_EQ(q.exit_code, 0) << q.output;
  const std::string tokenizer = " --tokenizer '" + folder + "/tokenizer.json'";
  const CommandResult info = run_lowbit("info " + good + tokenizer);
  ASSERT_EQ(info.exit_code, 0) << info.output;
  const struct {
    const char* name;
    std::function<void(nlohmann::json&)> edit;
    const char* message;
  } cases[] = {
      {"format", [](nlohmann::json& r) { r["format"] = 7; }, "'format' is 7, expected a format name"},
      {"lowrank", [](nlohmann::json& r) { r["lowrank"] = 5; }, "'lowrank' is 5, expected an object"},
      {"shape", [](nlohmann::json& r) { r["shape"] = {"a", "b"}; },
       "'shape' holds \"a\", expected non-negative integers"},
      {"bytes", [](nlohmann::json& r) { r["codes"]["bytes"] = "x"; },
       "codes 'bytes' is \"x\", expected a non-negative integer"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = dir_.file(std::string(c.name) + ".lbq");
    std::filesystem::copy_file(good, path);
    std::string tensor;
    edit_lowbit_index(path, [&](nlohmann::json& index) {
      nlohmann::json& record = index["tensors"][1];
      tensor = record["name"].get<std::string>();
      c.edit(record);
    });
    expect_user_error(run_lowbit("info " + path + tokenizer),
                      c.name + std::string(".lbq: index: tensor '") + tensor + "'",
                      c.message);
  }
}

// A recipe file with one rule matching `match` (a JSON string body) and an
// RTN default.
std::string recipe_with_match(const std::string& match) {
  return R"({"name":"r","rules":[{"match":")" + match +
         R"(","method":"rtn","format":"int8_pc"}],"default":{"method":"rtn","format":"int8_pc"}})";
}

TEST_F(FuzzCrashes, RecipeNumberOutOfRange) {
  const std::string folder = write_checkpoint();
  const std::string recipe = dir_.file("huge.json");
  write_text(recipe, R"({"name":"r","default":{"method":"rtn","format":"int8_pc","options":{"damp":1e400}}})");
  expect_user_error(run_lowbit("quantize '" + folder + "' --recipe " + recipe + " --no-progress -o " +
                               dir_.file("o.lbq")),
                    "recipe " + recipe + ": invalid JSON", "number overflow");
}

// A wrong-typed option whose string value is longer than describe_json's
// 40-byte excerpt, with a two-byte UTF-8 character across byte 40: cutting
// there made the excerpt invalid UTF-8, and nlohmann's dump() threw (found by
// the recipe fuzzer as an uncaught exception, std::terminate).
TEST_F(FuzzCrashes, RecipeOptionExcerptCutsAUtf8Character) {
  const std::string folder = write_checkpoint();
  const std::string recipe = dir_.file("utf8.json");
  const std::string value = std::string(39, 'a') + "\u00e9\u00e9";  // bytes 39-40 are one character
  write_text(recipe, R"({"name":"r","default":{"method":"rtn","format":"int8_pc","options":{"damp":")" + value +
                         R"("}}})");
  expect_user_error(run_lowbit("quantize '" + folder + "' --recipe " + recipe + " --no-progress -o " +
                               dir_.file("o.lbq")),
                    "option 'damp' must be a number", "\"" + std::string(39, 'a') + "\"...");
}

// Paths are bytes: a folder named with byte 0xFF went into the .lowbit
// header's "lowbit.source" JSON, whose dump() threw (std::terminate).
TEST_F(FuzzCrashes, ModelPathThatIsNotUtf8) {
  const std::string folder = write_checkpoint();
  const std::string odd = dir_.file("odd\xff");
  std::filesystem::rename(folder, odd);
  const std::string out = dir_.file("o.lowbit");
  const CommandResult r = run_lowbit("quantize '" + odd + "' --recipe w4g128-rtn --no-progress -t 2 -o " + out);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(std::filesystem::exists(out));
}

TEST_F(FuzzCrashes, RecipeMatchTooComplex) {
  const std::string folder = write_checkpoint();
  const auto quantize = [&](const std::string& match) {
    const std::string recipe = dir_.file("recipe.json");
    write_text(recipe, recipe_with_match(match));
    return run_lowbit("quantize '" + folder + "' --recipe " + recipe + " --no-progress -t 2 -o " + dir_.file("o.lbq"));
  };
  const std::string where = "recipe " + dir_.file("recipe.json") + ": rule 0: match";
  // 30,000 nested parentheses: std::regex overflowed the stack compiling them.
  expect_user_error(quantize(std::string(30000, '(') + "a" + std::string(30000, ')')), where,
                    "pattern too complex: 60001 bytes, at most 1024");
  // Short, but nested deeper than PCRE2 is allowed to.
  expect_user_error(quantize(std::string(40, '(') + "a" + std::string(40, ')')), where,
                    "parentheses are too deeply nested");
  // Exponential backtracking on every name: stopped by the match limit, at load.
  expect_user_error(quantize("^(.*.*)*[0-9]$"), where + " \"^(.*.*)*[0-9]$\"",
                    "pattern too complex: matching 'token_embedding' exceeds the match limit");
  // The fuzzer's pattern needs a 'Z' no tensor name has: PCRE2 answers at once.
  const CommandResult r = quantize("^(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*Z$");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
}  // namespace lowbit
