// `hyla bench generate MODEL`: decode speed on random prompt ids (no tokenizer needed),
// for bench/ scripts that compare hyla with transformers in the same run.
// `hyla bench gdn-decode`: one GDN layer's decode step, fused kernel vs LibTorch reference.
#include <cstdio>
#include <sstream>

#include "command.h"
#include "common.h"
#include "hyla/kernels/gdn_decode_bench.h"
#include "hyla/model/generate.h"
#include "hyla/util/error.h"

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

struct KernelBenchArgs {
  std::string batches = "1,32,256", dtype = "bfloat16";
  int64_t heads = 16, value_heads = 32, head_dim = 128;
  int iters = 50;
};

int run_kernel_bench(const KernelBenchArgs& a) {
  HYLA_CHECK(a.dtype == "bfloat16" || a.dtype == "float32", "--dtype must be bfloat16 or float32, got {}", a.dtype);
  auto dt = a.dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
  std::stringstream ss(a.batches);
  for (std::string item; std::getline(ss, item, ',');) {
    int64_t B = 0;
    try {
      B = std::stoll(item);
    } catch (const std::exception&) {
      fail("--batches: \"{}\" is not a number", item);
    }
    HYLA_CHECK(B > 0, "--batches: batch sizes must be positive, got {}", B);
    auto r = kernels::bench_gdn_decode(B, a.heads, a.value_heads, a.head_dim, dt, a.iters);
    nlohmann::json j = {{"batch", B},           {"heads", a.heads},
                        {"value_heads", a.value_heads}, {"head_dim", a.head_dim},
                        {"dtype", a.dtype},     {"kernel_us", r.kernel_us},
                        {"reference_us", r.reference_us}, {"speedup", r.reference_us / r.kernel_us},
                        {"bytes", r.bytes},     {"copy_gbps", r.copy_gbps},
                        {"floor_us", r.floor_us}, {"kernel_over_floor", r.kernel_us / r.floor_us}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

Register reg("bench", "measure decode speed (subcommands: generate, gdn-decode)", [](CLI::App& app) {
  auto k = std::make_shared<KernelBenchArgs>();
  auto* kd = app.add_subcommand("gdn-decode", "one GDN layer's decode step on the GPU: fused kernel vs "
                                              "LibTorch reference, CUDA graphs; prints JSON per batch");
  kd->add_option("--batches", k->batches, "comma-separated batch sizes")->capture_default_str();
  kd->add_option("--heads", k->heads, "query/key heads H")->capture_default_str();
  kd->add_option("--value-heads", k->value_heads, "value heads HV")->capture_default_str();
  kd->add_option("--head-dim", k->head_dim, "dk = dv (64, 80 or 128)")->capture_default_str();
  kd->add_option("--dtype", k->dtype, "bfloat16 | float32")->capture_default_str();
  kd->add_option("--iters", k->iters, "steps per timed CUDA graph")->capture_default_str();
  auto act = std::make_shared<std::function<int()>>();
  kd->callback([k, act] { *act = [k] { return run_kernel_bench(*k); }; });
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
  g->callback([a, act] { *act = [a] { return run_bench(*a); }; });
  return [act]() { return (*act)(); };
});

}  // namespace
}  // namespace hyla::cli
