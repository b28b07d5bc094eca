#include "hyla/eval/recall.h"

#include "hyla/data/random.h"
#include "hyla/model/generate.h"
#include "hyla/util/progress.h"

namespace hyla::eval {

nlohmann::json RecallResult::to_json() const {
  return {{"task", task}, {"samples", samples}, {"scored", scored}, {"correct", correct}, {"accuracy", accuracy()}};
}

RecallResult eval_mqar(model::CausalLM& m, const data::MqarConfig& c, int64_t samples, uint64_t seed,
                       int64_t batch) {
  torch::NoGradGuard ng;
  auto dev = m->embed_tokens->weight.device();
  RecallResult r{"mqar"};
  ProgressBar bar("mqar", samples, "sample");
  for (int64_t i = 0; i < samples; i += batch) {
    int64_t n = std::min(batch, samples - i);
    std::vector<torch::Tensor> in, tgt, mask;
    for (int64_t j = 0; j < n; ++j) {
      auto s = data::mqar_sample(c, data::derive_seed(seed, i + j));
      in.push_back(torch::tensor(std::vector<int64_t>(s.input.begin(), s.input.end())));
      tgt.push_back(torch::tensor(std::vector<int64_t>(s.target.begin(), s.target.end())));
      mask.push_back(torch::tensor(std::vector<int64_t>(s.mask.begin(), s.mask.end())));
    }
    auto x = torch::stack(in).to(dev);
    auto pred = m->forward(x).argmax(-1).to(torch::kCPU);
    auto t = torch::stack(tgt), k = torch::stack(mask).to(torch::kBool);
    r.correct += (pred.eq(t).logical_and(k)).sum().item<int64_t>();
    r.scored += k.sum().item<int64_t>();
    r.credit = double(r.correct);
    r.samples += n;
    bar.update(r.samples, fmt::format("acc {:.3f}", r.accuracy()));
  }
  bar.finish(fmt::format("acc {:.3f}", r.accuracy()));
  return r;
}

RecallResult eval_passkey(model::CausalLM& m, const io::Tokenizer& tok, const data::PasskeyConfig& c,
                          int64_t samples, uint64_t seed) {
  auto dev = m->embed_tokens->weight.device();
  RecallResult r{"passkey"};
  ProgressBar bar("passkey", samples, "sample");
  for (int64_t i = 0; i < samples; ++i) {
    auto s = data::passkey_sample(c, tok, data::derive_seed(seed, i));
    std::vector<int64_t> prompt(s.input.begin(), s.input.begin() + s.prompt_len);
    model::GenerateOptions go;
    go.max_new_tokens = 10;
    auto g = model::generate(m, torch::tensor(prompt).view({1, -1}).to(dev), go);
    std::vector<int32_t> ids;
    for (int64_t j = 0; j < g.tokens.size(1); ++j) ids.push_back(int32_t(g.tokens[0][j].item<int64_t>()));
    bool ok = data::passkey_correct(tok.decode(ids, true), data::passkey_key(s));
    r.correct += ok;
    r.credit += ok;
    r.scored += 1;
    r.samples += 1;
    bar.update(r.samples, fmt::format("acc {:.3f}", r.accuracy()));
  }
  bar.finish(fmt::format("acc {:.3f}", r.accuracy()));
  return r;
}

}  // namespace hyla::eval
