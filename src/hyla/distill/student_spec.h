// The recipe's [student] table: either `path` = a student checkpoint made beforehand
// (`hyla hybrid`, `hyla convert`), or the conversion of the teacher (layer choice,
// mixer, its settings), which distill/convert.h defines.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "hyla/model/config.h"
#include "hyla/model/decoder.h"
#include "hyla/distill/convert.h"
#include "hyla/model/hybrid.h"

namespace hyla::distill {

struct StudentSpec {
  std::string path;           // a ready student checkpoint, or empty
  nlohmann::json table;       // the [student] table as written (conversion settings)
  model::ModelConfig config;  // the student's shape (checked before anything trains)
  // Calibration batch the conversion needs (Taylor-Calibrate), cut from the training
  // data: sequences × seq_len tokens; 0 sequences = none.
  int64_t calib_sequences = 0, calib_seq_len = 0;
};

StudentSpec parse_student(const nlohmann::json& table, const model::ModelConfig& teacher, const std::string& label);

// A [student] table that names `selection` (a `hyla select` JSON): the selection's
// attention layers (or its top K for `attention_share`) become the layer choice. Refuses
// a selection made for another teacher (selection_file.h).
void resolve_selection(ConvertOptions& opt, const nlohmann::json& table, const model::ModelConfig& teacher,
                       const std::string& label);

// The student on the CPU in float32: loaded from `path`, or converted from `teacher`;
// `calib` are training-text token ids for conversions that calibrate on the teacher.
model::CausalLM build_student(const StudentSpec& spec, model::CausalLM& teacher, const torch::Tensor& calib,
                              uint64_t seed);

}  // namespace hyla::distill
