// Synthetic recall generators (MQAR, passkey, NIAH), checked by direct inspection of
// what eval.md specifies.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "hyla/data/synthetic_mqar.h"
#include "hyla/data/synthetic_niah.h"
#include "hyla/data/synthetic_passkey.h"
#include "hyla/io/tokenizer.h"
#include "hyla/util/error.h"

using namespace hyla::data;

namespace {

// Byte-level stand-in for a real tokenizer: id = byte + 3, BOS 1, EOS 2.
class ByteTokenizer : public hyla::io::Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    std::vector<int32_t> out;
    if (add_special) out.push_back(1);
    for (unsigned char c : text) out.push_back(c + 3);
    return out;
  }
  std::string decode(const std::vector<int32_t>& ids, bool = false) const override {
    std::string s;
    for (int32_t i : ids)
      if (i >= 3) s += static_cast<char>(i - 3);
    return s;
  }
  std::string token_text(int32_t id) const override { return decode({id}, false); }
  int64_t vocab_size() const override { return 259; }
  std::optional<int32_t> token_to_id(std::string_view) const override { return std::nullopt; }
  std::optional<int32_t> bos_id() const override { return 1; }
  std::optional<int32_t> eos_id() const override { return 2; }
};

}  // namespace

TEST(DataMqar, LayoutFollowsZoology) {
  for (auto [L, N] : kMqarGrid) {
    MqarConfig c{.vocab_size = 8192, .seq_len = L, .num_kv_pairs = N};
    for (uint64_t seed = 0; seed < 20; ++seed) {
      SyntheticSample s = mqar_sample(c, seed);
      ASSERT_EQ(s.input.size(), size_t(L));
      std::map<int32_t, int32_t> kv;
      std::set<int32_t> values;
      for (int64_t i = 0; i < N; ++i) {
        int32_t k = s.input[2 * i], v = s.input[2 * i + 1];
        EXPECT_TRUE(k >= 1 && k < 4096) << k;
        EXPECT_TRUE(v >= 4096 && v < 8192) << v;
        EXPECT_TRUE(kv.emplace(k, v).second) << "keys are distinct";
        EXPECT_TRUE(values.insert(v).second) << "values are distinct";
      }
      int64_t scored = 0;
      std::set<int32_t> queried;
      for (int64_t p = 0; p < L; ++p) {
        if (!s.mask[p]) continue;
        ++scored;
        EXPECT_GE(p, 2 * N);
        EXPECT_EQ((p - 2 * N) % 2, 0) << "queries sit at the start of two-token slots";
        ASSERT_TRUE(kv.count(s.input[p]));
        EXPECT_EQ(s.target[p], kv[s.input[p]]) << "label is the value paired with the key";
        queried.insert(s.input[p]);
      }
      EXPECT_EQ(scored, N);
      EXPECT_EQ(queried.size(), size_t(N)) << "every key is asked exactly once";
    }
  }
}

TEST(DataMqar, DeterministicOffsetAndZeroFiller) {
  MqarConfig c{.vocab_size = 512, .seq_len = 128, .num_kv_pairs = 8};
  EXPECT_EQ(mqar_sample(c, 5).input, mqar_sample(c, 5).input);
  EXPECT_NE(mqar_sample(c, 5).input, mqar_sample(c, 6).input);
  MqarConfig z = c;
  z.random_filler = false;
  z.token_offset = 1000;
  SyntheticSample s = mqar_sample(z, 5);
  for (int64_t p = 16; p < 128; ++p)
    if (!s.mask[p]) {
      EXPECT_EQ(s.input[p], 1000) << "filler is token 0 shifted";
    }
  EXPECT_THROW(mqar_sample({.vocab_size = 512, .seq_len = 64, .num_kv_pairs = 17}, 0),
               hyla::Error);
  EXPECT_THROW(mqar_sample({.vocab_size = 64, .seq_len = 64, .num_kv_pairs = 4}, 0),
               hyla::Error);
}

TEST(DataMqar, QueriesClusterNearTheKeyValueBlock) {
  // P(slot g) ∝ g^(a−1), a = 0.01: slot 1 is drawn first far more often than slot 100.
  // (The full distribution is compared with a numpy re-implementation in
  // tests/py/test_data_synthetic.py.)
  MqarConfig c{.vocab_size = 8192, .seq_len = 256, .num_kv_pairs = 16};
  int64_t first = 0, late = 0;
  for (uint64_t seed = 0; seed < 400; ++seed) {
    auto s = mqar_sample(c, seed);
    first += s.mask[32] == 1;
    for (int64_t p = 32 + 2 * 100; p < 256; p += 2) late += s.mask[p];
  }
  EXPECT_GT(first, 300);  // slot 1 is nearly always chosen among 16 of 112
  EXPECT_LT(late, first);
}

