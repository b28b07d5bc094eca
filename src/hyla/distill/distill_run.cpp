#include "hyla/distill/distill_run.h"

#include <unistd.h>

#include "hyla/data/prepare.h"
#include "hyla/distill/chained.h"
#include "hyla/distill/selection_file.h"
#include "hyla/distill/stage_objective.h"
#include "hyla/distill/student_spec.h"
#include "hyla/io/atomic_file.h"
#include "hyla/io/tokenizer.h"
#include "hyla/util/error.h"
#include "hyla/util/fs.h"
#include "hyla/util/log.h"

namespace hyla::distill {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

torch::Device pick_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  return torch::Device(name);
}

// Windows of seq_len + 1 tokens the sampler can cut from the split (batch_sampler.h).
// The first sequences × seq_len training tokens as [sequences, seq_len] (calibration).
torch::Tensor leading_tokens(const data::TokenDataset& d, int64_t sequences, int64_t seq_len) {
  auto out = torch::empty({sequences, seq_len}, torch::kInt64);
  int64_t need = sequences * seq_len, got = 0;
  for (auto& s : d.shards()) {
    int64_t n = std::min(need - got, s->size());
    s->copy(0, n, out.data_ptr<int64_t>() + got);
    got += n;
    if (got == need) break;
  }
  HYLA_CHECK(got == need, "[student] calibration needs {} training tokens; the data has {}", need, d.total_tokens());
  return out;
}

int64_t windows(const data::TokenDataset& d, int64_t seq_len) {
  int64_t n = 0;
  for (auto& s : d.shards()) n += std::max<int64_t>(0, (s->size() - 1) / seq_len);
  return n;
}

}  // namespace

model::ModelConfig check_teacher(const std::string& path, const std::string& label) {
  HYLA_CHECK(fs::exists(fs::path(path) / "config.json"), "{} [teacher] path: {} is not a model directory (no "
             "config.json)", label, path);
  model::ModelConfig c;
  try {
    c = model::ModelConfig::load(path);
  } catch (const Error& e) {
    fail("{} [teacher] path: {}", label, e.what());
  }
  HYLA_CHECK(c.model_type != "hyla_hybrid", "{} [teacher] path: {} is already a hybrid (model_type hyla_hybrid); the "
             "teacher must be a Transformer (llama, qwen2, qwen3)", label, path);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    HYLA_CHECK(c.is_attention_layer(l), "{} [teacher] path: layer {} of {} is not attention ({})", label, l, path,
               c.layer_type(l));
  return c;
}

DistillRun::DistillRun(DistillRecipe recipe, std::shared_ptr<train::DataParallel> dp)
    : r_(std::move(recipe)), dp_(dp ? std::move(dp) : std::make_shared<train::DataParallel>()), out_(r_.run.out_dir) {}

void DistillRun::prepare() {
  const std::string label = r_.path.string();
  teacher_config_ = check_teacher(r_.teacher, label);
  auto spec = parse_student(r_.student, teacher_config_, label + " [student]");
  resolve_chain_orders(spec.config);
  for (auto& st : r_.stages)
    if (st.kind == StageKind::Chained) check_chained(spec.config);
  open_data();
  check_lengths();
  HYLA_CHECK(spec.calib_sequences * spec.calib_seq_len <= data_->total_tokens(),
             "{} [student]: calibration needs {} × {} training tokens; the data has {}", label, spec.calib_sequences,
             spec.calib_seq_len, data_->total_tokens());
}

void DistillRun::resolve_chain_orders(const model::ModelConfig& student) {
  // order_from: a `hyla select` result ranks layers most worth keeping as attention
  // first, so the chain converts from the other end (dsla.md: least sensitive first),
  // skipping layers the student keeps as attention.
  for (auto& st : r_.stages) {
    if (st.kind != StageKind::Chained || st.order_from.empty()) continue;
    auto sel = load_selection(st.order_from, teacher_config_);
    st.order.clear();
    for (auto it = sel.ranking.rbegin(); it != sel.ranking.rend(); ++it)
      if (student.layer_type(*it) != teacher_config_.layer_type(*it)) st.order.push_back(*it);
    st.order_from.clear();
  }
}

