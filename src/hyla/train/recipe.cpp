#include "hyla/train/recipe.h"

#include <toml++/toml.h>

#include <set>

#include "hyla/util/error.h"

namespace hyla::train {
using nlohmann::json;

namespace {

json node_to_json(const toml::node& n) {
  if (auto t = n.as_table()) {
    json j = json::object();
    for (auto& [k, v] : *t) j[std::string(k.str())] = node_to_json(v);
    return j;
  }
  if (auto a = n.as_array()) {
    json j = json::array();
    for (auto& v : *a) j.push_back(node_to_json(v));
    return j;
  }
  if (auto s = n.as_string()) return s->get();
  if (auto i = n.as_integer()) return i->get();
  if (auto f = n.as_floating_point()) return f->get();
  if (auto b = n.as_boolean()) return b->get();
  return n.is_date_time() || n.is_date() || n.is_time() ? json("<date>") : json(nullptr);
}

// Reads `section.key` into `out` when present, checking its type; refuses unknown keys
// so a typo in a recipe fails loudly instead of silently using a default.
class Section {
 public:
  Section(const json& root, const std::string& name, const std::string& label)
      : name_(name), label_(label) {
    if (root.contains(name)) {
      HYLA_CHECK(root[name].is_object(), "{}: [{}] must be a table", label, name);
      j_ = root[name];
    }
  }
  template <typename T>
  Section& get(const char* key, T& out) {
    seen_.insert(key);
    if (!j_.contains(key)) return *this;
    try {
      out = j_[key].get<T>();
    } catch (const json::exception&) {
      fail("{}: [{}] {} has the wrong type ({})", label_, name_, key, j_[key].dump());
    }
    return *this;
  }
  void done() const {
    for (auto& [k, _] : j_.items())
      HYLA_CHECK(seen_.count(k), "{}: [{}] has unknown key \"{}\"", label_, name_, k);
  }

 private:
  json j_ = json::object();
  std::string name_, label_;
  std::set<std::string> seen_;
};

}  // namespace

json toml_file_to_json(const std::filesystem::path& file) {
  HYLA_CHECK(std::filesystem::exists(file), "{}: no such recipe file", file.string());
  try {
    auto tbl = toml::parse_file(file.string());
    return node_to_json(tbl);
  } catch (const toml::parse_error& e) {
    fail("{}:{}:{}: TOML error: {}", file.string(), e.source().begin.line, e.source().begin.column,
         std::string(e.description()));
  }
}

Recipe Recipe::from_json(const json& j, const std::string& label) {
  Recipe r;
  r.raw = j;
  static const std::set<std::string> sections = {"run", "model", "data", "optim", "dist", "distill", "eval"};
  for (auto& [k, _] : j.items()) HYLA_CHECK(sections.count(k), "{}: unknown section [{}]", label, k);
  HYLA_CHECK(j.contains("model") && j["model"].is_object(), "{}: missing [model] section", label);
  r.model = j["model"];
  Section run(j, "run", label);
  run.get("name", r.run.name).get("out_dir", r.run.out_dir).get("seed", r.run.seed).get("device", r.run.device)
      .get("dtype", r.run.dtype).get("activation_checkpointing", r.run.activation_checkpointing)
      .get("log_every", r.run.log_every).get("eval_every", r.run.eval_every)
      .get("eval_batches", r.run.eval_batches).get("save_every", r.run.save_every)
      .get("keep_checkpoints", r.run.keep_checkpoints).get("save_dtype", r.run.save_dtype).get("shard_mb", r.run.shard_mb).done();
  Section data(j, "data", label);
  data.get("dir", r.data.dir).get("tokenizer", r.data.tokenizer).get("seq_len", r.data.seq_len)
      .get("batch_size", r.data.batch_size).get("grad_accum", r.data.grad_accum)
      .get("synthetic_share", r.data.synthetic_share).get("synthetic", r.data.synthetic).done();
  Section opt(j, "optim", label);
  std::vector<double> betas = {r.optim.beta1, r.optim.beta2};
  opt.get("lr", r.optim.lr).get("min_lr", r.optim.min_lr).get("betas", betas).get("eps", r.optim.eps)
      .get("weight_decay", r.optim.weight_decay).get("grad_clip", r.optim.grad_clip)
      .get("warmup_steps", r.optim.warmup_steps).get("steps", r.optim.steps).get("schedule", r.optim.schedule)
      .done();
  HYLA_CHECK(betas.size() == 2, "{}: [optim] betas must have two values", label);
  r.optim.beta1 = betas[0];
  r.optim.beta2 = betas[1];
  Section dist(j, "dist", label);
  dist.get("zero1", r.dist.zero1).get("bucket_mb", r.dist.bucket_mb).get("check_every", r.dist.check_every)
      .get("timeout_s", r.dist.timeout_s).done();
  HYLA_CHECK(r.data.seq_len > 0 && r.data.batch_size > 0 && r.data.grad_accum > 0,
             "{}: [data] seq_len, batch_size and grad_accum must be positive", label);
  HYLA_CHECK(r.optim.steps > 0 && r.optim.lr > 0, "{}: [optim] steps and lr must be positive", label);
  HYLA_CHECK(r.optim.schedule == "cosine" || r.optim.schedule == "constant" || r.optim.schedule == "linear",
             "{}: [optim] schedule must be cosine, linear or constant", label);
  HYLA_CHECK(r.data.synthetic_share >= 0 && r.data.synthetic_share < 1, "{}: [data] synthetic_share must be in [0, 1)",
             label);
  return r;
}

Recipe Recipe::load(const std::filesystem::path& file) {
  auto r = from_json(toml_file_to_json(file), file.string());
  r.path = file;
  // Relative paths in a recipe are relative to the working directory, as on a command line.
  return r;
}

}  // namespace hyla::train
