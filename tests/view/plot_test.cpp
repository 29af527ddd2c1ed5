// iotbridge-db plot, run as a program over known readings in SQLite and in the
// MongoDB-compatible server: the SVG's polylines map back to the data, the
// PNG has the series' colours in its plot area, and each kind of bad request
// gets its own error.
#include <cairo.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "chart.hpp"
#include "duration.hpp"
#include "view_helpers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;

namespace {

// Pixels of `color` (within a small distance: antialiasing) inside the rectangle.
int count_color(cairo_surface_t* png, const std::string& color, int x0, int y0, int x1, int y1) {
  unsigned rgb = std::stoul(color.substr(1), nullptr, 16);
  int r = static_cast<int>((rgb >> 16) & 0xff), g = static_cast<int>((rgb >> 8) & 0xff),
      b = static_cast<int>(rgb & 0xff);
  cairo_surface_flush(png);
  const unsigned char* data = cairo_image_surface_get_data(png);
  int stride = cairo_image_surface_get_stride(png);
  int n = 0;
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) {
      std::uint32_t px;
      std::memcpy(&px, data + y * stride + x * 4, 4);  // native-endian xRGB
      int pr = static_cast<int>((px >> 16) & 0xff), pg = static_cast<int>((px >> 8) & 0xff),
          pb = static_cast<int>(px & 0xff);
      if (std::abs(pr - r) + std::abs(pg - g) + std::abs(pb - b) < 40) ++n;
    }
  return n;
}

}  // namespace

TEST_CASE("plot: the SVG's lines are the readings, one per topic, on both stores", "[view][plot]") {
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "mongodb");
  if (kind == "mongodb") IOTBRIDGE_REQUIRE_MONGO();
  INFO("backend: " << kind);
  ViewStore s(kind);
  s.seed();
  TempDir out("iotbridge-plot");
  auto svg_path = (out / "chart.svg").string();
  auto r = s.db_tool({"plot", "--field", "value", "--by", "topic", "--since", "1h", "-o", svg_path});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("plotted 120 readings in 3 lines"));
  auto svg = slurp(svg_path);
  CHECK(svg.size() > 2000);
  CHECK_THAT(svg, Catch::Contains("time (UTC)"));  // the dated axis' caption

  auto chart = parse_svg(svg);
  REQUIRE(chart.width > 300);
  REQUIRE(chart.height > 200);
  REQUIRE(chart.series.size() == kTopics.size());
  double ms_per_px = (chart.x_max - chart.x_min) / chart.width;
  double value_per_px = (chart.y_max - chart.y_min) / chart.height;
  for (const auto& topic : kTopics) {
    INFO("topic " << topic);
    auto expected = s.of_topic(topic);
    const auto& drawn = chart.series[topic];
    REQUIRE(drawn.size() == expected.size());
    for (std::size_t i = 0; i < drawn.size(); ++i) {
      auto [ms, value] = chart.data(drawn[i]);
      CHECK(std::abs(ms - static_cast<double>(expected[i].millis)) < ms_per_px);
      CHECK(std::abs(value - expected[i].value) < value_per_px);
      CHECK(drawn[i].first >= chart.left - 0.01);
      CHECK(drawn[i].first <= chart.left + chart.width + 0.01);
      CHECK(drawn[i].second >= chart.top - 0.01);
      CHECK(drawn[i].second <= chart.top + chart.height + 0.01);
    }
  }
  // The legend names every topic.
  for (const auto& topic : kTopics) CHECK_THAT(svg, Catch::Contains(">" + topic + "</text>"));

  // A filter narrows it to one line.
  auto one = s.db_tool({"plot", R"({"topic": "iot/home2/bath/humidity"})", "-o", svg_path});
  REQUIRE(one.code == 0);
  auto narrowed = parse_svg(slurp(svg_path));
  CHECK(narrowed.series.size() == 1);
  CHECK(narrowed.series.count("iot/home2/bath/humidity") == 1);
}

