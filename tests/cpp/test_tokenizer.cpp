// Unit checks of the tokenizer's building blocks; ids are checked against PyPI
// `tokenizers` in tests/py/test_tokenizer.py.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "hyla/io/bpe_pretokenizer.h"
#include "hyla/io/bpe_regex.h"
#include "hyla/io/bpe_unicode.h"
#include "hyla/io/tokenizer.h"
#include "hyla/train/bpe_trainer.h"
#include "hyla/util/error.h"

namespace bpe = hyla::io::bpe;

TEST(TokenizerUnicode, ByteMapIsGpt2s) {
  EXPECT_EQ(bpe::byte_to_char(' '), U'\u0120');  // 'Ġ'
  EXPECT_EQ(bpe::byte_to_char('\n'), U'\u010A');  // 'Ċ'
  EXPECT_EQ(bpe::byte_to_char('a'), U'a');
  EXPECT_EQ(bpe::byte_to_char(0xAD), U'\u0143');  // soft hyphen is the last remapped byte
  for (int b = 0; b < 256; ++b) EXPECT_EQ(bpe::char_to_byte(bpe::byte_to_char(uint8_t(b))), b);
  std::string raw;
  EXPECT_TRUE(bpe::vocab_text_to_bytes("\xC4\xA0the", raw));
  EXPECT_EQ(raw, " the");
  EXPECT_FALSE(bpe::vocab_text_to_bytes("\xE4\xB8\xAD", raw));  // '中' stands for no byte
}

TEST(TokenizerUnicode, LossyUtf8ReplacesMaximalSubparts) {
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(bpe::utf8_lossy("ok"), "ok");
  EXPECT_EQ(bpe::utf8_lossy("a\xF0\x9F\x98"), "a" + fffd);           // truncated emoji
  EXPECT_EQ(bpe::utf8_lossy("\xE0\x80"), fffd + fffd);               // bad second byte
  EXPECT_EQ(bpe::utf8_lossy("\xED\xA0\x80"), fffd + fffd + fffd);    // surrogate
  EXPECT_EQ(bpe::utf8_lossy("\xC3\xA9\xFF"), "\xC3\xA9" + fffd);
  EXPECT_EQ(bpe::valid_utf8_prefix("abcdefghij\xC3"), 10u);
}

TEST(TokenizerRegex, TranslatesOnigurumaClasses) {
  std::string p = bpe::OnigRegex::to_pcre2(R"(\s+(?!\S)|[^\s\p{L}])", "test");
  EXPECT_EQ(p.find("\\s"), std::string::npos);
  EXPECT_NE(p.find("\\x{3000}"), std::string::npos);
  EXPECT_THROW(bpe::OnigRegex::to_pcre2(R"([^\S])", "test"), hyla::Error);
}

namespace {
struct Collect final : bpe::WordSink {
  std::vector<std::string> words;
  void word(std::string_view w) override { words.emplace_back(w); }
};
}  // namespace

TEST(TokenizerPreTokenizer, Gpt2RegexSplitsLikeGpt2) {
  bpe::PreTokenizer pt;
  pt.set_byte_level(false, true);
  Collect c;
  pt.split("Hello world's  end!!\n", c);
  std::vector<std::string> want{"Hello", " world", "'s", " ", " end", "!!", "\n"};
  EXPECT_EQ(c.words, want);
}

TEST(TokenizerLoad, ErrorsNameTheFile) {
  auto dir = std::filesystem::temp_directory_path() / "hyla_tok_unit";
  std::filesystem::create_directories(dir);
  auto path = dir / "tokenizer.json";
  std::ofstream(path) << "{\"model\": [1,";
  try {
    hyla::io::Tokenizer::load(path);
    FAIL();
  } catch (const hyla::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
  std::ofstream(path, std::ios::trunc) << R"({"model": {"type": "Unigram"}})";
  try {
    hyla::io::Tokenizer::load(path);
    FAIL();
  } catch (const hyla::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.type"), std::string::npos) << e.what();
  }
  EXPECT_THROW(hyla::io::Tokenizer::load(dir / "missing.json"), hyla::Error);
}

TEST(TokenizerTrain, MergesMostFrequentPairFirstAndIsDeterministic) {
  hyla::train::BpeTrainOptions opt;
  opt.vocab_size = 256 + 3;
  opt.min_frequency = 1;
  auto run = [&] {
    hyla::train::BpeTrainer t(opt);
    t.feed("ab ab ab abc abc xy");
    return t.train();
  };
  bpe::BpeVocab v = run();
  ASSERT_EQ(v.tokens.size(), 259u);
  EXPECT_EQ(v.tokens[256], "ab");  // 5 occurrences
  EXPECT_EQ(v.tokens[257], " ab");  // " ab" words: 4
  EXPECT_EQ(run().merges, v.merges);
}
