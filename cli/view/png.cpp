#include "png.hpp"

#include <cairo.h>
#include <fmt/core.h>

#include <cmath>
#include <memory>

#include "iotbridge/error.hpp"

namespace iotbridge::view {

namespace {

struct SurfaceDeleter {
  void operator()(cairo_surface_t* s) const { cairo_surface_destroy(s); }
};
struct ContextDeleter {
  void operator()(cairo_t* c) const { cairo_destroy(c); }
};

void set_color(cairo_t* cr, std::string_view hex) {
  unsigned rgb = 0;
  for (char ch : hex.substr(1))
    rgb = rgb * 16 + static_cast<unsigned>(std::isdigit(ch) ? ch - '0' : (ch | 0x20) - 'a' + 10);
  cairo_set_source_rgb(cr, ((rgb >> 16) & 0xff) / 255.0, ((rgb >> 8) & 0xff) / 255.0, (rgb & 0xff) / 255.0);
}

class CairoCanvas : public Canvas {
 public:
  explicit CairoCanvas(cairo_t* cr) : cr_(cr) {}

  void rect(double x, double y, double w, double h, std::string_view fill, std::string_view stroke) override {
    cairo_rectangle(cr_, x, y, w, h);
    if (!fill.empty()) {
      set_color(cr_, fill);
      cairo_fill_preserve(cr_);
    }
    if (!stroke.empty()) {
      set_color(cr_, stroke);
      cairo_set_line_width(cr_, 1);
      cairo_stroke_preserve(cr_);
    }
    cairo_new_path(cr_);
  }
  void line(double x1, double y1, double x2, double y2, std::string_view color, double width) override {
    // Half-pixel offsets keep 1 px lines sharp on the pixel grid.
    cairo_move_to(cr_, std::floor(x1) + 0.5, std::floor(y1) + 0.5);
    cairo_line_to(cr_, std::floor(x2) + 0.5, std::floor(y2) + 0.5);
    set_color(cr_, color);
    cairo_set_line_width(cr_, width);
    cairo_stroke(cr_);
  }
  void polyline(const std::vector<std::pair<double, double>>& xy, std::string_view color, double width,
                std::string_view) override {
    if (xy.empty()) return;
    cairo_move_to(cr_, xy[0].first, xy[0].second);
    for (std::size_t i = 1; i < xy.size(); ++i) cairo_line_to(cr_, xy[i].first, xy[i].second);
    set_color(cr_, color);
    cairo_set_line_width(cr_, width);
    cairo_set_line_join(cr_, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr_, CAIRO_LINE_CAP_ROUND);
    cairo_stroke(cr_);
  }
  void circle(double x, double y, double r, std::string_view color) override {
    cairo_arc(cr_, x, y, r, 0, 2 * M_PI);
    set_color(cr_, color);
    cairo_fill(cr_);
  }
  void text(double x, double y, std::string_view text, Anchor anchor, double size, std::string_view color, bool bold,
            double rotate) override {
    std::string s(text);
    cairo_select_font_face(cr_, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr_, size);
    cairo_text_extents_t extents;
    cairo_text_extents(cr_, s.c_str(), &extents);
    double shift = anchor == Anchor::start ? 0 : anchor == Anchor::middle ? extents.x_advance / 2 : extents.x_advance;
    cairo_save(cr_);
    cairo_translate(cr_, x, y);
    cairo_rotate(cr_, rotate * M_PI / 180);
    cairo_move_to(cr_, -shift, 0);
    set_color(cr_, color);
    cairo_show_text(cr_, s.c_str());
    cairo_restore(cr_);
  }

 private:
  cairo_t* cr_;
};

}  // namespace

void write_png(const Chart& chart, const std::string& path) {
  std::unique_ptr<cairo_surface_t, SurfaceDeleter> surface(
      cairo_image_surface_create(CAIRO_FORMAT_RGB24, chart.width, chart.height));
  std::unique_ptr<cairo_t, ContextDeleter> cr(cairo_create(surface.get()));
  CairoCanvas canvas(cr.get());
  draw_chart(chart, canvas);
  cairo_surface_flush(surface.get());
  if (auto status = cairo_status(cr.get()); status != CAIRO_STATUS_SUCCESS)
    throw Error(ErrorCategory::io, fmt::format("cannot draw the chart: {}", cairo_status_to_string(status)));
  if (auto status = cairo_surface_write_to_png(surface.get(), path.c_str()); status != CAIRO_STATUS_SUCCESS)
    throw Error(ErrorCategory::io,
                fmt::format("cannot write the chart to {}: {} (check the folder and its permissions)", path,
                            cairo_status_to_string(status)));
}

}  // namespace iotbridge::view
