#include "hyla/distill/param_groups.h"

#include <algorithm>

#include "hyla/util/error.h"

namespace hyla::distill {

namespace {

// The layer index in "model.layers.N.…", or -1.
int64_t layer_of(const std::string& name) {
  static const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) != 0) return -1;
  return std::stoll(name.substr(prefix.size()));
}

bool contains(const std::vector<int64_t>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

std::string parameter_group(const std::string& n) {
  if (n.find(".linear_attn.") != std::string::npos) return "mixers";
  if (n.find(".self_attn.") != std::string::npos) return "attention";
  if (n.find(".mlp.") != std::string::npos) return "mlp";
  if (n.find("embed_tokens") != std::string::npos || n.rfind("lm_head", 0) == 0) return "embeddings";
  if (n.find("norm") != std::string::npos) return "norms";
  fail("parameter {} belongs to no parameter group", n);
}

std::vector<train::NamedParam> select_trained_parameters(model::CausalLM& m, const StageConfig& st,
                                                         const std::vector<int64_t>& only_layers,
                                                         const std::vector<int64_t>& earlier, double earlier_scale) {
  bool all = std::find(st.train.begin(), st.train.end(), "all") != st.train.end();
  std::vector<train::NamedParam> out;
  for (auto& p : m->named_parameters(true)) {
    std::string g = parameter_group(p.key());
    bool on = all || std::find(st.train.begin(), st.train.end(), g) != st.train.end();
    double scale = 1.0;
    if (auto it = st.group_lr.find(g); it != st.group_lr.end()) scale = it->second / st.optim.lr;
    if (on && (!only_layers.empty() || !earlier.empty()) && g == "mixers") {
      int64_t l = layer_of(p.key());
      if (contains(earlier, l)) scale *= earlier_scale;
      else if (!contains(only_layers, l)) scale = 0;
    }
    on = on && scale > 0;
    p.value().set_requires_grad(on);
    if (on) out.push_back({p.key(), p.value(), p.value().dim() >= 2, scale});
  }
  HYLA_CHECK(!out.empty(), "stage {}: train = {} selects no parameter of this student", st.name,
             nlohmann::json(st.train).dump());
  return out;
}

}  // namespace hyla::distill
