// `hyla serve MODEL`: an OpenAI-compatible HTTP server over the serving engine
// (continuous batching, prefix caching). `--batch FILE.jsonl` runs the same engine over
// a file of completion requests instead and prints one JSON result per line.
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <pthread.h>
#include <thread>

#include "command.h"
#include "common.h"
#include "hyla/model/replacement_chain.h"
#include "hyla/serve/chat_template.h"
#include "hyla/serve/engine.h"
#include "hyla/serve/openai_api.h"
#include "hyla/serve/text_stream.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"
#ifdef HYLA_HTTP
#include "hyla/serve/http_server.h"
#endif

namespace hyla::cli {
namespace {
using nlohmann::json;

struct ServeArgs {
  ModelArgs model;
  std::string host = "127.0.0.1", api_key, model_name, batch_file;
  int port = 8000;
  int64_t max_running = 16, block_size = 16, prefill_chunk = 64, step_tokens = 256, max_context = 0, max_waiting = 1024;
  double kv_cache_mb = 1024, prefix_cache_mb = 256, drain_seconds = 60;
  bool no_prefix_cache = false, no_cuda_graphs = false;
  std::string adaptive;  // a chained stage's directory of replacement links
  serve::AdaptivePolicy policy;
};

// The engine over the model; with --adaptive, the replacement levels of the chain.
std::unique_ptr<serve::Engine> make_engine(const ServeArgs& a, serve::EngineOptions o) {
  auto model = a.model.load();
  model::ReplacementChain chain;
  if (!a.adaptive.empty()) chain = model::load_replacement_chain(a.adaptive, model);
  auto engine = std::make_unique<serve::Engine>(model, o);
  for (size_t k = 0; k < chain.levels.size(); ++k) engine->add_level(chain.levels[k], chain.order[k]);
  if (!chain.levels.empty())
    log::info("adaptive: {} replacement levels, order {}", chain.levels.size(), nlohmann::json(chain.order).dump());
  return engine;
}

serve::EngineOptions engine_options(const ServeArgs& a) {
  serve::EngineOptions o;
  o.max_running = a.max_running;
  o.block_size = a.block_size;
  o.prefill_chunk = a.prefill_chunk;
  o.step_tokens = a.step_tokens;
  o.max_context = a.max_context;
  o.max_waiting = a.max_waiting;
  o.kv_cache_bytes = static_cast<int64_t>(a.kv_cache_mb * (1 << 20));
  o.prefix_cache = !a.no_prefix_cache;
  o.prefix_cache_bytes = static_cast<int64_t>(a.prefix_cache_mb * (1 << 20));
  o.cuda_graphs = !a.no_cuda_graphs;
  o.adaptive = a.policy;
  HYLA_CHECK(o.adaptive.max_ratio >= 0 && o.adaptive.max_ratio <= 1, "--adaptive-max-ratio must be in [0, 1], got {}",
             o.adaptive.max_ratio);
  HYLA_CHECK(o.adaptive.cooldown_seconds >= 0, "--adaptive-cooldown must be >= 0, got {}", o.adaptive.cooldown_seconds);
  HYLA_CHECK(o.prefill_chunk % o.block_size == 0, "--prefill-chunk ({}) must be a multiple of --block-size ({})",
             o.prefill_chunk, o.block_size);
  return o;
}

json logprob_json(const serve::TokenLogprob& t) {
  json top = json::array();
  for (auto& [id, lp] : t.top) top.push_back({id, lp});
  return {{"id", t.id}, {"logprob", t.logprob}, {"top", top}};
}

struct BatchItem {
  serve::CompletionRequest req;
  std::vector<int64_t> prompt;
  int64_t arrive_step = 0;
  std::vector<serve::TokenLogprob> prompt_lp, tokens;
  serve::FinishReason finish = serve::FinishReason::none;
  int64_t cached = 0, level = 0;
};

// Offline batch: every line an OpenAI completions body (plus "arrive_step": the engine
// step before which it is submitted, to exercise requests joining a running batch).
int run_batch(const ServeArgs& a) {
  auto tok = a.model.tokenizer();
  auto engine_ptr = make_engine(a, engine_options(a));
  auto& engine = *engine_ptr;
  std::ifstream in(a.batch_file);
  HYLA_CHECK(in.good(), "--batch {}: cannot open", a.batch_file);
  std::vector<BatchItem> items;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    BatchItem it;
    try {
      it.req = serve::parse_completion_request(line, false, 16);
      auto j = json::parse(line);
      it.arrive_step = std::max<int64_t>(0, j.value("arrive_step", int64_t(0)));
    } catch (const std::exception& e) {
      fail("--batch {} line {}: {}", a.batch_file, n, e.what());
    }
    HYLA_CHECK(it.req.prompts.size() == 1, "--batch {} line {}: give one prompt per line", a.batch_file, n);
    auto& p = it.req.prompts[0];
    if (p.is_ids) it.prompt = p.ids;
    else for (auto id : tok->encode(p.text, true)) it.prompt.push_back(id);
    if (!it.req.ignore_eos) it.req.sampling.stop_ids = engine.config().eos_token_id;
    items.push_back(std::move(it));
  }
  auto submit = [&](BatchItem& it) {
    serve::Request r{it.prompt, it.req.sampling, [&it](const serve::RequestOutput& o) {
                       it.prompt_lp.insert(it.prompt_lp.end(), o.prompt_logprobs.begin(), o.prompt_logprobs.end());
                       it.tokens.insert(it.tokens.end(), o.tokens.begin(), o.tokens.end());
                       if (o.finish != serve::FinishReason::none) it.finish = o.finish, it.cached = o.cached_tokens, it.level = o.level;
                     }};
    try {
      engine.submit(std::move(r));
    } catch (const Error& e) {
      fail("--batch {} request {}: {}", a.batch_file, &it - items.data() + 1, e.what());
    }
  };
  int64_t step = 0;
  size_t pending = items.size();
  while (pending > 0 || engine.stats().running > 0) {
    for (auto& it : items)
      if (it.arrive_step == step) submit(it), --pending;
    engine.step();
    ++step;
  }
  engine.run_until_idle();
  for (size_t i = 0; i < items.size(); ++i) {
    auto& it = items[i];
    serve::TextStream text(tok, it.req.stop);
    std::vector<int64_t> ids;
    for (auto& t : it.tokens) {
      text.push(t.id);
      ids.push_back(t.id);
    }
    text.finish();
    json out = {{"index", i}, {"ids", ids}, {"text", text.text()},
                {"finish_reason", text.stopped() ? "stop" : serve::finish_reason_name(it.finish)},
                {"cached_tokens", it.cached}, {"level", it.level}};
    if (it.req.sampling.logprobs >= 0) {
      out["logprobs"] = json::array();
      for (auto& t : it.tokens) out["logprobs"].push_back(logprob_json(t));
    }
    if (it.req.sampling.prompt_logprobs) {
      out["prompt_logprobs"] = json::array();
      for (auto& t : it.prompt_lp) out["prompt_logprobs"].push_back(logprob_json(t));
    }
    std::printf("%s\n", out.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
  }
  auto st = engine.stats();
  log::info("{} requests, {} engine steps, {} prompt tokens ({} from the prefix cache), {} generated", items.size(),
            st.steps, st.prompt_tokens, st.cached_tokens, st.generated_tokens);
  log::info("decode: {} steps batching {} rows; CUDA graphs: {} captured, {} replays; adaptive: {} switches up, {} down",
            st.decode_steps, st.decode_rows, st.graph_captures, st.graph_replays, st.switches_up, st.switches_down);
  return 0;
}

int run_http(const ServeArgs& a) {
#ifdef HYLA_HTTP
  // SIGTERM / SIGINT are taken by one thread (sigwait), so no handler runs inside the
  // engine or HTTP threads; every thread created below inherits the blocked mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  auto tok = a.model.tokenizer();
  auto chat = serve::ChatTemplate::for_model(a.model.path);
  auto engine_ptr = make_engine(a, engine_options(a));
  auto& engine = *engine_ptr;
  serve::HttpOptions ho;
  ho.host = a.host;
  ho.port = a.port;
  ho.api_key = !a.api_key.empty() ? a.api_key : (std::getenv("HYLA_API_KEY") ? std::getenv("HYLA_API_KEY") : "");
  ho.model_name = a.model_name.empty() ? std::filesystem::path(a.model.path).filename().string() : a.model_name;
  if (ho.model_name.empty()) ho.model_name = "hyla";
  ho.drain_seconds = a.drain_seconds;
  serve::HttpServer server(engine, tok, chat, ho);
  int port = server.bind();
  engine.start();
  std::thread signals([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    log::info("signal {}: draining", sig);
    server.shutdown();
  });
  auto st = engine.stats();
  std::printf("hyla serve: listening on http://%s:%d (model %s, %lld/%lld attention layers, chat template %s)\n",
              a.host.c_str(), port, ho.model_name.c_str(), (long long)st.attention_layers, (long long)st.layers,
              chat.name());
  std::fflush(stdout);
  server.serve();
  engine.stop(false);
  signals.join();
  log::info("stopped");
  return 0;
#else
  fail("this hyla was built without cpp-httplib (install libcpp-httplib-dev and rebuild); --batch works");
#endif
}

Register reg("serve", "serve a model over HTTP (OpenAI API; continuous batching, prefix caching), or run a batch file",
             [](CLI::App& app) {
               auto a = std::make_shared<ServeArgs>();
               a->model.add(app);
               app.add_option("--host", a->host, "address to listen on")->capture_default_str();
               app.add_option("--port", a->port, "port (0 = any free port)")->capture_default_str();
               app.add_option("--api-key", a->api_key, "require 'Authorization: Bearer KEY' on /v1 (or $HYLA_API_KEY)");
               app.add_option("--model-name", a->model_name, "model id in the API (default: the directory's name)");
               app.add_option("--max-running", a->max_running, "sequences decoding at once (state slots)")
                   ->capture_default_str();
               app.add_option("--kv-cache-mb", a->kv_cache_mb, "attention KV cache budget (MiB)")->capture_default_str();
               app.add_option("--block-size", a->block_size, "tokens per KV block")->capture_default_str();
               app.add_option("--prefill-chunk", a->prefill_chunk,
                              "prefill chunk and linear-state snapshot interval (tokens)")->capture_default_str();
               app.add_option("--step-tokens", a->step_tokens, "tokens fed per engine step")->capture_default_str();
               app.add_option("--max-context", a->max_context, "prompt + max_tokens limit (0 = the model's)")
                   ->capture_default_str();
               app.add_option("--max-waiting", a->max_waiting, "queued requests beyond this get HTTP 429")
                   ->capture_default_str();
               app.add_flag("--no-prefix-cache", a->no_prefix_cache, "do not reuse shared prompt prefixes");
               app.add_option("--prefix-cache-mb", a->prefix_cache_mb, "prefix-cache snapshot budget (MiB)")
                   ->capture_default_str();
               app.add_option("--drain-seconds", a->drain_seconds, "on SIGTERM, how long in-flight requests may finish")
                   ->capture_default_str();
               app.add_flag("--no-cuda-graphs", a->no_cuda_graphs, "run decode steps eagerly on CUDA");
               app.add_option("--adaptive", a->adaptive,
                              "DSLA-Serve: swap attention layers for the replacements of this chained-distillation "
                              "directory (link-KK-layer-LL/) as load rises");
               auto& p = a->policy;
               app.add_option("--adaptive-up-waiting", p.up_waiting, "high load: requests waiting")->capture_default_str();
               app.add_option("--adaptive-down-waiting", p.down_waiting, "low load: fewer waiting")->capture_default_str();
               app.add_option("--adaptive-up-prompt", p.up_prompt, "high load: longest waiting prompt (tokens)")
                   ->capture_default_str();
               app.add_option("--adaptive-down-prompt", p.down_prompt, "low load: longest waiting prompt under")
                   ->capture_default_str();
               app.add_option("--adaptive-up-kv", p.up_kv, "high load: share of KV blocks in use")->capture_default_str();
               app.add_option("--adaptive-down-kv", p.down_kv, "low load: share of KV blocks under")->capture_default_str();
               app.add_option("--adaptive-cooldown", p.cooldown_seconds, "seconds between switches")->capture_default_str();
               app.add_option("--adaptive-max-ratio", p.max_ratio, "most layers replaced (share)")->capture_default_str();
               app.add_option("--batch", a->batch_file,
                              "run the requests of a JSONL file (OpenAI completions bodies) and print JSONL results");
               return [=]() { return a->batch_file.empty() ? run_http(*a) : run_batch(*a); };
             });

}  // namespace
}  // namespace hyla::cli
