#include "hyla/serve/chat_template.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "hyla/util/error.h"

namespace hyla::serve {

ChatTemplate ChatTemplate::for_model(const std::filesystem::path& dir) {
  auto path = dir / "tokenizer_config.json";
  std::ifstream in(path);
  if (!in.good()) return ChatTemplate(Style::plain);
  auto j = nlohmann::json::parse(in, nullptr, false);
  HYLA_CHECK(!j.is_discarded(), "{}: not valid JSON", path.string());
  std::string t;
  if (j.contains("chat_template") && j["chat_template"].is_string()) t = j["chat_template"].get<std::string>();
  if (t.find("<|im_start|>") != std::string::npos) return ChatTemplate(Style::chatml);
  if (t.find("<|start_header_id|>") != std::string::npos) return ChatTemplate(Style::llama3);
  return ChatTemplate(Style::plain);
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages) const {
  std::string out;
  for (auto& m : messages) {
    switch (style_) {
      case Style::chatml: out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n"; break;
      case Style::llama3:
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
        break;
      case Style::plain: out += m.role + ": " + m.content + "\n"; break;
    }
  }
  switch (style_) {
    case Style::chatml: return out + "<|im_start|>assistant\n";
    case Style::llama3: return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
    default: return out + "assistant:";
  }
}

std::string ChatTemplate::end_of_turn() const {
  switch (style_) {
    case Style::chatml: return "<|im_end|>";
    case Style::llama3: return "<|eot_id|>";
    default: return "\nuser:";
  }
}

const char* ChatTemplate::name() const {
  switch (style_) {
    case Style::chatml: return "chatml";
    case Style::llama3: return "llama3";
    default: return "plain";
  }
}

}  // namespace hyla::serve
