// Test entry point for the sampler (tests/py/test_cli_generate.py): the filtered
// distribution hyla samples from, and counts of many draws, for logits read from a
// safetensors file; compared with transformers' logits warpers and a chi-square test.
#include <CLI/CLI.hpp>

#include "../../tools/hyla/command.h"
#include "device.h"
#include "hyla/io/safetensors.h"
#include "hyla/model/sampler.h"

namespace {

struct SampleArgs {
  std::string in, out;
  hyla::model::SamplingParams p;
  int64_t draws = 0;
};

int run_sample(const SampleArgs& a) {
  auto f = hyla::io::SafetensorsFile::open(a.in);
  auto logits = f->load("logits", true).to(hyla::testkit::test_device());
  hyla::model::Sampler sampler(a.p);
  auto probs = sampler.probabilities(logits).to(torch::kCPU).contiguous();
  auto counts = torch::zeros(logits.sizes(), torch::kInt64);
  if (a.draws > 0) {
    // One sample() call over `draws` copies of every row: the draws are independent.
    int64_t B = logits.size(0);
    auto ids = sampler.sample(logits.repeat({a.draws, 1})).to(torch::kCPU).contiguous();
    auto n = counts.accessor<int64_t, 2>();
    auto id = ids.accessor<int64_t, 1>();
    for (int64_t i = 0; i < ids.size(0); ++i) n[i % B][id[i]] += 1;
  }
  hyla::io::save_safetensors(a.out, {{"probs", probs}, {"counts", counts}});
  return 0;
}

hyla::cli::Register sample_cmd("sample", "sampler probabilities and draw counts for given logits",
                               [](CLI::App& app) {
  auto a = std::make_shared<SampleArgs>();
  app.add_option("--in", a->in, "safetensors with logits [B, V]")->required();
  app.add_option("--out", a->out, "writes probs [B, V] float32 and counts [B, V] int64")->required();
  app.add_option("-t,--temperature", a->p.temperature)->required();
  app.add_option("--top-k", a->p.top_k);
  app.add_option("--top-p", a->p.top_p);
  app.add_option("--seed", a->p.seed);
  app.add_option("--draws", a->draws, "samples to draw per row");
  return [=]() { return run_sample(*a); };
});

}  // namespace
