// Byte-level BPE tokenizer read from a Hugging Face `tokenizer.json`.
// Must give the same ids as PyPI `tokenizers` for GPT-2, Llama-3 and Qwen2 style files.
// Supported: model BPE (both merge spellings, ignore_merges, unk_token); normalizers
// NFC/NFD/NFKC/NFKD/Sequence; pre-tokenizers Split (Regex or String, any behaviour,
// invert), ByteLevel, Sequence; added tokens with their flags; post-processors
// TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel, Sequence; decoder
// ByteLevel. `truncation`/`padding` are ignored (with a warning). Encode and decode are
// thread-safe; text that is not valid UTF-8 is repaired to U+FFFD before encoding.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hyla::io {

class Tokenizer {
 public:
  // Throws hyla::Error naming the file and JSON field on anything unsupported.
  static std::shared_ptr<Tokenizer> load(const std::filesystem::path& tokenizer_json);
  virtual ~Tokenizer() = default;

  // `add_special`: apply the post-processor (e.g. prepend BOS) as tokenizers'
  // `encode(text, add_special_tokens=True)` does.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special = false) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;
  // Bytes of one token as it contributes to decoded text (for streaming output).
  virtual std::string token_text(int32_t id) const = 0;
  // Largest id + 1 over the model vocab and the added tokens (rows an embedding needs).
  virtual int64_t vocab_size() const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  // From tokenizer_config.json beside the file when present ("bos_token"/"eos_token");
  // else the post-processor's first prefix / last suffix token; else a well-known name
  // (<|begin_of_text|>, <s> / <|end_of_text|>, <|endoftext|>, </s>).
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
};

}  // namespace hyla::io
