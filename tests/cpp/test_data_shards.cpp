// Token shards, manifest, text sources and the document split.
#include <gtest/gtest.h>

#include <fstream>

#include "hyla/data/prepare.h"
#include "hyla/data/random.h"
#include "hyla/data/sha256.h"
#include "hyla/data/subprocess.h"
#include "hyla/data/text_sources.h"
#include "hyla/data/token_shards.h"
#include "hyla/util/error.h"

namespace fs = std::filesystem;
using namespace hyla::data;

TEST(DataSha256, KnownVectors) {
  // FIPS 180-4 examples.
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(DataRandom, DeterministicAndDistinct) {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next(), b.next());
  EXPECT_NE(Rng(42).next(), c.next());
  auto v = Rng(7).sample_distinct(10, 30, 20);  // dense path
  std::sort(v.begin(), v.end());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(v[i], 10 + i);
  auto w = Rng(7).sample_distinct(0, 1000000, 50);  // sparse path
  std::set<int64_t> s(w.begin(), w.end());
  EXPECT_EQ(s.size(), 50u);
  EXPECT_THROW(Rng(1).sample_distinct(0, 3, 4), hyla::Error);
}

TEST(DataBrown, TagStrippingGivesProse) {
  std::string tagged =
      "\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr an/at "
      "investigation/nn of/in Atlanta's/np$ recent/jj primary/nn election/nn produced/vbd "
      "``/`` no/at evidence/nn ''/'' that/cs any/dti irregularities/nns took/vbd place/nn ./.\n"
      "\n\n\t``/`` Only/rb a/at handful/nn ''/'' ,/, the/at jury/nn said/vbd (/( 1/2/cd "
      "of/in it/ppo )/) ;/. 3/cd //in 4/cd --/-- yes/rb !/.\n"
      "\tSecond/od sentence/nn ?/.\n";
  EXPECT_EQ(brown_to_prose(tagged),
            "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent "
            "primary election produced \"no evidence\" that any irregularities took place.\n\n"
            "\"Only a handful\", the jury said (1/2 of it); 3 / 4 -- yes! Second sentence?");
}

TEST(DataSplit, HashSplitDependsOnSeed) {
  int val0 = 0, same = 0, n = 4000;
  for (int i = 0; i < n; ++i) {
    std::string text = "document number " + std::to_string(i);
    bool a = is_validation(text, 1, 0.1), b = is_validation(text, 1, 0.1);
    EXPECT_EQ(a, b);
    val0 += a;
    same += a == is_validation(text, 2, 0.1);
  }
  EXPECT_NEAR(val0 / double(n), 0.1, 0.02);
  EXPECT_LT(same, n - 100);  // another seed gives another split
}

class DataTmp : public ::testing::Test {
 protected:
  TempDir tmp{"hyla-test-data"};
  fs::path dir() const { return tmp.path(); }
};

TEST_F(DataTmp, ShardRoundTripThroughMmap) {
  std::vector<std::vector<int32_t>> docs = {{1, 2, 3}, {}, {65535, 7}, {9, 9, 9, 9, 9}};
  ShardWriter w(dir(), "train", TokenDtype::U16, /*max_shard_tokens=*/6);
  for (auto& d : docs) w.add_document(d, 0);
  SplitInfo info = w.finish();
  ASSERT_EQ(info.shards.size(), 3u);  // [1 2 3 0 | 0] [65535 7 0] [9×5 0]
  EXPECT_EQ(info.tokens, 3 + 1 + 1 + 2 + 1 + 5 + 1);
  EXPECT_EQ(info.documents, 4);
  Manifest m;
  m.vocab_size = 65536;
  m.eos_id = 0;
  m.splits["train"] = info;
  m.save(dir());
  auto ds = TokenDataset::open(dir(), "train");
  EXPECT_EQ(ds->total_tokens(), info.tokens);
  ASSERT_EQ(ds->total_documents(), 4);
  for (size_t i = 0; i < docs.size(); ++i) {
    auto expect = docs[i];
    expect.push_back(0);
    EXPECT_EQ(ds->document(i), expect) << "document " << i;
  }
  EXPECT_EQ(ds->shards()[1]->at(0), 65535u);
  EXPECT_THROW(ShardWriter(dir(), "x", TokenDtype::U16, 10).add_document({{70000}}, 0),
               hyla::Error);
}

TEST_F(DataTmp, Uint32ShardsAndManifestChecks) {
  ShardWriter w(dir(), "val", TokenDtype::U32, 1000);
  w.add_document(std::vector<int32_t>{100000, 5}, 151643);
  Manifest m;
  m.dtype = TokenDtype::U32;
  m.vocab_size = 151665;
  m.eos_id = 151643;
  m.seed = 0xFFFFFFFFFFFFFFFFull;  // survives JSON as uint64
  m.splits["val"] = w.finish();
  m.save(dir());
  Manifest back = Manifest::load(dir());
  EXPECT_EQ(back.seed, m.seed);
  EXPECT_EQ(back.to_json(), m.to_json());
  auto ds = TokenDataset::open(dir(), "val");
  EXPECT_EQ(ds->document(0), (std::vector<int32_t>{100000, 5, 151643}));
  EXPECT_EQ(TokenDataset::open(dir(), "validation")->total_tokens(), 3);
  EXPECT_THROW(TokenDataset::open(dir(), "train"), hyla::Error);
  // A manifest that disagrees with the shard is caught.
  m.splits["val"].shards[0].tokens = 4;
  m.save(dir());
  EXPECT_THROW(TokenDataset::open(dir(), "val"), hyla::Error);
}

TEST_F(DataTmp, CorruptShardIsRejected) {
  std::ofstream(dir() / "bad.tokens") << "HYLATOKS but not really a shard at all, no no no no";
  EXPECT_THROW(TokenShard(dir() / "bad.tokens"), hyla::Error);
}

TEST_F(DataTmp, JsonlBadLineNamesFileAndLine) {
  fs::path f = dir() / "c.jsonl";
  std::ofstream(f) << "{\"text\": \"one\"}\n\n{\"text\": \"two\", \"id\": 3}\n{\"text\": oops}\n";
  std::vector<std::string> seen;
  try {
    read_jsonl_texts(f, [&](int64_t, std::string&& t) { seen.push_back(t); });
    FAIL() << "no error";
  } catch (const hyla::Error& e) {
    EXPECT_NE(std::string(e.what()).find("c.jsonl:4:"), std::string::npos) << e.what();
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"one", "two"}));
  std::ofstream(f) << "{\"txt\": \"one\"}\n";
  EXPECT_THROW(read_jsonl_texts(f, [](int64_t, std::string&&) {}), hyla::Error);
}

TEST_F(DataTmp, DiscoverSortsAndRejectsUnknown) {
  fs::create_directories(dir() / "d" / "sub");
  std::ofstream(dir() / "d" / "b.txt") << "b";
  std::ofstream(dir() / "d" / "a.txt") << "a";
  std::ofstream(dir() / "d" / "sub" / "c.jsonl") << "{\"text\": \"c\"}\n";
  std::ofstream(dir() / "d" / "skip.bin") << "x";
  auto srcs = discover_sources({dir() / "d"});
  ASSERT_EQ(srcs.size(), 3u);
  EXPECT_EQ(srcs[0].path.filename(), "a.txt");
  EXPECT_EQ(srcs[2].format, SourceFormat::Jsonl);
  EXPECT_THROW(discover_sources({dir() / "d" / "skip.bin"}), hyla::Error);
  EXPECT_THROW(discover_sources({dir() / "missing.txt"}), hyla::Error);
}
