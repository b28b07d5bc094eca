// Chat messages -> prompt text. A checkpoint's tokenizer_config.json "chat_template" is
// Jinja; hyla does not run Jinja, but recognises the two families it serves and writes
// their format itself: ChatML (Qwen: <|im_start|>role\n...<|im_end|>) and Llama 3
// (<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>). Anything else, or no
// template, gets the documented default (docs/serve.md):
//   "<role>: <content>\n" per message, then "assistant:".
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "hyla/serve/openai_api.h"

namespace hyla::serve {

class ChatTemplate {
 public:
  enum class Style { plain, chatml, llama3 };
  // Reads <model_dir>/tokenizer_config.json when present.
  static ChatTemplate for_model(const std::filesystem::path& model_dir);
  explicit ChatTemplate(Style s) : style_(s) {}
  std::string render(const std::vector<ChatMessage>& messages) const;
  // Text that ends an assistant turn in this style (a stop string), or "".
  std::string end_of_turn() const;
  Style style() const { return style_; }
  const char* name() const;

 private:
  Style style_;
};

}  // namespace hyla::serve
