// Everything `hyla eval all` measures for one model, as one JSON document that `hyla
// report` reads (eval.md): perplexity on held-out text, mean KL to a teacher and top-1
// agreement on the same windows, recall (MQAR, passkey, NIAH) at several lengths
// (including beyond the training length), and decode-cache memory.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "hyla/io/tokenizer.h"
#include "hyla/model/decoder.h"

namespace hyla::eval {

struct ModelEvalOptions {
  std::string name;                       // label in reports (default: the directory name)
  std::string text_file;                  // held-out text; empty skips perplexity and KL
  int64_t ctx = 512, batch = 4, max_tokens = 0;
  std::vector<int64_t> lengths = {256, 512, 1024, 2048};  // recall lengths in tokens
  int64_t mqar_samples = 32, mqar_kv_pairs = 16, mqar_vocab = 4096, mqar_offset = 4096;
  int64_t passkey_samples = 20, niah_samples = 20, niah_new_tokens = 32;
  std::vector<std::string> tasks = {"mqar", "passkey", "niah"};
  uint64_t seed = 12345;
  bool progress = true;
};

// The JSON's schema: {"format": "hyla-eval", "name", "path", "layer_kinds", "parameters",
// "text": {file, tokens, ppl, nll, ctx, [kl, top1_agreement, teacher, teacher_ppl]},
// "recall": [{task, length, accuracy, samples, ...}], "cache": CacheMemory::to_json,
// "settings": the options}.
nlohmann::json evaluate_model(model::CausalLM& m, const io::Tokenizer& tok, model::CausalLM* teacher,
                              const std::string& teacher_path, const std::string& model_path,
                              const ModelEvalOptions& opt);

// One letter per layer: A = attention, g = gdn, d = dsla, h = hypenet.
std::string layer_kind_letters(const model::CausalLM& m);

}  // namespace hyla::eval
