// `hyla report EVAL.json... --out report.md`: teacher and students side by side, as
// Markdown with SVG plots beside it (docs/eval.md); prints the summary table.
#include <cstdio>
#include <filesystem>

#include "command.h"
#include "hyla/eval/report.h"
#include "hyla/io/atomic_file.h"
#include "hyla/util/error.h"

namespace hyla::cli {
namespace {

struct ReportArgs {
  std::vector<std::string> inputs;
  std::string out = "report.md", title = "hyla evaluation report";
  bool quiet_table = false;
};

int run_report(const ReportArgs& a) {
  namespace fs = std::filesystem;
  std::vector<nlohmann::json> evals;
  for (auto& f : a.inputs) {
    HYLA_CHECK(fs::is_regular_file(f), "{}: evaluation file not found", f);
    try {
      evals.push_back(nlohmann::json::parse(io::read_text_file(f)));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: not valid JSON ({})", f, e.what());
    }
  }
  fs::path out(a.out);
  HYLA_CHECK(out.extension() == ".md", "--out {}: expected a Markdown file name ending in .md", a.out);
  auto r = eval::build_report(evals, a.inputs, out.stem().string(), a.title);
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  // Plots first, the Markdown that links them last: a reader never sees dangling links.
  for (auto& [name, svg] : r.svgs) io::write_text_atomic(out.parent_path() / name, svg);
  io::write_text_atomic(out, r.markdown);
  if (!a.quiet_table) std::printf("%s", r.summary_table.c_str());
  std::fprintf(stderr, "wrote %s and %zu plots\n", a.out.c_str(), r.svgs.size());
  return 0;
}

Register reg("report", "Markdown + SVG report comparing models from `hyla eval all` JSON files", [](CLI::App& app) {
  auto a = std::make_shared<ReportArgs>();
  app.add_option("evals", a->inputs, "JSON files written by `hyla eval all` (teacher first)")->required();
  app.add_option("-o,--out", a->out, "Markdown file; plots are written beside it")->capture_default_str();
  app.add_option("--title", a->title)->capture_default_str();
  app.add_flag("--no-table", a->quiet_table, "do not print the summary table");
  return [=]() { return run_report(*a); };
});

}  // namespace
}  // namespace hyla::cli
