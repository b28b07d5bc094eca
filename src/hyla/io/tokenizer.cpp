// Byte-level BPE read from tokenizer.json, encoding as PyPI `tokenizers` does:
//   added tokens (raw) -> normalizer -> added tokens (normalized) -> pre-tokenizer
//   -> BPE per pre-token -> post-processor (special tokens, when add_special).
#include "hyla/io/tokenizer.h"

#include <set>
#include <unordered_map>

#include "hyla/io/atomic_file.h"
#include "hyla/io/bpe_components.h"
#include "hyla/io/bpe_pretokenizer.h"
#include "hyla/util/log.h"

namespace hyla::io {
namespace {
using namespace bpe;
namespace fs = std::filesystem;

class IdSink final : public WordSink {
 public:
  IdSink(const BpeModel& model, std::vector<int32_t>& out) : model_(model), out_(out) {}
  void word(std::string_view bytes) override { model_.encode_word(bytes, out_); }

 private:
  const BpeModel& model_;
  std::vector<int32_t>& out_;
};

// bos/eos from tokenizer_config.json beside the file ("bos_token": "<s>" or {"content": ...}).
std::optional<std::string> config_token(const nlohmann::json& cfg, const char* key) {
  if (!cfg.is_object() || !cfg.contains(key)) return std::nullopt;
  const auto& v = cfg.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v.at("content").is_string())
    return v.at("content").get<std::string>();
  return std::nullopt;
}

class ByteLevelBpe final : public Tokenizer {
 public:
  explicit ByteLevelBpe(const fs::path& path);

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override;
  std::string token_text(int32_t id) const override {
    return known(id) ? decoded_[size_t(id)] : std::string();
  }
  int64_t vocab_size() const override { return int64_t(decoded_.size()); }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::optional<int32_t> bos_id() const override { return bos_; }
  std::optional<int32_t> eos_id() const override { return eos_; }

 private:
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;
  void build_decode_table();
  void find_bos_eos(const fs::path& path);
  bool known(int32_t id) const { return id >= 0 && size_t(id) < decoded_.size() && valid_[size_t(id)]; }

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Normalizer> normalizer_;
  PreTokenizer pre_;
  std::vector<AddedToken> added_;
  AddedTokenMatcher matcher_;
  SpecialWrap wrap_;
  std::vector<std::string> decoded_;  // id -> the bytes the ByteLevel decoder gives for it
  std::vector<bool> valid_, special_;
  std::optional<int32_t> bos_, eos_;
};

ByteLevelBpe::ByteLevelBpe(const fs::path& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", path.string(), e.what());
  }
  JsonAt root(j, path.string(), "");
  root.only_keys({"version", "truncation", "padding", "added_tokens", "normalizer",
                  "pre_tokenizer", "post_processor", "decoder", "model"});
  if (root.has("version") && root.at("version").str() != "1.0")
    root.at("version").fail(fmt::format("unknown version `{}` (expected 1.0)", root.at("version").str()));
  for (const char* key : {"truncation", "padding"})
    if (root.has(key))
      log::warn("{}: `{}` is set; hyla's encode ignores it (ids are never cut or padded)",
                path.string(), key);
  model_ = BpeModel::from_json(root.at("model"));
  normalizer_ = parse_normalizer(root.at("normalizer"));
  pre_ = PreTokenizer::from_json(root.at("pre_tokenizer"));
  wrap_ = parse_post_processor(root.at("post_processor"));
  check_decoder(root.at("decoder"));
  added_ = parse_added_tokens(root.at("added_tokens"), *model_);
  matcher_.build(added_, normalizer_.get());
  build_decode_table();
  for (auto* ids : {&wrap_.prefix, &wrap_.suffix})
    for (int32_t id : *ids)
      HYLA_CHECK(known(id), "{}: field `post_processor`: special token id {} is not in the vocab",
                 path.string(), id);
  find_bos_eos(path);
}

