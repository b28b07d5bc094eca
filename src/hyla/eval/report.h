// `hyla report`: teacher and students side by side (eval.md) from the JSON documents
// `hyla eval all` writes — one Markdown summary table (perplexity, KL, top-1 agreement,
// recall per task averaged over lengths, decode-cache memory), a recall-by-length table,
// and SVG bar charts for each of these.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace hyla::eval {

struct Report {
  std::string markdown;
  std::string summary_table;  // the Markdown summary table alone (what `make demo` prints)
  std::vector<std::pair<std::string, std::string>> svgs;  // file name (relative), contents
};

// `evals[i]` was read from `sources[i]` (named in errors). SVG files are named
// `<svg_stem>-<what>.svg` and linked relatively from the Markdown.
Report build_report(const std::vector<nlohmann::json>& evals, const std::vector<std::string>& sources,
                    const std::string& svg_stem, const std::string& title = "hyla evaluation report");

// Checks that `j` is a `hyla eval all` document; errors name `source`.
void validate_eval_json(const nlohmann::json& j, const std::string& source);

}  // namespace hyla::eval
