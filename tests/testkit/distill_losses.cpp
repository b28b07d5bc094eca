// Test entry point for distillation losses: the loss one stage computes on one batch
// (distill/stage_objective.h), plus, for attention_align, the teacher-forced inputs,
// targets and student mixer outputs, so the Python test can check each against
// transformers and recompute the loss in float64.
//
//   hyla_testkit distill-loss --teacher T --student S --ids "a,b,c;d,e,f" --stage '{json}' --out f.safetensors
// Each --ids row holds T+1 tokens: input = row[:-1], target = row[1:].
#include "../../tools/hyla/command.h"
#include "hyla/data/batch_sampler.h"
#include "hyla/distill/distill_recipe.h"
#include "hyla/distill/losses.h"
#include "hyla/distill/stage_objective.h"
#include "hyla/io/safetensors.h"
#include "hyla/util/error.h"

namespace {
using namespace hyla;

torch::Tensor parse_rows(const std::string& s) {
  std::vector<std::vector<int64_t>> rows(1);
  std::string num;
  auto flush = [&] {
    if (!num.empty()) rows.back().push_back(std::stoll(num));
    num.clear();
  };
  for (char c : s) {
    if (c == ',') flush();
    else if (c == ';') {
      flush();
      rows.emplace_back();
    } else num += c;
  }
  flush();
  std::vector<int64_t> flat;
  for (auto& r : rows) {
    HYLA_CHECK(r.size() == rows[0].size() && r.size() >= 2, "--ids rows must have equal length >= 2");
    flat.insert(flat.end(), r.begin(), r.end());
  }
  return torch::tensor(flat, torch::kInt64).view({(int64_t)rows.size(), (int64_t)rows[0].size()});
}

struct Args {
  std::string teacher, student, ids, stage, out;
};

int run(const Args& a) {
  auto teacher = model::load_causal_lm(a.teacher, torch::kCPU, torch::kFloat32);
  auto student = model::load_causal_lm(a.student, torch::kCPU, torch::kFloat32);
  for (auto& p : teacher->parameters()) p.set_requires_grad(false);
  nlohmann::json j = nlohmann::json::parse(a.stage);
  if (!j.contains("tokens")) j["tokens"] = 1;
  auto st = distill::stage_from_json(j, "--stage", 0);
  auto rows = parse_rows(a.ids);
  const int64_t T = rows.size(1) - 1;
  data::TokenBatch b;
  b.input = rows.narrow(1, 0, T).contiguous();
  b.target = rows.narrow(1, 1, T).contiguous();
  b.loss_mask = torch::ones({rows.size(0), T}, torch::kFloat32);
  distill::StageObjective objective(st, teacher, torch::kCPU);
  auto loss = objective(student, b, 0);
  io::NamedTensors out = {{"loss", loss.loss.detach().to(torch::kFloat64).reshape({1})}};
  if (st.kind == distill::StageKind::AttentionAlign) {
    // The teacher-forced quantities, by the public model API (not the objective's code).
    torch::NoGradGuard ng;
    std::vector<torch::Tensor> hidden, mixer_out;
    model::ForwardOptions fo;
    fo.hidden_states = &hidden;
    fo.mixer_outputs = &mixer_out;
    teacher->forward(b.input, fo);
    for (int64_t l : distill::converted_layers(student, teacher)) {
      auto x = teacher->layer(l)->input_layernorm(l == 0 ? teacher->embed(b.input) : hidden[l - 1]);
      model::MixerContext ctx;
      ctx.positions = torch::arange(T, torch::kInt64);
      out.emplace_back(fmt::format("input.{}", l), x.contiguous());
      out.emplace_back(fmt::format("target.{}", l), mixer_out[l].contiguous());
      out.emplace_back(fmt::format("student.{}", l), student->layer(l)->mixer()->forward(x, ctx).contiguous());
    }
  }
  io::save_safetensors(a.out, out);
  return 0;
}

cli::Register reg("distill-loss", "one distillation stage's loss on one batch (+ teacher-forced tensors)",
                  [](CLI::App& app) {
                    auto a = std::make_shared<Args>();
                    app.add_option("--teacher", a->teacher)->required();
                    app.add_option("--student", a->student)->required();
                    app.add_option("--ids", a->ids)->required();
                    app.add_option("--stage", a->stage, "a [[stage]] table as JSON")->required();
                    app.add_option("--out", a->out)->required();
                    return [=]() { return run(*a); };
                  });

}  // namespace
