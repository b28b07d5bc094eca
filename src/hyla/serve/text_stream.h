// Generated token ids -> text as it becomes final, with OpenAI's stop strings: text is
// released only when no stop string could still begin in it, and a stop string found
// ends the text just before it. Byte-level tokens can split a UTF-8 character; text
// ending in an unfinished character (decoded as U+FFFD) is held back.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "hyla/io/tokenizer.h"

namespace hyla::serve {

class TextStream {
 public:
  TextStream(std::shared_ptr<const io::Tokenizer> tok, std::vector<std::string> stops);
  // Adds a token; returns the text that became final.
  std::string push(int64_t id);
  // At the end (no more tokens): the rest of the held-back text.
  std::string finish();
  bool stopped() const { return stopped_; }
  const std::string& text() const { return text_; }  // all text released so far

 private:
  std::string release(const std::string& full, bool at_end);
  std::shared_ptr<const io::Tokenizer> tok_;
  std::vector<std::string> stops_;
  std::vector<int32_t> ids_;
  std::string text_;
  bool stopped_ = false;
};

}  // namespace hyla::serve
