#include "hyla/io/bpe_components.h"

#include <algorithm>
#include <set>

#include "hyla/util/log.h"

namespace hyla::io::bpe {
namespace {

void collect_forms(const JsonAt& f, std::vector<Normalizer::Form>& forms) {
  std::string type = f.type();
  if (type == "Sequence") {
    f.only_keys({"type", "normalizers"});
    JsonAt list = f.at("normalizers");
    for (size_t i = 0; i < list.size(); ++i) collect_forms(list[i], forms);
    return;
  }
  f.only_keys({"type"});
  if (type == "NFC") return forms.push_back(Normalizer::Form::NFC);
  if (type == "NFD") return forms.push_back(Normalizer::Form::NFD);
  if (type == "NFKC") return forms.push_back(Normalizer::Form::NFKC);
  if (type == "NFKD") return forms.push_back(Normalizer::Form::NFKD);
  f.at("type").fail(fmt::format(
      "normalizer `{}` is not supported (hyla reads NFC, NFD, NFKC, NFKD and Sequence)", type));
}

std::pair<std::string, int32_t> token_and_id(const JsonAt& f) {
  if (!f.raw().is_array() || f.raw().size() != 2) f.fail("expected [\"token\", id]");
  return {f[0].str(), int32_t(f[1].integer())};
}

SpecialWrap parse_template(const JsonAt& f) {
  f.only_keys({"type", "single", "pair", "special_tokens"});
  JsonAt specials = f.at("special_tokens");
  JsonAt single = f.at("single");
  SpecialWrap wrap;
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    JsonAt piece = single[i];
    if (piece.has("Sequence")) {
      std::string id = piece.at("Sequence").at("id").str();
      if (id != "A") piece.fail("a single-sequence template may only hold sequence A");
      if (seen_sequence) piece.fail("sequence A appears twice");
      seen_sequence = true;
    } else if (piece.has("SpecialToken")) {
      std::string name = piece.at("SpecialToken").at("id").str();
      JsonAt ids = specials.at(name).at("ids");
      auto& dst = seen_sequence ? wrap.suffix : wrap.prefix;
      for (size_t k = 0; k < ids.size(); ++k) dst.push_back(int32_t(ids[k].integer()));
    } else {
      piece.fail("expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
  }
  if (!seen_sequence) single.fail("the template has no sequence A");
  return wrap;
}

}  // namespace

std::unique_ptr<Normalizer> parse_normalizer(const JsonAt& f) {
  if (f.raw().is_null()) return nullptr;
  std::vector<Normalizer::Form> forms;
  collect_forms(f, forms);
  if (forms.empty()) return nullptr;
  return std::make_unique<Normalizer>(std::move(forms));
}

SpecialWrap parse_post_processor(const JsonAt& f) {
  if (f.raw().is_null()) return {};
  std::string type = f.type();
  if (type == "ByteLevel") {  // only trims offsets
    f.only_keys({"type", "add_prefix_space", "trim_offsets", "use_regex"});
    return {};
  }
  if (type == "TemplateProcessing") return parse_template(f);
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    if (type == "RobertaProcessing")
      f.only_keys({"type", "sep", "cls", "trim_offsets", "add_prefix_space"});
    else
      f.only_keys({"type", "sep", "cls"});
    return {{token_and_id(f.at("cls")).second}, {token_and_id(f.at("sep")).second}};
  }
  if (type == "Sequence") {  // each processor wraps what the previous one produced
    f.only_keys({"type", "processors"});
    JsonAt list = f.at("processors");
    SpecialWrap all;
    for (size_t i = 0; i < list.size(); ++i) {
      SpecialWrap w = parse_post_processor(list[i]);
      all.prefix.insert(all.prefix.begin(), w.prefix.begin(), w.prefix.end());
      all.suffix.insert(all.suffix.end(), w.suffix.begin(), w.suffix.end());
    }
    return all;
  }
  f.at("type").fail(fmt::format("post-processor `{}` is not supported", type));
}

void check_decoder(const JsonAt& f) {
  if (f.raw().is_null()) f.fail("null: hyla needs the ByteLevel decoder");
  if (f.type() != "ByteLevel")
    f.at("type").fail(fmt::format("decoder `{}` is not supported (hyla reads ByteLevel)", f.type()));
  f.only_keys({"type", "add_prefix_space", "trim_offsets", "use_regex"});
}

std::vector<AddedToken> parse_added_tokens(const JsonAt& f, const BpeModel& model) {
  std::vector<AddedToken> specials, plain;  // tokenizers' two lists, each in file order
  std::set<std::string> special_set;
  std::map<std::string, int32_t> id_of;
  std::map<int32_t, AddedToken> by_id;
  auto same = [](const AddedToken& a, const AddedToken& b) {
    return a.content == b.content && a.single_word == b.single_word && a.lstrip == b.lstrip &&
           a.rstrip == b.rstrip && a.normalized == b.normalized && a.special == b.special;
  };
  size_t n = f.raw().is_null() ? 0 : f.size();
  for (size_t i = 0; i < n; ++i) {
    JsonAt e = f[i];
    e.only_keys({"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"});
    AddedToken t;
    t.content = e.at("content").str();
    t.single_word = e.opt_bool("single_word", false);
    t.lstrip = e.opt_bool("lstrip", false);
    t.rstrip = e.opt_bool("rstrip", false);
    t.normalized = e.opt_bool("normalized", true);
    t.special = e.opt_bool("special", false);
    int64_t file_id = e.at("id").integer();
    if (t.special && !t.content.empty() && special_set.insert(t.content).second)
      specials.push_back(t);
    if (t.content.empty() ||
        std::any_of(by_id.begin(), by_id.end(), [&](auto& kv) { return same(kv.second, t); }))
      continue;
    int32_t id;
    if (auto it = id_of.find(t.content); it != id_of.end()) {
      id = it->second;
    } else if (auto mid = model.token_to_id(t.content)) {
      id = *mid;
    } else {  // tokenizers: after the model vocab, or after the largest added id
      int32_t vocab = int32_t(model.vocab_entries());
      id = vocab;
      if (!by_id.empty()) {
        int32_t max = 0;
        for (auto& kv : id_of) max = std::max(max, kv.second);
        if (max >= vocab || vocab == 0) id = max + 1;
      }
    }
    id_of[t.content] = id;
    by_id[id] = t;
    if (!special_set.count(t.content)) plain.push_back(t);
    if (id != file_id)
      log::warn("{}: added token `{}` has id {} in the file but gets id {}", e.file(), t.content,
                file_id, id);
  }
  std::vector<AddedToken> all = std::move(specials);
  all.insert(all.end(), plain.begin(), plain.end());
  for (auto& t : all) t.id = id_of.at(t.content);
  return all;
}

}  // namespace hyla::io::bpe
