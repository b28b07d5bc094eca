#include "hyla/distill/probe_data.h"

#include <unistd.h>

#include <atomic>
#include <vector>

#include "hyla/util/error.h"
#include "hyla/util/fs.h"

namespace hyla::distill {
namespace fs = std::filesystem;

ProbeCorpus::ProbeCorpus(const torch::Tensor& ids, int64_t vocab_size) {
  HYLA_CHECK(ids.dim() == 1 && ids.size(0) >= 2, "selection probes need at least 2 training tokens");
  static std::atomic<int> serial{0};
  dir_ = fs::temp_directory_path() / fmt::format("hyla-select-{}-{}", ::getpid(), serial++);
  remove_tree(dir_);
  fs::create_directories(dir_);
  try {
    auto c = ids.to(torch::kInt64).contiguous();
    std::vector<int32_t> tokens(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
    data::Manifest m;
    m.dtype = data::dtype_for_vocab(vocab_size);
    m.vocab_size = vocab_size;
    data::ShardWriter w(dir_, "train", m.dtype, int64_t(1) << 40);
    // add_document appends its "eos": the stream's last token plays that part, so the
    // shard holds exactly the calibration tokens.
    int32_t last = tokens.back();
    tokens.pop_back();
    w.add_document(tokens, last);
    m.splits["train"] = w.finish();
    m.save(dir_);
    data_ = data::TokenDataset::open(dir_, "train");
  } catch (...) {
    remove_tree(dir_);
    throw;
  }
}

ProbeCorpus::~ProbeCorpus() {
  data_.reset();
  try {
    remove_tree(dir_);
  } catch (...) {  // a leftover temporary directory is not worth a crash
  }
}

int64_t ProbeCorpus::windows(int64_t seq_len) const {
  int64_t n = 0;
  for (auto& s : data_->shards()) n += std::max<int64_t>(0, (s->size() - 1) / seq_len);
  return n;
}

}  // namespace hyla::distill