void DistillRun::check_chained(const model::ModelConfig& student) const {
  std::vector<int64_t> converted;
  for (int64_t l = 0; l < student.num_hidden_layers; ++l)
    if (student.layer_type(l) != teacher_config_.layer_type(l)) converted.push_back(l);
  for (size_t i = 0; i < r_.stages.size(); ++i) {
    auto& st = r_.stages[i];
    if (st.kind != StageKind::Chained) continue;
    auto label = fmt::format("{} [[stage]] {} (\"{}\")", r_.path.string(), i + 1, st.name);
    HYLA_CHECK(!student.attention_nope, "{}: chained fine-tuning restores the teacher's attention in layers not yet "
               "converted, which a HyPE student (hype = true) does not have", label);
    check_chain_order(st.order, converted, label);
  }
}

void DistillRun::open_data() {
  const std::string label = r_.path.string() + " [data]";
  if (!r_.data.dir.empty()) {
    HYLA_CHECK(fs::exists(fs::path(r_.data.dir) / "manifest.json"),
               "{} dir: {} is not a prepared corpus (no manifest.json; make one with `hyla data prepare`)", label,
               r_.data.dir);
    data_ = data::TokenDataset::open(r_.data.dir, "train");
    HYLA_CHECK(data_->manifest().vocab_size <= teacher_config_.vocab_size,
               "{} dir: {} was tokenised with a vocabulary of {}, larger than the teacher's {}", label, r_.data.dir,
               data_->manifest().vocab_size, teacher_config_.vocab_size);
    if (fs::exists(fs::path(r_.teacher) / "tokenizer.json")) tokenizer_ = fs::path(r_.teacher) / "tokenizer.json";
    return;
  }
  HYLA_CHECK(fs::is_regular_file(r_.data.text), "{} text: no such file: {}", label, r_.data.text);
  tokenizer_ = fs::path(r_.teacher) / "tokenizer.json";
  HYLA_CHECK(fs::exists(tokenizer_), "{} text: the teacher {} has no tokenizer.json to tokenise {} with", label,
             r_.teacher, r_.data.text);
  fs::path dir = out_ / "data";
  if (!fs::exists(dir / "manifest.json")) {
    // Tokenised into a sibling of out_dir, checked, then moved into place: a failure leaves
    // nothing behind, and a directory with a manifest is always complete.
    fs::path tmp = out_.parent_path() / fmt::format(".{}-data-{}", out_.filename().string(), ::getpid());
    if (dp_->rank() == 0) {
      remove_tree(tmp);
      data::PrepareOptions po;
      po.inputs = {r_.data.text};
      po.out_dir = tmp;
      po.tokenizer_path = tokenizer_;
      po.val_fraction = r_.data.val_fraction;
      po.seed = r_.run.seed;
      po.progress = false;
      // Documents end with the teacher's EOS (config.json), as its own training data did.
      if (!teacher_config_.eos_token_id.empty()) po.eos_id = int32_t(teacher_config_.eos_token_id.front());
      auto tok = io::Tokenizer::load(tokenizer_);
      try {
        data::prepare_corpus(po, *tok);
        data_ = data::TokenDataset::open(tmp, "train");
        check_lengths();
      } catch (...) {
        remove_tree(tmp);
        throw;
      }
      fs::create_directories(out_);
      fs::rename(tmp, dir);
      log::info("tokenised {} with {}: {} training tokens in {}", r_.data.text, tokenizer_.string(),
                data_->total_tokens(), dir.string());
    }
    dp_->barrier();
  }
  data_ = data::TokenDataset::open(dir, "train");
}

