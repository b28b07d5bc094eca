#include "hyla/serve/engine.h"

#include <algorithm>

#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::serve {
namespace {

int64_t kv_bytes_per_token(model::CausalLM& m) {
  int64_t elem = m->embed_tokens->weight.element_size(), b = 0;
  for (int64_t i = 0; i < m->num_layers(); ++i) b += m->layer(i)->mixer()->cache_bytes_per_token(elem);
  return b;
}

BlockPool make_pool(model::CausalLM& m, EngineOptions& o) {
  if (o.max_context <= 0) o.max_context = m->config().max_position_embeddings;
  HYLA_CHECK(o.block_size > 0 && o.prefill_chunk > 0 && o.max_running > 0 && o.step_tokens > 0,
             "engine: block size, prefill chunk, max running and step tokens must be > 0");
  int64_t per_block = kv_bytes_per_token(m) * o.block_size;
  // Never more than --max-running sequences at the full context can use: the pools are
  // allocated up front.
  int64_t useful = o.max_running * ((o.max_context + o.block_size - 1) / o.block_size);
  int64_t blocks = per_block > 0 ? std::min(useful, o.kv_cache_bytes / per_block) : useful;
  HYLA_CHECK(blocks > 0, "engine: a KV cache of {} bytes holds no block of {} tokens ({} bytes)", o.kv_cache_bytes,
             o.block_size, per_block);
  return BlockPool(blocks, o.block_size, o.max_running);
}

int64_t key_capacity(const EngineOptions& o) { return (o.max_context + o.block_size - 1) / o.block_size * o.block_size; }
}  // namespace

Engine::Engine(model::CausalLM model, EngineOptions opt)
    : config_(model->config()), opt_(opt), pool_(make_pool(model, opt_)),
      paged_(model, pool_.num_blocks(), pool_.block_size(), pool_.num_slots()),
      scheduler_(pool_, opt_.step_tokens, opt_.prefill_chunk),
      runner_(std::move(model), paged_, opt_.cuda_graphs, opt_.max_running, key_capacity(opt_)) {
  prefixes_.emplace_back(opt_.prefix_cache_bytes, has_linear(0));
  stats_.layers = config_.num_hidden_layers;
  update_stats();
}

Engine::~Engine() { stop(false); }

uint64_t Engine::submit(Request r) {
  auto& sp = r.sampling;
  int64_t n = static_cast<int64_t>(r.prompt.size());
  HYLA_CHECK(n > 0, "the prompt is empty");
  HYLA_CHECK(sp.max_tokens >= 0, "max_tokens must be >= 0, got {}", sp.max_tokens);
  HYLA_CHECK(n + sp.max_tokens <= opt_.max_context,
             "the prompt ({} tokens) plus max_tokens ({}) exceeds the context limit of {} tokens", n, sp.max_tokens,
             opt_.max_context);
  HYLA_CHECK(pool_.could_ever_fit(n + sp.max_tokens),
             "the prompt ({} tokens) plus max_tokens ({}) needs more KV cache than the server has ({} tokens)", n,
             sp.max_tokens, pool_.num_blocks() * pool_.block_size());
  for (auto id : r.prompt)
    HYLA_CHECK(id >= 0 && id < config_.vocab_size, "prompt token id {} is outside the vocabulary (size {})", id,
               config_.vocab_size);
  HYLA_CHECK(sp.temperature >= 0, "temperature must be >= 0, got {}", sp.temperature);
  HYLA_CHECK(sp.top_p > 0 && sp.top_p <= 1, "top_p must be in (0, 1], got {}", sp.top_p);
  HYLA_CHECK(sp.top_k >= 0, "top_k must be >= 0, got {}", sp.top_k);
  HYLA_CHECK(sp.logprobs <= 20, "logprobs must be at most 20, got {}", sp.logprobs);
  auto s = std::make_unique<Sequence>();
  s->tokens = r.prompt;
  s->prompt_len = n;
  s->request = std::move(r);
  s->arrived = std::chrono::steady_clock::now();
  std::lock_guard lk(mu_);
  if (!accepting_) throw Refused(Refused::Why::shutting_down, "the server is shutting down");
  if (stats_.waiting >= opt_.max_waiting)
    throw Refused(Refused::Why::queue_full, fmt::format("the queue is full ({} requests waiting)", opt_.max_waiting));
  s->id = next_id_++;
  uint64_t id = s->id;
  inbox_.push_back(std::move(s));
  ++stats_.waiting;
  wake_.notify_all();
  return id;
}

