// Helpers for the tests of iotbridge-db plot and serve: a store (an SQLite
// file or the MongoDB-compatible test server) seeded with known readings, and
// the SVG a chart is written as, parsed back into data. Not thread-safe; one
// test thread each.
#pragma once

#include <cmath>
#include <csignal>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "../integration/cli_helpers.hpp"
#include "iotbridge/store/open.hpp"
#include "servers.hpp"

namespace iotbridge::test {

inline std::string iotbridge_db() { return cli_tool("iotbridge-db"); }

// The known readings: kTopics topics, kPerTopic readings each, 30 s apart,
// the newest 10 s before the seeding.
struct KnownReading {
  std::string topic;
  std::int64_t millis;
  double value;
};

inline const std::vector<std::string> kTopics = {"iot/home1/kitchen/temperature", "iot/home1/living/temperature",
                                                 "iot/home2/bath/humidity"};
constexpr int kPerTopic = 40;

// A store for one test: "sqlite" (a file in a temp folder) or "mongodb" (a
// database of its own on the test server, dropped at the end).
struct ViewStore {
  std::string kind;
  std::unique_ptr<TempDir> dir;
  std::string uri, db = "iot_service", coll = "sensors";
  std::vector<KnownReading> readings;

  explicit ViewStore(const std::string& k) : kind(k) {
    if (kind == "sqlite") {
      dir = std::make_unique<TempDir>("iotbridge-view");
      uri = "sqlite:" + (dir->path() / "view.db").string();
    } else {
      uri = test_mongo_uri();
      db = unique_db_name("iotb_view");
    }
  }
  ~ViewStore() {
    if (kind == "mongodb") {
      try {
        store::open_store(uri)->drop_database(db);
      } catch (...) {
      }
    }
  }

  std::shared_ptr<store::Collection> collection() const { return store::open_store(uri)->collection(db, coll); }

  // Seeds kTopics x kPerTopic readings ending 10 s ago.
  void seed() {
    auto now = store::DateTime::now().millis;
    std::vector<store::Document> docs;
    for (int i = 0; i < kPerTopic; ++i)
      for (std::size_t k = 0; k < kTopics.size(); ++k) {
        KnownReading r{
            kTopics[k], now - 10000 - (kPerTopic - 1 - i) * 30000LL,
            std::round((20 + 5.0 * static_cast<double>(k) + 3 * std::sin(i / 6.0 + static_cast<double>(k))) * 100) /
                100};
        readings.push_back(r);
        docs.push_back(store::Document()
                           .append("topic", r.topic)
                           .append("value", r.value)
                           .append("reg_date", store::DateTime{r.millis}));
      }
    collection()->insert_many(std::move(docs));
  }

  std::vector<KnownReading> of_topic(const std::string& topic) const {
    std::vector<KnownReading> out;
    for (const auto& r : readings)
      if (r.topic == topic) out.push_back(r);
    return out;
  }

  // iotbridge-db --store URI VERB ARGS... --db DB (the view verbs take --db).
  ToolResult db_tool(std::vector<std::string> args) const {
    args.insert(args.begin(), {iotbridge_db(), "--store", uri});
    args.insert(args.end(), {"--db", db});
    return run_tool(args);
  }
};

// `iotbridge-db serve --listen 127.0.0.1:0` over a store, running until
// stop(); url is what its start line says.
struct ServeProcess {
  TempDir dir{"iotbridge-serve"};
  std::unique_ptr<Process> process;
  std::string url;  // "http://127.0.0.1:PORT/"
  int port = 0;

  explicit ServeProcess(const ViewStore& s, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {iotbridge_db(), "--store", s.uri,      "serve",
                                     "--db",         s.db,      "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process = start_tool(argv, dir / "out");
    std::regex start("iotbridge-db serve: http://127\\.0\\.0\\.1:([0-9]+)/");
    bool started = wait_until(
        [&] {
          std::smatch m;
          std::string text = out();
          if (!std::regex_search(text, m, start)) return !process->alive();
          port = std::stoi(m[1]);
          url = "http://127.0.0.1:" + m[1].str() + "/";
          return true;
        },
        std::chrono::seconds(60));
    if (!started || url.empty())
      throw std::runtime_error("iotbridge-db serve did not print its start line: " + out() + err());
  }
  std::string out() const { return slurp(dir / "out"); }
  std::string err() const { return slurp(dir / "out.err"); }
  // SIGINT, then the exit status once it has stopped.
  int stop() {
    process->signal(SIGINT);
    wait_until([&] { return !process->alive(); }, std::chrono::seconds(60));
    return process->terminate();
  }
};

// `text` as a URL query value.
inline std::string url_encode(const std::string& text) {
  std::string out;
  for (unsigned char ch : text) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~')
      out += static_cast<char>(ch);
    else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", ch);
      out += hex;
    }
  }
  return out;
}

// A JSON array answer as a document {"a": [...]}, for reading with get("a.0.topic").
inline store::Document json_array(const std::string& body) {
  return store::Document::from_json("{\"a\": " + body + "}");
}

// An SVG chart read back: the plot area, its data range, each polyline's points.
struct ParsedChart {
  double left = 0, top = 0, width = 0, height = 0;
  double x_min = 0, x_max = 0, y_min = 0, y_max = 0;
  std::map<std::string, std::vector<std::pair<double, double>>> series;  // name -> pixel points

  // Pixel -> (ms, value).
  std::pair<double, double> data(std::pair<double, double> px) const {
    return {x_min + (px.first - left) / width * (x_max - x_min),
            y_min + (top + height - px.second) / height * (y_max - y_min)};
  }
};

inline double attr(const std::string& tag, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(tag, m, std::regex("[ \n]" + name + "=\"([-0-9.e+]+)\""))) return NAN;
  return std::stod(m[1]);
}

inline ParsedChart parse_svg(const std::string& svg) {
  ParsedChart c;
  auto root = svg.substr(0, svg.find('>'));
  c.x_min = attr(root, "data-x-min");
  c.x_max = attr(root, "data-x-max");
  c.y_min = attr(root, "data-y-min");
  c.y_max = attr(root, "data-y-max");
  std::smatch m;
  if (std::regex_search(svg, m, std::regex("<rect[^>]*class=\"plot-area\"[^>]*>"))) {
    std::string tag = m[0];
    c.left = attr(tag, "x");
    c.top = attr(tag, "y");
    c.width = attr(tag, "width");
    c.height = attr(tag, "height");
  }
  std::regex polyline("<polyline data-series=\"([^\"]*)\"[^>]*points=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), polyline); it != std::sregex_iterator(); ++it) {
    auto& points = c.series[(*it)[1]];
    std::istringstream in((*it)[2].str());
    std::string pair;
    while (in >> pair) {
      auto comma = pair.find(',');
      points.emplace_back(std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1)));
    }
  }
  return c;
}

}  // namespace iotbridge::test
