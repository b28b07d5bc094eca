#include "hyla/eval/svg_bars.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace hyla::eval {
namespace {

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
  return o;
}

double nice_step(double lo, double hi, int n) {
  double raw = (hi - lo) / std::max(n, 1), p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

}  // namespace

std::string render_bar_svg(const std::vector<std::string>& cats, const std::vector<BarSeries>& series,
                           const BarOptions& o) {
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"};
  auto ty = [&](double y) { return o.log_y ? std::log10(std::max(y, 1e-12)) : y; };
  double y0 = o.log_y ? std::numeric_limits<double>::infinity() : 0.0, y1 = -std::numeric_limits<double>::infinity();
  for (auto& s : series)
    for (double v : s.values)
      if (std::isfinite(v)) y0 = std::min(y0, ty(v)), y1 = std::max(y1, ty(v));
  if (!std::isfinite(y1)) y0 = 0, y1 = 1;
  if (o.log_y) y0 = std::floor(y0);
  y0 = std::min(y0, y1);
  if (y1 <= y0) y1 = y0 + 1;
  y1 += 0.05 * (y1 - y0);
  const double L = 70, R = o.width - 20, T = 40, B = o.height - 70;
  const double slot = (R - L) / std::max<size_t>(cats.size(), 1);
  const double bar = 0.8 * slot / std::max<size_t>(series.size(), 1);
  auto py = [&](double v) { return B - (ty(v) - y0) / (y1 - y0) * (B - T); };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" "
      "font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">{}</text>\n",
      o.width, o.height, o.width / 2, escape(o.title));
  for (size_t c : o.highlight)
    if (c < cats.size())
      svg += fmt::format("<rect x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" fill=\"#fff3c4\"/>\n",
                         L + c * slot, T, slot, B - T);
  double ys = nice_step(y0, y1, 6);
  for (double y = std::ceil(y0 / ys) * ys; y <= y1 + 1e-9; y += ys) {
    double yy = B - (y - y0) / (y1 - y0) * (B - T);
    svg += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>"
                       "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.3g}</text>\n",
                       L, yy, R, yy, L - 6, yy + 4, o.log_y ? std::pow(10.0, y) : y);
  }
  double base = py(o.log_y ? std::pow(10.0, y0) : 0.0);
  for (size_t s = 0; s < series.size(); ++s)
    for (size_t c = 0; c < cats.size() && c < series[s].values.size(); ++c) {
      double v = series[s].values[c];
      if (!std::isfinite(v)) continue;
      double x = L + c * slot + 0.1 * slot + s * bar, top = std::min(py(v), base), h = std::abs(base - py(v));
      svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">"
                         "<title>{}: {:.6g}</title></rect>\n",
                         x, top, std::max(bar - 1, 1.0), h, colors[s % 7], escape(series[s].name + " " + cats[c]), v);
    }
  for (size_t c = 0; c < cats.size(); ++c)
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\"{}>{}</text>\n", L + (c + 0.5) * slot,
                       B + 16, o.highlight.count(c) ? " font-weight=\"bold\"" : "", escape(cats[c]));
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n", L, T,
                     R - L, B - T);
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", (L + R) / 2, B + 36,
                     escape(o.x_label));
  svg += fmt::format("<text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">{}</text>\n",
                     (T + B) / 2, (T + B) / 2, escape(o.y_label));
  double lx = L + 10, ly = o.height - 18;
  for (size_t s = 0; s < series.size() && series.size() > 1; ++s, lx += 160)
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}"
                       "</text>\n", lx, ly - 10, colors[s % 7], lx + 16, ly, escape(series[s].name));
  if (!o.highlight.empty() && !o.highlight_note.empty())
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"#fff3c4\" stroke=\"#ccc\"/>"
                       "<text x=\"{}\" y=\"{}\">{}</text>\n", lx, ly - 10, lx + 16, ly, escape(o.highlight_note));
  return svg + "</svg>\n";
}

}  // namespace hyla::eval
