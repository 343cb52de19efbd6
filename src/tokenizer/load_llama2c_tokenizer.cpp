// llama2.c tokenizer.bin (karpathy/llama2.c tokenizer.py export):
//   i32 max_token_length
//   vocab_size times: f32 score, i32 length, `length` bytes of piece
// The export writes pieces with "▁" already turned into " " and BOS/EOS as
// "\n<s>\n" / "\n</s>\n". Encoding follows run.c encode(): a dummy " " in front,
// characters missing from the vocabulary as byte tokens (id = byte + 3, the
// "<0xAB>" pieces), then merges by highest score, leftmost first. Here the pieces
// get their "▁" back so the shared SentencePiece code runs unchanged, and ids
// 0..2 get their SentencePiece names "<unk>", "<s>", "</s>" back.
#include <fmt/format.h>

#include "core/byte_reader.h"
#include "core/mapped_file.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace lowbit {

Expected<std::unique_ptr<Tokenizer>> load_llama2c_tokenizer(const std::string& path, int32_t vocab_size) {
  if (vocab_size <= 0) return make_error("{}: vocab_size must be positive, got {}", path, vocab_size);
  LB_ASSIGN_OR_RETURN(MappedFile file, MappedFile::open(path));
  ByteReader reader(file.data(), file.size(), path);
  LB_ASSIGN_OR_RETURN(const int32_t max_token_length, reader.read<int32_t>("max_token_length"));
  if (max_token_length <= 0) return make_error("{}: max_token_length {} is not positive", path, max_token_length);

  // Every token takes at least 8 bytes (score and length); checking this first
  // keeps a wrong vocab_size from allocating for tokens the file cannot hold.
  if (static_cast<uint64_t>(vocab_size) * 8 > reader.remaining()) {
    return make_error("{}: truncated file: {} tokens need at least {} bytes after the header, only {} left", path,
                      vocab_size, static_cast<uint64_t>(vocab_size) * 8, reader.remaining());
  }
  std::vector<std::string> pieces(vocab_size);
  std::vector<float> scores(vocab_size);
  for (int32_t id = 0; id < vocab_size; ++id) {
    auto score = reader.read<float>("token score");
    if (!score.ok()) return score.status().with_context(fmt::format("token {} of {}", id, vocab_size));
    auto length = reader.read<int32_t>("token length");
    if (!length.ok()) return length.status().with_context(fmt::format("token {} of {}", id, vocab_size));
    if (*length < 0 || *length > max_token_length) {
      return make_error("{}: token {} has length {} (max_token_length {}) at offset {}", path, id, *length,
                        max_token_length, reader.offset() - 4);
    }
    auto bytes = reader.read_bytes_as_string(static_cast<uint64_t>(*length), "token bytes");
    if (!bytes.ok()) return bytes.status().with_context(fmt::format("token {} of {}", id, vocab_size));
    scores[id] = *score;
    pieces[id] = replace_all(*bytes, " ", kSpaceMarker);
  }

  std::vector<TokenKind> kinds(vocab_size, TokenKind::kNormal);
  for (int32_t id = 0; id < vocab_size; ++id) {
    if (parse_byte_piece(pieces[id]) >= 0) kinds[id] = TokenKind::kByte;
  }
  const std::pair<int32_t, const char*> named[] = {{0, "<unk>"}, {1, "<s>"}, {2, "</s>"}};
  for (const auto& [id, name] : named) {
    if (id >= vocab_size) continue;
    if (pieces[id] == fmt::format("\n{}\n", name)) pieces[id] = name;
    if (pieces[id] == name) kinds[id] = id == 0 ? TokenKind::kUnknown : TokenKind::kControl;
  }

  Vocab vocab(std::move(pieces), std::move(kinds));
  MergeTable merges = merges_from_scores(vocab, scores);
  SpecialTokenSplitter specials(vocab);
  SpecialIds special_ids;
  special_ids.bos = checked_token_id(1, vocab.size());
  special_ids.eos = checked_token_id(2, vocab.size());
  special_ids.add_bos = special_ids.bos >= 0;
  SpmOptions options;
  options.unk_id = checked_token_id(0, vocab.size());
  return make_spm_tokenizer(std::move(vocab), std::move(merges), std::move(specials), special_ids, options);
}

}  // namespace lowbit
