#include "hyla/model/replacement_chain.h"

#include <algorithm>
#include <map>
#include <regex>

#include "hyla/io/safetensors.h"
#include "hyla/util/error.h"

namespace hyla::model {
namespace fs = std::filesystem;

namespace {

struct Link {
  int64_t k = 0, layer = 0;
  fs::path dir;
};

std::vector<Link> find_links(const fs::path& dir) {
  HYLA_CHECK(fs::is_directory(dir), "--adaptive {}: not a directory", dir.string());
  static const std::regex name(R"(link-(\d+)-layer-(\d+))");
  std::vector<Link> links;
  for (auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    auto n = e.path().filename().string();
    if (e.is_directory() && std::regex_match(n, m, name)) links.push_back({std::stoll(m[1]), std::stoll(m[2]), e.path()});
  }
  std::sort(links.begin(), links.end(), [](auto& a, auto& b) { return a.k < b.k; });
  HYLA_CHECK(!links.empty(), "--adaptive {}: no link-KK-layer-LL directories (a chained distillation stage's output)",
             dir.string());
  for (size_t i = 0; i < links.size(); ++i)
    HYLA_CHECK(links[i].k == static_cast<int64_t>(i) + 1, "--adaptive {}: links must be numbered 01, 02, ... (found {} at {})",
               dir.string(), links[i].dir.filename().string(), i + 1);
  return links;
}

// Layer `l`'s replacement mixer from link `link`'s file, on the teacher's device and dtype.
Mixer load_mixer(const ModelConfig& cfg, int64_t l, const io::SafetensorsFile& file, CausalLM& teacher) {
  auto m = build_mixer(cfg, l);
  torch::NoGradGuard ng;
  auto prefix = "model.layers." + std::to_string(l) + ".linear_attn.";
  for (auto& p : m->named_parameters(true)) {
    auto name = prefix + p.key();
    HYLA_CHECK(file.has(name), "{}: missing tensor {}", file.path().string(), name);
    auto t = file.load(name);
    HYLA_CHECK(t.sizes() == p.value().sizes(), "{}: tensor {} has shape {}, the mixer needs {}", file.path().string(),
               name, t.sizes(), p.value().sizes());
    p.value().copy_(t);
  }
  auto w = teacher->embed_tokens->weight;
  m->to(w.device(), w.scalar_type());
  m->eval();
  return m;
}

bool same_parameters(const Mixer& a, const Mixer& b) {
  auto pa = a->named_parameters(true), pb = b->named_parameters(true);
  for (auto& p : pa)
    if (!torch::equal(p.value(), pb[p.key()])) return false;
  return true;
}

}  // namespace

ReplacementChain load_replacement_chain(const fs::path& dir, CausalLM& teacher) {
  const auto& tc = teacher->config();
  ReplacementChain chain;
  std::vector<Mixer> current;
  for (int64_t l = 0; l < teacher->num_layers(); ++l) current.push_back(teacher->layer(l)->mixer());
  for (auto& link : find_links(dir)) {
    auto label = link.dir.string();
    auto cfg = ModelConfig::load(link.dir);
    HYLA_CHECK(cfg.num_hidden_layers == tc.num_hidden_layers && cfg.hidden_size == tc.hidden_size,
               "{}: a student of another model ({} layers of width {}; the teacher has {} of {})", label,
               cfg.num_hidden_layers, cfg.hidden_size, tc.num_hidden_layers, tc.hidden_size);
    HYLA_CHECK(link.layer >= 0 && link.layer < tc.num_hidden_layers && tc.is_attention_layer(link.layer),
               "{}: layer {} is not an attention layer of the teacher", label, link.layer);
    HYLA_CHECK(std::find(chain.order.begin(), chain.order.end(), link.layer) == chain.order.end(),
               "{}: layer {} is converted twice in the chain", label, link.layer);
    chain.order.push_back(link.layer);
    auto file = io::SafetensorsFile::open(link.dir / "replacement.safetensors");
    auto meta = file->metadata();
    HYLA_CHECK(meta.count("layers") && nlohmann::json::parse(meta.at("layers")).get<std::vector<int64_t>>() == chain.order,
               "{}: metadata \"layers\" must list the chain so far, {}", file->path().string(),
               nlohmann::json(chain.order).dump());
    auto next = current;
    for (int64_t l : chain.order) {
      HYLA_CHECK(!cfg.is_attention_layer(l), "{}: config.json has layer {} as attention, but the chain converts it",
                 label, l);
      auto m = load_mixer(cfg, l, *file, teacher);
      next[l] = current[l]->kind() == m->kind() && same_parameters(current[l], m) ? current[l] : m;
    }
    chain.levels.push_back(next);
    current = std::move(next);
  }
  return chain;
}

}  // namespace hyla::model
