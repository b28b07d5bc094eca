#include "hyla/distill/distill_recipe.h"

#include <algorithm>
#include <set>

#include "hyla/util/error.h"

namespace hyla::distill {
using nlohmann::json;

namespace {

// Reads typed keys of one table and remembers which were read, so that every key left
// over is reported as unknown (a typo never silently falls back to a default).
class Table {
 public:
  Table(const json& j, std::string label) : j_(j), label_(std::move(label)) {
    HYLA_CHECK(j_.is_object(), "{} must be a table", label_);
  }
  bool has(const char* key) const { return j_.contains(key); }
  template <typename T>
  Table& get(const char* key, T& out) {
    seen_.insert(key);
    if (!j_.contains(key)) return *this;
    try {
      out = j_[key].get<T>();
    } catch (const json::exception&) {
      fail("{}: {} has the wrong type ({})", label_, key, j_[key].dump());
    }
    return *this;
  }
  // Keys that exist but do not apply (given why) are reported, not ignored.
  void refuse(const char* key, const std::string& why) const {
    HYLA_CHECK(!j_.contains(key), "{}: key \"{}\" {}", label_, key, why);
  }
  void done(const std::string& hint = "") const {
    for (auto& [k, _] : j_.items())
      HYLA_CHECK(seen_.count(k), "{}: unknown key \"{}\"{}", label_, k, hint);
  }
  const std::string& label() const { return label_; }

