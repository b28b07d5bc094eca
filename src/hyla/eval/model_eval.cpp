#include "hyla/eval/model_eval.h"

#include <filesystem>

#include "hyla/eval/cache_memory.h"
#include "hyla/eval/kl.h"
#include "hyla/eval/needle.h"
#include "hyla/eval/perplexity.h"
#include "hyla/eval/recall.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::eval {
namespace {

nlohmann::json text_metrics(model::CausalLM& m, const io::Tokenizer& tok, model::CausalLM* teacher,
                            const std::string& teacher_path, const ModelEvalOptions& o) {
  auto ids = text_file_tokens(o.text_file, tok, o.max_tokens, 2);
  nlohmann::json j;
  if (teacher) {
    // One pass gives the student's NLL and the KL; perplexity is the same number
    // `perplexity()` computes over these windows (stride = ctx).
    auto r = kl_to_teacher(m, *teacher, ids, o.ctx, o.batch, o.progress);
    j = r.to_json();
    j["nll"] = r.student_nll_sum / double(std::max<int64_t>(r.tokens, 1));
    j["teacher"] = teacher_path;
  } else {
    j = perplexity(m, ids, o.ctx, 0, o.batch, o.progress).to_json();
  }
  j["file"] = o.text_file;
  return j;
}

nlohmann::json recall_at(model::CausalLM& m, const io::Tokenizer& tok, const std::string& task, int64_t length,
                         const ModelEvalOptions& o) {
  RecallResult r;
  nlohmann::json extra = nlohmann::json::object();
  if (task == "mqar") {
    data::MqarConfig c;
    c.seq_len = length;
    c.num_kv_pairs = std::min(o.mqar_kv_pairs, length / 4);
    c.vocab_size = o.mqar_vocab;
    c.token_offset = int32_t(o.mqar_offset);
    data::validate(c);
    r = eval_mqar(m, c, o.mqar_samples, o.seed);
    extra["kv_pairs"] = c.num_kv_pairs;
  } else if (task == "passkey") {
    data::PasskeyConfig c;
    c.length_tokens = length;
    r = eval_passkey(m, tok, c, o.passkey_samples, o.seed);
  } else if (task == "niah") {
    data::NiahConfig c;
    c.length_tokens = length;
    // Room for the generated tokens only (RULER reserves 128 because it generates 128).
    c.reserve_tokens = o.niah_new_tokens;
    r = eval_niah(m, tok, c, o.niah_samples, o.seed, o.niah_new_tokens);
    extra["new_tokens"] = o.niah_new_tokens;
    extra["haystack"] = "noise (niah_single_1)";
  } else {
    fail("recall task \"{}\": unknown (have: mqar, passkey, niah)", task);
  }
  auto j = r.to_json();
  j["length"] = length;
  j.update(extra);
  return j;
}

}  // namespace

std::string layer_kind_letters(const model::CausalLM& m) {
  std::string out;
  for (int64_t i = 0; i < m->num_layers(); ++i) {
    auto k = m->layer(i)->mixer()->kind();
    out += k.find("attention") != std::string::npos ? 'A' : k.empty() ? '?' : k[0];
  }
  return out;
}

nlohmann::json evaluate_model(model::CausalLM& m, const io::Tokenizer& tok, model::CausalLM* teacher,
                              const std::string& teacher_path, const std::string& model_path,
                              const ModelEvalOptions& o) {
  for (auto& t : o.tasks)
    HYLA_CHECK(t == "mqar" || t == "passkey" || t == "niah", "--tasks: \"{}\" is unknown (have: mqar, passkey, niah)",
               t);
  for (auto L : o.lengths) HYLA_CHECK(L >= 16, "--lengths: {} is too short (need >= 16 tokens)", L);
  std::string name = o.name.empty() ? std::filesystem::path(model_path).filename().string() : o.name;
  if (name.empty()) name = std::filesystem::path(model_path).parent_path().filename().string();
  nlohmann::json j = {{"format", "hyla-eval"}, {"version", 1}, {"name", name}, {"path", model_path},
                      {"layer_kinds", layer_kind_letters(m)}, {"parameters", m->num_parameters()}};
  if (!o.text_file.empty()) {
    log::info("eval {}: text metrics on {}", name, o.text_file);
    j["text"] = text_metrics(m, tok, teacher, teacher_path, o);
  }
  j["recall"] = nlohmann::json::array();
  for (auto& task : o.tasks)
    for (auto L : o.lengths) {
      log::info("eval {}: {} at {} tokens", name, task, L);
      j["recall"].push_back(recall_at(m, tok, task, L, o));
    }
  j["cache"] = decode_cache_memory(m, 2).to_json(standard_contexts());
  j["settings"] = {{"ctx", o.ctx}, {"max_tokens", o.max_tokens}, {"lengths", o.lengths}, {"tasks", o.tasks},
                   {"mqar_samples", o.mqar_samples}, {"mqar_kv_pairs", o.mqar_kv_pairs},
                   {"mqar_vocab", o.mqar_vocab}, {"mqar_offset", o.mqar_offset},
                   {"passkey_samples", o.passkey_samples}, {"niah_samples", o.niah_samples},
                   {"niah_new_tokens", o.niah_new_tokens}, {"seed", o.seed}};
  return j;
}

}  // namespace hyla::eval
