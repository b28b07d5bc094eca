// `hyla serve`'s HTTP front: OpenAI-compatible /v1/completions and
// /v1/chat/completions (JSON or server-sent events), /v1/models, /health and /metrics
// (Prometheus text), on Debian's cpp-httplib. It turns HTTP into engine requests
// (token ids) and engine outputs into JSON; it never touches a tensor.
#pragma once
#include <atomic>
#include <memory>
#include <string>

#include "hyla/io/tokenizer.h"
#include "hyla/serve/chat_template.h"
#include "hyla/serve/engine.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace hyla::serve {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                   // 0 = any free port
  std::string api_key;               // empty = no authentication
  std::string model_name = "hyla";   // what /v1/models lists
  int64_t default_max_tokens = 16;   // OpenAI's default for completions
  int threads = 64;                  // connections served at once (streams hold one each)
  double drain_seconds = 60;         // SIGTERM: how long in-flight requests may finish
};

class HttpServer {
 public:
  HttpServer(Engine& engine, std::shared_ptr<const io::Tokenizer> tok, ChatTemplate chat, HttpOptions opt);
  ~HttpServer();
  // Binds the socket; returns the port. Errors (address in use) are hyla::Error.
  int bind();
  // Serves until shutdown() (blocks).
  void serve();
  // Refuses new requests, lets in-flight ones finish (up to drain_seconds), then stops
  // serve(). Callable from any thread.
  void shutdown();

  struct Handlers;  // the route handlers (http_completions.cpp)

 private:
  void routes();
  bool authorized(const httplib::Request& req, httplib::Response& res) const;
  std::string metrics_text() const;

  Engine& engine_;
  std::shared_ptr<const io::Tokenizer> tok_;
  ChatTemplate chat_;
  HttpOptions opt_;
  std::unique_ptr<httplib::Server> svr_;
  int port_ = 0;
  std::atomic<int64_t> active_{0};  // generation responses not yet fully written
  std::atomic<int64_t> ok_{0}, client_errors_{0}, server_errors_{0}, disconnects_{0};
  friend struct Handlers;
};

}  // namespace hyla::serve
