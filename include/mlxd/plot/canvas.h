// A minimal 2-d drawing surface (pixels, origin top left, y down) that the curve layout draws on, with an SVG
// backend written by hand (text stays text, so the file is searchable and testable) and a PNG backend drawn
// with cairo.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mlxd::plot {

struct rgb {
  unsigned char r = 0, g = 0, b = 0;
};
enum class align { start, middle, end };  // where a text's anchor point sits along its baseline

class canvas {
 public:
  virtual ~canvas() = default;
  virtual void fill_rect(double x, double y, double w, double h, rgb fill) = 0;
  virtual void line(double x0, double y0, double x1, double y1, rgb stroke, double width) = 0;
  virtual void polyline(const std::vector<std::pair<double, double>>& points, rgb stroke, double width) = 0;
  virtual void dot(double x, double y, double radius, rgb fill) = 0;
  // Text with its baseline through (x, y); `vertical` turns it a quarter anticlockwise about that point.
  virtual void text(double x, double y, const std::string& utf8, double size, align a, rgb fill,
                    bool vertical = false) = 0;
  // Writes the file. Throws std::runtime_error naming the path when it cannot be written.
  virtual void save() = 0;
};

std::unique_ptr<canvas> make_svg_canvas(const std::string& path, int width, int height);
std::unique_ptr<canvas> make_png_canvas(const std::string& path, int width, int height);

}  // namespace mlxd::plot