void ByteLevelBpe::build_decode_table() {
  int32_t max_id = model_->max_id();
  for (const auto& t : added_) max_id = std::max(max_id, t.id);
  decoded_.assign(size_t(max_id + 1), std::string());
  valid_.assign(decoded_.size(), false);
  special_.assign(decoded_.size(), false);
  std::unordered_map<int32_t, const AddedToken*> added_by_id;
  std::set<std::string> special_contents;
  for (const auto& t : added_) {
    added_by_id[t.id] = &t;
    if (t.special) special_contents.insert(t.content);
  }
  std::string raw;
  for (int32_t id = 0; id <= max_id; ++id) {
    auto it = added_by_id.find(id);
    const std::string* text = it != added_by_id.end() ? &it->second->content : model_->id_to_token(id);
    if (!text) continue;
    valid_[size_t(id)] = true;
    special_[size_t(id)] = special_contents.count(*text) > 0;
    // ByteLevel decoder: a token whose characters all stand for bytes becomes those
    // bytes; any other token is kept as its UTF-8 text.
    decoded_[size_t(id)] = vocab_text_to_bytes(*text, raw) ? raw : *text;
  }
}

void ByteLevelBpe::find_bos_eos(const fs::path& path) {
  fs::path cfg_path = path.parent_path() / "tokenizer_config.json";
  nlohmann::json cfg;
  if (fs::exists(cfg_path)) {
    try {
      cfg = nlohmann::json::parse(read_text_file(cfg_path));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: not valid JSON: {}", cfg_path.string(), e.what());
    }
  }
  auto pick = [&](const char* key, std::initializer_list<const char*> names,
                  const std::vector<int32_t>& wrap, bool front) -> std::optional<int32_t> {
    if (auto name = config_token(cfg, key)) return token_to_id(*name);
    if (cfg.is_object() && cfg.contains(key)) return std::nullopt;  // explicitly null
    if (!wrap.empty()) return front ? wrap.front() : wrap.back();
    for (const char* n : names)
      if (auto id = token_to_id(n)) return id;
    return std::nullopt;
  };
  bos_ = pick("bos_token", {"<|begin_of_text|>", "<s>", "<bos>"}, wrap_.prefix, true);
  eos_ = pick("eos_token", {"<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>"}, wrap_.suffix,
              false);
}

std::optional<int32_t> ByteLevelBpe::token_to_id(std::string_view token) const {
  for (const auto& t : added_)
    if (t.content == token) return t.id;
  return model_->token_to_id(token);
}

void ByteLevelBpe::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  IdSink sink(*model_, out);
  std::vector<TextPiece> raw_pieces, norm_pieces;
  std::string normalized;
  if (matcher_.empty(false))
    raw_pieces.push_back({0, text.size(), -1});
  else
    matcher_.split(text, false, raw_pieces);
  for (const TextPiece& p : raw_pieces) {
    if (p.id >= 0) {
      out.push_back(p.id);
      continue;
    }
    std::string_view piece = text.substr(p.start, p.end - p.start);
    if (normalizer_) {
      normalizer_->apply(piece, normalized);
      piece = normalized;
    }
    if (matcher_.empty(true)) {
      pre_.split(piece, sink);
      continue;
    }
    matcher_.split(piece, true, norm_pieces);
    for (const TextPiece& q : norm_pieces) {
      if (q.id >= 0)
        out.push_back(q.id);
      else
        pre_.split(piece.substr(q.start, q.end - q.start), sink);
    }
  }
}

std::vector<int32_t> ByteLevelBpe::encode(std::string_view text, bool add_special) const {
  // tokenizers only sees valid strings; hyla repairs bad bytes to U+FFFD first.
  std::string repaired;
  if (!is_valid_utf8(text)) {
    repaired = utf8_lossy(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special) ids.insert(ids.end(), wrap_.prefix.begin(), wrap_.prefix.end());
  encode_plain(text, ids);
  if (add_special) ids.insert(ids.end(), wrap_.suffix.begin(), wrap_.suffix.end());
  return ids;
}

std::string ByteLevelBpe::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (!known(id) || (skip_special && special_[size_t(id)])) continue;  // unknown ids vanish
    bytes += decoded_[size_t(id)];
  }
  return utf8_lossy(bytes);
}

}  // namespace

std::shared_ptr<Tokenizer> Tokenizer::load(const std::filesystem::path& tokenizer_json) {
  HYLA_CHECK(std::filesystem::exists(tokenizer_json), "{}: no such tokenizer file",
             tokenizer_json.string());
  return std::make_shared<ByteLevelBpe>(tokenizer_json);
}

}  // namespace hyla::io
