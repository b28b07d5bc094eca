#include "hyla/train/checkpoint.h"

#include <unistd.h>

#include <algorithm>

#include "hyla/data/sha256.h"
#include "hyla/io/atomic_file.h"
#include "hyla/io/safetensors.h"
#include "hyla/model/decoder.h"
#include "hyla/util/error.h"
#include "hyla/util/fs.h"
#include "hyla/util/log.h"

namespace hyla::train {
namespace fs = std::filesystem;
using nlohmann::json;

std::string checkpoint_name(int64_t step) { return fmt::format("step-{:08}", step); }

Checkpointer::Checkpointer(fs::path out_dir, int64_t keep) : dir_(std::move(out_dir) / "checkpoints"), keep_(keep) {}

fs::path Checkpointer::save(const CheckpointPayload& p, const std::string& save_dtype, uint64_t shard_bytes) {
  fs::create_directories(dir_);
  fs::path final_dir = dir_ / checkpoint_name(p.step);
  fs::path tmp = dir_ / fmt::format(".tmp-{}-{}", checkpoint_name(p.step), ::getpid());
  remove_tree(tmp);
  fs::create_directories(tmp);
  auto dtype = model::dtype_from_name(save_dtype);
  io::NamedTensors weights;
  for (auto& [n, t] : p.model) {
    auto c = t.detach().to(torch::kCPU);
    if (c.is_floating_point()) c = c.to(dtype);
    weights.emplace_back(n, c.contiguous());
  }
  io::save_checkpoint_tensors(tmp, weights, shard_bytes);
  io::NamedTensors opt;
  for (auto& [n, t] : p.optimizer) opt.emplace_back(n, t.detach().to(torch::kCPU).contiguous());
  io::save_safetensors(tmp / "optimizer.safetensors", opt);
  json cfg = p.config;
  if (cfg.is_object()) cfg["dtype"] = save_dtype;
  io::write_text_atomic(tmp / "config.json", cfg.dump(2) + "\n");
  if (!p.tokenizer.empty() && fs::exists(p.tokenizer))
    io::write_text_atomic(tmp / "tokenizer.json", io::read_text_file(p.tokenizer));
  json state = p.state;
  state["step"] = p.step;
  json files = json::object();
  for (auto& e : fs::directory_iterator(tmp)) {
    if (!e.is_regular_file()) continue;
    files[e.path().filename().string()] = {{"bytes", (int64_t)e.file_size()},
                                           {"sha256", data::sha256_file(e.path())}};
  }
  state["files"] = files;
  io::write_text_atomic(tmp / "trainer_state.json", state.dump(2) + "\n");
  remove_tree(final_dir);
  fs::rename(tmp, final_dir);
  io::write_text_atomic(dir_ / "latest", checkpoint_name(p.step) + "\n");
  auto all = list();
  for (size_t i = keep_; i < all.size(); ++i) remove_tree(all[i]);
  return final_dir;
}

std::vector<fs::path> Checkpointer::list() const {
  std::vector<fs::path> out;
  if (!fs::exists(dir_)) return out;
  for (auto& e : fs::directory_iterator(dir_)) {
    auto n = e.path().filename().string();
    if (e.is_directory() && n.rfind("step-", 0) == 0) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end(), std::greater<>());
  return out;
}

json Checkpointer::read_state(const fs::path& ckpt) {
  auto f = ckpt / "trainer_state.json";
  try {
    return json::parse(io::read_text_file(f));
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", f.string(), e.what());
  }
}

std::string Checkpointer::verify(const fs::path& ckpt) {
  json state;
  try {
    state = read_state(ckpt);
  } catch (const Error& e) {
    return e.what();
  }
  if (!state.contains("files") || !state["files"].is_object()) return "trainer_state.json lists no files";
  for (auto& [name, info] : state["files"].items()) {
    auto f = ckpt / name;
    if (!fs::exists(f)) return fmt::format("{} is missing", f.string());
    if ((int64_t)fs::file_size(f) != info.value("bytes", (int64_t)-1))
      return fmt::format("{} has {} bytes, expected {} (partial write?)", f.string(), fs::file_size(f),
                         info.value("bytes", (int64_t)-1));
    if (data::sha256_file(f) != info.value("sha256", std::string()))
      return fmt::format("{}: sha256 does not match trainer_state.json (corrupt)", f.string());
  }
  return "";
}

std::optional<fs::path> Checkpointer::latest_valid() const {
  for (auto& c : list()) {
    auto why = verify(c);
    if (why.empty()) return c;
    log::warn("checkpoint {} refused: {}; trying the previous one", c.string(), why);
  }
  return std::nullopt;
}

}  // namespace hyla::train
