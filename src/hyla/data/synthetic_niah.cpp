#include "hyla/data/synthetic_niah.h"

#include <algorithm>
#include <cmath>

#include "hyla/data/random.h"
#include "hyla/data/token_shards.h"
#include "hyla/io/tokenizer.h"
#include "hyla/util/error.h"

namespace hyla::data {
namespace {

constexpr std::string_view kNoise[] = {"The grass is green.", "The sky is blue.",
                                       "The sun is yellow.", "Here we go.",
                                       "There and back again."};
constexpr std::string_view kAdjectives[] = {
    "amber",  "ancient", "brave",   "brisk",  "calm",   "clever",  "crimson", "curious",
    "dusty",  "eager",   "fancy",   "fierce", "gentle", "golden",  "hollow",  "humble",
    "icy",    "jolly",   "keen",    "lively", "lucky",  "mellow",  "misty",   "noble",
    "odd",    "pale",    "plucky",  "proud",  "quiet",  "rapid",   "rusty",   "shy",
    "silent", "silver",  "sleepy",  "smooth", "sour",   "stormy",  "sturdy",  "swift",
    "tame",   "tender",  "tiny",    "vast",   "wary",   "wild",    "witty",   "young"};
constexpr std::string_view kNouns[] = {
    "anchor", "apple",   "badger",  "barrel",  "beacon",  "cabbage", "candle", "canyon",
    "castle", "comet",   "cottage", "crane",   "dagger",  "falcon",  "fiddle", "garden",
    "glacier", "harbor", "helmet",  "island",  "kettle",  "lantern", "ledger", "meadow",
    "mirror", "needle",  "orchard", "otter",   "pebble",  "pepper",  "piano",  "quarry",
    "ribbon", "saddle",  "salmon",  "spindle", "teapot",  "thimble", "tower",  "trumpet",
    "tunnel", "turnip",  "velvet",  "violin",  "walnut",  "wagon",   "willow", "zephyr"};
constexpr int64_t kNumDepths = 40;  // RULER: linspace(0, 100, 40)

constexpr std::string_view kTask =
    "Some special magic numbers are hidden within the following text. Make sure to "
    "memorize it. I will quiz you about the numbers afterwards.";

struct Needle {
  std::string text;
  double depth;  // [0, 1]
  bool queried;
};

// "a", "a and b", "a, b, and c" (RULER joins several query keys this way).
std::string join_keys(const std::vector<std::string>& keys) {
  if (keys.size() == 1) return keys[0];
  if (keys.size() == 2) return keys[0] + " and " + keys[1];
  std::string out;
  for (size_t i = 0; i + 1 < keys.size(); ++i) out += keys[i] + ", ";
  return out + "and " + keys.back();
}

// Haystack sentence i of a sample; the repeated noise or prose from `start`.
std::string_view haystack_sentence(const std::vector<std::string>* hay, int64_t start, int64_t i) {
  if (!hay) return kNoise[i % 5];
  return (*hay)[(start + i) % hay->size()];
}

std::string context_text(const std::vector<Needle>& needles,
                         const std::vector<std::string>* hay, int64_t start, int64_t n) {
  // Needle j goes before haystack sentence floor(n · depth_j) (RULER's insertion rule).
  std::vector<std::pair<int64_t, const Needle*>> at;
  for (auto& nd : needles)
    at.emplace_back(static_cast<int64_t>(std::floor(n * nd.depth)), &nd);
  std::stable_sort(at.begin(), at.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::string out;
  size_t k = 0;
  auto add = [&](std::string_view s) {
    if (!out.empty()) out += ' ';
    out += s;
  };
  for (int64_t i = 0; i <= n; ++i) {
    while (k < at.size() && at[k].first <= i) add(at[k++].second->text);
    if (i < n) add(haystack_sentence(hay, start, i));
  }
  return out;
}

}  // namespace

SyntheticSample niah_sample(const NiahConfig& c, const io::Tokenizer& tok,
                            const std::vector<std::string>* haystack, uint64_t seed) {
  HYLA_CHECK(c.num_keys >= 1 && c.num_values >= 1 && c.num_queries >= 1 &&
                 c.num_queries <= c.num_keys,
             "NIAH: need 1 <= num_queries <= num_keys and num_values >= 1");
  HYLA_CHECK(c.num_keys <= 48 * 48, "NIAH: at most {} distinct keys", 48 * 48);
  HYLA_CHECK(c.depth <= 1, "NIAH: depth {} must be in [0, 1] (or negative for random)", c.depth);
  HYLA_CHECK(!haystack || !haystack->empty(), "NIAH: the prose haystack has no sentences");
  Rng rng(seed);
  std::vector<std::string> keys;
  for (int64_t idx : rng.sample_distinct(0, 48 * 48, c.num_keys))
    keys.push_back(fmt::format("{}-{}", kAdjectives[idx / 48], kNouns[idx % 48]));
  const int64_t n_needles = c.num_keys * c.num_values;
  std::vector<int64_t> values = rng.sample_distinct(1000000, 10000000, n_needles);
  std::vector<int64_t> depth_idx = rng.sample_distinct(0, kNumDepths, std::min(n_needles, kNumDepths));
  std::vector<Needle> needles;
  SyntheticSample s;
  for (int64_t k = 0; k < c.num_keys; ++k)
    for (int64_t v = 0; v < c.num_values; ++v) {
      int64_t j = k * c.num_values + v;
      double d = c.depth >= 0 ? c.depth
                              : static_cast<double>(depth_idx[j % depth_idx.size()]) / (kNumDepths - 1);
      bool queried = k < c.num_queries;
      needles.push_back({fmt::format("One of the special magic numbers for {} is: {}.", keys[k],
                                     values[j]), d, queried});
      if (queried) s.answers.push_back(std::to_string(values[j]));
    }
  rng.shuffle(needles);  // distractors and queried needles in random order
  const int64_t start = haystack ? static_cast<int64_t>(rng.below(haystack->size())) : 0;

  std::vector<std::string> qkeys(keys.begin(), keys.begin() + c.num_queries);
  const bool plural = c.num_queries > 1 || c.num_values > 1;
  std::string question =
      plural ? fmt::format("What are all the special magic numbers for {} mentioned in the "
                           "provided text? The special magic numbers for {} mentioned in the "
                           "provided text are", join_keys(qkeys), join_keys(qkeys))
             : fmt::format("What is the special magic number for {} mentioned in the provided "
                           "text? The special magic number for {} mentioned in the provided "
                           "text is", qkeys[0], qkeys[0]);
  auto prompt_for = [&](int64_t n) {
    return fmt::format("{}\n{}\n{}", kTask, context_text(needles, haystack, start, n), question);
  };
  const int64_t budget = c.length_tokens - c.reserve_tokens;
  auto tokens_for = [&](int64_t n) {
    return static_cast<int64_t>(tok.encode(prompt_for(n), c.add_special).size());
  };
  int64_t per_sentence = std::max<int64_t>(
      1, tok.encode(haystack_sentence(haystack, start, 0)).size());
  int64_t n = largest_fitting(tokens_for, budget, std::max<int64_t>(1, budget / per_sentence));
  HYLA_CHECK(n >= 0, "NIAH: length {} tokens is too short for the task text and needles",
             c.length_tokens);
  s.prompt = prompt_for(n);
  std::string joined;
  for (auto& a : s.answers) joined += (joined.empty() ? " " : ", ") + a;
  s.answer_text = joined + ".";
  for (auto& nd : needles)
    if (nd.queried) { s.depth = nd.depth; break; }
  set_prompt_and_answer(s, tok.encode(s.prompt, c.add_special), tok.encode(s.answer_text));
  return s;
}

std::vector<std::string> haystack_from_corpus(const TokenDataset& data, const io::Tokenizer& tok,
                                              int64_t max_sentences) {
  std::vector<std::string> out;
  const int32_t eos = data.manifest().eos_id;
  for (int64_t d = 0; d < data.total_documents(); ++d) {
    std::vector<int32_t> ids = data.document(d);
    if (!ids.empty() && ids.back() == eos) ids.pop_back();
    for (auto& s : split_sentences(tok.decode(ids, /*skip_special=*/true))) {
      out.push_back(std::move(s));
      if (static_cast<int64_t>(out.size()) >= max_sentences) return out;
    }
  }
  HYLA_CHECK(!out.empty(), "the corpus split holds no sentences for a haystack");
  return out;
}

std::vector<std::string> split_sentences(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  auto is_space = [](char ch) { return ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r'; };
  auto push = [&] {
    while (!cur.empty() && cur.back() == ' ') cur.pop_back();
    if (!cur.empty()) out.push_back(std::move(cur));
    cur.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char ch = text[i];
    if (is_space(ch)) {
      if (!cur.empty() && cur.back() != ' ') cur += ' ';
      continue;
    }
    cur += ch;
    if (ch != '.' && ch != '!' && ch != '?') continue;
    while (i + 1 < text.size() && (text[i + 1] == '"' || text[i + 1] == '\'' || text[i + 1] == ')'))
      cur += text[++i];
    if (i + 1 == text.size() || is_space(text[i + 1])) push();
  }
  push();
  return out;
}

}  // namespace hyla::data
