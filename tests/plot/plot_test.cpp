// The run-log parser, the axis ticks, and the SVG and PNG pictures of a known log.
#include <cairo.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "mlxd/plot/curves.h"

namespace mlxd::plot {
namespace {

const std::string run_path = std::string(MLXD_PLOT_DATA) + "/run.jsonl";

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("mlxd_plot_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

std::string parse_error(const std::string& text) {
  std::istringstream in(text);
  try {
    parse_run_log(in, "log.jsonl");
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

TEST(run_log, extracts_the_series_of_the_committed_log) {
  const run_log log = read_run_log(run_path);
  ASSERT_EQ(log.loss.size(), 19u);  // steps 1..20 but the skipped step 9
  EXPECT_EQ(log.loss.x[0], 1);
  EXPECT_DOUBLE_EQ(log.loss.y[0], 11.2662);
  EXPECT_EQ(log.loss.x[8], 10);
  EXPECT_DOUBLE_EQ(log.loss.y.back(), 2.8619);
  EXPECT_EQ(log.val_loss.x, (std::vector<double>{5, 10, 15, 20}));
  EXPECT_DOUBLE_EQ(log.val_loss.y[1], 5.3083);
  ASSERT_EQ(log.lr.size(), 19u);
  EXPECT_DOUBLE_EQ(log.lr.y[4], 3e-4);
  EXPECT_EQ(log.n_skipped, 1);
}

TEST(run_log, ignores_unknown_keys_nulls_and_lines_without_a_step) {
  std::istringstream in(
      "{\"step\":1,\"loss\":2,\"extra\":[1,2]}\n\n{\"epoch\":3}\n{\"step\":2,\"loss\":null,\"lr\":0.5}\n");
  const run_log log = parse_run_log(in, "x");
  EXPECT_EQ(log.loss.x, (std::vector<double>{1}));
  EXPECT_EQ(log.lr.x, (std::vector<double>{2}));
  EXPECT_EQ(log.val_loss.size(), 0u);
}

TEST(run_log, errors_name_the_file_and_line) {
  EXPECT_NE(parse_error("{\"step\":1,\"loss\":2}\n{\"step\":2,\"loss\":\n").find("log.jsonl:2: invalid JSON"),
            std::string::npos);
  EXPECT_NE(parse_error("\n[1,2]\n").find("log.jsonl:2: expected a JSON object, got array"),
            std::string::npos);
  EXPECT_NE(
      parse_error("{\"step\":1,\"loss\":\"low\"}").find("log.jsonl:1: \"loss\" is \"low\", not a number"),
      std::string::npos);
  EXPECT_THROW(read_run_log("/no/such/run.jsonl"), std::runtime_error);
}

TEST(axis, ticks_are_round_and_cover_the_range) {
  const axis a = nice_axis(0.13, 0.91, 6);
  EXPECT_DOUBLE_EQ(a.lo, 0.0);
  EXPECT_DOUBLE_EQ(a.hi, 1.0);
  ASSERT_EQ(a.ticks.size(), 6u);
  EXPECT_EQ(tick_label(a.ticks[3], a), "0.6");
  const axis s = nice_axis(1, 20, 8);  // steps: 0, 5, .., 20
  EXPECT_EQ(s.ticks, (std::vector<double>{0, 5, 10, 15, 20}));
  const axis lr = nice_axis(6e-6, 3e-4, 4);
  EXPECT_EQ(tick_label(lr.ticks[1], lr), "0.0001");
  EXPECT_EQ(tick_label(lr.ticks[0], lr), "0");
  const axis one = nice_axis(2.5, 2.5);  // a single value is widened around it
  EXPECT_LT(one.lo, 2.5);
  EXPECT_GT(one.hi, 2.5);
  EXPECT_THROW(nice_axis(1, 0), std::invalid_argument);
}

// Open and close tags balance, attributes are quoted, and text holds no raw '<' or bare '&'.
void expect_well_formed(const std::string& xml) {
  std::vector<std::string> open;
  size_t i = xml.find("<svg");
  ASSERT_NE(i, std::string::npos);
  while ((i = xml.find('<', i)) != std::string::npos) {
    const size_t end = xml.find('>', i);
    ASSERT_NE(end, std::string::npos);
    const std::string tag = xml.substr(i + 1, end - i - 1);
    const std::string name = tag.substr(tag[0] == '/', tag.find_first_of(" />", 1) - (tag[0] == '/'));
    EXPECT_EQ(std::count(tag.begin(), tag.end(), '"') % 2, 0) << tag;
    if (tag[0] == '/') {
      ASSERT_FALSE(open.empty()) << tag;
      EXPECT_EQ(open.back(), name);
      open.pop_back();
    } else if (tag.back() != '/') {
      open.push_back(name);
    }
    const size_t next = xml.find('<', end);
    const std::string text = xml.substr(end + 1, next == std::string::npos ? 0 : next - end - 1);
    for (size_t a = text.find('&'); a != std::string::npos; a = text.find('&', a + 1))
      EXPECT_TRUE(std::regex_search(text.substr(a), std::regex("^&(amp|lt|gt|quot);"))) << text;
    i = end;
  }
  EXPECT_TRUE(open.empty());
}

std::vector<size_t> polyline_point_counts(const std::string& svg) {
  std::vector<size_t> counts;
  const std::regex re("<polyline[^>]* points=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it) {
    const std::string pts = (*it)[1];
    counts.push_back(pts.empty() ? 0 : std::count(pts.begin(), pts.end(), ' ') + 1);
  }
  return counts;
}

TEST(curves, svg_has_one_polyline_per_curve_and_the_labels) {
  const run_log log = read_run_log(run_path);
  const std::string path = temp_path("curves.svg");
  plot_run(log, path, {.title = "tiny & <run>", .width = 900, .height = 700});
  const std::string svg = read_all(path);
  std::filesystem::remove(path);
  expect_well_formed(svg);
  EXPECT_EQ(polyline_point_counts(svg), (std::vector<size_t>{19, 4, 19}));  // train, validation, lr
  const std::regex circle("<circle ");
  EXPECT_EQ(std::distance(std::sregex_iterator(svg.begin(), svg.end(), circle), std::sregex_iterator()),
            5);  // the 4 validation points and the legend's
  for (const char* label : {">tiny &amp; &lt;run&gt;<", ">loss<", ">learning rate<", ">step<", ">train<",
                            ">validation<", ">1 skipped step not shown<", ">0.0003<", ">20<", ">12<"})
    EXPECT_NE(svg.find(label), std::string::npos) << label;
}

TEST(curves, png_has_the_size_and_the_lines_where_the_data_maps) {
  const run_log log = read_run_log(run_path);
  const plot_options o{.title = "png", .width = 640, .height = 480};
  const std::string path = temp_path("curves.png");
  plot_run(log, path, o);
  const std::string bytes = read_all(path);
  ASSERT_GT(bytes.size(), 33u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  auto be32 = [&](size_t at) {
    return (uint32_t(uint8_t(bytes[at])) << 24) | (uint32_t(uint8_t(bytes[at + 1])) << 16) |
           (uint32_t(uint8_t(bytes[at + 2])) << 8) | uint32_t(uint8_t(bytes[at + 3]));
  };
  EXPECT_EQ(bytes.substr(12, 4), "IHDR");
  EXPECT_EQ(be32(16), 640u);
  EXPECT_EQ(be32(20), 480u);

  cairo_surface_t* img = cairo_image_surface_create_from_png(path.c_str());
  std::filesystem::remove(path);
  ASSERT_EQ(cairo_surface_status(img), CAIRO_STATUS_SUCCESS);
  const unsigned char* px = cairo_image_surface_get_data(img);
  const int stride = cairo_image_surface_get_stride(img);
  // Whether a pixel of colour c lies within 2 pixels of (x, y); pixels are B, G, R, A in memory.
  auto near = [&](double x, double y, rgb c) {
    for (int dy = -2; dy <= 2; ++dy)
      for (int dx = -2; dx <= 2; ++dx) {
        const unsigned char* p = px + (std::lround(y) + dy) * stride + (std::lround(x) + dx) * 4;
        if (std::abs(p[2] - c.r) <= 2 && std::abs(p[1] - c.g) <= 2 && std::abs(p[0] - c.b) <= 2) return true;
      }
    return false;
  };
  const curves_layout l = layout_curves(log, o.width, o.height);
  for (size_t i = 0; i < log.loss.size(); ++i) {
    if (static_cast<int>(log.loss.x[i]) % 5 == 0) continue;  // under a validation point
    EXPECT_TRUE(near(l.loss.px(log.loss.x[i]), l.loss.py(log.loss.y[i]), train_colour))
        << "step " << log.loss.x[i];
  }
  for (size_t i = 0; i < log.val_loss.size(); ++i)
    EXPECT_TRUE(near(l.loss.px(log.val_loss.x[i]), l.loss.py(log.val_loss.y[i]), val_colour)) << i;
  for (size_t i = 0; i < log.lr.size(); ++i)
    EXPECT_TRUE(near(l.lr.px(log.lr.x[i]), l.lr.py(log.lr.y[i]), lr_colour)) << "lr step " << log.lr.x[i];
  // And not where no curve passes: high above the training loss at step 10 (4.9).
  EXPECT_FALSE(near(l.loss.px(10), l.loss.py(11.5), train_colour));
  cairo_surface_destroy(img);
}

TEST(curves, refuses_unknown_formats_and_empty_logs) {
  const run_log log = read_run_log(run_path);
  try {
    plot_run(log, temp_path("curves.jpg"), {});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("name it .svg or .png"), std::string::npos);
  }
  EXPECT_THROW(plot_run(run_log{}, temp_path("empty.svg"), {}), std::invalid_argument);
  EXPECT_FALSE(std::filesystem::exists(temp_path("empty.svg")));
  EXPECT_THROW(plot_run(log, "/no/such/dir/c.png", {}), std::runtime_error);
  EXPECT_THROW(plot_run(log, "/no/such/dir/c.svg", {}), std::runtime_error);
}

}  // namespace
}  // namespace mlxd::plot
