// Training data for selection probes (KL-guided, HALO): the calibration token stream of
// `hyla select` (training text, tokenised once) as a data::TokenDataset, so that the
// probes run through the same stage machinery (stage_runner.h) as `hyla distill`. The
// tokens go into a private temporary corpus (one shard, one document) that is removed
// when the object goes away; nothing is written next to the user's files.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <memory>

#include "hyla/data/token_shards.h"

namespace hyla::distill {

class ProbeCorpus {
 public:
  // ids: [N] int64 token ids < vocab_size.
  ProbeCorpus(const torch::Tensor& ids, int64_t vocab_size);
  ~ProbeCorpus();
  ProbeCorpus(const ProbeCorpus&) = delete;
  ProbeCorpus& operator=(const ProbeCorpus&) = delete;

  std::shared_ptr<const data::TokenDataset> dataset() const { return data_; }
  // Windows of seq_len + 1 tokens the batch sampler can cut (one per seq_len tokens).
  int64_t windows(int64_t seq_len) const;

 private:
  std::filesystem::path dir_;
  std::shared_ptr<const data::TokenDataset> data_;
};

}  // namespace hyla::distill
