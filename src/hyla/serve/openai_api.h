// OpenAI's request and error shapes, as JSON, and nothing else: parsing and checking a
// /v1/completions or /v1/chat/completions body into what the engine needs. Bad fields
// raise ApiError (HTTP status + OpenAI's {"error": {...}} body) naming the field.
#pragma once
#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "hyla/serve/request.h"

namespace hyla::serve {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = "", std::string type = "invalid_request_error")
      : std::runtime_error(message), status(status), param(std::move(param)), type(std::move(type)) {}
  nlohmann::json body() const;
  int status;
  std::string param, type;
};

struct PromptInput {
  std::string text;
  std::vector<int64_t> ids;  // set when the client sent token ids
  bool is_ids = false;
};

struct ChatMessage {
  std::string role, content;
};

struct CompletionRequest {
  bool chat = false;
  std::string model;
  std::vector<PromptInput> prompts;   // /v1/completions (a list gives one choice each)
  std::vector<ChatMessage> messages;  // /v1/chat/completions
  SamplingOptions sampling;
  std::vector<std::string> stop;
  bool stream = false, echo = false, ignore_eos = false, include_usage = false;
};

// `body`: the raw request body. `default_max_tokens` applies when the field is absent.
CompletionRequest parse_completion_request(const std::string& body, bool chat, int64_t default_max_tokens);

}  // namespace hyla::serve
