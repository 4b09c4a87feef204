// The picture `mlxd plot` draws from a run log: a loss panel (training loss as a line, validation loss as
// points joined by a line) above a learning-rate panel, sharing the step axis, with ticks, labels, a legend
// and a title. The layout is computed once and drawn on any canvas (SVG or PNG).
#pragma once

#include <string>
#include <vector>

#include "mlxd/plot/canvas.h"
#include "mlxd/plot/run_log.h"

namespace mlxd::plot {

inline constexpr rgb train_colour{31, 119, 180};  // blue
inline constexpr rgb val_colour{255, 127, 14};    // orange
inline constexpr rgb lr_colour{44, 160, 44};      // green

// An axis covering [lo, hi] with ticks at round values (1, 2 or 5 times a power of ten apart).
struct axis {
  double lo = 0, hi = 1;
  std::vector<double> ticks;
};
// The tightest round-ticked axis around [min, max], with at most about max_ticks ticks; an empty or single
// value range is widened around it.
axis nice_axis(double min, double max, int max_ticks = 6);
// A tick's text: the shortest %g form, with values within rounding of zero printed as "0".
std::string tick_label(double value, const axis& a);

// A plot area in pixels and the data ranges it shows.
struct panel {
  double left = 0, top = 0, width = 0, height = 0;
  axis x, y;
  bool has_data = false;
  double px(double v) const { return left + (v - x.lo) / (x.hi - x.lo) * width; }
  double py(double v) const { return top + height - (v - y.lo) / (y.hi - y.lo) * height; }
};
struct curves_layout {
  panel loss, lr;
};
// Throws std::invalid_argument when the log has no point to plot, or the size is under 200x200.
curves_layout layout_curves(const run_log& log, int width, int height);

struct plot_options {
  std::string title = "training run";
  int width = 900, height = 700;
};
void draw_curves(const run_log& log, canvas& c, const plot_options& options);
// Draws into `path`: SVG for a .svg name, PNG for .png; any other extension throws std::invalid_argument.
void plot_run(const run_log& log, const std::string& path, const plot_options& options);

}  // namespace mlxd::plot
