// `hyla bench generate MODEL`: decode speed on random prompt ids (no tokenizer needed),
// for bench/ scripts that compare hyla with transformers in the same run.
#include <cstdio>

#include "command.h"
#include "common.h"
#include "hyla/model/generate.h"

namespace hyla::cli {
namespace {

struct BenchArgs {
  ModelArgs model;
  int64_t batch = 1, prompt_len = 512, new_tokens = 256, repeats = 3;
  bool no_graph = false, no_static = false;
};

int run_bench(const BenchArgs& a) {
  auto m = a.model.load();
  auto dev = a.model.torch_device();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  auto prompt = torch::randint(0, m->config().vocab_size, {a.batch, a.prompt_len}, gen, torch::kInt64).to(dev);
  model::GenerateOptions go;
  go.max_new_tokens = a.new_tokens;
  go.cuda_graph = !a.no_graph;
  go.static_shapes = !a.no_static;
  model::generate(m, prompt, go);  // warm-up: allocator, kernels, graph capture path
  std::vector<double> prefill, decode;
  for (int64_t i = 0; i < a.repeats; ++i) {
    auto r = model::generate(m, prompt, go);
    prefill.push_back(r.prefill_seconds);
    decode.push_back(r.decode_seconds / std::max<int64_t>(1, r.decode_steps));
  }
  std::sort(prefill.begin(), prefill.end());
  std::sort(decode.begin(), decode.end());
  double step = decode[decode.size() / 2], pre = prefill[prefill.size() / 2];
  nlohmann::json j = {{"batch", a.batch},          {"prompt_len", a.prompt_len},
                      {"new_tokens", a.new_tokens}, {"prefill_ms", pre * 1e3},
                      {"step_ms", step * 1e3},      {"tokens_per_s", a.batch / step},
                      {"device", dev.str()},         {"cuda_graph", !a.no_graph && !a.no_static}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

Register reg("bench", "measure decode speed (subcommand: generate)", [](CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* g = app.add_subcommand("generate", "prefill + greedy decode on random ids; prints JSON");
  app.require_subcommand(1);
  a->model.add(*g);
  g->add_option("--batch", a->batch)->capture_default_str();
  g->add_option("--prompt-len", a->prompt_len)->capture_default_str();
  g->add_option("--new-tokens", a->new_tokens)->capture_default_str();
  g->add_option("--repeats", a->repeats)->capture_default_str();
  g->add_flag("--no-graph", a->no_graph, "no CUDA graph (eager static decode)");
  g->add_flag("--no-static", a->no_static, "growing KV cache, eager");
  return [=]() { return run_bench(*a); };
});

}  // namespace
}  // namespace hyla::cli
