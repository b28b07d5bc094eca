#include "hyla/distill/calib_text.h"

#include <fstream>
#include <iterator>

#include "hyla/util/error.h"

namespace hyla::distill {
namespace fs = std::filesystem;

torch::Tensor calibration_tokens(const io::Tokenizer& tok, const fs::path& text_file, int64_t sequences,
                                 int64_t seq_len, const fs::path& teacher_dir) {
  HYLA_CHECK(fs::is_regular_file(text_file), "{}: no such calibration text file", text_file.string());
  if (!teacher_dir.empty()) {
    auto held_out = teacher_dir / "validation.txt";
    std::error_code ec;
    HYLA_CHECK(!(fs::exists(held_out) && fs::equivalent(held_out, text_file, ec)),
               "{}: is the teacher's held-out validation text; calibrate on training text", text_file.string());
  }
  int64_t need = sequences * seq_len;
  std::ifstream in(text_file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Tokenise a growing prefix (cut at a line end) instead of a whole large corpus.
  size_t take = std::min<size_t>(text.size(), size_t(need) * 8 + 1024);
  std::vector<int32_t> ids;
  while (true) {
    size_t cut = take >= text.size() ? text.size() : text.rfind('\n', take);
    if (cut == std::string::npos || cut == 0) cut = take;
    ids = tok.encode(std::string_view(text).substr(0, cut));
    if (int64_t(ids.size()) >= need || take >= text.size()) break;
    take = std::min(text.size(), take * 2);
  }
  HYLA_CHECK(int64_t(ids.size()) >= need, "{}: has {} tokens; calibration needs {} sequences × {} = {}",
             text_file.string(), ids.size(), sequences, seq_len, need);
  auto t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + need), torch::kInt64);
  return t.view({sequences, seq_len});
}

}  // namespace hyla::distill
