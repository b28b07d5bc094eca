// `hyla distill R.toml` end to end: check everything, convert the teacher into the
// student, run the recipe's stages in order, write out_dir/final.
//
//   out_dir/data/            the raw text tokenised with the teacher's tokenizer ([data] text)
//   out_dir/convert/         the converted student before any training (HF checkpoint)
//   out_dir/<stage>/         each stage: metrics.jsonl, checkpoints/, and when done the
//                            student (HF checkpoint) and stage.json
//   out_dir/teacher-cache/   top-k teacher logits of KL stages with top_k > 0
//   out_dir/final/           the last stage's student (run.save_dtype), distill.json
//
// A rerun of the same recipe skips finished stages and resumes the interrupted one from
// its newest checkpoint, so a run killed at any moment continues exactly.
#pragma once
#include <filesystem>
#include <memory>

#include "hyla/data/token_shards.h"
#include "hyla/distill/distill_recipe.h"
#include "hyla/distill/stage_runner.h"
#include "hyla/model/decoder.h"
#include "hyla/train/parallel.h"

namespace hyla::distill {

// The teacher's config, refusing anything that is not a plain Transformer checkpoint.
model::ModelConfig check_teacher(const std::string& path, const std::string& label);

class DistillRun {
 public:
  DistillRun(DistillRecipe recipe, std::shared_ptr<train::DataParallel> dp);
  // Everything that can be checked before training: teacher, student table, data,
  // sequence lengths against the data, chained orders. Writes nothing except, for raw
  // text, the tokenised data (atomically: a complete directory or none).
  void prepare();
  // Runs (or resumes) every stage; returns the results of the stages this call ran.
  std::vector<StageResult> run();
  std::filesystem::path final_dir() const { return out_ / "final"; }
  std::filesystem::path stage_dir(const StageConfig& st) const { return out_ / st.name; }
  const DistillRecipe& recipe() const { return r_; }

 private:
  model::CausalLM make_student();
  void open_data();
  void check_lengths() const;
  void resolve_chain_orders(const model::ModelConfig& student);
  void check_chained(const model::ModelConfig& student) const;

  DistillRecipe r_;
  std::shared_ptr<train::DataParallel> dp_;
  std::filesystem::path out_;
  model::ModelConfig teacher_config_;
  std::shared_ptr<const data::TokenDataset> data_;
  std::filesystem::path tokenizer_;
};

}  // namespace hyla::distill
