#include "hyla/train/synthetic_mix.h"

#include "hyla/data/random.h"
#include "hyla/data/synthetic_mqar.h"
#include "hyla/data/synthetic_niah.h"
#include "hyla/data/synthetic_passkey.h"
#include "hyla/util/error.h"

namespace hyla::train {

data::SyntheticSource make_synthetic_source(const nlohmann::json& cfg, std::shared_ptr<io::Tokenizer> tok,
                                            std::shared_ptr<const data::TokenDataset> haystack_data,
                                            int64_t seq_len, int64_t vocab_size) {
  static const std::set<std::string> keys = {"mqar", "passkey", "niah", "mqar_kv_pairs", "mqar_vocab", "mqar_offset"};
  for (auto& [k, _] : cfg.items()) HYLA_CHECK(keys.count(k), "recipe [data.synthetic]: unknown key \"{}\"", k);
  double w_mqar = cfg.value("mqar", 1.0), w_pass = cfg.value("passkey", 1.0), w_niah = cfg.value("niah", 0.0);
  HYLA_CHECK(w_mqar >= 0 && w_pass >= 0 && w_niah >= 0 && w_mqar + w_pass + w_niah > 0,
             "recipe [data.synthetic]: weights must be >= 0 and not all 0");
  auto kv = cfg.value("mqar_kv_pairs", std::vector<int64_t>{4, 8, 16});
  data::MqarConfig mq;
  mq.seq_len = seq_len - (seq_len % 2);
  mq.vocab_size = cfg.value("mqar_vocab", std::min<int64_t>(vocab_size, 2048));
  mq.token_offset = cfg.value("mqar_offset", 0);
  HYLA_CHECK(mq.token_offset + mq.vocab_size <= vocab_size,
             "recipe [data.synthetic]: mqar_offset + mqar_vocab ({}) exceeds the model vocabulary ({})",
             mq.token_offset + mq.vocab_size, vocab_size);
  for (auto n : kv) {
    auto c = mq;
    c.num_kv_pairs = n;
    data::validate(c);
  }
  if (w_pass + w_niah > 0) HYLA_CHECK(tok != nullptr, "recipe [data.synthetic]: passkey/niah need [data] tokenizer");
  std::shared_ptr<std::vector<std::string>> haystack;
  if (w_niah > 0 && haystack_data)
    haystack = std::make_shared<std::vector<std::string>>(data::haystack_from_corpus(*haystack_data, *tok, 20000));
  double total = w_mqar + w_pass + w_niah;
  return [=](uint64_t seed) {
    data::Rng rng(seed);
    double u = rng.uniform() * total;
    if (u < w_mqar) {
      auto c = mq;
      c.num_kv_pairs = kv[rng.below(kv.size())];
      return data::mqar_sample(c, rng.next());
    }
    if (u < w_mqar + w_pass) {
      data::PasskeyConfig pc;
      pc.length_tokens = seq_len;
      return data::passkey_sample(pc, *tok, rng.next());
    }
    data::NiahConfig nc;
    nc.length_tokens = seq_len;
    nc.reserve_tokens = 32;
    return data::niah_sample(nc, *tok, haystack.get(), rng.next());
  };
}

}  // namespace hyla::train
