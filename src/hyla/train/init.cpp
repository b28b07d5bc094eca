#include "hyla/train/init.h"

#include <cmath>

namespace hyla::train {

static bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void init_weights(model::CausalLM& m, double std) {
  torch::NoGradGuard ng;
  double out_std = std / std::sqrt(2.0 * m->num_layers());
  for (auto& p : m->named_parameters(true)) {
    const auto& n = p.key();
    auto& t = p.value();
    if (ends_with(n, "embed_tokens.weight") || ends_with(n, "lm_head.weight")) t.normal_(0, std);
    else if (ends_with(n, "o_proj.weight") || ends_with(n, "down_proj.weight")) t.normal_(0, out_std);
    else if (ends_with(n, "_proj.weight") && t.dim() == 2) t.normal_(0, std);
    else if (ends_with(n, "_proj.bias")) t.zero_();
    else if (ends_with(n, "norm.weight") || ends_with(n, "layernorm.weight")) t.fill_(1.0);
  }
}

}  // namespace hyla::train