TEST_CASE("plot: the PNG has each topic's colour in its plot area", "[view][plot]") {
  ViewStore s("sqlite");
  s.seed();
  TempDir out("iotbridge-plot");
  auto png_path = (out / "chart.png").string();
  auto r = s.db_tool({"plot", "-o", png_path, "--width", "800", "--height", "400"});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(fs::file_size(png_path) > 5000);

  // Where the plot area is: the same layout the SVG writer reports.
  auto svg_run = s.db_tool({"plot", "-o", (out / "same.svg").string(), "--width", "800", "--height", "400"});
  REQUIRE(svg_run.code == 0);
  auto layout = parse_svg(slurp(out / "same.svg"));
  REQUIRE(layout.width > 0);

  cairo_surface_t* png = cairo_image_surface_create_from_png(png_path.c_str());
  REQUIRE(cairo_surface_status(png) == CAIRO_STATUS_SUCCESS);
  CHECK(cairo_image_surface_get_width(png) == 800);
  CHECK(cairo_image_surface_get_height(png) == 400);
  int x0 = static_cast<int>(layout.left) + 2, y0 = static_cast<int>(layout.top) + 2;
  int x1 = static_cast<int>(layout.left + layout.width) - 2, y1 = static_cast<int>(layout.top + layout.height) - 2;
  int area = (x1 - x0) * (y1 - y0);
  for (std::size_t k = 0; k < kTopics.size(); ++k) {
    INFO("series " << kTopics[k] << " colour " << view::series_color(k));
    int drawn = count_color(png, view::series_color(k), x0, y0, x1, y1);
    CHECK(drawn > (x1 - x0) / 2);  // a line across the plot area
    CHECK(drawn < area / 10);      // a line, not a filled area
  }
  cairo_surface_destroy(png);

  // Kept in the build tree (README.md shows one: docs/images/plot-example.png).
  fs::path shots = fs::path(IOTBRIDGE_BINARY_DIR) / "tests" / "view-screenshots";
  fs::create_directories(shots);
  fs::copy_file(png_path, shots / "plot.png", fs::copy_options::overwrite_existing);
}

TEST_CASE("plot: each bad request says what is wrong", "[view][plot]") {
  ViewStore s("sqlite");
  s.seed();
  TempDir out("iotbridge-plot");
  auto png = (out / "c.png").string();
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string message;
  };
  fs::create_directories(out / "folder.png");
  const std::vector<Case> cases = {
      {{"plot", "-o", png, "--since", "1x"}, 2, "--since '1x' is not a duration"},
      {{"plot", "-o", png, "--since=-5m"}, 2, "is not a duration"},
      {{"plot", "-o", png, "--field", "valu"}, 2, "unknown field 'valu'"},
      {{"plot", "-o", png, R"({"topic": "nothing/here"})"}, 1, "no readings"},
      {{"plot", "-o", png, R"({"topic": )"}, 2, "the filter is not a JSON object"},
      {{"plot", "-o", (out / "no/such/folder/c.png").string()}, 1, "does not exist"},
      {{"plot", "-o", (out / "folder.png").string()}, 1, "it is a folder"},
      {{"plot", "-o", (out / "c.gif").string()}, 2, "PNG or SVG"},
  };
  for (const auto& c : cases) {
    auto r = s.db_tool(c.args);
    INFO(c.args[c.args.size() - 1] << " -> " << r.code << " " << r.err);
    CHECK(r.code == c.code);
    CHECK_THAT(r.err, Catch::Contains(c.message));
    CHECK_FALSE(fs::exists(png));
  }
  // The store is opened read-only: a mistyped SQLite path is an error, not a new file.
  auto missing = out / "missing.db";
  for (const char* verb : {"plot", "serve"}) {
    std::vector<std::string> argv = {iotbridge_db(), "--store", "sqlite:" + missing.string(), verb};
    if (std::string(verb) == "plot") argv.insert(argv.end(), {"-o", png});
    auto r = run_tool(argv);
    INFO(verb << " -> " << r.code << " " << r.err);
    CHECK(r.code != 0);
    CHECK_THAT(r.err, Catch::Contains("missing.db"));
    CHECK_FALSE(fs::exists(missing));
  }
  // Readings older than --since: the error names the newest one.
  auto old = s.db_tool({"plot", "-o", png, "--since", "5s"});
  CHECK(old.code == 1);
  CHECK_THAT(old.err, Catch::Contains("the newest is from"));
}

TEST_CASE("plot: durations, ticks", "[view][plot]") {
  CHECK(view::parse_duration("90s").count() == 90000);
  CHECK(view::parse_duration("1h").count() == 3600000);
  CHECK(view::parse_duration("2d").count() == 172800000);
  CHECK(view::parse_duration("1w").count() == 604800000);
  for (auto bad : {"", "h", "1", "1.5h", "0m", "-1m", "1y", "99999999999999w"})
    CHECK_THROWS_AS(view::parse_duration(bad), Error);
  CHECK(view::format_duration(std::chrono::minutes(15)) == "15m");
  auto t = view::nice_ticks(17.3, 33.1);
  CHECK(t.first == 15);
  CHECK(t.last == 35);
  CHECK(t.step == 5);
  auto flat = view::nice_ticks(5, 5);
  CHECK(flat.first < 5);
  CHECK(flat.last > 5);
}
