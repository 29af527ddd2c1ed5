// iotbridge-db serve, run as a program over known readings in SQLite and in
// the MongoDB-compatible server: the JSON API answers what was stored, new
// readings show up, it is read-only, a port in use is a clear error, and it
// says when it starts and stops.
#include <httplib.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include "listen.hpp"
#include "view_helpers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;

namespace {

httplib::Result get(const ServeProcess& serve, const std::string& path) {
  httplib::Client client("127.0.0.1", serve.port);
  client.set_read_timeout(60, 0);
  return client.Get(path.c_str());
}

}  // namespace

TEST_CASE("serve: the JSON API answers what was stored, on both stores", "[view][serve]") {
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "mongodb");
  if (kind == "mongodb") IOTBRIDGE_REQUIRE_MONGO();
  INFO("backend: " << kind);
  ViewStore s(kind);
  s.seed();
  ServeProcess serve(s);
  INFO(serve.out() << serve.err());
  CHECK_THAT(serve.out(), Catch::Contains("read-only"));

  auto topics = get(serve, "/api/topics");
  REQUIRE(topics);
  CHECK(topics->status == 200);
  CHECK_THAT(topics->get_header_value("Content-Type"), Catch::Contains("application/json"));
  auto t = json_array(topics->body);
  for (std::size_t k = 0; k < kTopics.size(); ++k) {
    std::string at = "a." + std::to_string(k) + ".";
    auto expected = s.of_topic(kTopics[k]);
    CHECK(t.get_string(at + "topic") == kTopics[k]);
    CHECK(t.get_double(at + "last_value") == expected.back().value);
    CHECK(t.get_int64(at + "last_time_ms") == expected.back().millis);
  }
  CHECK_FALSE(t.has("a.3"));

  auto series = get(serve, "/api/series?topic=" + url_encode(kTopics[1]) + "&since=1h");
  REQUIRE(series);
  CHECK(series->status == 200);
  auto sd = store::Document::from_json(series->body);
  CHECK(sd.get_string("series.0.name") == kTopics[1]);
  auto points = sd.get("series.0.points");
  REQUIRE(points);
  REQUIRE(points->as_array().size() == kPerTopic);
  auto expected = s.of_topic(kTopics[1]);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CHECK(points->as_array()[i].as_array()[0].as_int64() == expected[i].millis);
    CHECK(points->as_array()[i].as_array()[1].as_double() == expected[i].value);
  }

  auto readings = get(serve, "/api/readings?limit=5");
  REQUIRE(readings);
  auto rd = json_array(readings->body);
  CHECK(rd.has("a.4"));
  CHECK_FALSE(rd.has("a.5"));
  CHECK(rd.get_int64("a.0.time_ms") == s.readings.back().millis);

  auto stats = get(serve, "/api/stats");
  REQUIRE(stats);
  auto st = store::Document::from_json(stats->body);
  CHECK(st.get_int64("count") == static_cast<std::int64_t>(s.readings.size()));
  CHECK(st.get_string("ns") == s.db + ".sensors");

  auto chart = get(serve, "/api/chart.svg?topic=" + url_encode(kTopics[0]) + "&since=1h");
  REQUIRE(chart);
  CHECK(chart->status == 200);
  auto parsed = parse_svg(chart->body);
  CHECK(parsed.series[kTopics[0]].size() == static_cast<std::size_t>(kPerTopic));

  auto page = get(serve, "/");
  REQUIRE(page);
  CHECK_THAT(page->body, Catch::Contains("<table id=\"topics\">"));
  auto js = get(serve, "/app.js");
  REQUIRE(js);
  CHECK_THAT(js->get_header_value("Content-Type"), Catch::Contains("javascript"));

  // A reading stored while serving is the newest one at once.
  auto now = store::DateTime::now();
  s.collection()->insert_one(
      store::Document().append("topic", "iot/new/sensor").append("value", 99.5).append("reg_date", now));
  auto after = json_array(get(serve, "/api/readings?limit=1")->body);
  CHECK(after.get_string("a.0.topic") == "iot/new/sensor");
  CHECK(after.get_double("a.0.value") == 99.5);
  CHECK(json_array(get(serve, "/api/topics")->body).get_string("a.3.topic") == "iot/new/sensor");

  int status = serve.stop();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK_THAT(serve.out(), Catch::Contains("iotbridge-db serve: stopping (SIGINT)"));
  CHECK_THAT(serve.out(), Catch::Contains("iotbridge-db serve: stopped after"));
}

TEST_CASE("serve: read-only, bad parameters, a port in use", "[view][serve]") {
  ViewStore s("sqlite");
  s.seed();
  ServeProcess serve(s);
  httplib::Client client("127.0.0.1", serve.port);
  client.set_read_timeout(60, 0);
  for (const char* path : {"/api/topics", "/api/readings", "/"}) {
    auto post = client.Post(path, "{}", "application/json");
    REQUIRE(post);
    CHECK(post->status == 405);
    auto del = client.Delete(path);
    REQUIRE(del);
    CHECK(del->status == 405);
  }
  auto bad = get(serve, "/api/series?since=5x");
  REQUIRE(bad);
  CHECK(bad->status == 400);
  CHECK_THAT(bad->body, Catch::Contains("is not a duration"));
  auto limit = get(serve, "/api/readings?limit=0");
  REQUIRE(limit);
  CHECK(limit->status == 400);
  CHECK(get(serve, "/nothing")->status == 404);
  CHECK(s.collection()->count_documents() == static_cast<std::int64_t>(s.readings.size()));

  // The same port again: refused, saying why.
  auto second =
      run_tool({iotbridge_db(), "--store", s.uri, "serve", "--listen", "127.0.0.1:" + std::to_string(serve.port)});
  CHECK(second.code == 1);
  CHECK_THAT(second.err, Catch::Contains("cannot listen on 127.0.0.1:" + std::to_string(serve.port)));
  CHECK_THAT(second.err, Catch::Contains("in use"));

  auto no_port = run_tool({iotbridge_db(), "--store", s.uri, "serve", "--listen", "127.0.0.1"});
  CHECK(no_port.code == 2);
  CHECK_THAT(no_port.err, Catch::Contains("--listen '127.0.0.1': no port"));
  CHECK(serve.stop() == 0);
}

TEST_CASE("serve: --listen forms and which are loopback", "[view][serve]") {
  auto a = view::parse_listen("127.0.0.1:8080");
  CHECK(a.host == "127.0.0.1");
  CHECK(a.port == 8080);
  CHECK(a.loopback);
  CHECK(view::parse_listen("[::1]:0").loopback);
  CHECK(view::parse_listen("[::1]:0").url(81) == "http://[::1]:81/");
  CHECK(view::parse_listen("localhost:1").loopback);
  CHECK_FALSE(view::parse_listen("0.0.0.0:8080").loopback);
  CHECK_FALSE(view::parse_listen("192.168.1.5:8080").loopback);
  for (auto bad : {"", "8080", ":8080", "host:", "host:x", "host:70000", "::1:80", "[::1]80"})
    CHECK_THROWS_AS(view::parse_listen(bad), Error);
}
