#include "hyla/data/batch_sampler.h"

#include <algorithm>
#include <numeric>

#include "hyla/data/random.h"
#include "hyla/util/error.h"

namespace hyla::data {
namespace {
// Stream ids, so the order, the synthetic coin and the synthetic samples draw from
// unrelated streams of the one seed.
constexpr uint64_t kOrderStream = 0x6F72646572ull;      // "order"
constexpr uint64_t kCoinStream = 0x636F696Eull;         // "coin"
constexpr uint64_t kSampleStream = 0x73616D706C65ull;   // "sample"
}  // namespace

DataPosition DataPosition::from_json(const nlohmann::json& j) {
  try {
    return {j.at("epoch").get<int64_t>(), j.at("index").get<int64_t>()};
  } catch (const nlohmann::json::exception& e) {
    fail("data position: expected {{\"epoch\": int, \"index\": int}}: {}", e.what());
  }
}

BatchSampler::BatchSampler(std::shared_ptr<const TokenDataset> data, SamplerOptions opt,
                           SyntheticSource synthetic)
    : data_(std::move(data)), opt_(opt), synthetic_(std::move(synthetic)) {
  HYLA_CHECK(opt_.seq_len > 0 && opt_.batch_size > 0, "sampler: seq_len and batch_size must be "
             "positive (got {}, {})", opt_.seq_len, opt_.batch_size);
  HYLA_CHECK(opt_.world_size >= 1 && opt_.rank >= 0 && opt_.rank < opt_.world_size,
             "sampler: rank {} outside world size {}", opt_.rank, opt_.world_size);
  HYLA_CHECK(opt_.synthetic_share >= 0 && opt_.synthetic_share < 1,
             "sampler: synthetic share {} must be in [0, 1)", opt_.synthetic_share);
  HYLA_CHECK(opt_.synthetic_share == 0 || synthetic_,
             "sampler: a synthetic share needs a synthetic generator");
  window_starts_.push_back(0);
  for (auto& shard : data_->shards()) {
    num_windows_ += std::max<int64_t>(0, (shard->size() - 1) / opt_.seq_len);
    window_starts_.push_back(num_windows_);
  }
  HYLA_CHECK(steps_per_epoch() > 0,
             "sampler: {} windows of {} tokens cannot fill one step of {} × {} sequences",
             num_windows_, opt_.seq_len + 1, opt_.batch_size, opt_.world_size);
}

int64_t BatchSampler::steps_per_epoch() const {
  return num_windows_ / (opt_.batch_size * opt_.world_size);
}

void BatchSampler::set_position(const DataPosition& p) {
  // `index` counts global slots, so a position saved at one world size (or batch size)
  // is valid at another: the next step starts at the same slot. A step that no longer
  // fits the epoch's tail starts the next epoch, as next() would.
  const int64_t step = opt_.batch_size * opt_.world_size;
  HYLA_CHECK(p.epoch >= 0 && p.index >= 0 && p.index <= num_windows_,
             "data position (epoch {}, index {}) does not fit this corpus ({} windows)", p.epoch,
             p.index, num_windows_);
  pos_ = p;
  if (pos_.index + step > num_windows_) pos_ = {p.epoch + 1, 0};
}

const std::vector<int64_t>& BatchSampler::order(int64_t epoch) const {
  if (order_epoch_ != epoch) {
    order_.resize(num_windows_);
    std::iota(order_.begin(), order_.end(), 0);
    Rng rng(derive_seed(opt_.seed, kOrderStream, static_cast<uint64_t>(epoch)));
    rng.shuffle(order_);
    order_epoch_ = epoch;
  }
  return order_;
}

bool BatchSampler::slot_is_synthetic(int64_t epoch, int64_t slot) const {
  if (opt_.synthetic_share <= 0) return false;
  Rng coin(derive_seed(opt_.seed ^ kCoinStream, static_cast<uint64_t>(epoch),
                       static_cast<uint64_t>(slot)));
  return coin.uniform() < opt_.synthetic_share;
}

std::vector<int64_t> BatchSampler::peek_windows() const {
  const auto& ord = order(pos_.epoch);
  std::vector<int64_t> out;
  for (int64_t b = 0; b < opt_.batch_size; ++b) {
    int64_t slot = pos_.index + opt_.rank * opt_.batch_size + b;
    out.push_back(slot_is_synthetic(pos_.epoch, slot) ? -1 : ord[slot]);
  }
  return out;
}

void BatchSampler::read_window(int64_t window, int64_t* input, int64_t* target) const {
  size_t s = std::upper_bound(window_starts_.begin(), window_starts_.end(), window) -
             window_starts_.begin() - 1;
  int64_t start = (window - window_starts_[s]) * opt_.seq_len;
  std::vector<int64_t> buf(opt_.seq_len + 1);
  data_->shards()[s]->copy(start, opt_.seq_len + 1, buf.data());
  std::copy(buf.begin(), buf.end() - 1, input);
  std::copy(buf.begin() + 1, buf.end(), target);
}

TokenBatch BatchSampler::next() {
  const int64_t B = opt_.batch_size, T = opt_.seq_len;
  TokenBatch out;
  out.position = pos_;
  out.input = torch::empty({B, T}, torch::kInt64);
  out.target = torch::empty({B, T}, torch::kInt64);
  out.loss_mask = torch::ones({B, T}, torch::kFloat32);
  auto* in = out.input.data_ptr<int64_t>();
  auto* tg = out.target.data_ptr<int64_t>();
  auto* mk = out.loss_mask.data_ptr<float>();
  std::vector<int64_t> windows = peek_windows();
  for (int64_t b = 0; b < B; ++b) {
    if (windows[b] >= 0) {
      read_window(windows[b], in + b * T, tg + b * T);
      continue;
    }
    int64_t slot = pos_.index + opt_.rank * B + b;
    SyntheticSample s = synthetic_(derive_seed(opt_.seed ^ kSampleStream,
                                               static_cast<uint64_t>(pos_.epoch),
                                               static_cast<uint64_t>(slot)));
    const int64_t n = static_cast<int64_t>(s.input.size());
    HYLA_CHECK(n <= T, "synthetic sample of {} tokens does not fit seq_len {}", n, T);
    for (int64_t t = 0; t < T; ++t) {
      in[b * T + t] = t < n ? s.input[t] : opt_.pad_id;
      tg[b * T + t] = t < n ? s.target[t] : opt_.pad_id;
      mk[b * T + t] = t < n ? static_cast<float>(s.mask[t]) : 0.0f;
    }
    ++out.synthetic;
  }
  pos_.index += B * opt_.world_size;
  if (pos_.index + B * opt_.world_size > num_windows_) {
    ++pos_.epoch;
    pos_.index = 0;
  }
  return out;
}

}  // namespace hyla::data
