#include "hyla/model/cache.h"

namespace hyla::model {

static int64_t nbytes(const torch::Tensor& t) {
  return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0;
}

int64_t LayerCache::bytes() const {
  int64_t b = nbytes(k) + nbytes(v);
  for (auto& [_, t] : state) b += nbytes(t);
  return b;
}

int64_t ModelCache::bytes() const {
  int64_t b = 0;
  for (auto& l : layers) b += l.bytes();
  return b;
}

std::vector<std::map<std::string, torch::Tensor>> ModelCache::snapshot_states() const {
  std::vector<std::map<std::string, torch::Tensor>> out(layers.size());
  for (size_t i = 0; i < layers.size(); ++i)
    for (auto& [key, t] : layers[i].state) out[i][key] = t.clone();
  return out;
}

void ModelCache::restore_states(const std::vector<std::map<std::string, torch::Tensor>>& saved) {
  for (size_t i = 0; i < layers.size() && i < saved.size(); ++i)
    for (auto& [key, t] : saved[i]) layers[i].state.at(key).copy_(t);
}

void ModelCache::reset() {
  for (auto& l : layers) l = LayerCache{};
  position = 0;
}

}  // namespace hyla::model