void Engine::cancel(uint64_t id) {
  std::lock_guard lk(mu_);
  cancels_.push_back(id);
  wake_.notify_all();
}

void Engine::take_inbox() {
  std::vector<std::unique_ptr<Sequence>> fresh;
  std::vector<uint64_t> cancels;
  bool all = false;
  {
    std::lock_guard lk(mu_);
    fresh.swap(inbox_);
    cancels.swap(cancels_);
    all = cancel_all_;
  }
  for (auto& s : fresh) scheduler_.enqueue(std::move(s));
  if (all) {
    for (auto& s : scheduler_.waiting()) cancels.push_back(s->id);
    for (auto& s : scheduler_.running()) cancels.push_back(s->id);
  }
  for (auto id : cancels) {
    if (auto s = scheduler_.remove_waiting(id)) {
      finish(*s, FinishReason::cancelled);
      continue;
    }
    for (auto& s : scheduler_.running())
      if (s->id == id && !s->finished) finish(*s, FinishReason::cancelled);
  }
}

bool Engine::has_linear(int64_t level) const {
  const auto& linear = runner_.linear_layers(level);
  return std::find(linear.begin(), linear.end(), true) != linear.end();
}

void Engine::admit() {
  for (Sequence* s : scheduler_.admit()) {
    s->level = level_;  // kept for the sequence's whole life: no in-flight switch
    s->sampler = std::make_unique<RequestSampler>(s->request.sampling);
    totals_prompt_ += s->prompt_len;
    if (!opt_.prefix_cache || s->request.sampling.prompt_logprobs) continue;
    ++lookups_;
    // At most prompt_len - 1: the last prompt token must run to give the first logits.
    s->restored = prefix(s->level).lookup(s->tokens, s->prompt_len - 1);
    if (has_linear(s->level) && s->restored.shared > s->restored.position) s->snapshot_at = s->restored.shared;
    if (s->restored.position == 0) continue;
    auto restored = runner_.model()->new_cache();
    PrefixCache::restore(s->restored, restored);
    paged_.import(s->blocks, s->slot, restored);
    s->computed = s->restored.position;
    totals_cached_ += s->computed;
    ++hits_;
  }
}

void Engine::add_level(std::vector<model::Mixer> mixers, int64_t replaced_layer) {
  runner_.add_level(std::move(mixers));
  int64_t level = runner_.num_levels() - 1;
  prefixes_.emplace_back(opt_.prefix_cache_bytes, has_linear(level));
  replaced_.push_back(replaced_layer);
  update_stats();
}

void Engine::adapt() {
  if (runner_.num_levels() == 1) return;
  auto now = std::chrono::steady_clock::now();
  if (last_switch_ != std::chrono::steady_clock::time_point{} &&
      std::chrono::duration<double>(now - last_switch_).count() < opt_.adaptive.cooldown_seconds)
    return;
  const auto& p = opt_.adaptive;
  int64_t waiting = static_cast<int64_t>(scheduler_.waiting().size()), longest = 0;
  for (auto& s : scheduler_.waiting()) longest = std::max(longest, s->prompt_len);
  double kv = double(pool_.used_blocks()) / double(pool_.num_blocks());
  bool high = waiting >= p.up_waiting || longest >= p.up_prompt || kv >= p.up_kv;
  bool low = waiting < p.down_waiting && longest < p.down_prompt && kv < p.down_kv;
  int64_t cap = std::min<int64_t>(runner_.num_levels() - 1, static_cast<int64_t>(p.max_ratio * config_.num_hidden_layers));
  int64_t to = high && level_ < cap ? level_ + 1 : (low && !high && level_ > 0 ? level_ - 1 : level_);
  if (to == level_) return;
  int64_t layer = replaced_[std::max(to, level_) - 1];
  log::info("adaptive: level {} -> {} (layer {} {}; {} waiting, longest prompt {}, KV blocks {:.0f}% in use)", level_, to,
            layer, to > level_ ? "to " + runner_.linear_kind(to, layer) : "back to attention", waiting, longest,
            100 * kv);
  (to > level_ ? switches_up_ : switches_down_)++;
  level_ = to;
  last_switch_ = now;
}