 private:
  const json& j_;
  std::string label_;
  std::set<std::string> seen_;
};

StageKind kind_from_name(const std::string& n, const std::string& label) {
  if (n == "attention_align") return StageKind::AttentionAlign;
  if (n == "hidden_align") return StageKind::HiddenAlign;
  if (n == "kl") return StageKind::KL;
  if (n == "ce") return StageKind::CE;
  if (n == "long_context") return StageKind::LongContext;
  if (n == "chained") return StageKind::Chained;
  fail("{}: unknown stage kind \"{}\" (have: attention_align, hidden_align, kl, ce, long_context, chained)", label, n);
}

void read_optim(Table& t, train::OptimConfig& o) {
  std::vector<double> betas = {0.9, 0.95};
  o.weight_decay = 0.0;  // RADLADS and HALO: no weight decay in distillation (methods.md §5.1.1, §6.3)
  o.warmup_steps = 0;
  o.schedule = "cosine";
  t.get("lr", o.lr).get("min_lr", o.min_lr).get("schedule", o.schedule).get("warmup_steps", o.warmup_steps)
      .get("weight_decay", o.weight_decay).get("betas", betas).get("eps", o.eps).get("grad_clip", o.grad_clip);
  HYLA_CHECK(betas.size() == 2, "{}: betas must have two values", t.label());
  o.beta1 = betas[0];
  o.beta2 = betas[1];
  HYLA_CHECK(o.lr > 0, "{}: lr must be positive", t.label());
  HYLA_CHECK(o.min_lr >= 0 && o.min_lr <= o.lr, "{}: min_lr ({}) must be in [0, lr = {}]", t.label(), o.min_lr, o.lr);
  HYLA_CHECK(o.warmup_steps >= 0, "{}: warmup_steps must not be negative", t.label());
  HYLA_CHECK(o.schedule == "cosine" || o.schedule == "constant" || o.schedule == "linear",
             "{}: schedule must be cosine, linear or constant (got \"{}\")", t.label(), o.schedule);
}

void read_groups(Table& t, StageConfig& s) {
  const auto& known = parameter_group_names();
  json group_lr = json::object();
  t.get("train", s.train).get("group_lr", group_lr);
  HYLA_CHECK(!s.train.empty(), "{}: train lists no parameter group", t.label());
  for (auto& g : s.train)
    HYLA_CHECK(std::find(known.begin(), known.end(), g) != known.end(),
               "{}: train: unknown parameter group \"{}\" (have: mixers, attention, mlp, norms, embeddings, all)",
               t.label(), g);
  HYLA_CHECK(group_lr.is_object(), "{}: group_lr must be a table of group = lr", t.label());
  bool all = std::find(s.train.begin(), s.train.end(), "all") != s.train.end();
  for (auto& [g, v] : group_lr.items()) {
    HYLA_CHECK(std::find(known.begin(), known.end(), g) != known.end() && g != "all",
               "{}: group_lr: unknown parameter group \"{}\"", t.label(), g);
    HYLA_CHECK(all || std::find(s.train.begin(), s.train.end(), g) != s.train.end(),
               "{}: group_lr.{} is set but train = {} does not train that group", t.label(), g, json(s.train).dump());
    HYLA_CHECK(v.is_number() && v.get<double>() >= 0, "{}: group_lr.{} must be a number >= 0", t.label(), g);
    s.group_lr[g] = v.get<double>();
  }
}

void read_kl(Table& t, StageConfig& s) {
  t.get("temperature", s.temperature).get("top_k", s.top_k).get("teacher_cache", s.teacher_cache)
      .get("ce_weight", s.ce_weight);
  HYLA_CHECK(s.temperature > 0, "{}: temperature must be positive", t.label());
  HYLA_CHECK(s.top_k >= 0, "{}: top_k must be >= 0 (0: the full vocabulary)", t.label());
  HYLA_CHECK(s.ce_weight >= 0, "{}: ce_weight must be >= 0", t.label());
  HYLA_CHECK(s.teacher_cache.empty() || s.top_k > 0,
             "{}: teacher_cache is set but top_k = 0 (only top-k teacher logits are cached)", t.label());
}

}  // namespace

std::string stage_kind_name(StageKind k) {
  switch (k) {
    case StageKind::AttentionAlign: return "attention_align";
    case StageKind::HiddenAlign: return "hidden_align";
    case StageKind::KL: return "kl";
    case StageKind::CE: return "ce";
    case StageKind::LongContext: return "long_context";
    case StageKind::Chained: return "chained";
  }
  return "?";
}

AlignLoss align_loss_from_name(const std::string& n, const std::string& where) {
  if (n == "l2") return AlignLoss::L2;
  if (n == "mse") return AlignLoss::MSE;
  if (n == "nmse") return AlignLoss::NMSE;
  fail("{}: loss must be l2 (RADLADS' unsquared L2/√d), mse or nmse (got \"{}\")", where, n);
}

int64_t StageConfig::steps(int64_t world_size) const {
  int64_t per = tokens_per_step(world_size);
  return std::max<int64_t>(1, (tokens + per - 1) / per);
}

StageConfig stage_from_json(const json& j, const std::string& label0, int64_t index) {
  StageConfig s;
  std::string kind;
  HYLA_CHECK(j.is_object(), "{} must be a table", label0);
  HYLA_CHECK(j.contains("kind"), "{}: kind is required (attention_align, hidden_align, kl, ce, long_context, chained)",
             label0);
  HYLA_CHECK(j["kind"].is_string(), "{}: kind must be a string", label0);
  kind = j["kind"].get<std::string>();
  s.kind = kind_from_name(kind, label0);
  s.name = fmt::format("{}-{}", index + 1, kind);
  if (j.contains("name") && j["name"].is_string()) s.name = j["name"].get<std::string>();
  Table t(j, fmt::format("{} (\"{}\")", label0, s.name));
  t.get("kind", kind).get("name", s.name);
  HYLA_CHECK(!s.name.empty() && s.name.find('/') == std::string::npos && s.name[0] != '.',
             "{}: name must be a plain directory name", t.label());
  HYLA_CHECK(t.has("tokens"), "{}: tokens is required (training tokens of this stage{})", t.label(),
             s.kind == StageKind::Chained ? ", per converted layer" : "");
  t.get("tokens", s.tokens).get("seq_len", s.seq_len).get("batch_size", s.batch_size).get("grad_accum", s.grad_accum)
      .get("log_every", s.log_every).get("save_every", s.save_every);
  HYLA_CHECK(s.tokens > 0, "{}: tokens must be positive", t.label());
  HYLA_CHECK(s.seq_len > 0 && s.batch_size > 0 && s.grad_accum > 0,
             "{}: seq_len, batch_size and grad_accum must be positive", t.label());
  read_optim(t, s.optim);
  const std::string applies = fmt::format("does not apply to kind {}", kind);
  switch (s.kind) {
    case StageKind::AttentionAlign: {
      // Teacher-forced (methods.md §1.4): only the new mixers see a gradient.
      s.train = {"mixers"};
      std::string loss = "l2";
      t.get("loss", loss).get("train", s.train);
      s.align = align_loss_from_name(loss, t.label());
      s.loss = "align";
      HYLA_CHECK(s.train == std::vector<std::string>{"mixers"},
                 "{}: attention_align trains only the converted mixers (train = [\"mixers\"]); got {}", t.label(),
                 json(s.train).dump());
      for (auto k : {"group_lr", "temperature", "top_k", "ce_weight", "layers"}) t.refuse(k, applies);
      break;
    }
    case StageKind::HiddenAlign: {
      std::string loss = "l2";
      t.get("loss", loss).get("layers", s.align_layers);
      s.align = align_loss_from_name(loss, t.label());
      s.loss = "align";
      HYLA_CHECK(s.align_layers == "converted" || s.align_layers == "all",
                 "{}: layers must be \"converted\" or \"all\"", t.label());
      read_groups(t, s);
      for (auto k : {"temperature", "top_k", "ce_weight"}) t.refuse(k, applies);
      break;
    }
    case StageKind::KL:
      s.loss = "kl";
      read_kl(t, s);
      read_groups(t, s);
      t.refuse("loss", "does not apply to kind kl (its loss is the KL; add CE with ce_weight)");
      break;
    case StageKind::CE:
      s.loss = "ce";
      read_groups(t, s);
      for (auto k : {"temperature", "top_k", "ce_weight", "loss"}) t.refuse(k, applies);
      break;
    case StageKind::LongContext:
      t.get("loss", s.loss);
      HYLA_CHECK(s.loss == "ce" || s.loss == "kl", "{}: loss must be ce or kl (got \"{}\")", t.label(), s.loss);
      if (s.loss == "kl") read_kl(t, s);
      else
        for (auto k : {"temperature", "top_k", "ce_weight", "teacher_cache"})
          t.refuse(k, "applies only with loss = \"kl\"");
      read_groups(t, s);
      break;
    case StageKind::Chained:
      s.loss = "kl";
      s.train = {"mixers"};
      t.get("order", s.order).get("order_from", s.order_from).get("diversity_weight", s.diversity_weight)
          .get("earlier_lr_scale", s.earlier_lr_scale).get("temperature", s.temperature).get("ce_weight", s.ce_weight);
      HYLA_CHECK(s.order.empty() != s.order_from.empty(),
                 "{}: give exactly one of order (a list of layers) and order_from (a selection file)", t.label());
      HYLA_CHECK(s.temperature > 0 && s.ce_weight >= 0 && s.diversity_weight >= 0 && s.earlier_lr_scale >= 0,
                 "{}: temperature must be positive; ce_weight, diversity_weight, earlier_lr_scale >= 0", t.label());
      t.refuse("train", "does not apply to kind chained (each link trains its layer's mixer)");
      t.refuse("top_k", applies);
      break;
  }
  t.done(fmt::format(" for kind {} (see docs/distill.md)", kind));
  return s;
}

DistillRecipe DistillRecipe::from_json(const json& j, const std::string& label) {
  DistillRecipe r;
  r.raw = j;
  static const std::set<std::string> sections = {"run", "teacher", "student", "data", "stage", "dist"};
  for (auto& [k, _] : j.items())
    HYLA_CHECK(sections.count(k), "{}: unknown section [{}] (have: run, teacher, student, data, [[stage]], dist)",
               label, k);
  HYLA_CHECK(j.contains("teacher"), "{}: missing [teacher] (path = a Transformer checkpoint directory)", label);
  Table teacher(j["teacher"], label + " [teacher]");
  teacher.get("path", r.teacher).done();
  HYLA_CHECK(!r.teacher.empty(), "{} [teacher]: path is required", label);
  HYLA_CHECK(j.contains("student"), "{}: missing [student] (how to convert the teacher; docs/distill.md)", label);
  HYLA_CHECK(j["student"].is_object(), "{}: [student] must be a table", label);
  r.student = j["student"];

  HYLA_CHECK(j.contains("data"), "{}: missing [data] (dir = prepared shards, or text = a raw text file)", label);
  Table data(j["data"], label + " [data]");
  data.get("dir", r.data.dir).get("text", r.data.text).get("val_fraction", r.data.val_fraction).done();
  HYLA_CHECK(r.data.dir.empty() != r.data.text.empty(),
             "{} [data]: give exactly one of dir (prepared shards) and text (a raw text file)", label);
  HYLA_CHECK(r.data.val_fraction >= 0 && r.data.val_fraction < 1, "{} [data]: val_fraction must be in [0, 1)", label);
  if (!r.data.dir.empty())
    data.refuse("val_fraction", "applies only to raw text (prepared shards carry their own split)");

  r.run.out_dir = "runs/distill";
  r.run.save_every = 100;
  r.run.log_every = 10;
  r.run.keep_checkpoints = 2;
  if (j.contains("run")) {
    Table run(j["run"], label + " [run]");
    run.get("name", r.run.name).get("out_dir", r.run.out_dir).get("seed", r.run.seed).get("device", r.run.device)
        .get("dtype", r.run.dtype).get("log_every", r.run.log_every).get("save_every", r.run.save_every)
        .get("keep_checkpoints", r.run.keep_checkpoints).get("save_dtype", r.run.save_dtype)
        .get("shard_mb", r.run.shard_mb).done();
  }
  HYLA_CHECK(r.run.log_every > 0 && r.run.keep_checkpoints > 0 && r.run.save_every >= 0,
             "{} [run]: log_every and keep_checkpoints must be positive, save_every >= 0", label);
  if (j.contains("dist")) {
    Table dist(j["dist"], label + " [dist]");
    dist.get("zero1", r.dist.zero1).get("bucket_mb", r.dist.bucket_mb).get("check_every", r.dist.check_every)
        .get("timeout_s", r.dist.timeout_s).done();
  }

  HYLA_CHECK(j.contains("stage") && j["stage"].is_array() && !j["stage"].empty(),
             "{}: no [[stage]] (at least one stage is needed)", label);
  std::set<std::string> names;
  static const std::set<std::string> reserved = {"final", "data", "convert", "teacher-cache"};
  for (size_t i = 0; i < j["stage"].size(); ++i) {
    auto s = stage_from_json(j["stage"][i], fmt::format("{} [[stage]] {}", label, i + 1), int64_t(i));
    HYLA_CHECK(!reserved.count(s.name), "{} [[stage]] {}: name \"{}\" is reserved for hyla's own output", label, i + 1,
               s.name);
    HYLA_CHECK(names.insert(s.name).second, "{} [[stage]] {}: a stage named \"{}\" already exists", label, i + 1,
               s.name);
    if (s.log_every <= 0) s.log_every = r.run.log_every;
    if (s.save_every <= 0 && !j["stage"][i].contains("save_every")) s.save_every = r.run.save_every;
    r.stages.push_back(std::move(s));
  }
  return r;
}

DistillRecipe DistillRecipe::load(const std::filesystem::path& file) {
  auto r = from_json(train::toml_file_to_json(file), file.string());
  r.path = file;
  return r;
}

train::Recipe DistillRecipe::as_train_recipe() const {
  train::Recipe t;
  t.path = path;
  t.run = run;
  t.dist = dist;
  t.raw = raw;
  return t;
}

}  // namespace hyla::distill
