// The page of iotbridge-db serve in a real browser: headless Chromium (Debian's
// chromium) loads it over known readings (SQLite, then the MongoDB-compatible
// server), the DOM shows a row and a chart of every reading per topic, a
// screenshot is kept in the build tree, and a reading stored while the page is
// open appears without a reload. tests/view/browser_check.py drives Chromium
// through the DevTools protocol; this test checks what it reports.
#include <cairo.h>

#include <catch2/catch.hpp>

#include "view_helpers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;

TEST_CASE("serve: the page in headless Chromium shows the readings and updates live", "[view][serve][browser]") {
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "mongodb");
  if (kind == "mongodb") IOTBRIDGE_REQUIRE_MONGO();
  INFO("backend: " << kind);
  std::string chromium = find_program("chromium");
  REQUIRE_FALSE(chromium.empty());  // scripts/install-deps installs Debian's chromium

  ViewStore s(kind);
  s.seed();
  ServeProcess serve(s);
  TempDir profile("iotbridge-chromium");
  fs::path shots = fs::path(IOTBRIDGE_BINARY_DIR) / "tests" / "view-screenshots";
  fs::create_directories(shots);
  fs::path screenshot = shots / ("serve-" + kind + ".png");
  fs::remove(screenshot);

  auto newest = store::DateTime::now().millis;
  std::string reading =
      R"({"topic": ")" + kTopics[0] + R"(", "value": 99.5, "reg_date": {"$date": )" + std::to_string(newest) + "}}";
  auto r = run_tool({"python3",
                     std::string(IOTBRIDGE_SOURCE_DIR) + "/tests/view/browser_check.py",
                     "--chromium",
                     chromium,
                     "--url",
                     serve.url,
                     "--topics",
                     std::to_string(kTopics.size()),
                     "--points",
                     std::to_string(kPerTopic),
                     "--screenshot",
                     screenshot.string(),
                     "--profile",
                     profile.path().string(),
                     "--expect-value",
                     "99.5",
                     "--",
                     iotbridge_db(),
                     "--store",
                     s.uri,
                     "insert",
                     s.db,
                     s.coll,
                     reading});
  INFO("browser_check: " << r.out << r.err << "\nserve: " << serve.out() << serve.err());
  REQUIRE(r.code == 0);
  auto report = store::Document::from_json(r.out);

  // The page as loaded: a row per topic with its last value, a chart of every reading.
  for (std::size_t k = 0; k < kTopics.size(); ++k) {
    std::string at = "initial.topics." + std::to_string(k) + ".";
    CHECK(report.get_string(at + "topic") == kTopics[k]);
    CHECK(report.get_string(at + "value") == store::Value(s.of_topic(kTopics[k]).back().value).to_json());
    CHECK(report.get_string("initial.charts." + std::to_string(k) + ".topic") == kTopics[k]);
    CHECK(report.get_int64("initial.charts." + std::to_string(k) + ".points") == kPerTopic);
  }
  CHECK_THAT(report.get_string("initial.stats").value_or(""), Catch::Contains("120 readings"));

  // The new reading, without a reload: first in the table, one more point in its chart.
  CHECK(report.get_bool("reloaded") == false);
  CHECK(report.get_string("after.readings.0.1") == kTopics[0]);
  CHECK(report.get_string("after.readings.0.2") == "99.5");
  CHECK(report.get_int64("after.charts.0.points") == kPerTopic + 1);
  CHECK(report.get_string("after.topics.0.value") == "99.5");

  // The screenshot is a real picture of the page.
  cairo_surface_t* png = cairo_image_surface_create_from_png(screenshot.c_str());
  CHECK(cairo_surface_status(png) == CAIRO_STATUS_SUCCESS);
  CHECK(cairo_image_surface_get_width(png) >= 800);
  CHECK(fs::file_size(screenshot) > 20000);
  cairo_surface_destroy(png);

  CHECK(serve.stop() == 0);
}
