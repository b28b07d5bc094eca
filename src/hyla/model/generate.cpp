#include "hyla/model/generate.h"

#include <chrono>

#ifdef HYLA_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

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
  auto cache = model->new_cache();
  auto dev = prompt.device();
  int64_t B = prompt.size(0);
  GenerateResult r;
  auto t0 = std::chrono::steady_clock::now();
  ForwardOptions fo;
  fo.cache = &cache;
  fo.logits_last_n = 1;
  auto logits = model->forward(prompt, fo);
  auto next = sampler.sample(logits.select(1, 0));
  sync(dev);
  r.prefill_seconds = seconds_since(t0);
  std::vector<torch::Tensor> out;
  auto done = torch::zeros({B}, torch::TensorOptions().dtype(torch::kBool).device(dev));
  auto stop = opt.stop_ids.empty() ? torch::Tensor()
                                   : torch::tensor(opt.stop_ids, torch::kInt64).to(dev);
  t0 = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < opt.max_new_tokens; ++step) {
    if (stop.defined() && step > 0) next = torch::where(done, stop[0], next);
    out.push_back(next);
    if (stop.defined()) done = done.logical_or(torch::isin(next, stop));
    bool keep_going = true;
    if (opt.on_token) keep_going = opt.on_token(next.to(torch::kCPU));
    if (!keep_going || step + 1 == opt.max_new_tokens) break;
    if (stop.defined() && done.all().item<bool>()) break;
    logits = model->forward(next.view({B, 1}), fo);
    next = sampler.sample(logits.select(1, 0));
    ++r.decode_steps;
  }
  sync(dev);
  r.decode_seconds = seconds_since(t0);
  r.tokens = torch::stack(out, 1).to(torch::kCPU);
  return r;
}

}  // namespace hyla::model
