#include "hyla/model/generate.h"

#include <chrono>

#ifdef HYLA_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

#include "hyla/model/static_decoder.h"
#include "hyla/util/error.h"

namespace hyla::model {

namespace {
void sync(torch::Device d) {
#ifdef HYLA_CUDA
  if (d.is_cuda()) c10::cuda::device_synchronize();
#endif
}
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

GenerateResult generate(CausalLM& model, const torch::Tensor& prompt, const GenerateOptions& opt) {
  HYLA_CHECK(prompt.dim() == 2 && prompt.size(1) > 0, "generate: prompt must be [batch, time] with time > 0");
  torch::NoGradGuard no_grad;
  Sampler sampler(opt.sampling);
  auto dev = prompt.device();
  int64_t B = prompt.size(0), T = prompt.size(1);
  // Static shapes (CUDA-graph replay on GPU): a preallocated KV cache for attention
  // layers, in-place state updates for linear ones.
  std::unique_ptr<StaticDecoder> fixed;
  ModelCache cache = model->new_cache();
  ForwardOptions fo;
  fo.cache = &cache;
  fo.logits_last_n = 1;
  if (opt.static_shapes)
    fixed = std::make_unique<StaticDecoder>(model, B, T + opt.max_new_tokens, opt.cuda_graph);
  auto step = [&](const torch::Tensor& ids) {
    return fixed ? fixed->step(ids) : model->forward(ids.view({B, 1}), fo).select(1, 0);
  };
  GenerateResult r;
  auto t0 = std::chrono::steady_clock::now();
  auto next = sampler.sample(fixed ? fixed->prefill(prompt) : model->forward(prompt, fo).select(1, 0));
  sync(dev);
  r.prefill_seconds = seconds_since(t0);
  std::vector<torch::Tensor> out;
  auto done = torch::zeros({B}, torch::TensorOptions().dtype(torch::kBool).device(dev));
  auto stop = opt.stop_ids.empty() ? torch::Tensor()
                                   : torch::tensor(opt.stop_ids, torch::kInt64).to(dev);
  t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < opt.max_new_tokens; ++i) {
    if (stop.defined() && i > 0) next = torch::where(done, stop[0], next);
    out.push_back(next);
    if (stop.defined()) done = done.logical_or(torch::isin(next, stop));
    bool keep_going = true;
    if (opt.on_token) keep_going = opt.on_token(next.to(torch::kCPU));
    if (!keep_going || i + 1 == opt.max_new_tokens) break;
    // Checking for all-rows-stopped costs a device sync: do it every 16 steps.
    if (stop.defined() && i % 16 == 15 && done.all().item<bool>()) break;
    next = sampler.sample(step(next));
    ++r.decode_steps;
  }
  sync(dev);
  r.decode_seconds = seconds_since(t0);
  r.tokens = torch::stack(out, 1).to(torch::kCPU);
  r.cuda_graph = fixed && fixed->graphed();
  return r;
}

}  // namespace hyla::model
