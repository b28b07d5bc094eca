#include "hyla/io/bpe_pretokenizer.h"

#include <algorithm>

namespace hyla::io::bpe {
namespace {

SplitBehavior parse_behavior(const JsonAt& f) {
  std::string b = f.str();
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  f.fail(fmt::format("unknown split behavior `{}`", b));
}

std::unique_ptr<OnigRegex> parse_pattern(const JsonAt& f) {
  f.only_keys({"Regex", "String"});
  std::string where = fmt::format("{}: field `{}`", f.file(), f.path());
  if (f.has("Regex"))
    return std::make_unique<OnigRegex>(f.at("Regex").str(), where + ".Regex");
  if (f.has("String"))
    return std::make_unique<OnigRegex>(regex_escape(f.at("String").str()), where + ".String");
  f.fail("expected {\"Regex\": ...} or {\"String\": ...}");
}

void parse_step(const JsonAt& f, PreTokenizer& pt, bool& seen_byte_level) {
  std::string type = f.type();
  if (seen_byte_level)
    f.fail("a pre-tokenizer after ByteLevel is not supported (ByteLevel must come last)");
  if (type == "Sequence") {
    f.only_keys({"type", "pretokenizers"});
    JsonAt list = f.at("pretokenizers");
    for (size_t i = 0; i < list.size(); ++i) parse_step(list[i], pt, seen_byte_level);
  } else if (type == "Split") {
    f.only_keys({"type", "pattern", "behavior", "invert"});
    pt.add_split(parse_pattern(f.at("pattern")), parse_behavior(f.at("behavior")),
                 f.opt_bool("invert", false));
  } else if (type == "ByteLevel") {
    f.only_keys({"type", "add_prefix_space", "trim_offsets", "use_regex"});
    pt.set_byte_level(f.opt_bool("add_prefix_space", true), f.opt_bool("use_regex", true));
    seen_byte_level = true;
  } else {
    f.at("type").fail(fmt::format(
        "pre-tokenizer `{}` is not supported (hyla reads Split, ByteLevel and Sequence)", type));
  }
}

}  // namespace

PreTokenizer PreTokenizer::from_json(const JsonAt& f) {
  if (f.raw().is_null()) f.fail("null: hyla needs a byte-level pre-tokenizer (ByteLevel)");
  PreTokenizer pt;
  bool seen_byte_level = false;
  parse_step(f, pt, seen_byte_level);
  if (!seen_byte_level)
    f.fail("no ByteLevel pre-tokenizer: hyla only reads byte-level BPE tokenizers");
  return pt;
}

void PreTokenizer::add_split(std::unique_ptr<OnigRegex> regex, SplitBehavior behavior,
                             bool invert) {
  steps_.push_back(Step{std::move(regex), behavior, invert, false});
}

void PreTokenizer::set_byte_level(bool add_prefix_space, bool use_regex) {
  std::unique_ptr<OnigRegex> regex;
  if (use_regex) regex = std::make_unique<OnigRegex>(kGpt2Pattern, "ByteLevel regex");
  steps_.push_back(Step{std::move(regex), SplitBehavior::Isolated, false, add_prefix_space});
}

void PreTokenizer::split(std::string_view piece, WordSink& sink) const {
  Scratch scratch(steps_.size());
  run(0, piece, sink, scratch);
}

// Merges or drops the match/non-match segments by delimiter behaviour, in place, as
// tokenizers' NormalizedString::split does; afterwards `is_match` means "remove".
static void apply_behavior(std::vector<SplitSegment>& segs, SplitBehavior behavior) {
  if (behavior == SplitBehavior::Removed) return;
  if (behavior == SplitBehavior::Isolated) {
    for (auto& s : segs) s.is_match = false;
    return;
  }
  bool reversed = behavior == SplitBehavior::MergedWithNext;
  if (reversed) std::reverse(segs.begin(), segs.end());
  size_t w = 0;
  bool previous_match = false;
  for (size_t r = 0; r < segs.size(); ++r) {
    SplitSegment s = segs[r];
    bool merge = behavior == SplitBehavior::Contiguous ? s.is_match == previous_match
                                                       : s.is_match && !previous_match;
    previous_match = s.is_match;
    if (merge && w > 0) {
      if (reversed)
        segs[w - 1].start = s.start;
      else
        segs[w - 1].end = s.end;
    } else {
      segs[w++] = {s.start, s.end, false};
    }
  }
  segs.resize(w);
  if (reversed) std::reverse(segs.begin(), segs.end());
}

void PreTokenizer::run(size_t step, std::string_view piece, WordSink& sink,
                       Scratch& scratch) const {
  if (piece.empty()) return;  // tokenizers drops empty splits
  if (step == steps_.size()) return sink.word(piece);
  if (steps_[step].add_prefix_space && piece.front() != ' ') {
    std::string spaced;
    spaced.reserve(piece.size() + 1);
    spaced += ' ';
    spaced += piece;
    return split_step(step, spaced, sink, scratch);
  }
  split_step(step, piece, sink, scratch);
}

void PreTokenizer::split_step(size_t step, std::string_view piece, WordSink& sink,
                              Scratch& scratch) const {
  const Step& s = steps_[step];
  if (!s.regex) return run(step + 1, piece, sink, scratch);
  auto& segs = scratch[step];  // deeper steps use their own slot, so this stays valid
  segs.clear();
  size_t prev = 0;
  s.regex->find_iter(piece, [&](size_t a, size_t b) {
    if (prev != a) segs.push_back({prev, a, s.invert});
    segs.push_back({a, b, !s.invert});
    prev = b;
  });
  if (prev != piece.size()) segs.push_back({prev, piece.size(), s.invert});
  apply_behavior(segs, s.behavior);
  for (size_t i = 0; i < segs.size(); ++i)
    if (!segs[i].is_match)
      run(step + 1, piece.substr(segs[i].start, segs[i].end - segs[i].start), sink, scratch);
}

}  // namespace hyla::io::bpe
