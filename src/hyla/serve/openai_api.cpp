#include "hyla/serve/openai_api.h"

namespace hyla::serve {
using nlohmann::json;

json ApiError::body() const {
  return {{"error", {{"message", what()}, {"type", type}, {"param", param.empty() ? json(nullptr) : json(param)},
                     {"code", nullptr}}}};
}

namespace {

[[noreturn]] void bad(const std::string& field, const std::string& what) {
  throw ApiError(400, "'" + field + "' " + what, field);
}

int64_t get_int(const json& j, const char* field, int64_t dflt, int64_t lo, int64_t hi) {
  if (!j.contains(field) || j[field].is_null()) return dflt;
  const auto& v = j[field];
  if (!v.is_number_integer()) bad(field, "must be an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) bad(field, "is too large");
  int64_t x = v.get<int64_t>();
  if (x < lo) bad(field, "must be >= " + std::to_string(lo));
  if (x > hi) bad(field, "must be <= " + std::to_string(hi));
  return x;
}

double get_number(const json& j, const char* field, double dflt, double lo, double hi) {
  if (!j.contains(field) || j[field].is_null()) return dflt;
  if (!j[field].is_number()) bad(field, "must be a number");
  double x = j[field].get<double>();
  if (!(x >= lo && x <= hi)) bad(field, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return x;
}

bool get_bool(const json& j, const char* field, bool dflt) {
  if (!j.contains(field) || j[field].is_null()) return dflt;
  if (!j[field].is_boolean()) bad(field, "must be a boolean");
  return j[field].get<bool>();
}

std::vector<int64_t> token_ids(const json& a, const char* field) {
  std::vector<int64_t> ids;
  for (auto& x : a) {
    if (!x.is_number_integer()) bad(field, "must be a string, a list of strings, or a list of token ids");
    ids.push_back(x.get<int64_t>());
  }
  return ids;
}

std::vector<PromptInput> parse_prompts(const json& j) {
  if (!j.contains("prompt")) bad("prompt", "is required");
  const auto& p = j["prompt"];
  std::vector<PromptInput> out;
  if (p.is_string()) return {PromptInput{p.get<std::string>(), {}, false}};
  if (!p.is_array() || p.empty()) bad("prompt", "must be a non-empty string or list");
  if (p[0].is_number_integer()) return {PromptInput{"", token_ids(p, "prompt"), true}};
  for (auto& x : p) {
    if (x.is_string()) out.push_back({x.get<std::string>(), {}, false});
    else if (x.is_array()) out.push_back({"", token_ids(x, "prompt"), true});
    else bad("prompt", "must be a string, a list of strings, or a list of token ids");
  }
  return out;
}

std::vector<ChatMessage> parse_messages(const json& j) {
  if (!j.contains("messages")) bad("messages", "is required");
  const auto& m = j["messages"];
  if (!m.is_array() || m.empty()) bad("messages", "must be a non-empty list");
  std::vector<ChatMessage> out;
  for (auto& x : m) {
    if (!x.is_object() || !x.contains("role") || !x["role"].is_string()) bad("messages", "entries need a string 'role'");
    std::string content;
    if (x.contains("content") && x["content"].is_string()) {
      content = x["content"].get<std::string>();
    } else if (x.contains("content") && x["content"].is_array()) {  // [{"type": "text", "text": ...}]
      for (auto& part : x["content"])
        if (part.is_object() && part.value("type", "") == "text" && part.contains("text") && part["text"].is_string())
          content += part["text"].get<std::string>();
        else bad("messages", "content parts must be {\"type\": \"text\", \"text\": string}");
    } else if (!(x.contains("content") && x["content"].is_null())) {
      bad("messages", "entries need a string 'content'");
    }
    out.push_back({x["role"].get<std::string>(), content});
  }
  return out;
}

std::vector<std::string> parse_stop(const json& j) {
  if (!j.contains("stop") || j["stop"].is_null()) return {};
  const auto& s = j["stop"];
  if (s.is_string()) return {s.get<std::string>()};
  if (!s.is_array() || s.size() > 4) bad("stop", "must be a string or a list of at most 4 strings");
  std::vector<std::string> out;
  for (auto& x : s) {
    if (!x.is_string() || x.get<std::string>().empty()) bad("stop", "entries must be non-empty strings");
    out.push_back(x.get<std::string>());
  }
  return out;
}
}  // namespace

CompletionRequest parse_completion_request(const std::string& body, bool chat, int64_t default_max_tokens) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw ApiError(400, "the request body is not valid JSON");
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  CompletionRequest r;
  r.chat = chat;
  if (j.contains("model") && !j["model"].is_string() && !j["model"].is_null()) bad("model", "must be a string");
  r.model = j.value("model", json("")).is_string() ? j.value("model", std::string()) : "";
  if (chat) r.messages = parse_messages(j);
  else r.prompts = parse_prompts(j);
  if (get_int(j, "n", 1, 1, 1) != 1) bad("n", "must be 1");
  auto& sp = r.sampling;
  constexpr int64_t big = int64_t(1) << 40;
  int64_t max_tokens = get_int(j, "max_tokens", default_max_tokens, 0, big);
  if (chat) max_tokens = get_int(j, "max_completion_tokens", max_tokens, 0, big);
  sp.max_tokens = max_tokens;
  sp.temperature = get_number(j, "temperature", 1.0, 0.0, 2.0);
  sp.top_p = get_number(j, "top_p", 1.0, 0.0, 1.0);
  if (sp.top_p == 0.0) bad("top_p", "must be > 0");
  sp.top_k = get_int(j, "top_k", 0, -1, big);
  if (sp.top_k < 0) sp.top_k = 0;  // vLLM's -1 = off
  sp.seed = static_cast<uint64_t>(get_int(j, "seed", 0, std::numeric_limits<int64_t>::min(), big));
  if (chat) {
    if (get_bool(j, "logprobs", false)) sp.logprobs = get_int(j, "top_logprobs", 0, 0, 20);
  } else {
    sp.logprobs = get_int(j, "logprobs", -1, 0, 20);
    if (!j.contains("logprobs") || j["logprobs"].is_null()) sp.logprobs = -1;
    r.echo = get_bool(j, "echo", false);
    sp.prompt_logprobs = r.echo && sp.logprobs >= 0;
  }
  r.stop = parse_stop(j);
  r.stream = get_bool(j, "stream", false);
  r.ignore_eos = get_bool(j, "ignore_eos", false);
  if (j.contains("stream_options") && j["stream_options"].is_object())
    r.include_usage = get_bool(j["stream_options"], "include_usage", false);
  return r;
}

}  // namespace hyla::serve
