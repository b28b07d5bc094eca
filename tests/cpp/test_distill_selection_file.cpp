#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "hyla/distill/selection_file.h"
#include "hyla/util/error.h"

namespace {
using hyla::distill::Selection;
namespace fs = std::filesystem;

hyla::model::ModelConfig tiny(int64_t layers, int64_t hidden = 64) {
  hyla::model::ModelConfig c;
  c.vocab_size = 256;
  c.hidden_size = hidden;
  c.intermediate_size = 128;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = hidden / 4;
  return c;
}

fs::path temp_file(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("hyla_sel_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const hyla::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(SelectionFile, KeepCountRoundsHalfUpAndRefusesAShareThatKeepsNoLayer) {
  EXPECT_EQ(hyla::distill::keep_count(0.25, 28), 7);
  EXPECT_EQ(hyla::distill::keep_count(0.25, 36), 9);
  EXPECT_EQ(hyla::distill::keep_count(0.125, 28), 4);  // 3.5 rounds up
  EXPECT_EQ(hyla::distill::keep_count(0.25, 5), 1);
  EXPECT_NE(error_of([] { hyla::distill::keep_count(0.05, 5); }).find("keeps no attention layer of 5"),
            std::string::npos);
  EXPECT_NE(error_of([] { hyla::distill::keep_count(1.5, 5); }).find("must be in (0, 1]"), std::string::npos);
}

TEST(SelectionFile, RanksByScoreInEitherDirectionWithTiesByLayer) {
  auto c = tiny(5);
  auto hi = hyla::distill::make_selection("bypass-ppl", c, {3, 9, 1, 9, 2}, true, 2);
  EXPECT_EQ(hi.ranking, (std::vector<int64_t>{1, 3, 0, 4, 2}));
  EXPECT_EQ(hi.attention_layers, (std::vector<int64_t>{1, 3}));
  auto lo = hyla::distill::make_selection("ga-s2", c, {3, 9, 1, std::nan(""), 2}, false, 3);
  EXPECT_EQ(lo.ranking, (std::vector<int64_t>{2, 4, 0, 1, 3}));  // NaN last
  EXPECT_EQ(lo.attention_layers, (std::vector<int64_t>{0, 2, 4}));
  EXPECT_EQ(hyla::distill::top_layers(lo, 1), (std::vector<int64_t>{2}));
}

TEST(SelectionFile, RoundTripsThroughJson) {
  auto c = tiny(5);
  auto s = hyla::distill::make_selection("entropy", c, {0.5, std::nan(""), 0.1, 0.7, 0.2}, true, 2);
  s.extra["direction"] = "high-entropy-keeps";
  auto path = temp_file("roundtrip.json");
  hyla::distill::save_selection(s, path);
  auto t = hyla::distill::load_selection(path, c);
  EXPECT_EQ(t.method, "entropy");
  EXPECT_EQ(t.ranking, s.ranking);
  EXPECT_EQ(t.attention_layers, s.attention_layers);
  EXPECT_TRUE(std::isnan(t.scores[1]));
  EXPECT_DOUBLE_EQ(t.scores[3], 0.7);
  EXPECT_EQ(t.extra["direction"], "high-entropy-keeps");
  // A hybrid of the same teacher (other layer kinds) still matches.
  auto hybrid = c;
  hybrid.model_type = "hyla_hybrid";
  hybrid.layer_types = {"full_attention", "gdn", "gdn", "gdn", "gdn"};
  EXPECT_NO_THROW(hyla::distill::load_selection(path, hybrid));
}

TEST(SelectionFile, RefusesAFileMadeForAnotherModelNamingTheFileAndBothModels) {
  auto path = temp_file("other.json");
  hyla::distill::save_selection(hyla::distill::make_selection("uniform", tiny(5), {1, 0, 0, 0, 1}, true, 2), path);
  auto msg = error_of([&] { hyla::distill::load_selection(path, tiny(5, 128)); });
  EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("another model"), std::string::npos) << msg;
  EXPECT_NE(msg.find("hidden 64"), std::string::npos) << msg;
  EXPECT_NE(msg.find("hidden 128"), std::string::npos) << msg;
  msg = error_of([&] { hyla::distill::load_selection(path, tiny(8)); });
  EXPECT_NE(msg.find("5 layers"), std::string::npos) << msg;
  EXPECT_NE(msg.find("8 layers"), std::string::npos) << msg;
}

TEST(SelectionFile, RefusesMalformedFilesWithOneLineNamingTheField) {
  auto c = tiny(5);
  auto path = temp_file("bad.json");
  auto write = [&](const std::string& text) { std::ofstream(path) << text; };
  write("{not json");
  EXPECT_NE(error_of([&] { hyla::distill::load_selection(path, c); }).find("not valid JSON"), std::string::npos);
  write("{\"a\": 1}");
  EXPECT_NE(error_of([&] { hyla::distill::load_selection(path, c); }).find("not a hyla selection file"),
            std::string::npos);
  auto j = hyla::distill::make_selection("uniform", c, {1, 0, 0, 0, 1}, true, 2).to_json();
  j["ranking"] = {0, 1, 2, 3, 3};
  write(j.dump());
  EXPECT_NE(error_of([&] { hyla::distill::load_selection(path, c); }).find("layer 3 listed twice"),
            std::string::npos);
  j["ranking"] = {0, 1, 2, 3, 4};
  j["attention_layers"] = {7};
  write(j.dump());
  EXPECT_NE(error_of([&] { hyla::distill::load_selection(path, c); }).find("\"attention_layers\": layer 7 out of range"),
            std::string::npos);
  EXPECT_NE(error_of([&] { hyla::distill::load_selection(temp_file("missing.json"), c); }).find("not found"),
            std::string::npos);
}
