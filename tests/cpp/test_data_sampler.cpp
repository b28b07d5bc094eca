// The training batch sampler: determinism, resume, rank partitions, synthetic mixing.
#include <gtest/gtest.h>

#include <set>

#include "hyla/data/batch_sampler.h"
#include "hyla/data/subprocess.h"
#include "hyla/data/synthetic_mqar.h"
#include "hyla/util/error.h"

namespace fs = std::filesystem;
using namespace hyla::data;

namespace {

// A corpus whose token at global position i (within each shard) is its position, so a
// window's first token tells where it came from.
std::shared_ptr<TokenDataset> make_corpus(const fs::path& dir, int64_t per_shard, int shards) {
  ShardWriter w(dir, "train", TokenDtype::U32, per_shard);
  int64_t next = 0;
  for (int s = 0; s < shards; ++s) {
    std::vector<int32_t> doc;
    for (int64_t i = 0; i < per_shard - 1; ++i) doc.push_back(static_cast<int32_t>(next++));
    w.add_document(doc, static_cast<int32_t>(next++));
  }
  Manifest m;
  m.dtype = TokenDtype::U32;
  m.vocab_size = 1 << 20;
  m.eos_id = 0;
  m.splits["train"] = w.finish();
  m.save(dir);
  return TokenDataset::open(dir, "train");
}

std::vector<int64_t> flat(const torch::Tensor& t) {
  auto c = t.contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

}  // namespace

class DataSampler : public ::testing::Test {
 protected:
  TempDir tmp{"hyla-test-sampler"};
  std::shared_ptr<TokenDataset> ds = make_corpus(tmp.path(), 1000, 3);
};

TEST_F(DataSampler, WindowsAreShiftedTargetsInsideOneShard) {
  BatchSampler s(ds, {.seq_len = 16, .batch_size = 4, .seed = 3});
  EXPECT_EQ(s.num_windows(), 3 * (999 / 16));
  for (int step = 0; step < 20; ++step) {
    auto b = s.next();
    auto in = flat(b.input), tg = flat(b.target);
    for (int r = 0; r < 4; ++r) {
      int64_t first = in[r * 16];
      EXPECT_EQ(first % 1000 % 16, 0) << "window starts on a seq_len boundary of its shard";
      for (int t = 0; t < 16; ++t) {
        EXPECT_EQ(in[r * 16 + t], first + t);
        EXPECT_EQ(tg[r * 16 + t], first + t + 1);
      }
      EXPECT_LT(first % 1000 + 16, 1000) << "window stays inside its shard";
    }
    EXPECT_EQ(b.loss_mask.sum().item<float>(), 64.0f);
  }
}

TEST_F(DataSampler, SameSeedSameBatchesAndResumeFromPosition) {
  SamplerOptions o{.seq_len = 8, .batch_size = 5, .seed = 11};
  BatchSampler a(ds, o), b(ds, o);
  std::vector<std::vector<int64_t>> first_run;
  DataPosition saved;
  for (int step = 0; step < 200; ++step) {  // crosses several epochs (374 windows / 5)
    if (step == 123) saved = DataPosition::from_json(a.position().to_json());
    auto x = a.next(), y = b.next();
    EXPECT_TRUE(torch::equal(x.input, y.input));
    first_run.push_back(flat(x.input));
  }
  EXPECT_GE(a.position().epoch, 2);
  BatchSampler resumed(ds, o);
  resumed.set_position(saved);
  for (int step = 123; step < 200; ++step)
    EXPECT_EQ(flat(resumed.next().input), first_run[step]) << "step " << step;
  BatchSampler other(ds, {.seq_len = 8, .batch_size = 5, .seed = 12});
  EXPECT_NE(flat(other.next().input), first_run[0]);
}

TEST_F(DataSampler, EpochVisitsEveryWindowOnceAndOrderChanges) {
  SamplerOptions o{.seq_len = 32, .batch_size = 3, .seed = 5};
  BatchSampler s(ds, o);
  std::vector<int64_t> epoch0, epoch1;
  for (int64_t i = 0; i < s.steps_per_epoch(); ++i) {
    auto w = s.peek_windows();
    epoch0.insert(epoch0.end(), w.begin(), w.end());
    s.next();
  }
  EXPECT_EQ(s.position(), (DataPosition{1, 0}));
  for (int64_t i = 0; i < s.steps_per_epoch(); ++i) {
    auto w = s.peek_windows();
    epoch1.insert(epoch1.end(), w.begin(), w.end());
    s.next();
  }
  std::set<int64_t> u0(epoch0.begin(), epoch0.end());
  EXPECT_EQ(u0.size(), epoch0.size());
  EXPECT_EQ(static_cast<int64_t>(u0.size()), s.steps_per_epoch() * 3);
  EXPECT_NE(epoch0, epoch1);
}

TEST_F(DataSampler, RanksReadDisjointWindowsCoveringTheStream) {
  const int world = 4;
  std::vector<BatchSampler> ranks;
  for (int r = 0; r < world; ++r)
    ranks.emplace_back(ds, SamplerOptions{.seq_len = 16, .batch_size = 2, .seed = 9,
                                          .rank = r, .world_size = world});
  BatchSampler single(ds, {.seq_len = 16, .batch_size = 2 * world, .seed = 9});
  for (int step = 0; step < ranks[0].steps_per_epoch(); ++step) {
    std::vector<int64_t> together;
    for (auto& s : ranks) {
      auto w = s.peek_windows();
      together.insert(together.end(), w.begin(), w.end());
      s.next();
    }
    // The ranks' batches, concatenated, are exactly one world-size batch.
    EXPECT_EQ(together, single.peek_windows());
    single.next();
  }
  EXPECT_THROW(BatchSampler(ds, {.seq_len = 16, .batch_size = 2, .rank = 4, .world_size = 4}),
               hyla::Error);
}

TEST_F(DataSampler, SyntheticShareMixesMaskedSamples) {
  MqarConfig mc{.vocab_size = 256, .seq_len = 32, .num_kv_pairs = 4, .token_offset = 5000};
  SamplerOptions o{.seq_len = 40, .batch_size = 8, .seed = 1, .synthetic_share = 0.25,
                   .pad_id = 7};
  BatchSampler s(ds, o, [&](uint64_t seed) { return mqar_sample(mc, seed); });
  int64_t synth = 0, rows = 0;
  for (int step = 0; step < 40; ++step) {
    auto b = s.next();
    synth += b.synthetic;
    rows += 8;
    auto in = flat(b.input);
    auto mask = b.loss_mask.contiguous();
    for (int r = 0; r < 8; ++r) {
      bool is_synth = in[r * 40] >= 5000 && in[r * 40] < 5256 && in[r * 40 + 39] == 7;
      float m = mask[r].sum().item<float>();
      EXPECT_EQ(m, is_synth ? 4.0f : 40.0f) << "MQAR rows score only the 4 queries";
    }
  }
  EXPECT_NEAR(synth / double(rows), 0.25, 0.08);
  // Synthetic rows are part of the deterministic stream too.
  BatchSampler again(ds, o, [&](uint64_t seed) { return mqar_sample(mc, seed); });
  BatchSampler first(ds, o, [&](uint64_t seed) { return mqar_sample(mc, seed); });
  EXPECT_TRUE(torch::equal(again.next().input, first.next().input));
}

TEST_F(DataSampler, PositionCarriesAcrossWorldSizes) {
  // `index` counts global slots: 2 ranks × 3 rows resumed as 1 rank × 6 rows read the
  // same windows, and a position past the epoch's last full step starts the next epoch.
  BatchSampler two0(ds, {.seq_len = 16, .batch_size = 3, .seed = 2, .rank = 0, .world_size = 2});
  BatchSampler two1(ds, {.seq_len = 16, .batch_size = 3, .seed = 2, .rank = 1, .world_size = 2});
  for (int i = 0; i < 5; ++i) { two0.next(); two1.next(); }
  auto w0 = two0.peek_windows(), w1 = two1.peek_windows();
  w0.insert(w0.end(), w1.begin(), w1.end());
  BatchSampler one(ds, {.seq_len = 16, .batch_size = 6, .seed = 2});
  one.set_position(two0.position());
  EXPECT_EQ(one.peek_windows(), w0);
  one.set_position({0, one.num_windows() - 1});
  EXPECT_EQ(one.position(), (DataPosition{1, 0}));
  EXPECT_THROW(one.set_position({0, one.num_windows() + 1}), hyla::Error);
}
