#include "hyla/serve/text_stream.h"

#include <algorithm>

namespace hyla::serve {

TextStream::TextStream(std::shared_ptr<const io::Tokenizer> tok, std::vector<std::string> stops)
    : tok_(std::move(tok)), stops_(std::move(stops)) {}

std::string TextStream::release(const std::string& full, bool at_end) {
  size_t end = full.size();
  // A stop string anywhere in the unreleased part (it may straddle the released end).
  size_t search_from = text_.size() > 64 ? text_.size() - 64 : 0;
  size_t first = std::string::npos;
  for (auto& s : stops_) {
    size_t at = full.find(s, std::min(search_from, full.size()));
    if (at != std::string::npos && at >= text_.size()) first = std::min(first, at);
  }
  if (first != std::string::npos) {
    stopped_ = true;
    end = first;
  } else if (!at_end) {
    if (full.size() >= 3 && full.compare(full.size() - 3, 3, "\xEF\xBF\xBD") == 0) end = full.size() - 3;
    // Hold back a tail that could be the start of a stop string.
    for (auto& s : stops_)
      for (size_t k = std::min(s.size() - 1, end); k > 0; --k)
        if (full.compare(end - k, k, s, 0, k) == 0) {
          end = std::min(end, full.size() - k);
          break;
        }
  }
  if (end <= text_.size()) return "";
  std::string fresh = full.substr(text_.size(), end - text_.size());
  text_ += fresh;
  return fresh;
}

std::string TextStream::push(int64_t id) {
  if (stopped_) return "";
  ids_.push_back(static_cast<int32_t>(id));
  return release(tok_->decode(ids_, /*skip_special=*/true), false);
}

std::string TextStream::finish() {
  if (stopped_) return "";
  return release(tok_->decode(ids_, true), true);
}

}  // namespace hyla::serve
