#include "hyla/model/checkpoint_tensors.h"

#include <set>

#include "hyla/util/error.h"

namespace hyla::model {

void check_checkpoint_tensors(const std::filesystem::path& dir, CausalLM& skeleton, const io::TensorStore& store) {
  const auto& config = skeleton->config();
  std::set<std::string> used;
  for (auto& p : skeleton->named_parameters(true)) {
    const std::string& name = p.key();
    HYLA_CHECK(store.has(name), "checkpoint {}: missing tensor {}", dir.string(), name);
    const auto& info = store.info(name);
    bool floating = info.dtype == "F64" || info.dtype == "F32" || info.dtype == "F16" || info.dtype == "BF16" ||
                    info.dtype.rfind("F8_", 0) == 0;
    HYLA_CHECK(floating, "checkpoint {}: tensor {} is stored as {}; weights must be floating point", dir.string(),
               name, info.dtype);
    HYLA_CHECK(c10::IntArrayRef(info.shape) == p.value().sizes(),
               "checkpoint {}: tensor {} has shape {} but the config implies {}", dir.string(), name,
               c10::IntArrayRef(info.shape), p.value().sizes());
    used.insert(name);
  }
  for (auto& name : store.names()) {
    if (used.count(name)) continue;
    bool benign = name == "lm_head.weight" && config.tie_word_embeddings;  // some writers keep the tied copy
    benign = benign || name.find("rotary_emb.inv_freq") != std::string::npos;  // old HF buffers
    HYLA_CHECK(benign, "checkpoint {}: unexpected tensor {} (not part of a {} model with this config)", dir.string(),
               name, config.model_type);
  }
}

}  // namespace hyla::model
