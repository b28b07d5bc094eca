// `hyla data prepare`: documents from text sources → token shards + manifest.
// Each document is encoded, followed by EOS, and goes wholly to "train" or "val" by a
// hash of its text and the seed (so a moved or renamed file keeps its split, and a
// document duplicated across sources never leaks from train into val).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "hyla/data/text_sources.h"
#include "hyla/data/token_shards.h"

namespace hyla::io {
class Tokenizer;
}

namespace hyla::data {

struct PrepareOptions {
  std::vector<std::filesystem::path> inputs;
  std::filesystem::path out_dir;
  std::filesystem::path tokenizer_path;  // recorded (and hashed) in the manifest
  double val_fraction = 0.01;
  uint64_t seed = 0;
  int64_t shard_tokens = int64_t(1) << 27;  // 128M tokens a shard
  int32_t eos_id = -1;                      // -1: the tokenizer's EOS
  bool add_bos = false;                     // prepend the tokenizer's BOS to documents
  int threads = 0;                          // encoders; 0: hardware concurrency (max 8)
  bool progress = true;
  ReadOptions read;
};

// true when a document with this text belongs to the validation split.
bool is_validation(std::string_view text, uint64_t seed, double val_fraction);

Manifest prepare_corpus(const PrepareOptions& opt, const io::Tokenizer& tok);

}  // namespace hyla::data
