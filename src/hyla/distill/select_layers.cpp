#include "hyla/distill/select_layers.h"

#include <chrono>
#include <cmath>

#include "hyla/distill/probe_data.h"
#include "hyla/distill/probe_student.h"
#include "hyla/distill/rank_agreement.h"
#include "hyla/distill/select_bypass.h"
#include "hyla/distill/select_entropy.h"
#include "hyla/distill/select_ga_s2.h"
#include "hyla/distill/select_halo.h"
#include "hyla/distill/select_kl_guided.h"
#include "hyla/distill/select_uniform.h"
#include "hyla/eval/svg_bars.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::distill {

const std::vector<std::string>& selection_methods() {
  static const std::vector<std::string> m = {"uniform", "bypass-ppl",      "bypass-recall",   "entropy",
                                             "ga-s2",   "kl-guided",       "kl-guided-cheap", "halo"};
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

// [B, T] calibration batch for inits that calibrate (Taylor-Calibrate), cut from the
// front of the training tokens.
torch::Tensor init_calibration(const torch::Tensor& calib, const ConvertOptions& c) {
  if (!c.needs_calibration()) return {};
  int64_t B = c.taylor.calib_sequences, T = c.taylor.calib_seq_len;
  HYLA_CHECK(calib.size(0) >= B * T, "--init {} calibrates on {} × {} training tokens; --text gives {} (raise "
             "--max-tokens or lower --calib-sequences/--calib-seq-len)", c.init, B, T, calib.size(0));
  return calib.narrow(0, 0, B * T).view({B, T}).clone();
}

Selection select_ga_s2(model::CausalLM& teacher, const torch::Tensor& calib, const SelectOptions& o, int64_t keep) {
  auto r = ga_s2_scores(teacher, o.convert, o.mixer, calib, o.ctx, o.batch, init_calibration(calib, o.convert));
  auto s = make_selection("ga-s2", teacher->config(), r.ppl, false, keep);
  s.extra.update(r.extra);
  return s;
}

// What stage-1 methods share: the probe corpus and the aligned all-linear student.
struct Stage1 {
  std::unique_ptr<ProbeCorpus> corpus;
  model::CausalLM student{nullptr};
  nlohmann::json info;
};

Stage1 run_stage1(model::CausalLM& teacher, const torch::Tensor& calib, const SelectOptions& o,
                  const std::vector<const StageConfig*>& stages) {
  Stage1 s;
  s.corpus = std::make_unique<ProbeCorpus>(calib, teacher->config().vocab_size);
  for (auto* st : stages) {
    int64_t have = s.corpus->windows(st->seq_len);
    HYLA_CHECK(have >= st->batch_size, "--method {}: the stage \"{}\" needs batch_size = {} windows of {} tokens; "
               "--text/--max-tokens give {} tokens ({} windows)", o.method, st->name, st->batch_size, st->seq_len + 1,
               calib.size(0), have);
  }
  s.student = stage1_all_linear(teacher, o.convert, o.mixer, o.align, s.corpus->dataset(), o.seed,
                                init_calibration(calib, o.convert), &s.info);
  if (!o.save_stage1.empty()) {
    model::save_causal_lm(s.student, o.save_stage1, 2ull << 30, torch::kFloat32);
    s.info["saved"] = o.save_stage1;
  }
  return s;
}

nlohmann::json agreement(const Selection& full, const Selection& cheap, int64_t keep, const nlohmann::json& extra) {
  double rho = spearman_rho(full.ranking, cheap.ranking), overlap = top_k_overlap(full.ranking, cheap.ranking, keep);
  log::info("{} vs full probes: Spearman rho {:.3f}, top-{} overlap {:.2f}", cheap.method, rho, keep, overlap);
  return {{"scores", cheap.scores}, {"ranking", cheap.ranking}, {"attention_layers", cheap.attention_layers},
          {"spearman_rho", rho}, {"top_k_overlap", overlap}, {"k", keep}, {"measurements", extra}};
}

Selection select_kl_guided(model::CausalLM& teacher, const torch::Tensor& calib, const SelectOptions& o,
                           int64_t keep) {
  const auto& cfg = teacher->config();
  bool full = o.method == "kl-guided";
  bool want_remove = full ? o.compare_cheap : o.cheap == "remove";
  bool want_short = full ? o.compare_cheap : o.cheap == "short-probe";
  HYLA_CHECK(full || want_remove || want_short, "--cheap {}: must be remove or short-probe", o.cheap);
  StageConfig short_probe = o.probe;
  short_probe.name = "short-probe";
  short_probe.tokens = o.cheap_probe_tokens;
  if (want_short) HYLA_CHECK(short_probe.tokens > 0, "--cheap-probe-tokens must be positive");
  std::vector<const StageConfig*> stages = {&o.align};
  if (full) stages.push_back(&o.probe);
  if (want_short) stages.push_back(&short_probe);
  auto st1 = run_stage1(teacher, calib, o, stages);
  auto data = st1.corpus->dataset();
  Selection s, remove, shortp;
  if (want_remove) {
    auto r = kl_remove_scores(st1.student, teacher, calib, o.ctx, o.batch);
    remove = make_selection("kl-guided-cheap", cfg, r.scores, true, keep);
    remove.extra = r.extra;
    remove.extra["estimator"] = "remove";
  }
  if (want_short) {
    auto r = kl_probe_scores(st1.student, teacher, short_probe, data, o.seed);
    shortp = make_selection("kl-guided-cheap", cfg, r.scores, false, keep);
    shortp.extra = r.extra;
    shortp.extra["estimator"] = "short-probe";
  }
  if (full) {
    auto r = kl_probe_scores(st1.student, teacher, o.probe, data, o.seed);
    s = make_selection("kl-guided", cfg, r.scores, false, keep);
    s.extra = r.extra;
    if (o.compare_cheap) {
      remove.method = "remove";
      shortp.method = "short-probe";
      s.extra["cheap"] = {{"remove", agreement(s, remove, keep, remove.extra)},
                          {"short_probe", agreement(s, shortp, keep, shortp.extra)}};
    }
  } else {
    s = want_remove ? remove : shortp;
  }
  s.extra["stage1"] = st1.info;
  return s;
}

Selection select_halo(model::CausalLM& teacher, const torch::Tensor& calib, const SelectOptions& o, int64_t keep) {
  auto st1 = run_stage1(teacher, calib, o, {&o.align});
  auto m = halo_measure(st1.student, teacher, o.mqar, o.mqar_samples, o.seed, o.halo_commonsense, calib, o.ctx,
                        o.batch);
  auto s = make_selection("halo", teacher->config(), halo_scores(m.retrieval, m.commonsense), true, keep);
  s.extra = m.extra;
  s.extra["stage1"] = st1.info;
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
  } else if (o.method == "ga-s2") {
    s = select_ga_s2(teacher, calib, o, keep);
  } else if (o.method == "kl-guided" || o.method == "kl-guided-cheap") {
    s = select_kl_guided(teacher, calib, o, keep);
  } else if (o.method == "halo") {
    s = select_halo(teacher, calib, o, keep);
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
