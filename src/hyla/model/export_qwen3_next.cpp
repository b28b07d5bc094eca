#include "hyla/model/export_qwen3_next.h"

#include "hyla/io/atomic_file.h"
#include "hyla/io/safetensors.h"
#include "hyla/model/qwen3_next_config.h"
#include "hyla/model/qwen3_next_tensors.h"
#include "hyla/util/error.h"

namespace hyla::model {
namespace fs = std::filesystem;

void export_qwen3_next(CausalLM& m, const fs::path& out, std::optional<torch::ScalarType> dtype) {
  auto config = qwen3_next_config(m->config());  // refuses before anything is written
  auto tensors = qwen3_next_tensors(m);
  std::optional<torch::ScalarType> saved;
  for (auto& [name, t] : tensors) {
    if (dtype) t = t.to(*dtype).contiguous();
    HYLA_CHECK(!saved || *saved == t.scalar_type(), "qwen3-next export: tensor {} is {} but others are {}; pass a dtype",
               name, c10::toString(t.scalar_type()), c10::toString(*saved));
    saved = t.scalar_type();
  }
  if (saved) config["dtype"] = dtype_name(*saved);
  fs::create_directories(out);
  io::save_checkpoint_tensors(out, tensors, 5ull << 30);
  io::write_text_atomic(out / "config.json", config.dump(2) + "\n");
}

}  // namespace hyla::model
