// `hyla plot RUN_DIR... --out curves.svg`: training and validation loss curves from
// runs' metrics.jsonl, as an SVG a browser or the file viewer shows.
#include <cstdio>
#include <fstream>

#include "command.h"
#include "hyla/eval/svg_plot.h"
#include "hyla/io/atomic_file.h"
#include "hyla/util/error.h"

namespace hyla::cli {
namespace {

struct PlotArgs {
  std::vector<std::string> runs;
  std::string out = "curves.svg", metric = "loss", x = "step";
  bool log_y = false;
};

int run_plot(const PlotArgs& a) {
  std::vector<eval::Series> series;
  for (auto& run : a.runs) {
    std::filesystem::path f = run;
    if (std::filesystem::is_directory(f)) f /= "metrics.jsonl";
    std::ifstream in(f);
    HYLA_CHECK(in.good(), "{}: cannot open (expected a run directory with metrics.jsonl)", f.string());
    eval::Series train{std::filesystem::path(run).filename().string() + " " + a.metric, {}};
    eval::Series val{std::filesystem::path(run).filename().string() + " val_" + a.metric, {}};
    std::string line;
    int64_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.empty()) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception&) {
        fail("{}:{}: not a JSON line", f.string(), n);
      }
      if (!j.contains(a.x)) continue;
      double x = j[a.x].get<double>();
      if (j.contains(a.metric)) train.points.emplace_back(x, j[a.metric].get<double>());
      if (j.contains("val_" + a.metric)) val.points.emplace_back(x, j["val_" + a.metric].get<double>());
    }
    HYLA_CHECK(!train.points.empty() || !val.points.empty(), "{}: no \"{}\" values", f.string(), a.metric);
    if (!train.points.empty()) series.push_back(train);
    if (!val.points.empty()) series.push_back(val);
  }
  eval::PlotOptions o;
  o.title = "hyla training curves";
  o.x_label = a.x;
  o.y_label = a.metric;
  o.log_y = a.log_y;
  io::write_text_atomic(a.out, eval::render_svg(series, o));
  std::printf("wrote %s (%zu series)\n", a.out.c_str(), series.size());
  return 0;
}

Register reg("plot", "render loss curves of runs (metrics.jsonl) to SVG", [](CLI::App& app) {
  auto a = std::make_shared<PlotArgs>();
  app.add_option("runs", a->runs, "run directories or metrics.jsonl files")->required();
  app.add_option("-o,--out", a->out, "output .svg")->capture_default_str();
  app.add_option("--metric", a->metric, "metric to plot (its val_ twin is added)")->capture_default_str();
  app.add_option("--x", a->x, "x axis: step or tokens")->capture_default_str();
  app.add_flag("--log-y", a->log_y, "logarithmic y axis");
  return [=]() { return run_plot(*a); };
});

}  // namespace
}  // namespace hyla::cli
