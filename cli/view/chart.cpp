#include "chart.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <ctime>
#include <limits>

#include "iotbridge/error.hpp"

namespace iotbridge::view {

namespace {

constexpr double kCharWidth = 7.0;  // average width of a 12 px sans-serif character
constexpr double kFontSize = 12;
constexpr const char* kAxisColor = "#6b7280";
constexpr const char* kGridColor = "#e5e7eb";
constexpr const char* kTextColor = "#111827";

// Time steps a person reads easily, in seconds.
constexpr std::array<std::int64_t, 22> kTimeSteps = {1,     2,     5,      10,     15,      30,     60,    120,
                                                     300,   600,   900,    1800,   3600,    7200,   10800, 21600,
                                                     43200, 86400, 172800, 604800, 1209600, 2592000};

std::tm utc(std::int64_t millis) {
  std::time_t seconds = static_cast<std::time_t>(std::floor(static_cast<double>(millis) / 1000.0));
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return tm;
}

std::string strftime_utc(std::int64_t millis, const char* format) {
  std::tm tm = utc(millis);
  char text[64];
  std::strftime(text, sizeof text, format, &tm);
  return text;
}

std::string format_value(double value, double step) {
  int decimals = 0;
  for (double s = step; decimals < 6 && std::abs(s - std::round(s)) > 1e-9 * std::max(1.0, std::abs(s)); s *= 10)
    ++decimals;
  if (std::abs(value) < step * 1e-9) value = 0;  // no "-0"
  return fmt::format("{:.{}f}", value, decimals);
}

// Keeps the end of a long name (a topic's last levels say the most).
std::string fit(const std::string& name, std::size_t max_chars) {
  if (name.size() <= max_chars || max_chars < 4) return name;
  std::size_t start = name.size() - (max_chars - 3);
  while (start < name.size() && (static_cast<unsigned char>(name[start]) & 0xC0) == 0x80) ++start;  // UTF-8
  return "..." + name.substr(start);
}

std::vector<Tick> time_ticks(const Chart& c) {
  double span_s = static_cast<double>(c.x_max - c.x_min) / 1000.0;
  double room = (c.right - c.left) / 90.0;  // a label needs about 90 px
  std::int64_t step = kTimeSteps.back();
  for (auto s : kTimeSteps)
    if (span_s / static_cast<double>(s) <= std::max(2.0, room)) {
      step = s;
      break;
    }
  std::int64_t step_ms = step * 1000;
  std::int64_t first = c.x_min >= 0 ? (c.x_min + step_ms - 1) / step_ms * step_ms : c.x_min / step_ms * step_ms;
  bool multi_day = utc(c.x_min).tm_yday != utc(c.x_max).tm_yday || utc(c.x_min).tm_year != utc(c.x_max).tm_year;
  std::vector<Tick> ticks;
  int previous_day = -1;
  for (std::int64_t t = first; t <= c.x_max; t += step_ms) {
    std::tm tm = utc(t);
    const char* format = step >= 86400                             ? "%m-%d"
                         : step < 60                               ? "%H:%M:%S"
                         : multi_day && tm.tm_yday != previous_day ? "%m-%d %H:%M"
                                                                   : "%H:%M";
    previous_day = tm.tm_yday;
    ticks.push_back({c.x_pixel(t), strftime_utc(t, format)});
  }
  return ticks;
}

}  // namespace

double Chart::x_pixel(std::int64_t millis) const {
  return left + (right - left) * static_cast<double>(millis - x_min) / static_cast<double>(x_max - x_min);
}

double Chart::y_pixel(double value) const { return bottom - (bottom - top) * (value - y_min) / (y_max - y_min); }

const std::string& series_color(std::size_t index) {
  static const std::array<std::string, 10> kPalette = {"#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed",
                                                       "#0891b2", "#db2777", "#4b5563", "#65a30d", "#92400e"};
  return kPalette[index % kPalette.size()];
}

TickRange nice_ticks(double low, double high, int target) {
  if (!(high > low)) {
    double pad = low == 0 ? 1 : std::abs(low) * 0.1;
    low -= pad;
    high += pad;
  }
  double raw = (high - low) / std::max(1, target);
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double norm = raw / magnitude;
  double step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * magnitude;
  return {std::floor(low / step) * step, std::ceil(high / step) * step, step};
}

Chart layout_chart(const std::vector<Series>& series, const ChartStyle& style) {
  if (style.width < 200 || style.height < 150)
    throw Error(ErrorCategory::config, fmt::format("a chart of {}x{} pixels is too small to read: use at least 200x150",
                                                   style.width, style.height));
  Chart c;
  c.width = style.width;
  c.height = style.height;
  c.title = style.title;
  c.y_label = style.y_label;
  c.dots_up_to = style.dots_up_to;
  c.legend = style.legend;

  std::int64_t t0 = std::numeric_limits<std::int64_t>::max(), t1 = std::numeric_limits<std::int64_t>::min();
  double v0 = std::numeric_limits<double>::infinity(), v1 = -v0;
  std::size_t longest = 0;
  for (const auto& s : series) {
    longest = std::max(longest, s.name.size());
    for (const auto& p : s.points) {
      t0 = std::min(t0, p.millis);
      t1 = std::max(t1, p.millis);
      v0 = std::min(v0, p.value);
      v1 = std::max(v1, p.value);
    }
  }
  if (t0 > t1) t0 = t1 = 0, v0 = v1 = 0;  // no points: an empty frame
  if (style.x_from) t0 = *style.x_from;
  if (style.x_to) t1 = *style.x_to;
  if (t1 <= t0) t0 -= 30000, t1 += 30000;  // a single instant: one minute around it
  c.x_min = t0;
  c.x_max = t1;
  auto ticks = nice_ticks(v0, v1);
  c.y_min = ticks.first;
  c.y_max = ticks.last;

  std::size_t legend_chars = std::min<std::size_t>(longest, static_cast<std::size_t>(style.width * 0.3 / kCharWidth));
  double legend_width = style.legend ? static_cast<double>(legend_chars) * kCharWidth + 40 : 0;
  c.left = 72;
  c.top = c.title.empty() ? 16 : 40;
  c.right = style.width - legend_width - 16;
  c.bottom = style.height - 52.0;

  for (double v = ticks.first; v <= ticks.last + ticks.step * 1e-9; v += ticks.step)
    c.y_ticks.push_back({c.y_pixel(v), format_value(v, ticks.step)});
  c.x_ticks = time_ticks(c);
  c.x_caption = fmt::format(
      "time (UTC), {} to {}", strftime_utc(c.x_min, "%Y-%m-%d %H:%M:%S"),
      strftime_utc(c.x_max, utc(c.x_min).tm_yday == utc(c.x_max).tm_yday ? "%H:%M:%S" : "%Y-%m-%d %H:%M:%S"));
  for (std::size_t i = 0; i < series.size(); ++i) {
    ChartLine line;
    line.name = series[i].name;
    line.label = fit(series[i].name, legend_chars);
    line.color = series_color(i);
    for (const auto& p : series[i].points) line.xy.emplace_back(c.x_pixel(p.millis), c.y_pixel(p.value));
    c.lines.push_back(std::move(line));
  }
  return c;
}

void draw_chart(const Chart& c, Canvas& canvas) {
  using Anchor = Canvas::Anchor;
  canvas.rect(0, 0, c.width, c.height, "#ffffff", "");
  if (!c.title.empty()) canvas.text(c.left, 24, c.title, Anchor::start, 15, kTextColor, true);

  canvas.begin_group("grid");
  for (const auto& t : c.y_ticks) canvas.line(c.left, t.at, c.right, t.at, kGridColor, 1);
  for (const auto& t : c.x_ticks) canvas.line(t.at, c.top, t.at, c.bottom, kGridColor, 1);
  canvas.end_group();

  canvas.begin_group("y-axis");
  for (const auto& t : c.y_ticks) {
    canvas.line(c.left - 5, t.at, c.left, t.at, kAxisColor, 1);
    canvas.text(c.left - 8, t.at + 4, t.label, Anchor::end, kFontSize, kTextColor);
  }
  if (!c.y_label.empty())
    canvas.text(16, (c.top + c.bottom) / 2, c.y_label, Anchor::middle, kFontSize, kTextColor, false, -90);
  canvas.end_group();

  canvas.begin_group("x-axis");
  for (const auto& t : c.x_ticks) {
    canvas.line(t.at, c.bottom, t.at, c.bottom + 5, kAxisColor, 1);
    canvas.text(t.at, c.bottom + 19, t.label, Anchor::middle, kFontSize, kTextColor);
  }
  canvas.text((c.left + c.right) / 2, c.bottom + 40, c.x_caption, Anchor::middle, kFontSize, kAxisColor);
  canvas.end_group();

  canvas.rect(c.left, c.top, c.right - c.left, c.bottom - c.top, "", kAxisColor);

  canvas.begin_group("series");
  for (const auto& line : c.lines) {
    canvas.polyline(line.xy, line.color, 2, line.name);
    if (line.xy.size() <= c.dots_up_to)
      for (const auto& [x, y] : line.xy) canvas.circle(x, y, 3, line.color);
  }
  canvas.end_group();

  if (!c.legend) return;
  canvas.begin_group("legend");
  double y = c.top + 4;
  for (std::size_t i = 0; i < c.lines.size(); ++i) {
    if (y + 40 > c.bottom && i + 1 < c.lines.size()) {
      canvas.text(c.right + 40, y + 6, fmt::format("and {} more", c.lines.size() - i), Anchor::start, kFontSize,
                  kAxisColor);
      break;
    }
    canvas.rect(c.right + 16, y, 18, 4, c.lines[i].color, "");
    canvas.text(c.right + 40, y + 6, c.lines[i].label, Anchor::start, kFontSize, kTextColor);
    y += 20;
  }
  canvas.end_group();
}

}  // namespace iotbridge::view
