// A layer-selection result (pipeline.md §1): which teacher layers keep softmax attention,
// with the per-layer scores and the full ranking that chose them, as one JSON file that
// `hyla select` writes and a recipe's [student] table names (`selection = "sel.json"`).
//
// A selection belongs to one teacher: the file records a fingerprint of the teacher's
// architecture (shapes, vocabulary, position scheme), and loading it against another
// model is an error naming the file and both models. Layer kinds, mixer settings and
// dtype are not part of the fingerprint, so a selection still loads against the config of
// a hybrid built from the same teacher.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "hyla/model/config.h"

namespace hyla::distill {

struct Selection {
  std::string method;                     // uniform | bypass-ppl | bypass-recall | entropy | ga-s2 | kl-guided | ...
  std::string model;                      // config_fingerprint(teacher)
  std::string model_description;          // describe_model(teacher), for error messages
  int64_t num_layers = 0;
  std::vector<double> scores;             // one per layer, in the method's own units
  std::vector<int64_t> ranking;           // all layers, most worth keeping as attention first
  std::vector<int64_t> attention_layers;  // the top-K of `ranking`, sorted ascending
  double share = 0;                       // K / num_layers as requested (0.25 = keep a quarter)
  nlohmann::json extra = nlohmann::json::object();  // method's settings, score meaning, timings

  nlohmann::json to_json() const;
};

// Hex SHA-256 (first 16 digits) of the teacher's architecture: what a layer index means.
std::string config_fingerprint(const model::ModelConfig& c);
// "llama, 5 layers, hidden 192, 6/2 heads, vocab 8192" (human-readable, for errors).
std::string describe_model(const model::ModelConfig& c);

// K = round-half-up(share · L) (methods.md §5.2); errors if that keeps no layer or
// more layers than exist ("--share 0.05 keeps no attention layer of 5").
int64_t keep_count(double share, int64_t num_layers, const std::string& what = "share");

// Builds a selection from per-layer scores: ranking by score (descending if
// `higher_keeps`, else ascending; ties by layer index), then the top `keep` layers.
Selection make_selection(const std::string& method, const model::ModelConfig& teacher,
                         const std::vector<double>& scores, bool higher_keeps, int64_t keep);
// Same, from a given ranking (most worth keeping first) with its scores.
Selection make_selection_ranked(const std::string& method, const model::ModelConfig& teacher,
                                std::vector<double> scores, std::vector<int64_t> ranking, int64_t keep);

// The attention layers for a different K from the same ranking (selections are nested:
// one ranking, top-K for each K), sorted ascending.
std::vector<int64_t> top_layers(const Selection& s, int64_t keep);

// Reads and validates `path`; refuses a file made for another model (error names the
// file, the model it was made for and `teacher`).
Selection load_selection(const std::filesystem::path& path, const model::ModelConfig& teacher);
// Writes atomically.
void save_selection(const Selection& s, const std::filesystem::path& path);

}  // namespace hyla::distill
