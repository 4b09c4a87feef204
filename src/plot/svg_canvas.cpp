#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "mlxd/plot/canvas.h"

namespace mlxd::plot {
namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string colour(rgb c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", c.r, c.g, c.b);
  return buf;
}

class svg_canvas final : public canvas {
 public:
  svg_canvas(std::string path, int width, int height) : path_(std::move(path)) {
    body_.precision(6);
    body_ << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
          << "\" viewBox=\"0 0 " << width << " " << height << "\" font-family=\"DejaVu Sans, sans-serif\">\n";
  }
  void fill_rect(double x, double y, double w, double h, rgb fill) override {
    body_ << "<rect x=\"" << x << "\" y=\"" << y << "\" width=\"" << w << "\" height=\"" << h << "\" fill=\""
          << colour(fill) << "\"/>\n";
  }
  void line(double x0, double y0, double x1, double y1, rgb stroke, double width) override {
    body_ << "<line x1=\"" << x0 << "\" y1=\"" << y0 << "\" x2=\"" << x1 << "\" y2=\"" << y1 << "\" stroke=\""
          << colour(stroke) << "\" stroke-width=\"" << width << "\"/>\n";
  }
  void polyline(const std::vector<std::pair<double, double>>& points, rgb stroke, double width) override {
    body_ << "<polyline fill=\"none\" stroke=\"" << colour(stroke) << "\" stroke-width=\"" << width
          << "\" stroke-linejoin=\"round\" points=\"";
    for (size_t i = 0; i < points.size(); ++i)
      body_ << (i ? " " : "") << points[i].first << "," << points[i].second;
    body_ << "\"/>\n";
  }
  void dot(double x, double y, double radius, rgb fill) override {
    body_ << "<circle cx=\"" << x << "\" cy=\"" << y << "\" r=\"" << radius << "\" fill=\"" << colour(fill)
          << "\"/>\n";
  }
  void text(double x, double y, const std::string& utf8, double size, align a, rgb fill,
            bool vertical) override {
    static const char* anchors[] = {"start", "middle", "end"};
    body_ << "<text x=\"" << x << "\" y=\"" << y << "\" font-size=\"" << size << "\" fill=\"" << colour(fill)
          << "\" text-anchor=\"" << anchors[static_cast<int>(a)] << "\"";
    if (vertical) body_ << " transform=\"rotate(-90 " << x << " " << y << ")\"";
    body_ << ">" << escape(utf8) << "</text>\n";
  }
  void save() override {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << body_.str() << "</svg>\n";
    out.flush();
    if (!out) throw std::runtime_error("cannot write " + path_);
  }

 private:
  std::string path_;
  std::ostringstream body_;
};

}  // namespace

std::unique_ptr<canvas> make_svg_canvas(const std::string& path, int width, int height) {
  return std::make_unique<svg_canvas>(path, width, height);
}

}  // namespace mlxd::plot
