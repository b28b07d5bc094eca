// A small SVG line-chart writer for training curves (`hyla plot`): several named series
// of (x, y) points, linear x, linear or log y, axes with ticks, a legend.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace hyla::eval {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
};

struct PlotOptions {
  std::string title, x_label = "step", y_label = "loss";
  bool log_y = false;
  int width = 900, height = 520;
};

std::string render_svg(const std::vector<Series>& series, const PlotOptions& opt);

}  // namespace hyla::eval
