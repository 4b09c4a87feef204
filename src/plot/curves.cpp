#include "mlxd/plot/curves.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

namespace mlxd::plot {
namespace {

constexpr rgb black{0, 0, 0}, grey{90, 90, 90}, grid_grey{225, 225, 225}, white{255, 255, 255};
constexpr double margin_left = 85, margin_right = 30, margin_top = 60, gap = 75, margin_bottom = 55;

struct range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(const std::vector<double>& v) {
    for (double x : v) lo = std::min(lo, x), hi = std::max(hi, x);
  }
  bool empty() const { return lo > hi; }
};

std::vector<std::pair<double, double>> points(const panel& p, const series& s) {
  std::vector<std::pair<double, double>> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) out.emplace_back(p.px(s.x[i]), p.py(s.y[i]));
  return out;
}

void draw_frame(canvas& c, const panel& p, const std::string& y_title, const std::string& x_title) {
  for (double t : p.x.ticks) {
    c.line(p.px(t), p.top, p.px(t), p.top + p.height, grid_grey, 1);
    c.line(p.px(t), p.top + p.height, p.px(t), p.top + p.height + 5, black, 1);
    c.text(p.px(t), p.top + p.height + 19, tick_label(t, p.x), 12, align::middle, black);
  }
  for (double t : p.y.ticks) {
    c.line(p.left, p.py(t), p.left + p.width, p.py(t), grid_grey, 1);
    c.line(p.left - 5, p.py(t), p.left, p.py(t), black, 1);
    c.text(p.left - 8, p.py(t) + 4, tick_label(t, p.y), 12, align::end, black);
  }
  c.line(p.left, p.top, p.left, p.top + p.height, black, 1);
  c.line(p.left, p.top + p.height, p.left + p.width, p.top + p.height, black, 1);
  c.text(p.left - 62, p.top + p.height / 2, y_title, 14, align::middle, black, true);
  c.text(p.left + p.width / 2, p.top + p.height + 40, x_title, 14, align::middle, black);
  if (!p.has_data) c.text(p.left + p.width / 2, p.top + p.height / 2, "no values", 14, align::middle, grey);
}

}  // namespace

axis nice_axis(double min, double max, int max_ticks) {
  if (!std::isfinite(min) || !std::isfinite(max) || min > max || max_ticks < 2)
    throw std::invalid_argument("[nice_axis] bad range or tick count");
  if (max - min <= std::abs(max) * 1e-12) {  // a single value: widen around it
    const double d = min == 0 ? 1 : std::abs(min) * 0.1;
    min -= d, max += d;
  }
  const double raw = (max - min) / (max_ticks - 1);
  const double p10 = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * p10;
  for (double m : {1.0, 2.0, 5.0})
    if (m * p10 >= raw * (1 - 1e-9)) {
      step = m * p10;
      break;
    }
  axis a;
  const double first = std::floor(min / step + 1e-9), last = std::ceil(max / step - 1e-9);
  a.lo = first * step;
  a.hi = last * step;
  for (double k = first; k <= last + 0.5; ++k) a.ticks.push_back(k * step);
  return a;
}

std::string tick_label(double value, const axis& a) {
  const double step = a.ticks.size() > 1 ? a.ticks[1] - a.ticks[0] : a.hi - a.lo;
  if (std::abs(value) < step * 1e-9) return "0";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", value);
  return buf;
}

curves_layout layout_curves(const run_log& log, int width, int height) {
  if (width < 200 || height < 200)
    throw std::invalid_argument("the picture must be at least 200x200 pixels, got " + std::to_string(width) +
                                "x" + std::to_string(height));
  range steps, losses, lrs;
  for (const series* s : {&log.loss, &log.val_loss, &log.lr}) steps.add(s->x);
  losses.add(log.loss.y);
  losses.add(log.val_loss.y);
  lrs.add(log.lr.y);
  if (steps.empty())
    throw std::invalid_argument("nothing to plot: no line has a step with loss, val_loss or lr");
  curves_layout l;
  const double inner_w = width - margin_left - margin_right;
  const double inner_h = height - margin_top - gap - margin_bottom;
  const axis x = nice_axis(steps.lo, steps.hi, 8);
  l.loss = {margin_left, margin_top, inner_w, inner_h * 0.62, x, {}, !losses.empty()};
  l.lr = {margin_left, margin_top + inner_h * 0.62 + gap, inner_w, inner_h * 0.38, x, {}, !lrs.empty()};
  l.loss.y = losses.empty() ? nice_axis(0, 1) : nice_axis(losses.lo, losses.hi, 6);
  l.lr.y = lrs.empty() ? nice_axis(0, 1) : nice_axis(lrs.lo, lrs.hi, 4);
  return l;
}

void draw_curves(const run_log& log, canvas& c, const plot_options& o) {
  const curves_layout l = layout_curves(log, o.width, o.height);
  c.fill_rect(0, 0, o.width, o.height, white);
  c.text(o.width / 2.0, 28, o.title, 18, align::middle, black);
  if (log.n_skipped > 0)
    c.text(o.width / 2.0, 46,
           std::to_string(log.n_skipped) + (log.n_skipped == 1 ? " skipped step" : " skipped steps") +
               " not shown",
           12, align::middle, grey);
  draw_frame(c, l.loss, "loss", "step");
  draw_frame(c, l.lr, "learning rate", "step");
  c.polyline(points(l.loss, log.loss), train_colour, 2.5);
  if (log.val_loss.size() > 0) {
    const auto val = points(l.loss, log.val_loss);
    c.polyline(val, val_colour, 1.5);
    for (const auto& [x, y] : val) c.dot(x, y, 3.5, val_colour);
  }
  c.polyline(points(l.lr, log.lr), lr_colour, 2.5);
  // Legend in the loss panel's top right corner, one row per curve present.
  double y = l.loss.top + 18;
  const double x = l.loss.left + l.loss.width - 120;
  if (log.loss.size() > 0) {
    c.line(x, y - 4, x + 24, y - 4, train_colour, 2.5);
    c.text(x + 30, y, "train", 12, align::start, black);
    y += 18;
  }
  if (log.val_loss.size() > 0) {
    c.line(x, y - 4, x + 24, y - 4, val_colour, 1.5);
    c.dot(x + 12, y - 4, 3.5, val_colour);
    c.text(x + 30, y, "validation", 12, align::start, black);
  }
}

void plot_run(const run_log& log, const std::string& path, const plot_options& o) {
  const auto dot = path.find_last_of('.');
  std::string ext = dot == std::string::npos ? "" : path.substr(dot);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
  if (ext != ".svg" && ext != ".png")
    throw std::invalid_argument("cannot tell the format of " + path + ": name it .svg or .png");
  auto c =
      ext == ".svg" ? make_svg_canvas(path, o.width, o.height) : make_png_canvas(path, o.width, o.height);
  draw_curves(log, *c, o);
  c->save();
}

}  // namespace mlxd::plot
