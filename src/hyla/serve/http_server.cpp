#include "hyla/serve/http_server.h"

#include <httplib.h>

#include <ctime>

#include "hyla/serve/openai_api.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::serve {
using nlohmann::json;

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

HttpServer::HttpServer(Engine& engine, std::shared_ptr<const io::Tokenizer> tok, ChatTemplate chat, HttpOptions opt)
    : engine_(engine), tok_(std::move(tok)), chat_(chat), opt_(std::move(opt)), svr_(std::make_unique<httplib::Server>()) {
  int threads = opt_.threads;
  svr_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  svr_->set_payload_max_length(size_t(32) << 20);
  svr_->set_keep_alive_timeout(5);  // an idle keep-alive connection delays shutdown by this much
  routes();
}

HttpServer::~HttpServer() = default;

int HttpServer::bind() {
  if (opt_.port == 0) {
    port_ = svr_->bind_to_any_port(opt_.host);
  } else {
    port_ = svr_->bind_to_port(opt_.host, opt_.port) ? opt_.port : -1;
  }
  HYLA_CHECK(port_ > 0, "cannot listen on {}:{} (address in use, or not an address of this machine)", opt_.host,
             opt_.port);
  return port_;
}

void HttpServer::serve() { svr_->listen_after_bind(); }

void HttpServer::shutdown() {
  engine_.close();
  log::info("draining: waiting up to {} s for {} request(s) in flight", opt_.drain_seconds, active_.load());
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(opt_.drain_seconds);
  engine_.wait_idle(opt_.drain_seconds);
  while (active_.load() > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  log::info("stopping the HTTP server ({} request(s) still in flight)", active_.load());
  svr_->stop();
}

bool HttpServer::authorized(const httplib::Request& req, httplib::Response& res) const {
  if (opt_.api_key.empty()) return true;
  if (req.get_header_value("Authorization") == "Bearer " + opt_.api_key) return true;
  send_json(res, 401, ApiError(401, "missing or wrong API key (send 'Authorization: Bearer <key>')", "",
                               "authentication_error").body());
  return false;
}

std::string HttpServer::metrics_text() const {
  auto s = engine_.stats();
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, double v) {
    out += fmt::format("# HELP hyla_{} {}\n# TYPE hyla_{} {}\nhyla_{} {}\n", name, help, name, type, name, v);
  };
  metric("queue_depth", "gauge", "Requests waiting for a state slot and KV blocks.", s.waiting);
  metric("running_sequences", "gauge", "Sequences being prefilled or decoded.", s.running);
  metric("tokens_per_second", "gauge", "Generated tokens per second over the last 10 s.", s.tokens_per_second);
  metric("generated_tokens_total", "counter", "Tokens generated.", s.generated_tokens);
  metric("prompt_tokens_total", "counter", "Prompt tokens admitted.", s.prompt_tokens);
  metric("kv_blocks_used", "gauge", "KV cache blocks reserved by running sequences.", s.kv_blocks_used);
  metric("kv_blocks_total", "gauge", "KV cache blocks in the budget.", s.kv_blocks_total);
  metric("state_slots_used", "gauge", "Linear-layer state slots in use.", s.slots_used);
  metric("state_slots_total", "gauge", "Linear-layer state slots.", s.slots_total);
  metric("prefix_cache_hit_rate", "gauge", "Prompt tokens restored from the prefix cache / prompt tokens.",
         s.prompt_tokens ? double(s.cached_tokens) / s.prompt_tokens : 0.0);
  metric("prefix_cache_hits_total", "counter", "Requests that restored a prefix.", s.prefix_hits);
  metric("prefix_cache_lookups_total", "counter", "Prefix-cache lookups.", s.prefix_lookups);
  metric("prefix_cache_cached_tokens_total", "counter", "Prompt tokens restored instead of computed.", s.cached_tokens);
  metric("prefix_cache_bytes", "gauge", "Bytes held by prefix-cache snapshots.", s.prefix_cache_bytes);
  metric("prefix_cache_evictions_total", "counter", "Prefix-cache entries evicted.", s.prefix_evictions);
  metric("hybrid_attention_ratio", "gauge", "Softmax-attention layers / all layers (of new requests' configuration).",
         s.layers ? double(s.attention_layers) / s.layers : 0.0);
  metric("adaptive_level", "gauge", "Layers replaced for new requests (adaptive serving).", s.level);
  metric("adaptive_switches_up_total", "counter", "Adaptive switches to one more replaced layer.", s.switches_up);
  metric("adaptive_switches_down_total", "counter", "Adaptive switches back to attention.", s.switches_down);
  metric("state_bytes", "gauge", "Bytes of the linear-state slot pools.", s.state_bytes);
  metric("decode_rows_total", "counter", "Decoding rows run (batched per step).", s.decode_rows);
  metric("decode_steps_total", "counter", "Engine steps that decoded.", s.decode_steps);
  metric("cuda_graph_captures_total", "counter", "Decode-step CUDA graphs captured.", s.graph_captures);
  metric("cuda_graph_replays_total", "counter", "Decode-step CUDA graph replays.", s.graph_replays);
  metric("requests_finished_total", "counter", "Requests the engine finished.", s.requests_finished);
  out += "# HELP hyla_http_responses_total HTTP responses by class.\n# TYPE hyla_http_responses_total counter\n";
  out += fmt::format("hyla_http_responses_total{{class=\"2xx\"}} {}\n", ok_.load());
  out += fmt::format("hyla_http_responses_total{{class=\"4xx\"}} {}\n", client_errors_.load());
  out += fmt::format("hyla_http_responses_total{{class=\"5xx\"}} {}\n", server_errors_.load());
  metric("client_disconnects_total", "counter", "Streams whose client went away before the end.", disconnects_.load());
  return out;
}

}  // namespace hyla::serve
