// A small SVG grouped-bar-chart writer: categories along x (layers, models, lengths),
// one bar per series in each category, linear or log y, a legend; categories in
// `highlight` get a bold label and a shaded background (e.g. the layers a selection keeps).
#pragma once
#include <set>
#include <string>
#include <vector>

namespace hyla::eval {

struct BarSeries {
  std::string name;
  std::vector<double> values;  // one per category; NaN draws no bar
};

struct BarOptions {
  std::string title, x_label, y_label;
  bool log_y = false;
  std::set<size_t> highlight;  // category indices
  std::string highlight_note;  // legend text for the shading, e.g. "kept as attention"
  int width = 900, height = 480;
};

std::string render_bar_svg(const std::vector<std::string>& categories, const std::vector<BarSeries>& series,
                           const BarOptions& opt);

}  // namespace hyla::eval