bool Engine::step() {
  take_inbox();
  adapt();
  admit();
  scheduler_.retire([](const Sequence& s) { return s.finished; });
  auto work = scheduler_.plan();
  bool did = !work.empty();
  int64_t decoding = std::count_if(work.begin(), work.end(), [](const Work& w) { return !w.seq->prefilling(); });
  decode_rows_ += decoding;
  decode_steps_ += decoding > 0;
  for (auto& r : runner_.run(work)) handle(r);
  scheduler_.retire([](const Sequence& s) { return s.finished; });
  if (did) ++steps_;
  update_stats();
  return did || !scheduler_.running().empty() || !scheduler_.waiting().empty();
}

void Engine::handle(const StepResult& r) {
  auto& s = *r.seq;
  auto& sp = s.request.sampling;
  bool prompt_done = r.start < s.prompt_len && s.computed >= s.prompt_len;
  RequestOutput out;
  if (sp.prompt_logprobs && r.start < s.prompt_len) {
    // Row i scores the token after position start + i (prompt tokens only; the last
    // row's target, if past the prompt, is the first generated token).
    std::vector<int64_t> targets;
    for (int64_t i = 0; i < r.tokens && r.start + i + 1 < s.prompt_len; ++i) targets.push_back(s.tokens[r.start + i + 1]);
    if (!targets.empty()) out.prompt_logprobs = s.sampler->score(r.logits.narrow(0, 0, targets.size()), targets);
  }
  const auto& linear = runner_.linear_layers(s.level);
  bool snapshots = opt_.prefix_cache && has_linear(s.level);
  if (s.prefilling()) {
    if (snapshots && (s.computed % opt_.prefill_chunk == 0 || s.computed == s.snapshot_at))
      s.snapshots[s.computed] = paged_.copy_states(s.slot, linear);
    if (!out.prompt_logprobs.empty() && s.request.on_output) {
      out.id = s.id;
      s.request.on_output(out);
    }
    return;
  }
  if (prompt_done && opt_.prefix_cache) {
    std::vector<int64_t> prompt(s.tokens.begin(), s.tokens.begin() + s.prompt_len);
    if (snapshots) s.snapshots[s.prompt_len] = paged_.copy_states(s.slot, linear);
    s.prompt_entry = {prefix(s.level).insert(prompt, paged_.export_kv(s.blocks, s.prompt_len, linear),
                                             std::move(s.snapshots), s.restored),
                      s.prompt_len};
    s.snapshots.clear();
  }
  out.id = s.id;
  out.prompt_tokens = s.prompt_len;
  out.cached_tokens = s.restored.position;
  if (sp.max_tokens == 0) return finish(s, FinishReason::length, std::move(out));
  auto next = s.sampler->next(r.logits.narrow(0, r.logits.size(0) - 1, 1));
  ++s.generated;
  ++totals_generated_;
  for (auto stop : sp.stop_ids)
    if (next.id == stop) return finish(s, FinishReason::stop, std::move(out));
  s.tokens.push_back(next.id);
  out.tokens.push_back(next);
  if (s.generated >= sp.max_tokens) return finish(s, FinishReason::length, std::move(out));
  if (s.request.on_output) s.request.on_output(out);
}

