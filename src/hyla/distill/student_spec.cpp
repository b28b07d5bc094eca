#include "hyla/distill/student_spec.h"

#include <filesystem>
#include <set>

#include "hyla/distill/selection_file.h"
#include "hyla/util/error.h"

namespace hyla::distill {
using nlohmann::json;

namespace {

// "R.toml [student]" -> "R.toml": ConvertOptions::from_json names the table itself.
std::string file_label(const std::string& label) {
  const std::string suffix = " [student]";
  return label.size() > suffix.size() && label.compare(label.size() - suffix.size(), suffix.size(), suffix) == 0
             ? label.substr(0, label.size() - suffix.size())
             : label;
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
  // The conversion's own schema (convert.h): layer choice, mixer, init, Taylor-Calibrate.
  auto opt = ConvertOptions::from_json(t, teacher, file_label(label));
  resolve_selection(opt, t, teacher, label);
  s.config = student_config(teacher, opt);
  if (opt.needs_calibration()) {
    s.calib_sequences = opt.taylor.calib_sequences;
    s.calib_seq_len = opt.taylor.calib_seq_len;
  }
  return s;
}

model::CausalLM build_student(const StudentSpec& spec, model::CausalLM& teacher, const torch::Tensor& calib,
                              uint64_t seed) {
  if (!spec.path.empty()) return model::load_causal_lm(spec.path, torch::kCPU, torch::kFloat32);
  const auto& tc = teacher->config();
  auto opt = ConvertOptions::from_json(spec.table, tc, "recipe");
  resolve_selection(opt, spec.table, tc, "[student]");
  // The recipe's seed drives the new parameters unless [student] sets its own.
  if (!spec.table.contains("seed")) opt.seed = seed;
  torch::manual_seed(opt.seed);
  return convert_teacher(teacher, opt, opt.needs_calibration() ? calib : torch::Tensor());
}

void resolve_selection(ConvertOptions& opt, const json& table, const model::ModelConfig& teacher,
                       const std::string& label) {
  if (opt.selection.empty()) return;
  // Every refusal below names the recipe table (label), as the key checks do.
  try {
    auto sel = load_selection(opt.selection, teacher);
    int64_t L = teacher.num_hidden_layers;
    std::vector<int64_t> keep = sel.attention_layers;
    if (table.contains("attention_share")) {
      HYLA_CHECK(table["attention_share"].is_number(), "attention_share must be a number");
      keep = top_layers(sel, keep_count(table["attention_share"].get<double>(), L, "attention_share"));
    }
    // from_json set every layer to the chosen mixer while the selection was unresolved.
    std::string mixer = opt.hybrid.layer_types.at(0);
    opt.hybrid.layer_types = model::layer_types_keeping(L, keep, mixer);
    opt.selection.clear();
    opt.validate(teacher);  // now also refuses a selection that leaves no layer to convert
  } catch (const Error& e) {
    fail("{}: selection: {}", label, e.what());
  }
}

}  // namespace hyla::distill
