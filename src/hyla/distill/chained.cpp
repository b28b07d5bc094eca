#include "hyla/distill/chained.h"

#include <algorithm>
#include <map>

#include "hyla/distill/stage_objective.h"
#include "hyla/io/safetensors.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::distill {
namespace fs = std::filesystem;

namespace {

std::string link_name(size_t k, int64_t layer) { return fmt::format("link-{:02}-layer-{:02}", k + 1, layer); }

void put_mixer(model::CausalLM& student, int64_t l, model::Mixer m) {
  student->layer(l)->set_mixer(m);
  auto& types = student->mutable_config().layer_types;
  if (types.empty()) types.assign(student->num_layers(), "full_attention");
  types[l] = m->kind();
}

// A copy of the teacher's attention for layer l (the chain starts from the teacher there).
model::Mixer teacher_attention(model::CausalLM& teacher, int64_t l, torch::Device device) {
  auto m = model::build_mixer(teacher->config(), l);
  torch::NoGradGuard ng;
  auto src = teacher->layer(l)->mixer()->named_parameters(true);
  for (auto& p : m->named_parameters(true)) p.value().copy_(src[p.key()]);
  m->to(device);
  return m;
}

void load_parameters(model::CausalLM& student, const fs::path& dir) {
  torch::NoGradGuard ng;
  auto store = io::TensorStore::open(dir);
  for (auto& p : student->named_parameters(true)) {
    HYLA_CHECK(store.has(p.key()), "{}: missing tensor {} (a link of another chain?)", dir.string(), p.key());
    p.value().copy_(store.load(p.key()));
  }
}

void save_replacement(model::CausalLM& student, const std::vector<int64_t>& layers, const fs::path& file) {
  io::NamedTensors out;
  for (auto& [name, t] : student->state_tensors())
    for (int64_t l : layers)
      if (name.rfind(fmt::format("model.layers.{}.linear_attn.", l), 0) == 0)
        out.emplace_back(name, t.detach().to(torch::kCPU, torch::kFloat32).contiguous());
  io::save_safetensors(file, out, {{"layers", nlohmann::json(layers).dump()}});
}

}  // namespace

void check_chain_order(const std::vector<int64_t>& order, const std::vector<int64_t>& converted,
                       const std::string& label) {
  std::vector<int64_t> seen;
  for (int64_t l : order) {
    HYLA_CHECK(std::find(converted.begin(), converted.end(), l) != converted.end(),
               "{}: order: layer {} is not a converted layer of the student (converted: {})", label, l,
               nlohmann::json(converted).dump());
    HYLA_CHECK(std::find(seen.begin(), seen.end(), l) == seen.end(), "{}: order: layer {} appears twice", label, l);
    seen.push_back(l);
  }
}

StageResult run_chained(model::CausalLM& student, const StageConfig& st, const StageEnv& env, const fs::path& dir) {
  auto teacher = env.teacher;
  auto dp = env.dp ? env.dp : std::make_shared<train::DataParallel>();
  // The chain starts with every ordered layer back at the teacher's attention; their
  // converted mixers wait as the links' initial weights.
  std::map<int64_t, model::Mixer> init;
  for (int64_t l : st.order) {
    init.emplace(l, student->layer(l)->mixer());
    put_mixer(student, l, teacher_attention(teacher, l, env.device));
  }
  StageResult total;
  nlohmann::json links = nlohmann::json::array();
  for (size_t k = 0; k < st.order.size(); ++k) {
    int64_t l = st.order[k];
    put_mixer(student, l, init.at(l));
    init.at(l)->to(env.device);
    StageConfig link = st;
    link.name = link_name(k, l);
    fs::path link_dir = dir / link.name;
    std::vector<int64_t> earlier(st.order.begin(), st.order.begin() + k);
    std::vector<int64_t> upto(st.order.begin(), st.order.begin() + k + 1);
    if (stage_done(link_dir)) {
      load_parameters(student, link_dir);
      log::info("chained {}: {} is done", st.name, link.name);
    } else {
      LayerRestriction r;
      r.train_layers = {l};
      r.earlier_layers = earlier;
      r.earlier_scale = st.earlier_lr_scale;
      if (st.diversity_weight > 0) r.diversity_layers = {l};
      auto res = run_stage(student, link, env, link_dir, r);
      total.steps += res.steps;
      total.tokens += res.tokens;
      total.final_loss = res.final_loss;
      total.seconds += res.seconds;
    }
    if (dp->rank() == 0 && !fs::exists(link_dir / "replacement.safetensors"))
      save_replacement(student, upto, link_dir / "replacement.safetensors");
    links.push_back({{"link", k + 1}, {"layer", l}, {"dir", link.name}});
  }
  total.summary = {{"stage", st.name}, {"kind", "chained"}, {"order", st.order}, {"links", links},
                   {"world_size", dp->world_size()}};
  if (dp->rank() == 0) write_stage_result(student, dir, env, total.summary);
  dp->barrier();
  total.tokens_per_second = total.seconds > 0 ? double(total.tokens) / total.seconds : 0;
  return total;
}

}  // namespace hyla::distill
