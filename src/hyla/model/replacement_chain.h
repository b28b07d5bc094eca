// DSLA-Serve's pre-distilled replacements (dsla.md "Chained fine-tuning", "DSLA-Serve:
// the online policy"), as the distillation pipeline's chained stage writes them:
//
//   CHAIN/link-KK-layer-LL/config.json               the student with ℓ_1..ℓ_k converted
//                                                    (KK = k from 01; LL = ℓ_k)
//   CHAIN/link-KK-layer-LL/replacement.safetensors   model.layers.ℓ.linear_attn.* for
//                                                    ℓ_1..ℓ_k as trained in link k; metadata
//                                                    "layers" = JSON [ℓ_1, ..., ℓ_k]
//
// Link k is valid only with ℓ_1..ℓ_{k−1} in place (each was trained with the earlier
// ones converted), so level k is link k's mixers for ℓ_1..ℓ_k, the teacher's elsewhere.
// A mixer unchanged from the previous link (earlier layers frozen) is shared, not copied.
#pragma once
#include <filesystem>
#include <vector>

#include "hyla/model/decoder.h"

namespace hyla::model {

struct ReplacementChain {
  std::vector<int64_t> order;               // ℓ_1, ℓ_2, ...: the sensitivity order
  std::vector<std::vector<Mixer>> levels;   // levels[k-1]: every layer's mixer at level k
};

// Reads CHAIN for `teacher` (on its device and dtype). Errors name the link, file or tensor.
ReplacementChain load_replacement_chain(const std::filesystem::path& dir, CausalLM& teacher);

}  // namespace hyla::model
