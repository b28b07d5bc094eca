// Calibration tokens for Taylor-Calibrate (methods.md §3.3): the first sequences × seq_len
// tokens of a TRAINING text file, tokenised with the teacher's tokenizer, as [B, T] int64.
// pipeline.md: the reference calibrated on the text it evaluated on; hyla refuses a file
// named as the teacher's held-out validation text.
#pragma once
#include <torch/torch.h>

#include <filesystem>

#include "hyla/io/tokenizer.h"

namespace hyla::distill {

// Errors name the file when it is missing or too short. `teacher_dir` (may be empty):
// refuses <teacher_dir>/validation.txt.
torch::Tensor calibration_tokens(const io::Tokenizer& tok, const std::filesystem::path& text_file, int64_t sequences,
                                 int64_t seq_len, const std::filesystem::path& teacher_dir = {});

}  // namespace hyla::distill