void DistillRun::check_lengths() const {
  int64_t world = dp_->world_size();
  for (size_t i = 0; i < r_.stages.size(); ++i) {
    auto& st = r_.stages[i];
    int64_t have = windows(*data_, st.seq_len), need = st.batch_size * world;
    HYLA_CHECK(have >= need,
               "{} [[stage]] {} (\"{}\") seq_len = {}: the training data ({} tokens) is shorter than one step of "
               "batch_size × processes = {} sequences of {} tokens (it gives {})",
               r_.path.string(), i + 1, st.name, st.seq_len, data_->total_tokens(), need, st.seq_len + 1, have);
  }
}

std::vector<StageResult> DistillRun::run() {
  const int rank = dp_->rank();
  auto device = dp_->local_device(pick_device(r_.run.device));
  StageEnv env;
  env.teacher = model::load_causal_lm(r_.teacher, device, torch::kFloat32);
  for (auto& p : env.teacher->parameters()) p.set_requires_grad(false);
  env.train_data = data_;
  env.device = device;
  env.autocast = device.is_cuda() && r_.run.dtype != "float32";
  env.dp = dp_;
  env.run = r_.run;
  env.tokenizer = tokenizer_;
  env.teacher_cache_root = out_ / "teacher-cache";

  // The converted student: made once, kept in out_dir/convert so a rerun starts from it.
  model::CausalLM student{nullptr};
  fs::path convert_dir = out_ / "convert";
  if (stage_done(convert_dir)) {
    student = model::load_causal_lm(convert_dir, torch::kCPU, torch::kFloat32);
  } else {
    auto spec = parse_student(r_.student, teacher_config_, r_.path.string() + " [student]");
    torch::Tensor calib;
    if (spec.calib_sequences > 0) calib = leading_tokens(*data_, spec.calib_sequences, spec.calib_seq_len);
    student = build_student(spec, env.teacher, calib, r_.run.seed);
    if (rank == 0) {
      fs::create_directories(convert_dir);
      write_stage_result(student, convert_dir, env,
                         {{"stage", "convert"}, {"student", r_.student}, {"teacher", r_.teacher}});
    }
    dp_->barrier();
  }
  student->to(device);
  std::vector<StageResult> results;
  for (size_t i = 0; i < r_.stages.size(); ++i) {
    auto& st = r_.stages[i];
    fs::path dir = stage_dir(st);
    if (stage_done(dir)) {
      log::info("stage {} is done ({}); continuing from its student", st.name, dir.string());
      student = model::load_causal_lm(dir, device, torch::kFloat32);
      continue;
    }
    env.seed = r_.run.seed + i;  // each stage its own data order, fixed by the recipe
    results.push_back(st.kind == StageKind::Chained ? run_chained(student, st, env, dir)
                                                    : run_stage(student, st, env, dir));
  }
  if (rank == 0) {
    fs::path fin = final_dir();
    fs::path tmp = out_ / fmt::format(".final-{}", ::getpid());
    remove_tree(tmp);
    model::save_causal_lm(student, tmp, uint64_t(r_.run.shard_mb) << 20, model::dtype_from_name(r_.run.save_dtype));
    if (!tokenizer_.empty()) io::write_text_atomic(tmp / "tokenizer.json", io::read_text_file(tokenizer_));
    json stages = json::array();
    for (auto& st : r_.stages) stages.push_back({{"name", st.name}, {"kind", stage_kind_name(st.kind)},
                                                 {"tokens", st.tokens}, {"seq_len", st.seq_len}});
    io::write_text_atomic(tmp / "distill.json",
                          json({{"teacher", r_.teacher}, {"student", r_.student}, {"stages", stages}}).dump(2) + "\n");
    remove_tree(fin);
    fs::rename(tmp, fin);
  }
  dp_->barrier();
  return results;
}

}  // namespace hyla::distill
