#include "hyla/distill/selection_file.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "hyla/data/sha256.h"
#include "hyla/io/atomic_file.h"
#include "hyla/util/error.h"

namespace hyla::distill {
using nlohmann::json;

namespace {

constexpr int kFormatVersion = 1;

// The fields that fix what layer i of the teacher is. Layer kinds, mixer settings,
// HyPE switches and dtype are left out on purpose (see the header).
json architecture_of(const model::ModelConfig& c) {
  return {{"vocab_size", c.vocab_size},
          {"hidden_size", c.hidden_size},
          {"intermediate_size", c.intermediate_size},
          {"num_hidden_layers", c.num_hidden_layers},
          {"num_attention_heads", c.num_attention_heads},
          {"num_key_value_heads", c.num_key_value_heads},
          {"head_dim", c.head_dim},
          {"rope_type", c.rope.type},
          {"rope_theta", c.rope.theta},
          {"attention_bias", c.attention_bias},
          {"qk_norm", c.qk_norm},
          {"tie_word_embeddings", c.tie_word_embeddings}};
}

template <typename T>
T field(const json& j, const char* key, const std::string& file) {
  auto it = j.find(key);
  HYLA_CHECK(it != j.end() && !it->is_null(), "{}: missing field \"{}\"", file, key);
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    fail("{}: field \"{}\" has the wrong type ({})", file, key, it->dump());
  }
}

void check_layer_list(const std::vector<int64_t>& layers, int64_t n, const std::string& where, bool full) {
  std::set<int64_t> seen;
  for (auto l : layers) {
    HYLA_CHECK(l >= 0 && l < n, "{}: layer {} out of range [0, {})", where, l, n);
    HYLA_CHECK(seen.insert(l).second, "{}: layer {} listed twice", where, l);
  }
  if (full) HYLA_CHECK(int64_t(layers.size()) == n, "{}: must rank all {} layers (has {})", where, n, layers.size());
}

// JSON has no NaN: a layer without a score (a diverged probe) is written as null.
json scores_json(const std::vector<double>& scores) {
  json out = json::array();
  for (double v : scores) out.push_back(std::isfinite(v) ? json(v) : json(nullptr));
  return out;
}

std::vector<double> scores_from_json(const json& j, const std::string& file) {
  HYLA_CHECK(j.is_array(), "{}: field \"scores\" must be a list", file);
  std::vector<double> out;
  for (auto& v : j) {
    HYLA_CHECK(v.is_null() || v.is_number(), "{}: field \"scores\" must hold numbers or null", file);
    out.push_back(v.is_null() ? std::nan("") : v.get<double>());
  }
  return out;
}

}  // namespace

std::string config_fingerprint(const model::ModelConfig& c) {
  return data::sha256_hex(architecture_of(c).dump()).substr(0, 16);
}

std::string describe_model(const model::ModelConfig& c) {
  return fmt::format("{}, {} layers, hidden {}, {}/{} heads, vocab {}", c.model_type, c.num_hidden_layers,
                     c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.vocab_size);
}

int64_t keep_count(double share, int64_t num_layers, const std::string& what) {
  HYLA_CHECK(std::isfinite(share) && share > 0 && share <= 1, "{} {} must be in (0, 1]", what, share);
  auto k = int64_t(std::floor(share * double(num_layers) + 0.5));
  HYLA_CHECK(k >= 1, "{} {} keeps no attention layer of {} (round-half-up({} x {}) = 0)", what, share, num_layers,
             share, num_layers);
  return std::min(k, num_layers);
}

json Selection::to_json() const {
  return {{"format", "hyla-selection"}, {"version", kFormatVersion}, {"method", method},
          {"model", model}, {"model_description", model_description}, {"num_layers", num_layers},
          {"scores", scores_json(scores)}, {"ranking", ranking}, {"attention_layers", attention_layers},
          {"share", share}, {"extra", extra}};
}

