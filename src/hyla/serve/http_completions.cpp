// The routes of HttpServer: generation (/v1/completions, /v1/chat/completions, JSON
// or server-sent events) and the small ones (/health, /v1/models, /metrics).
#include <httplib.h>

#include <condition_variable>
#include <ctime>
#include <deque>

#include "hyla/serve/http_server.h"
#include "hyla/serve/openai_api.h"
#include "hyla/serve/text_stream.h"
#include "hyla/util/log.h"

namespace hyla::serve {
using nlohmann::json;

void send_json(httplib::Response& res, int status, const json& j);

namespace {

// Engine outputs of one request, handed from the engine's thread to the HTTP thread.
struct Channel {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<RequestOutput> q;
  void push(const RequestOutput& o) {
    std::lock_guard lk(mu);
    q.push_back(o);
    cv.notify_one();
  }
  bool pop(RequestOutput& o, std::chrono::milliseconds wait) {
    std::unique_lock lk(mu);
    if (!cv.wait_for(lk, wait, [&] { return !q.empty(); })) return false;
    o = std::move(q.front());
    q.pop_front();
    return true;
  }
};

// One prompt's generation: what was sent to the engine and what came back.
struct Choice {
  uint64_t engine_id = 0;
  std::shared_ptr<Channel> ch = std::make_shared<Channel>();
  std::vector<int64_t> prompt_ids;
  std::string prompt_text;
  std::unique_ptr<TextStream> text;
  std::vector<TokenLogprob> prompt_lp, tokens;
  FinishReason finish = FinishReason::none;
  bool ended = false;  // finished for the client (by the engine or a stop string)
  int64_t cached = 0;
  // Takes one engine output; returns the new text. Ends on a stop string (cancelling
  // the rest of the generation) or when the engine finishes.
  std::string absorb(const RequestOutput& o, Engine& engine) {
    if (ended) return "";
    for (auto& p : o.prompt_logprobs) prompt_lp.push_back(p);
    std::string fresh;
    for (auto& t : o.tokens) {
      tokens.push_back(t);
      fresh += text->push(t.id);
      if (text->stopped()) break;
    }
    cached = o.cached_tokens;
    if (text->stopped()) {
      engine.cancel(engine_id);
      finish = FinishReason::stop;
      ended = true;
    } else if (o.finish != FinishReason::none) {
      fresh += text->finish();
      finish = o.finish;
      ended = true;
    }
    return fresh;
  }
};

const char* finish_name(FinishReason r) { return r == FinishReason::cancelled ? "abort" : finish_reason_name(r); }

json top_map(const io::Tokenizer& tok, const TokenLogprob& t) {
  json m = json::object();
  for (auto& [id, lp] : t.top) m[tok.token_text(static_cast<int32_t>(id))] = lp;
  return m;
}

// Completions' logprobs object: tokens, token_logprobs, top_logprobs, text_offset;
// with echo the prompt's tokens come first (the first has no logprob: null).
json completion_logprobs(const io::Tokenizer& tok, const Choice& c, bool echo) {
  json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  size_t offset = 0;
  auto add = [&](int64_t id, json lp, json top) {
    std::string s = tok.token_text(static_cast<int32_t>(id));
    tokens.push_back(s);
    lps.push_back(lp);
    tops.push_back(top);
    offsets.push_back(offset);
    offset += s.size();
  };
  if (echo) {
    for (size_t i = 0; i < c.prompt_ids.size(); ++i) {
      if (i == 0 || i - 1 >= c.prompt_lp.size()) add(c.prompt_ids[i], nullptr, nullptr);
      else add(c.prompt_ids[i], c.prompt_lp[i - 1].logprob, top_map(tok, c.prompt_lp[i - 1]));
    }
  }
  for (auto& t : c.tokens) add(t.id, t.logprob, top_map(tok, t));
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json chat_logprobs(const io::Tokenizer& tok, const std::vector<TokenLogprob>& ts) {
  auto entry = [&](int64_t id, float lp) {
    std::string s = tok.token_text(static_cast<int32_t>(id));
    return json{{"token", s}, {"logprob", lp}, {"bytes", std::vector<int>(s.begin(), s.end())}};
  };
  json content = json::array();
  for (auto& t : ts) {
    json e = entry(t.id, t.logprob), top = json::array();
    for (auto& [id, lp] : t.top) top.push_back(entry(id, lp));
    e["top_logprobs"] = top;
    content.push_back(e);
  }
  return {{"content", content}};
}

json usage(const std::vector<const Choice*>& cs) {
  int64_t p = 0, g = 0, cached = 0;
  for (auto* c : cs) {
    p += static_cast<int64_t>(c->prompt_ids.size());
    g += static_cast<int64_t>(c->tokens.size());
    cached += c->cached;
  }
  return {{"prompt_tokens", p}, {"completion_tokens", g}, {"total_tokens", p + g},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

std::string sse(const json& j) { return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n"; }

std::atomic<uint64_t> g_response_id{1};
}  // namespace

struct HttpServer::Handlers {
  HttpServer& s;

  int64_t count(int status) {
    (status < 400 ? s.ok_ : status < 500 ? s.client_errors_ : s.server_errors_)++;
    return status;
  }
  void error(httplib::Response& res, const ApiError& e) { send_json(res, static_cast<int>(count(e.status)), e.body()); }

  // Tokenizes and submits every prompt; on a refusal cancels the ones already queued.
  std::vector<std::unique_ptr<Choice>> submit(const CompletionRequest& r) {
    std::vector<std::unique_ptr<Choice>> out;
    std::vector<std::string> texts;
    if (r.chat) texts.push_back(s.chat_.render(r.messages));
    SamplingOptions sp = r.sampling;
    if (!r.ignore_eos) {
      for (auto e : s.engine_.config().eos_token_id) sp.stop_ids.push_back(e);
      if (auto e = s.tok_->eos_id()) sp.stop_ids.push_back(*e);
    }
    std::vector<std::string> stops = r.stop;
    if (r.chat) {
      if (auto eot = s.tok_->token_to_id(s.chat_.end_of_turn())) sp.stop_ids.push_back(*eot);
      else stops.push_back(s.chat_.end_of_turn());
    }
    size_t n = r.chat ? 1 : r.prompts.size();
    try {
      for (size_t i = 0; i < n; ++i) {
        auto c = std::make_unique<Choice>();
        if (r.chat || !r.prompts[i].is_ids) {
          c->prompt_text = r.chat ? texts[0] : r.prompts[i].text;
          auto ids = s.tok_->encode(c->prompt_text, /*add_special=*/true);
          c->prompt_ids.assign(ids.begin(), ids.end());
        } else {
          c->prompt_ids = r.prompts[i].ids;
          for (auto id : c->prompt_ids)
            if (id < 0 || id >= s.tok_->vocab_size())
              throw ApiError(400, fmt::format("prompt token id {} is outside the vocabulary", id), "prompt");
          c->prompt_text = s.tok_->decode(std::vector<int32_t>(c->prompt_ids.begin(), c->prompt_ids.end()), false);
        }
        c->text = std::make_unique<TextStream>(s.tok_, stops);
        Request req{c->prompt_ids, sp, [ch = c->ch](const RequestOutput& o) { ch->push(o); }};
        c->engine_id = s.engine_.submit(std::move(req));
        out.push_back(std::move(c));
      }
    } catch (...) {
      for (auto& c : out) s.engine_.cancel(c->engine_id);
      throw;
    }
    return out;
  }

  json body(const CompletionRequest& r, const std::vector<std::unique_ptr<Choice>>& cs, const std::string& id) {
    json choices = json::array();
    std::vector<const Choice*> all;
    for (auto& c : cs) all.push_back(c.get());
    for (size_t i = 0; i < cs.size(); ++i) {
      auto& c = *cs[i];
      if (r.chat) {
        choices.push_back({{"index", i}, {"message", {{"role", "assistant"}, {"content", c.text->text()}}},
                           {"logprobs", r.sampling.logprobs >= 0 ? chat_logprobs(*s.tok_, c.tokens) : json(nullptr)},
                           {"finish_reason", finish_name(c.finish)}});
      } else {
        choices.push_back({{"index", i}, {"text", (r.echo ? c.prompt_text : "") + c.text->text()},
                           {"logprobs", r.sampling.logprobs >= 0 ? completion_logprobs(*s.tok_, c, r.echo) : json(nullptr)},
                           {"finish_reason", finish_name(c.finish)}});
      }
    }
    return {{"id", id}, {"object", r.chat ? "chat.completion" : "text_completion"}, {"created", std::time(nullptr)},
            {"model", s.opt_.model_name}, {"choices", choices}, {"usage", usage(all)}};
  }

  void complete(const httplib::Request& req, httplib::Response& res, bool chat) {
    if (!s.authorized(req, res)) return void(count(401));
    CompletionRequest r;
    std::vector<std::unique_ptr<Choice>> cs;
    try {
      r = parse_completion_request(req.body, chat, chat ? -1 : s.opt_.default_max_tokens);
      if (r.stream && !chat && r.prompts.size() != 1) throw ApiError(400, "streaming takes exactly one prompt", "prompt");
      if (r.sampling.max_tokens < 0) {
        // Chat without max_tokens: whatever the context has room for after the prompt.
        auto n = static_cast<int64_t>(s.tok_->encode(s.chat_.render(r.messages), true).size());
        r.sampling.max_tokens = std::max<int64_t>(0, s.engine_.max_context() - n);
      }
      cs = submit(r);
    } catch (const ApiError& e) {
      return error(res, e);
    } catch (const Refused& e) {
      return error(res, ApiError(e.why == Refused::Why::queue_full ? 429 : 503, e.what(), "",
                                 e.why == Refused::Why::queue_full ? "rate_limit_error" : "server_error"));
    } catch (const Error& e) {
      return error(res, ApiError(400, e.what()));
    }
    std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(g_response_id++);
    if (r.stream) return stream(res, r, std::move(cs[0]), id);
    ++s.active_;
    for (auto& c : cs) {
      RequestOutput o;
      while (!c->ended)
        if (c->ch->pop(o, std::chrono::milliseconds(100))) c->absorb(o, s.engine_);
    }
    --s.active_;
    if (std::any_of(cs.begin(), cs.end(), [](auto& c) { return c->finish == FinishReason::cancelled; }))
      return error(res, ApiError(503, "the request was cancelled (server shutting down or failing)", "", "server_error"));
    count(200);
    send_json(res, 200, body(r, cs, id));
  }

  json chunk(const CompletionRequest& r, const std::string& id, const std::string& text, const char* finish,
             bool first) {
    json choice = {{"index", 0}, {"finish_reason", finish ? json(finish) : json(nullptr)}, {"logprobs", nullptr}};
    if (r.chat) {
      json delta = json::object();
      if (first) delta["role"] = "assistant";
      if (!text.empty() || !finish) delta["content"] = text;
      choice["delta"] = delta;
    } else {
      choice["text"] = text;
    }
    return {{"id", id}, {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
            {"created", std::time(nullptr)}, {"model", s.opt_.model_name}, {"choices", json::array({choice})}};
  }

  // Server-sent events: one chunk per released piece of text, a last one with the
  // finish reason (and usage if asked), then "data: [DONE]". A client that goes away
  // cancels its request in the engine, freeing the slot.
  void stream(httplib::Response& res, const CompletionRequest& r, std::unique_ptr<Choice> c, const std::string& id) {
    struct State {
      std::unique_ptr<Choice> c;
      bool first = true, done = false;
    };
    auto st = std::make_shared<State>();
    st->c = std::move(c);
    ++s.active_;
    count(200);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, st, r, id](size_t, httplib::DataSink& sink) {
          auto& c = *st->c;
          RequestOutput o;
          if (!c.ch->pop(o, std::chrono::milliseconds(100))) return !sink.is_writable || sink.is_writable();
          std::string text = c.absorb(o, s.engine_), out;
          if (st->first && !r.chat && r.echo) {
            out += sse(chunk(r, id, c.prompt_text, nullptr, true));
            st->first = false;
          }
          if (!text.empty() || (st->first && c.ended)) out += sse(chunk(r, id, text, nullptr, st->first));
          if (c.ended) {
            out += sse(chunk(r, id, "", finish_name(c.finish), false));
            if (r.include_usage)
              out += sse({{"id", id}, {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
                          {"created", std::time(nullptr)}, {"model", s.opt_.model_name}, {"choices", json::array()},
                          {"usage", usage({&c})}});
            out += "data: [DONE]\n\n";
          }
          if (!out.empty()) {
            st->first = false;
            if (!sink.write(out.data(), out.size())) return false;
          }
          if (c.ended) {
            st->done = true;
            sink.done();
          }
          return true;
        },
        [this, st](bool success) {
          if (!st->done) {
            s.engine_.cancel(st->c->engine_id);
            ++s.disconnects_;
          }
          --s.active_;
        });
  }
};

void HttpServer::routes() {
  auto h = std::make_shared<Handlers>(Handlers{*this});
  svr_->Post("/v1/completions", [h](const httplib::Request& q, httplib::Response& r) { h->complete(q, r, false); });
  svr_->Post("/v1/chat/completions", [h](const httplib::Request& q, httplib::Response& r) { h->complete(q, r, true); });
  svr_->Get("/v1/models", [this, h](const httplib::Request& q, httplib::Response& r) {
    if (!authorized(q, r)) return void(h->count(401));
    json m = {{"id", opt_.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "hyla"},
              {"max_model_len", engine_.max_context()}};
    send_json(r, static_cast<int>(h->count(200)), {{"object", "list"}, {"data", json::array({m})}});
  });
  svr_->Get("/health", [this](const httplib::Request&, httplib::Response& r) {
    bool closing = engine_.closed();
    send_json(r, closing ? 503 : 200, {{"status", closing ? "draining" : "ok"}});
  });
  svr_->Get("/metrics", [this](const httplib::Request&, httplib::Response& r) {
    r.set_content(metrics_text(), "text/plain; version=0.0.4");
  });
  svr_->set_error_handler([h](const httplib::Request& q, httplib::Response& r) {
    if (!r.body.empty()) return;
    std::string msg = r.status == 404 ? "no route " + q.method + " " + q.path
                      : r.status == 413 ? "the request body is too large"
                                        : "bad request";
    send_json(r, r.status, ApiError(r.status, msg).body());
    h->count(r.status);
  });
  svr_->set_exception_handler([h](const httplib::Request&, httplib::Response& r, std::exception_ptr ep) {
    std::string msg = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      msg = e.what();
    } catch (...) {
    }
    log::warn("HTTP handler failed: {}", msg);
    send_json(r, static_cast<int>(h->count(500)), ApiError(500, msg, "", "server_error").body());
  });
}

}  // namespace hyla::serve
