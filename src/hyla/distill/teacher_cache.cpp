#include "hyla/distill/teacher_cache.h"

#include "hyla/io/atomic_file.h"
#include "hyla/io/safetensors.h"
#include "hyla/util/error.h"

namespace hyla::distill {
namespace fs = std::filesystem;

TeacherCache::TeacherCache(fs::path dir, nlohmann::json key) : dir_(std::move(dir)) {
  fs::create_directories(dir_);
  auto key_file = dir_ / "key.json";
  if (fs::exists(key_file)) {
    nlohmann::json old;
    try {
      old = nlohmann::json::parse(io::read_text_file(key_file));
    } catch (const nlohmann::json::exception&) {
      fail("{}: not a teacher cache key (invalid JSON)", key_file.string());
    }
    HYLA_CHECK(old == key, "teacher cache {} was made for another setting ({}); this stage needs {}: give the stage "
               "another teacher_cache or delete that directory", dir_.string(), old.dump(), key.dump());
    return;
  }
  io::write_text_atomic(key_file, key.dump(2) + "\n");
}

fs::path TeacherCache::entry(const data::DataPosition& pos, int rank) const {
  return dir_ / fmt::format("e{}-i{}-r{}.safetensors", pos.epoch, pos.index, rank);
}

std::optional<TopK> TeacherCache::get(const data::DataPosition& pos, int rank) const {
  auto f = entry(pos, rank);
  if (!fs::exists(f)) {
    ++misses_;
    return std::nullopt;
  }
  auto st = io::SafetensorsFile::open(f);
  ++hits_;
  return TopK{st->load("indices", true), st->load("log_probs", true)};
}

void TeacherCache::put(const data::DataPosition& pos, int rank, const TopK& t) const {
  io::save_safetensors(entry(pos, rank), {{"indices", t.indices.to(torch::kCPU, torch::kInt64).contiguous()},
                                          {"log_probs", t.log_probs.to(torch::kCPU, torch::kFloat32).contiguous()}});
}

}  // namespace hyla::distill
