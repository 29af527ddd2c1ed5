// A line chart of time series laid out in pixels: plot area, a dated x axis
// and a y axis with round ticks, one polyline per series, a legend. The layout
// is computed once (layout_chart) and drawn through a small Canvas interface,
// so that the SVG writer and the PNG (cairo) writer draw exactly the same
// picture.
// Thread-safety: Chart is a plain value; layout_chart and draw_chart are pure
// functions. Throws: layout_chart throws Error (config) for a size too small to
// draw in; nothing else throws (a Canvas may).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "series.hpp"

namespace iotbridge::view {

struct ChartStyle {
  int width = 960;      ///< pixels; wide enough for a day's ticks without crowding
  int height = 480;     ///< pixels
  std::string title;    ///< above the plot; empty: none
  std::string y_label;  ///< beside the y axis, e.g. the field name
  /// Fixed x range (ms since the epoch); default: the data's first and last time.
  std::optional<std::int64_t> x_from, x_to;
  /// Draw a dot on each reading when a series has at most this many.
  std::size_t dots_up_to = 60;
  /// A legend right of the plot; a page that titles each chart by its one topic needs none.
  bool legend = true;
};

struct Tick {
  double at = 0;  ///< pixel position along its axis
  std::string label;
};

struct ChartLine {
  std::string name;                           ///< the series' full name
  std::string label;                          ///< the name as the legend shows it (long names keep their end)
  std::string color;                          ///< "#rrggbb"
  std::vector<std::pair<double, double>> xy;  ///< pixel coordinates, in time order
};

struct Chart {
  int width = 0, height = 0;
  double left = 0, top = 0, right = 0, bottom = 0;  ///< the plot area, in pixels
  std::int64_t x_min = 0, x_max = 0;                ///< time at the plot area's left and right edges (ms)
  double y_min = 0, y_max = 0;                      ///< value at the plot area's bottom and top edges
  std::vector<Tick> x_ticks, y_ticks;
  std::vector<ChartLine> lines;
  std::string title, x_caption, y_label;
  std::size_t dots_up_to = 0;
  bool legend = true;

  double x_pixel(std::int64_t millis) const;
  double y_pixel(double value) const;
};

/// The colour of the i-th series (a fixed palette of ten, then repeated).
const std::string& series_color(std::size_t index);

/// Lays out `series` (at least one point in all) at the style's size.
Chart layout_chart(const std::vector<Series>& series, const ChartStyle& style);

/// Round y ticks: (first, last, step) covering [low, high] with about `target` steps.
struct TickRange {
  double first = 0, last = 0, step = 1;
};
TickRange nice_ticks(double low, double high, int target = 6);

/// Where draw_chart draws: SVG elements or cairo paths.
class Canvas {
 public:
  enum class Anchor { start, middle, end };
  virtual ~Canvas() = default;
  virtual void rect(double x, double y, double w, double h, std::string_view fill, std::string_view stroke) = 0;
  virtual void line(double x1, double y1, double x2, double y2, std::string_view color, double width) = 0;
  /// `series` names the line (SVG: data-series) so that a reader can map it back.
  virtual void polyline(const std::vector<std::pair<double, double>>& xy, std::string_view color, double width,
                        std::string_view series) = 0;
  virtual void circle(double x, double y, double r, std::string_view color) = 0;
  /// `rotate`: degrees, around (x, y); the y label is drawn at -90.
  virtual void text(double x, double y, std::string_view text, Anchor anchor, double size, std::string_view color,
                    bool bold = false, double rotate = 0) = 0;
  /// Groups for readers of the SVG (class names); nothing for a raster.
  virtual void begin_group(std::string_view /*cls*/) {}
  virtual void end_group() {}
};

void draw_chart(const Chart& chart, Canvas& canvas);

}  // namespace iotbridge::view
