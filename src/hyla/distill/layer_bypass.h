// Swapping one layer's token mixer for a while, for selection probes: "attention bypass"
// (pipeline.md §1, methods.md §3.6: zero the layer's mixer output, keep the residual) and
// "teacher with only layer ℓ replaced by its aligned linear mixer" (the cheap KL-guided
// and HALO probes). The original mixer comes back when the guard goes out of scope.
#pragma once
#include <string>

#include "hyla/model/decoder.h"

namespace hyla::distill {

class ScopedMixerSwap {
 public:
  ScopedMixerSwap(model::CausalLM& m, int64_t layer, model::Mixer replacement);
  ~ScopedMixerSwap();
  ScopedMixerSwap(const ScopedMixerSwap&) = delete;
  ScopedMixerSwap& operator=(const ScopedMixerSwap&) = delete;

 private:
  model::DecoderLayer layer_{nullptr};
  model::Mixer original_{nullptr};
};

// A mixer whose output is zero: with it, the layer is x + MLP(norm(x)). Reports the
// kind of the mixer it stands in for, so it registers under the same name.
model::Mixer zero_mixer(const std::string& kind);

}  // namespace hyla::distill
