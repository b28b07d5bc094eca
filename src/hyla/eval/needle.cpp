#include "hyla/eval/needle.h"

#include "hyla/data/random.h"
#include "hyla/model/generate.h"
#include "hyla/util/error.h"
#include "hyla/util/progress.h"

namespace hyla::eval {

RecallResult eval_niah(model::CausalLM& m, const io::Tokenizer& tok, const data::NiahConfig& c, int64_t samples,
                       uint64_t seed, int64_t new_tokens, const std::vector<std::string>* haystack) {
  HYLA_CHECK(new_tokens >= 1, "niah: new tokens must be >= 1 (got {})", new_tokens);
  auto dev = m->embed_tokens->weight.device();
  RecallResult r{"niah"};
  ProgressBar bar("niah", samples, "sample");
  for (int64_t i = 0; i < samples; ++i) {
    auto s = data::niah_sample(c, tok, haystack, data::derive_seed(seed, i));
    std::vector<int64_t> prompt(s.input.begin(), s.input.begin() + s.prompt_len);
    model::GenerateOptions go;
    go.max_new_tokens = new_tokens;
    auto g = model::generate(m, torch::tensor(prompt).view({1, -1}).to(dev), go);
    std::vector<int32_t> ids;
    for (int64_t j = 0; j < g.tokens.size(1); ++j) ids.push_back(int32_t(g.tokens[0][j].item<int64_t>()));
    double score = data::string_match_all(tok.decode(ids, true), s.answers);
    r.credit += score;
    r.correct += score >= 1.0;
    r.scored += 1;
    r.samples += 1;
    bar.update(r.samples, fmt::format("score {:.3f}", r.accuracy()));
  }
  bar.finish(fmt::format("score {:.3f}", r.accuracy()));
  return r;
}

}  // namespace hyla::eval
