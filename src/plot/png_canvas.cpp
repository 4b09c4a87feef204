#include <cairo.h>

#include <cmath>
#include <stdexcept>

#include "mlxd/plot/canvas.h"

namespace mlxd::plot {
namespace {

class png_canvas final : public canvas {
 public:
  png_canvas(std::string path, int width, int height)
      : path_(std::move(path)),
        surface_(cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height)),
        cr_(cairo_create(surface_)) {
    if (const cairo_status_t s = cairo_status(cr_); s != CAIRO_STATUS_SUCCESS) {
      cairo_destroy(cr_);
      cairo_surface_destroy(surface_);
      throw std::runtime_error("cannot create a " + std::to_string(width) + "x" + std::to_string(height) +
                               " image: " + cairo_status_to_string(s));
    }
    cairo_select_font_face(cr_, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_line_join(cr_, CAIRO_LINE_JOIN_ROUND);
  }
  ~png_canvas() override {
    cairo_destroy(cr_);
    cairo_surface_destroy(surface_);
  }
  png_canvas(const png_canvas&) = delete;
  png_canvas& operator=(const png_canvas&) = delete;

  void fill_rect(double x, double y, double w, double h, rgb fill) override {
    set(fill);
    cairo_rectangle(cr_, x, y, w, h);
    cairo_fill(cr_);
  }
  void line(double x0, double y0, double x1, double y1, rgb stroke, double width) override {
    polyline({{x0, y0}, {x1, y1}}, stroke, width);
  }
  void polyline(const std::vector<std::pair<double, double>>& points, rgb stroke, double width) override {
    if (points.empty()) return;
    set(stroke);
    cairo_set_line_width(cr_, width);
    cairo_move_to(cr_, points[0].first, points[0].second);
    for (size_t i = 1; i < points.size(); ++i) cairo_line_to(cr_, points[i].first, points[i].second);
    cairo_stroke(cr_);
  }
  void dot(double x, double y, double radius, rgb fill) override {
    set(fill);
    cairo_arc(cr_, x, y, radius, 0, 2 * M_PI);
    cairo_fill(cr_);
  }
  void text(double x, double y, const std::string& utf8, double size, align a, rgb fill,
            bool vertical) override {
    set(fill);
    cairo_set_font_size(cr_, size);
    cairo_text_extents_t ext;
    cairo_text_extents(cr_, utf8.c_str(), &ext);
    const double shift = a == align::start ? 0 : a == align::middle ? ext.x_advance / 2 : ext.x_advance;
    cairo_save(cr_);
    cairo_translate(cr_, x, y);
    if (vertical) cairo_rotate(cr_, -M_PI / 2);
    cairo_move_to(cr_, -shift, 0);
    cairo_show_text(cr_, utf8.c_str());
    cairo_restore(cr_);
  }
  void save() override {
    cairo_surface_flush(surface_);
    const cairo_status_t s = cairo_surface_write_to_png(surface_, path_.c_str());
    if (s != CAIRO_STATUS_SUCCESS)
      throw std::runtime_error("cannot write " + path_ + ": " + cairo_status_to_string(s));
  }

 private:
  void set(rgb c) { cairo_set_source_rgb(cr_, c.r / 255.0, c.g / 255.0, c.b / 255.0); }

  std::string path_;
  cairo_surface_t* surface_;
  cairo_t* cr_;
};

}  // namespace

std::unique_ptr<canvas> make_png_canvas(const std::string& path, int width, int height) {
  return std::make_unique<png_canvas>(path, width, height);
}

}  // namespace mlxd::plot