void Engine::finish(Sequence& s, FinishReason why, RequestOutput out) {
  s.finished = true;
  if (opt_.prefix_cache && why != FinishReason::cancelled && s.prompt_entry.entry && s.computed > s.prompt_len) {
    // The conversation so far (prompt + reply): a chat's next turn starts with it.
    std::vector<int64_t> fed(s.tokens.begin(), s.tokens.begin() + s.computed);
    std::map<int64_t, LayerStates> end;
    const auto& linear = runner_.linear_layers(s.level);
    if (has_linear(s.level)) end[s.computed] = paged_.copy_states(s.slot, linear);
    prefix(s.level).insert(fed, paged_.export_kv(s.blocks, s.computed, linear), std::move(end), s.prompt_entry);
  }
  out.id = s.id;
  out.finish = why;
  out.level = s.level;
  out.prompt_tokens = s.prompt_len;
  out.cached_tokens = s.restored.position;
  ++totals_finished_;
  if (s.request.on_output) s.request.on_output(out);
}

void Engine::update_stats() {
  std::lock_guard lk(mu_);
  auto& st = stats_;
  st.waiting = static_cast<int64_t>(scheduler_.waiting().size() + inbox_.size());
  st.running = static_cast<int64_t>(scheduler_.running().size());
  st.kv_blocks_used = pool_.used_blocks();
  st.kv_blocks_total = pool_.num_blocks();
  st.slots_used = pool_.used_slots();
  st.slots_total = pool_.num_slots();
  st.prompt_tokens = totals_prompt_;
  st.cached_tokens = totals_cached_;
  st.generated_tokens = totals_generated_;
  st.requests_finished = totals_finished_;
  st.prefix_hits = hits_;
  st.prefix_lookups = lookups_;
  st.prefix_cache_bytes = st.prefix_cache_entries = st.prefix_evictions = 0;
  for (auto& p : prefixes_) {
    st.prefix_cache_bytes += p.bytes();
    st.prefix_cache_entries += p.entries();
    st.prefix_evictions += p.evictions();
  }
  st.steps = steps_;
  st.state_bytes = paged_.state_bytes();
  st.decode_rows = decode_rows_;
  st.decode_steps = decode_steps_;
  st.graph_captures = runner_.graphs().captures();
  st.graph_replays = runner_.graphs().replays();
  st.level = level_;
  st.levels = runner_.num_levels();
  st.switches_up = switches_up_;
  st.switches_down = switches_down_;
  st.attention_layers = 0;
  for (bool lin : runner_.linear_layers(level_)) st.attention_layers += !lin;
  auto now = std::chrono::steady_clock::now();
  rate_window_.emplace_back(now, totals_generated_);
  while (rate_window_.size() > 2 && now - rate_window_.front().first > std::chrono::seconds(10)) rate_window_.pop_front();
  double dt = std::chrono::duration<double>(now - rate_window_.front().first).count();
  st.tokens_per_second = dt > 0 ? (totals_generated_ - rate_window_.front().second) / dt : 0.0;
}

void Engine::close() {
  std::lock_guard lk(mu_);
  accepting_ = false;
}

bool Engine::wait_idle(double timeout_seconds) const {
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  for (;;) {
    {
      std::lock_guard lk(mu_);
      if (inbox_.empty() && stats_.waiting == 0 && stats_.running == 0) return true;
    }
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

EngineStats Engine::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

void Engine::run_until_idle() {
  while (step()) {
  }
}

void Engine::fail_running(const std::string& why) {
  log::warn("engine step failed: {}; cancelling the {} running requests", why, scheduler_.running().size());
  for (auto& s : scheduler_.running())
    if (!s->finished) finish(*s, FinishReason::cancelled);
  scheduler_.retire([](const Sequence& s) { return s.finished; });
}

void Engine::start() {
  thread_ = std::thread([this] {
    for (;;) {
      bool busy = false;
      try {
        busy = step();
      } catch (const std::exception& e) {
        fail_running(e.what());
      }
      std::unique_lock lk(mu_);
      if (stop_ && !busy && inbox_.empty()) break;
      if (!busy)
        wake_.wait_for(lk, std::chrono::milliseconds(50),
                       [&] { return stop_ || cancel_all_ || !inbox_.empty() || !cancels_.empty(); });
    }
  });
}

void Engine::stop(bool drain) {
  {
    std::lock_guard lk(mu_);
    accepting_ = false;
    if (!drain) cancel_all_ = true;
    stop_ = true;
    wake_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace hyla::serve
