#include "hyla/distill/student_spec.h"

#include <filesystem>
#include <set>

#include "hyla/util/error.h"

namespace hyla::distill {
using nlohmann::json;

namespace {

// Until distill/convert.h's ConvertOptions::from_json owns this schema: `hyla hybrid`'s
// layer choice (mixer, attention_every | attention_layers | layer_types, linear_config,
// hype), new mixers at their default init.
model::HybridOptions hybrid_options(const json& t, const model::ModelConfig& teacher, const std::string& label) {
  static const std::set<std::string> known = {"mixer", "attention_every", "attention_layers", "layer_types",
                                              "linear_config", "hype", "hype_logn_base"};
  for (auto& [k, _] : t.items())
    HYLA_CHECK(known.count(k), "{}: unknown key \"{}\" (have: path, or mixer, attention_every, attention_layers, "
               "layer_types, linear_config, hype, hype_logn_base)", label, k);
  int given = t.contains("attention_every") + t.contains("attention_layers") + t.contains("layer_types");
  HYLA_CHECK(given <= 1, "{}: give one of attention_every, attention_layers and layer_types (they contradict)", label);
  model::HybridOptions o;
  try {
    std::string mixer = t.value("mixer", std::string("gdn"));
    int64_t n = teacher.num_hidden_layers;
    if (t.contains("layer_types")) {
      HYLA_CHECK(!t.contains("mixer"), "{}: mixer and layer_types contradict (layer_types names every layer)", label);
      o.layer_types = t["layer_types"].get<std::vector<std::string>>();
    } else if (t.contains("attention_layers")) {
      auto keep = t["attention_layers"].get<std::vector<int64_t>>();
      for (auto l : keep)
        HYLA_CHECK(l >= 0 && l < n, "{}: attention_layers: layer {} does not exist (the teacher has {})", label, l, n);
      o.layer_types = model::layer_types_keeping(n, keep, mixer);
    } else {
      int64_t every = t.value("attention_every", int64_t(4));
      HYLA_CHECK(every >= 0, "{}: attention_every must be >= 0", label);
      o.layer_types = model::interleave_layer_types(n, every, mixer);
    }
    if (t.contains("linear_config")) o.linear_config = t["linear_config"];
    o.hype = t.value("hype", false);
    o.hype_logn_base = t.value("hype_logn_base", 500.0);
  } catch (const json::exception& e) {
    fail("{}: a key has the wrong type: {}", label, e.what());
  }
  return o;
}

}  // namespace

StudentSpec parse_student(const json& t, const model::ModelConfig& teacher, const std::string& label) {
  StudentSpec s;
  s.table = t;
  if (t.contains("path")) {
    HYLA_CHECK(t["path"].is_string(), "{}: path must be a string", label);
    HYLA_CHECK(t.size() == 1, "{}: path (a ready student) contradicts the conversion keys beside it ({})", label,
               t.dump());
    s.path = t["path"].get<std::string>();
    HYLA_CHECK(std::filesystem::exists(std::filesystem::path(s.path) / "config.json"),
               "{}: path: {} is not a model directory (no config.json)", label, s.path);
    s.config = model::ModelConfig::load(s.path);
    HYLA_CHECK(s.config.num_hidden_layers == teacher.num_hidden_layers && s.config.hidden_size == teacher.hidden_size &&
                   s.config.vocab_size == teacher.vocab_size,
               "{}: path: the student {} does not have the teacher's shape (layers, hidden size, vocabulary)", label,
               s.path);
    return s;
  }
  s.config = model::hybrid_config(teacher, hybrid_options(t, teacher, label));
  return s;
}

model::CausalLM build_student(const StudentSpec& spec, model::CausalLM& teacher, const torch::Tensor& calib,
                              uint64_t seed) {
  (void)calib;
  if (!spec.path.empty()) return model::load_causal_lm(spec.path, torch::kCPU, torch::kFloat32);
  torch::manual_seed(seed);
  return model::hybrid_from_teacher(teacher, spec.config);
}

}  // namespace hyla::distill
