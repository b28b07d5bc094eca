#include "hyla/distill/layer_bypass.h"

#include "hyla/util/error.h"

namespace hyla::distill {
namespace {

class ZeroMixerImpl : public model::MixerImpl {
 public:
  explicit ZeroMixerImpl(std::string kind) : kind_(std::move(kind)) {}
  torch::Tensor forward(const torch::Tensor& x, const model::MixerContext&) override { return torch::zeros_like(x); }
  std::string kind() const override { return kind_; }

 private:
  std::string kind_;
};

}  // namespace

model::Mixer zero_mixer(const std::string& kind) {
  return model::Mixer(std::static_pointer_cast<model::MixerImpl>(std::make_shared<ZeroMixerImpl>(kind)));
}

ScopedMixerSwap::ScopedMixerSwap(model::CausalLM& m, int64_t layer, model::Mixer replacement) {
  HYLA_CHECK(layer >= 0 && layer < m->num_layers(), "layer {} out of range [0, {})", layer, m->num_layers());
  layer_ = m->layer(layer);
  original_ = layer_->mixer();
  replacement->to(original_->parameters().empty() ? torch::kCPU : original_->parameters().front().device());
  layer_->set_mixer(std::move(replacement));
}

ScopedMixerSwap::~ScopedMixerSwap() { layer_->set_mixer(original_); }

}  // namespace hyla::distill
