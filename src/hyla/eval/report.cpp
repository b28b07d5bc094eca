#include "hyla/eval/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "hyla/eval/svg_bars.h"
#include "hyla/util/error.h"

namespace hyla::eval {
namespace {

const double kNaN = std::nan("");

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  return u == 0 ? fmt::format("{:.0f} {}", b, units[u]) : fmt::format("{:.1f} {}", b, units[u]);
}

double text_value(const nlohmann::json& e, const char* key) {
  if (!e.contains("text") || !e["text"].contains(key) || !e["text"][key].is_number()) return kNaN;
  return e["text"][key].get<double>();
}

// accuracy of `task` at `length`, NaN if not measured.
double recall_value(const nlohmann::json& e, const std::string& task, int64_t length) {
  for (auto& r : e["recall"])
    if (r.value("task", "") == task && r.value("length", int64_t(-1)) == length) return r.value("accuracy", kNaN);
  return kNaN;
}

std::string cell(double v, const char* f) { return std::isfinite(v) ? fmt::format(fmt::runtime(f), v) : "–"; }

struct Axes {
  std::vector<std::string> tasks;  // in first-seen order
  std::vector<int64_t> lengths;    // ascending
};

Axes recall_axes(const std::vector<nlohmann::json>& evals) {
  Axes a;
  std::set<int64_t> lengths;
  for (auto& e : evals)
    for (auto& r : e["recall"]) {
      auto t = r.value("task", "");
      if (std::find(a.tasks.begin(), a.tasks.end(), t) == a.tasks.end()) a.tasks.push_back(t);
      lengths.insert(r.value("length", int64_t(0)));
    }
  a.lengths.assign(lengths.begin(), lengths.end());
  return a;
}

double mean_over_lengths(const nlohmann::json& e, const std::string& task, const std::vector<int64_t>& lengths) {
  double s = 0;
  int n = 0;
  for (auto L : lengths) {
    double v = recall_value(e, task, L);
    if (std::isfinite(v)) s += v, ++n;
  }
  return n ? s / n : kNaN;
}

constexpr int64_t kCacheContext = 32768;

std::string summary_table(const std::vector<nlohmann::json>& evals, const Axes& ax) {
  std::string t = "| model | layers | ppl | KL to teacher | top-1 agree |";
  std::string sep = "| --- | --- | ---: | ---: | ---: |";
  for (auto& task : ax.tasks) t += fmt::format(" {} (mean) |", task), sep += " ---: |";
  t += " decode cache @32K |\n" + sep + " ---: |\n";
  for (auto& e : evals) {
    t += fmt::format("| {} | {} | {} | {} | {} |", e["name"].get<std::string>(), e.value("layer_kinds", ""),
                     cell(text_value(e, "ppl"), "{:.2f}"), cell(text_value(e, "kl"), "{:.4f}"),
                     cell(text_value(e, "top1_agreement"), "{:.3f}"));
    for (auto& task : ax.tasks) t += " " + cell(mean_over_lengths(e, task, ax.lengths), "{:.3f}") + " |";
    const auto key = std::to_string(kCacheContext);
    double bytes = e["cache"]["decode_cache_bytes"].value(key, kNaN);
    double full = e["cache"].value("all_attention_decode_cache_bytes", nlohmann::json::object()).value(key, kNaN);
    t += fmt::format(" {} ({:.0f}%) |\n", human_bytes(bytes), 100.0 * bytes / full);
  }
  return t;
}

std::string recall_table(const std::vector<nlohmann::json>& evals, const Axes& ax) {
  std::string t = "| model | task |", sep = "| --- | --- |";
  for (auto L : ax.lengths) t += fmt::format(" {} |", L), sep += " ---: |";
  t += "\n" + sep + "\n";
  for (auto& task : ax.tasks)
    for (auto& e : evals) {
      t += fmt::format("| {} | {} |", e["name"].get<std::string>(), task);
      for (auto L : ax.lengths) t += " " + cell(recall_value(e, task, L), "{:.3f}") + " |";
      t += "\n";
    }
  return t;
}

}  // namespace

