#include "hyla/data/prepare.h"

#include <algorithm>
#include <regex>
#include <thread>

#include "hyla/data/random.h"
#include "hyla/data/sha256.h"
#include "hyla/io/tokenizer.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"
#include "hyla/util/progress.h"

namespace hyla::data {
namespace fs = std::filesystem;

bool is_validation(std::string_view text, uint64_t seed, double val_fraction) {
  uint64_t h = mix64(fnv1a64(text) ^ mix64(seed));
  return static_cast<double>(h >> 11) * 0x1.0p-53 < val_fraction;
}

namespace {

// A previous run's outputs, so a re-run into the same directory leaves no stale shard.
void remove_previous_outputs(const fs::path& dir) {
  static const std::regex shard_name(R"((train|val)-\d{5}\.tokens)");
  fs::remove(dir / "manifest.json");
  for (auto& e : fs::directory_iterator(dir))
    if (std::regex_match(e.path().filename().string(), shard_name)) fs::remove(e.path());
}

// Encodes a batch of documents on `threads` threads (Tokenizer::encode is const and
// shares no mutable state), keeping document order.
std::vector<std::vector<int32_t>> encode_batch(const io::Tokenizer& tok,
                                               const std::vector<Document>& docs, int threads) {
  std::vector<std::vector<int32_t>> out(docs.size());
  auto work = [&](size_t first) {
    for (size_t i = first; i < docs.size(); i += threads) out[i] = tok.encode(docs[i].text);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  return out;
}

struct Sink {
  ShardWriter train, val;
  int32_t eos;
  std::optional<int32_t> bos;
};

}  // namespace

Manifest prepare_corpus(const PrepareOptions& opt, const io::Tokenizer& tok) {
  HYLA_CHECK(opt.val_fraction >= 0 && opt.val_fraction < 1,
             "--val-fraction {} must be in [0, 1)", opt.val_fraction);
  std::vector<SourceFile> sources = discover_sources(opt.inputs);
  Manifest m;
  m.vocab_size = tok.vocab_size();
  m.dtype = dtype_for_vocab(m.vocab_size);
  m.eos_id = opt.eos_id >= 0 ? opt.eos_id : tok.eos_id().value_or(-1);
  HYLA_CHECK(m.eos_id >= 0, "tokenizer {} defines no EOS token; name one with --eos-token",
             opt.tokenizer_path.string());
  HYLA_CHECK(m.eos_id < m.vocab_size, "EOS id {} is outside the vocabulary ({})", m.eos_id,
             m.vocab_size);
  HYLA_CHECK(!opt.add_bos || tok.bos_id(), "--bos: the tokenizer defines no BOS token");
  m.tokenizer_path = opt.tokenizer_path.string();
  m.tokenizer_sha256 = opt.tokenizer_path.empty() ? "" : sha256_file(opt.tokenizer_path);
  m.seed = opt.seed;
  m.val_fraction = opt.val_fraction;

  fs::create_directories(opt.out_dir);
  remove_previous_outputs(opt.out_dir);
  Sink sink{ShardWriter(opt.out_dir, "train", m.dtype, opt.shard_tokens),
            ShardWriter(opt.out_dir, "val", m.dtype, opt.shard_tokens), m.eos_id,
            opt.add_bos ? tok.bos_id() : std::nullopt};
  const int threads = opt.threads > 0 ? opt.threads
                                      : std::clamp<int>(std::thread::hardware_concurrency(), 1, 8);
  int64_t total_bytes = 0;
  for (auto& s : sources) total_bytes += static_cast<int64_t>(fs::file_size(s.path));
  ProgressBar bar("prepare", total_bytes, "B");
  bar.set_enabled(opt.progress);
  int64_t done_bytes = 0, all_tokens = 0;

  for (const auto& src : sources) {
    SourceInfo info{src.path.string(), src.path.filename().string(),
                    std::string(format_name(src.format)), sha256_file(src.path),
                    {{"train", 0}, {"val", 0}}, {{"train", 0}, {"val", 0}}};
    const int64_t file_bytes = static_cast<int64_t>(fs::file_size(src.path));
    int64_t text_bytes = 0, batch_bytes = 0;
    std::vector<Document> batch;
    auto flush = [&] {
      auto encoded = encode_batch(tok, batch, threads);
      for (size_t i = 0; i < batch.size(); ++i) {
        std::vector<int32_t>& ids = encoded[i];
        if (sink.bos) ids.insert(ids.begin(), *sink.bos);
        bool val = is_validation(batch[i].text, opt.seed, opt.val_fraction);
        (val ? sink.val : sink.train).add_document(ids, sink.eos);
        const char* split = val ? "val" : "train";
        info.documents[split] += 1;
        info.tokens[split] += static_cast<int64_t>(ids.size()) + 1;
        all_tokens += static_cast<int64_t>(ids.size()) + 1;
      }
      batch.clear();
      batch_bytes = 0;
      bar.update(done_bytes + std::min(text_bytes, file_bytes),
                 fmt::format("{} tokens", human_count(static_cast<double>(all_tokens))));
    };
    read_documents(src, [&](Document&& d) {
      text_bytes += static_cast<int64_t>(d.text.size());
      batch_bytes += static_cast<int64_t>(d.text.size());
      batch.push_back(std::move(d));
      if (batch_bytes >= (int64_t(4) << 20) || batch.size() >= 4096) flush();
    }, opt.read);
    flush();
    done_bytes += file_bytes;
    log::debug("{}: {} train / {} val documents", info.name, info.documents["train"],
               info.documents["val"]);
    m.sources.push_back(std::move(info));
  }
  m.splits["train"] = sink.train.finish();
  m.splits["val"] = sink.val.finish();
  bar.finish(fmt::format("{} tokens", human_count(static_cast<double>(all_tokens))));
  m.save(opt.out_dir);  // last: a directory with a manifest is complete
  return m;
}

}  // namespace hyla::data