TEST(DataPasskey, FormatLengthAndAnswer) {
  ByteTokenizer tok;
  for (int64_t len : {300, 1000, 4000}) {
    for (uint64_t seed = 0; seed < 5; ++seed) {
      SyntheticSample s = passkey_sample({.length_tokens = len}, tok, seed);
      int64_t k = passkey_key(s);
      EXPECT_TRUE(k >= 1 && k <= 50000);
      EXPECT_LE(s.prompt_len + 10, len);
      EXPECT_GT(s.prompt_len + 10, len - 25) << "filler fills the budget to a sentence";
      EXPECT_EQ(s.prompt.rfind("There is an important info hidden inside a lot of irrelevant "
                               "text. Find it and memorize them. I will quiz you about the "
                               "important information there.\n", 0), 0u);
      std::string needle = fmt::format("\nThe pass key is {}. Remember it. {} is the pass key.\n",
                                       k, k);
      EXPECT_NE(s.prompt.find(needle), std::string::npos);
      EXPECT_TRUE(s.prompt.ends_with("\nWhat is the pass key? The pass key is"));
      EXPECT_EQ(s.answer_text, fmt::format(" {}.", k));
      // Next-token form: the masked targets decode to the answer.
      std::vector<int32_t> ans;
      for (size_t i = 0; i < s.mask.size(); ++i)
        if (s.mask[i]) ans.push_back(s.target[i]);
      EXPECT_EQ(tok.decode(ans), s.answer_text);
      EXPECT_TRUE(passkey_correct(tok.decode(ans), k));
      EXPECT_EQ(tok.decode({s.input.begin(), s.input.begin() + s.prompt_len}), s.prompt);
    }
  }
  auto a = passkey_sample({.length_tokens = 500}, tok, 9);
  EXPECT_EQ(a.prompt, passkey_sample({.length_tokens = 500}, tok, 9).prompt);
  auto shallow = passkey_sample({.length_tokens = 2000, .depth = 0.0}, tok, 1);
  auto deep = passkey_sample({.length_tokens = 2000, .depth = 1.0}, tok, 1);
  EXPECT_LT(shallow.prompt.find("The pass key is"), 200u);
  EXPECT_GT(deep.prompt.find("The pass key is"), 1700u);
}

TEST(DataPasskey, Scoring) {
  EXPECT_TRUE(passkey_correct(" 123. Remember", 123));
  EXPECT_FALSE(passkey_correct(" 1234", 123));
  EXPECT_FALSE(passkey_correct(" none", 123));
  EXPECT_DOUBLE_EQ(string_match_all("The Numbers are 12 and 34", {"12", "34"}), 1.0);
  EXPECT_DOUBLE_EQ(string_match_all("only 12", {"12", "34"}), 0.5);
}

TEST(DataNiah, NeedlesQueriesAndLength) {
  ByteTokenizer tok;
  std::vector<std::string> prose = split_sentences(
      "Alpha went home. Beta stayed! Did Gamma leave? \"Delta,\" he said. Epsilon\n  waited.");
  ASSERT_EQ(prose.size(), 5u);
  EXPECT_EQ(prose[3], "\"Delta,\" he said.");
  EXPECT_EQ(prose[4], "Epsilon waited.");
  for (const std::vector<std::string>* hay : {static_cast<std::vector<std::string>*>(nullptr), &prose}) {
    NiahConfig c{.length_tokens = 3000, .num_keys = 4, .num_values = 2, .num_queries = 2};
    SyntheticSample s = niah_sample(c, tok, hay, 17);
    EXPECT_LE(s.prompt_len + 128, 3000);
    EXPECT_GT(s.prompt_len + 128, 3000 - 40);
    ASSERT_EQ(s.answers.size(), 4u);  // 2 queried keys × 2 values
    size_t needles = 0;
    for (size_t at = 0; (at = s.prompt.find("One of the special magic numbers for ", at)) !=
                        std::string::npos; ++at)
      ++needles;
    EXPECT_EQ(needles, 8u);  // 4 keys × 2 values, including distractors
    for (auto& v : s.answers) {
      EXPECT_EQ(v.size(), 7u);
      EXPECT_NE(s.prompt.find(" is: " + v + "."), std::string::npos);
    }
    EXPECT_NE(s.prompt.find("What are all the special magic numbers for "), std::string::npos);
    EXPECT_DOUBLE_EQ(string_match_all(s.answer_text, s.answers), 1.0);
    EXPECT_EQ(s.prompt, niah_sample(c, tok, hay, 17).prompt);
  }
  NiahConfig single{.length_tokens = 1500, .depth = 0.5};
  SyntheticSample s = niah_sample(single, tok, nullptr, 3);
  ASSERT_EQ(s.answers.size(), 1u);
  size_t pos = s.prompt.find("One of the special magic numbers for ");
  EXPECT_NEAR(double(pos) / s.prompt.size(), 0.5, 0.1);
  std::string key = s.prompt.substr(pos + 37, s.prompt.find(" is: ", pos) - pos - 37);
  EXPECT_TRUE(s.prompt.ends_with(fmt::format(
      "What is the special magic number for {} mentioned in the provided text? The special "
      "magic number for {} mentioned in the provided text is", key, key)));
  EXPECT_EQ(s.answer_text, " " + s.answers[0] + ".");
}