void validate_eval_json(const nlohmann::json& j, const std::string& source) {
  HYLA_CHECK(j.is_object() && j.value("format", "") == "hyla-eval",
             "{}: not a `hyla eval all` result (expected \"format\": \"hyla-eval\")", source);
  for (const char* k : {"name", "recall", "cache"}) HYLA_CHECK(j.contains(k), "{}: missing field \"{}\"", source, k);
  HYLA_CHECK(j["name"].is_string(), "{}: field \"name\" must be a string", source);
  HYLA_CHECK(j["recall"].is_array(), "{}: field \"recall\" must be a list", source);
  HYLA_CHECK(j["cache"].contains("decode_cache_bytes"), "{}: field \"cache\" lacks \"decode_cache_bytes\"", source);
}

Report build_report(const std::vector<nlohmann::json>& evals, const std::vector<std::string>& sources,
                    const std::string& stem, const std::string& title) {
  HYLA_CHECK(!evals.empty(), "report: no evaluation files given");
  for (size_t i = 0; i < evals.size(); ++i) validate_eval_json(evals[i], sources.at(i));
  auto ax = recall_axes(evals);
  Report r;
  std::vector<std::string> names;
  for (auto& e : evals) names.push_back(e["name"].get<std::string>());
  auto bars_of = [&](const char* key) {
    BarSeries s{key, {}};
    for (auto& e : evals) s.values.push_back(text_value(e, key));
    return std::vector<BarSeries>{s};
  };
  auto add_svg = [&](const std::string& what, std::string svg, const std::string& caption) {
    std::string file = stem + "-" + what + ".svg";
    r.svgs.emplace_back(file, std::move(svg));
    r.markdown += fmt::format("![{}]({})\n\n", caption, file);
  };
  r.summary_table = summary_table(evals, ax);
  r.markdown = fmt::format("# {}\n\n", title);
  r.markdown += "Perplexity and KL(teacher ‖ student) per token on held-out text (same windows for every model); "
                "recall accuracy averaged over the lengths below; decode-cache memory per sequence at 32K tokens "
                "(bf16 KV + fp32 recurrent state; in brackets: share of the all-attention cache).\n\n";
  r.markdown += r.summary_table + "\n## Recall by length\n\n" + recall_table(evals, ax) + "\n## Plots\n\n";
  const auto& first_text = evals.front().contains("text") ? evals.front()["text"] : nlohmann::json::object();
  bool have_kl = false;
  for (auto& e : evals) have_kl |= std::isfinite(text_value(e, "kl"));
  add_svg("ppl", render_bar_svg(names, bars_of("ppl"), {"perplexity on " + first_text.value("file", "held-out text"),
                                                         "model", "perplexity", true}),
          "perplexity");
  if (have_kl)
    add_svg("kl", render_bar_svg(names, bars_of("kl"), {"mean KL(teacher || student) per token", "model", "nats"}),
            "KL to the teacher");
  std::vector<std::string> length_names;
  for (auto L : ax.lengths) length_names.push_back(std::to_string(L));
  for (auto& task : ax.tasks) {
    std::vector<BarSeries> series;
    for (auto& e : evals) {
      BarSeries s{e["name"].get<std::string>(), {}};
      for (auto L : ax.lengths) s.values.push_back(recall_value(e, task, L));
      series.push_back(s);
    }
    add_svg("recall-" + task, render_bar_svg(length_names, series, {task + " accuracy by length", "length (tokens)",
                                                                    "accuracy"}),
            task + " by length");
  }
  std::vector<std::string> ctx_names;
  std::vector<BarSeries> cache;
  std::vector<std::string> ctx_keys;
  for (auto& [k, v] : evals.front()["cache"]["decode_cache_bytes"].items()) ctx_keys.push_back(k);
  std::sort(ctx_keys.begin(), ctx_keys.end(), [](auto& a, auto& b) { return std::stoll(a) < std::stoll(b); });
  for (auto& k : ctx_keys) ctx_names.push_back(std::to_string(std::stoll(k) / 1024) + "K");
  for (auto& e : evals) {
    BarSeries s{e["name"].get<std::string>(), {}};
    for (auto& k : ctx_keys) s.values.push_back(e["cache"]["decode_cache_bytes"].value(k, kNaN) / (1024.0 * 1024.0));
    cache.push_back(s);
  }
  add_svg("cache", render_bar_svg(ctx_names, cache, {"decode-cache memory per sequence", "context", "MiB", true}),
          "decode-cache memory");
  return r;
}

}  // namespace hyla::eval
