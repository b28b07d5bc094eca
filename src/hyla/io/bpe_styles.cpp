#include "hyla/io/bpe_styles.h"

#include <nlohmann/json.hpp>

#include "hyla/util/error.h"

namespace hyla::io::bpe {
namespace {
using ojson = nlohmann::ordered_json;

ojson byte_level_json(bool use_regex) {
  return ojson{{"type", "ByteLevel"},
               {"add_prefix_space", false},
               {"trim_offsets", true},
               {"use_regex", use_regex}};
}

std::string_view split_pattern(BpeStyle style) {
  return style == BpeStyle::Llama3 ? kLlama3Pattern
         : style == BpeStyle::Qwen2 ? kQwen2Pattern
                                    : std::string_view{};
}

ojson pre_tokenizer_json(BpeStyle style) {
  if (style == BpeStyle::Gpt2) return byte_level_json(true);
  ojson split{{"type", "Split"},
              {"pattern", {{"Regex", std::string(split_pattern(style))}}},
              {"behavior", "Isolated"},
              {"invert", false}};
  return ojson{{"type", "Sequence"}, {"pretokenizers", {split, byte_level_json(false)}}};
}

ojson post_processor_json(const BpeVocab& v, const std::optional<std::string>& bos) {
  if (!bos) return byte_level_json(true);
  int32_t bos_id = -1;
  for (int32_t id : v.special_ids)
    if (v.tokens[size_t(id)] == *bos) bos_id = id;
  HYLA_CHECK(bos_id >= 0, "bos token `{}` is not one of the special tokens", *bos);
  auto special = [&](int type_id) { return ojson{{"SpecialToken", {{"id", *bos}, {"type_id", type_id}}}}; };
  auto seq = [](const char* id, int type_id) { return ojson{{"Sequence", {{"id", id}, {"type_id", type_id}}}}; };
  ojson tmpl{{"type", "TemplateProcessing"},
             {"single", {special(0), seq("A", 0)}},
             {"pair", {special(0), seq("A", 0), special(1), seq("B", 1)}},
             {"special_tokens", {{*bos, {{"id", *bos}, {"ids", {bos_id}}, {"tokens", {*bos}}}}}}};
  return ojson{{"type", "Sequence"}, {"processors", {byte_level_json(true), tmpl}}};
}

}  // namespace

BpeStyle parse_bpe_style(std::string_view name) {
  if (name == "gpt2") return BpeStyle::Gpt2;
  if (name == "llama3") return BpeStyle::Llama3;
  if (name == "qwen2") return BpeStyle::Qwen2;
  fail("unknown tokenizer style `{}` (expected gpt2, llama3 or qwen2)", name);
}

PreTokenizer style_pre_tokenizer(BpeStyle style) {
  PreTokenizer pt;
  if (style == BpeStyle::Gpt2) {
    pt.set_byte_level(false, true);
  } else {
    pt.add_split(std::make_unique<OnigRegex>(split_pattern(style), "style regex"),
                 SplitBehavior::Isolated, false);
    pt.set_byte_level(false, false);
  }
  return pt;
}

std::unique_ptr<Normalizer> style_normalizer(BpeStyle style) {
  if (style != BpeStyle::Qwen2) return nullptr;
  return std::make_unique<Normalizer>(std::vector<Normalizer::Form>{Normalizer::Form::NFC});
}

std::string bpe_tokenizer_json(const BpeVocab& v, BpeStyle style,
                               const std::optional<std::string>& bos) {
  std::vector<bool> is_special(v.tokens.size(), false);
  for (int32_t id : v.special_ids) is_special[size_t(id)] = true;
  // Special tokens keep their text; every other token is spelled in GPT-2's byte alphabet.
  std::vector<std::string> text(v.tokens.size());
  for (size_t id = 0; id < v.tokens.size(); ++id)
    text[id] = is_special[id] ? v.tokens[id] : bytes_to_vocab_text(v.tokens[id]);
  ojson added = ojson::array();
  for (int32_t id : v.special_ids)
    added.push_back({{"id", id},
                     {"content", v.tokens[size_t(id)]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  ojson vocab = ojson::object();
  for (size_t id = 0; id < text.size(); ++id) vocab[text[id]] = id;
  ojson merges = ojson::array();
  for (auto [a, b] : v.merges) merges.push_back({text[size_t(a)], text[size_t(b)]});
  ojson model{{"type", "BPE"},
              {"dropout", nullptr},
              {"unk_token", nullptr},
              {"continuing_subword_prefix", nullptr},
              {"end_of_word_suffix", nullptr},
              {"fuse_unk", false},
              {"byte_fallback", false},
              {"ignore_merges", style == BpeStyle::Llama3},
              {"vocab", vocab},
              {"merges", merges}};
  ojson normalizer = style == BpeStyle::Qwen2 ? ojson{{"type", "NFC"}} : ojson(nullptr);
  ojson root{{"version", "1.0"},
             {"truncation", nullptr},
             {"padding", nullptr},
             {"added_tokens", added},
             {"normalizer", normalizer},
             {"pre_tokenizer", pre_tokenizer_json(style)},
             {"post_processor", post_processor_json(v, bos)},
             {"decoder", byte_level_json(true)},
             {"model", model}};
  return root.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict) + "\n";
}

}  // namespace hyla::io::bpe
