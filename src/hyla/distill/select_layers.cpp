#include "hyla/distill/select_layers.h"

#include <chrono>
#include <cmath>

#include "hyla/distill/select_bypass.h"
#include "hyla/distill/select_entropy.h"
#include "hyla/distill/select_uniform.h"
#include "hyla/eval/svg_bars.h"
#include "hyla/util/error.h"

namespace hyla::distill {

const std::vector<std::string>& selection_methods() {
  static const std::vector<std::string> m = {"uniform", "bypass-ppl", "bypass-recall", "entropy"};
  return m;
}

namespace {

Selection select_entropy(model::CausalLM& teacher, const torch::Tensor& calib, const SelectOptions& o, int64_t keep) {
  auto prompts = entropy_prompts(calib.size(0), o.prompts, o.ctx);
  auto entropy = last_row_attention_entropy(teacher, calib, prompts);
  auto conversion = entropy_conversion_order(entropy, o.direction);
  std::vector<int64_t> ranking(conversion.rbegin(), conversion.rend());
  auto s = make_selection_ranked("entropy", teacher->config(), entropy, ranking, keep);
  nlohmann::json pj = nlohmann::json::array();
  for (auto& p : prompts) pj.push_back({{"offset", p.offset}, {"length", p.length}});
  s.extra = {{"score", "mean last-query-row attention entropy over heads and prompts (nats)"},
             {"direction", o.direction}, {"conversion_order", conversion}, {"prompts", pj}};
  return s;
}

}  // namespace

Selection select_layers(model::CausalLM& teacher, const torch::Tensor& calib, const SelectOptions& o) {
  const auto& cfg = teacher->config();
  int64_t L = cfg.num_hidden_layers;
  for (int64_t l = 0; l < L; ++l)
    HYLA_CHECK(cfg.is_attention_layer(l), "select: layer {} of the teacher is {}, not attention (select on the teacher)",
               l, cfg.layer_type(l));
  int64_t keep = o.keep > 0 ? o.keep : keep_count(o.share, L, "--share");
  HYLA_CHECK(keep <= L, "--keep {}: the teacher has {} layers", keep, L);
  auto t0 = std::chrono::steady_clock::now();
  torch::NoGradGuard ng;
  Selection s;
  if (o.method == "uniform") {
    auto ranking = uniform_ranking(L, keep);
    std::vector<double> scores(L, 0.0);
    for (int64_t i = 0; i < keep; ++i) scores[ranking[i]] = 1.0;
    s = make_selection_ranked("uniform", cfg, scores, ranking, keep);
    s.extra = {{"score", "1 = in the uniform interleave set (layer floor(i*L/K), i < K)"}};
  } else if (o.method == "bypass-ppl") {
    auto r = bypass_ppl_scores(teacher, calib, o.ctx, o.batch);
    s = make_selection("bypass-ppl", cfg, r.scores, true, keep);
    s.extra.update(r.extra);
  } else if (o.method == "bypass-recall") {
    auto r = bypass_recall_scores(teacher, o.mqar, o.mqar_samples, o.seed);
    s = make_selection("bypass-recall", cfg, r.scores, true, keep);
    s.extra.update(r.extra);
  } else if (o.method == "entropy") {
    s = select_entropy(teacher, calib, o, keep);
  } else {
    std::string have;
    for (auto& m : selection_methods()) have += (have.empty() ? "" : ", ") + m;
    fail("--method {}: unknown (have: {})", o.method, have);
  }
  if (o.keep <= 0) s.share = o.share;
  s.extra["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

std::string selection_svg(const Selection& s) {
  std::vector<std::string> cats;
  for (int64_t l = 0; l < s.num_layers; ++l) cats.push_back(std::to_string(l));
  eval::BarOptions o;
  o.title = fmt::format("layer selection: {} (keeps {} of {})", s.method, s.attention_layers.size(), s.num_layers);
  o.x_label = "layer";
  o.y_label = s.extra.value("score", std::string("score"));
  if (o.y_label.size() > 60) o.y_label = "score";
  o.highlight.insert(s.attention_layers.begin(), s.attention_layers.end());
  o.highlight_note = "kept as attention";
  return eval::render_bar_svg(cats, {{s.method, s.scores}}, o);
}

}  // namespace hyla::distill
