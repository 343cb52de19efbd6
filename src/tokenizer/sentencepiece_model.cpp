// SentencePiece tokenizer.model through libsentencepiece, the reference
// implementation. Control and unknown pieces ("<s>", "</s>", "<unk>") written in
// the text are matched as special tokens first, as for the other tokenizers;
// each plain fragment is then encoded by SentencePiece, which adds its own dummy
// "▁" prefix, so a fragment after a special gets one just as in llama.cpp.
#include <sentencepiece_processor.h>

#include "tokenizer/special_tokens.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "tokenizer/vocab.h"

namespace lowbit {

namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> processor)
      : sp_(std::move(processor)) {
    const int n = sp_->GetPieceSize();
    std::vector<std::pair<std::string, int32_t>> specials;
    token_bytes_.resize(n);
    for (int id = 0; id < n; ++id) {
      const std::string& piece = sp_->IdToPiece(id);
      if (sp_->IsControl(id) || sp_->IsUnknown(id)) {
        specials.emplace_back(piece, id);
        token_bytes_[id] = piece;
      } else if (const int byte = parse_byte_piece(piece); sp_->IsByte(id) && byte >= 0) {
        token_bytes_[id] = std::string(1, static_cast<char>(byte));
      } else {
        token_bytes_[id] = replace_all(piece, kSpaceMarker, " ");
      }
    }
    specials_ = SpecialTokenSplitter(std::move(specials));
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> out;
    std::vector<int> ids;
    for (const TextFragment& fragment : specials_.split(text)) {
      if (fragment.token >= 0) {
        out.push_back(fragment.token);
        continue;
      }
      ids.clear();
      // Encode only fails for an unloaded model, which the loader rules out.
      if (sp_->Encode(fragment.text, &ids).ok()) out.insert(out.end(), ids.begin(), ids.end());
    }
    return out;
  }

  std::string token_to_bytes(int32_t id) const override {
    return id >= 0 && id < vocab_size() ? token_bytes_[id] : std::string();
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(token_bytes_.size()); }
  int32_t bos_id() const override { return sp_->bos_id(); }
  int32_t eos_id() const override { return sp_->eos_id(); }
  bool add_bos() const override { return sp_->bos_id() >= 0; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  SpecialTokenSplitter specials_;
  std::vector<std::string> token_bytes_;  // [vocab_size]
};

}  // namespace

Expected<std::unique_ptr<Tokenizer>> load_sentencepiece_model(const std::string& path) {
  auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = processor->Load(path);
  if (!status.ok()) return make_error("{}: cannot load SentencePiece model: {}", path, status.ToString());
  if (processor->GetPieceSize() <= 0) return make_error("{}: SentencePiece model has no pieces", path);
  return std::unique_ptr<Tokenizer>(std::make_unique<SentencePieceTokenizer>(std::move(processor)));
}

}  // namespace lowbit
