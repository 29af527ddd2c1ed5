#include "svg.hpp"

#include <fmt/core.h>

namespace iotbridge::view {

namespace {

class SvgCanvas : public Canvas {
 public:
  explicit SvgCanvas(std::string& out) : out_(out) {}

  void rect(double x, double y, double w, double h, std::string_view fill, std::string_view stroke) override {
    out_ += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}")", x, y, w, h,
                        fill.empty() ? "none" : fill);
    if (!stroke.empty()) out_ += fmt::format(R"( stroke="{}")", stroke);
    if (fill.empty() && !stroke.empty()) out_ += R"( class="plot-area")";
    out_ += "/>\n";
  }
  void line(double x1, double y1, double x2, double y2, std::string_view color, double width) override {
    out_ += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}" stroke-width="{}"/>)", x1,
                        y1, x2, y2, color, width);
    out_ += '\n';
  }
  void polyline(const std::vector<std::pair<double, double>>& xy, std::string_view color, double width,
                std::string_view series) override {
    out_ += fmt::format(R"(<polyline data-series="{}" fill="none" stroke="{}" stroke-width="{}" )", xml_escape(series),
                        color, width);
    out_ += R"(stroke-linejoin="round" points=")";
    for (std::size_t i = 0; i < xy.size(); ++i)
      out_ += fmt::format("{}{:.2f},{:.2f}", i ? " " : "", xy[i].first, xy[i].second);
    out_ += "\"/>\n";
  }
  void circle(double x, double y, double r, std::string_view color) override {
    out_ += fmt::format(R"(<circle cx="{:.2f}" cy="{:.2f}" r="{}" fill="{}"/>)", x, y, r, color);
    out_ += '\n';
  }
  void text(double x, double y, std::string_view text, Anchor anchor, double size, std::string_view color, bool bold,
            double rotate) override {
    const char* anchors[] = {"start", "middle", "end"};
    out_ += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="{}" font-size="{}" fill="{}")", x, y,
                        anchors[static_cast<int>(anchor)], size, color);
    if (bold) out_ += R"( font-weight="bold")";
    if (rotate != 0) out_ += fmt::format(" transform=\"rotate({} {:.1f} {:.1f})\"", rotate, x, y);
    out_ += fmt::format(">{}</text>\n", xml_escape(text));
  }
  void begin_group(std::string_view cls) override { out_ += fmt::format("<g class=\"{}\">\n", cls); }
  void end_group() override { out_ += "</g>\n"; }

 private:
  std::string& out_;
};

}  // namespace

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  return out;
}

std::string to_svg(const Chart& chart) {
  std::string out = fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" class="iotbridge-chart" width="{0}" height="{1}" viewBox="0 0 {0} {1}" )"
      R"(font-family="DejaVu Sans, Helvetica, Arial, sans-serif" data-x-min="{2}" data-x-max="{3}" data-y-min="{4}" )"
      R"(data-y-max="{5}">)"
      "\n",
      chart.width, chart.height, chart.x_min, chart.x_max, chart.y_min, chart.y_max);
  SvgCanvas canvas(out);
  draw_chart(chart, canvas);
  out += "</svg>\n";
  return out;
}

}  // namespace iotbridge::view