Selection make_selection_ranked(const std::string& method, const model::ModelConfig& teacher,
                                std::vector<double> scores, std::vector<int64_t> ranking, int64_t keep) {
  int64_t n = teacher.num_hidden_layers;
  HYLA_CHECK(int64_t(scores.size()) == n, "{}: {} scores for {} layers", method, scores.size(), n);
  check_layer_list(ranking, n, method + ": ranking", true);
  HYLA_CHECK(keep >= 1 && keep <= n, "{}: keeps {} attention layers of {}", method, keep, n);
  Selection s;
  s.method = method;
  s.model = config_fingerprint(teacher);
  s.model_description = describe_model(teacher);
  s.num_layers = n;
  s.scores = std::move(scores);
  s.ranking = std::move(ranking);
  s.share = double(keep) / double(n);
  s.attention_layers = top_layers(s, keep);
  return s;
}

Selection make_selection(const std::string& method, const model::ModelConfig& teacher,
                         const std::vector<double>& scores, bool higher_keeps, int64_t keep) {
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  // NaN scores (a layer whose probe diverged) rank last, whatever the direction.
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    double x = scores[a], y = scores[b];
    if (std::isnan(x) || std::isnan(y)) return !std::isnan(x) && std::isnan(y);
    return higher_keeps ? x > y : x < y;
  });
  auto s = make_selection_ranked(method, teacher, scores, order, keep);
  s.extra["higher_score_keeps_attention"] = higher_keeps;
  return s;
}

std::vector<int64_t> top_layers(const Selection& s, int64_t keep) {
  HYLA_CHECK(keep >= 1 && keep <= int64_t(s.ranking.size()), "selection ({}): cannot keep {} of {} layers", s.method,
             keep, s.ranking.size());
  std::vector<int64_t> out(s.ranking.begin(), s.ranking.begin() + keep);
  std::sort(out.begin(), out.end());
  return out;
}

Selection load_selection(const std::filesystem::path& path, const model::ModelConfig& teacher) {
  const std::string file = path.string();
  HYLA_CHECK(std::filesystem::is_regular_file(path), "{}: selection file not found", file);
  json j;
  try {
    j = json::parse(io::read_text_file(path));
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({})", file, e.what());
  }
  HYLA_CHECK(j.is_object() && j.value("format", "") == "hyla-selection",
             "{}: not a hyla selection file (expected \"format\": \"hyla-selection\"; made by `hyla select`)", file);
  HYLA_CHECK(field<int>(j, "version", file) == kFormatVersion, "{}: selection format version {} (this hyla reads {})",
             file, field<int>(j, "version", file), kFormatVersion);
  Selection s;
  s.method = field<std::string>(j, "method", file);
  s.model = field<std::string>(j, "model", file);
  s.model_description = j.value("model_description", std::string("unknown model"));
  s.num_layers = field<int64_t>(j, "num_layers", file);
  const auto want = config_fingerprint(teacher);
  HYLA_CHECK(s.model == want && s.num_layers == teacher.num_hidden_layers,
             "{}: selection was made for another model ({}; fingerprint {}), not for this teacher ({}; fingerprint {})",
             file, s.model_description, s.model, describe_model(teacher), want);
  HYLA_CHECK(j.contains("scores"), "{}: missing field \"scores\"", file);
  s.scores = scores_from_json(j["scores"], file);
  s.ranking = field<std::vector<int64_t>>(j, "ranking", file);
  s.attention_layers = field<std::vector<int64_t>>(j, "attention_layers", file);
  s.share = field<double>(j, "share", file);
  if (j.contains("extra")) s.extra = j["extra"];
  HYLA_CHECK(int64_t(s.scores.size()) == s.num_layers, "{}: \"scores\" has {} entries for {} layers", file,
             s.scores.size(), s.num_layers);
  check_layer_list(s.ranking, s.num_layers, file + ": \"ranking\"", true);
  check_layer_list(s.attention_layers, s.num_layers, file + ": \"attention_layers\"", false);
  HYLA_CHECK(!s.attention_layers.empty(), "{}: \"attention_layers\" is empty (a selection keeps at least one layer)",
             file);
  return s;
}

void save_selection(const Selection& s, const std::filesystem::path& path) {
  io::write_text_atomic(path, s.to_json().dump(2) + "\n");
}

}  // namespace hyla::distill
