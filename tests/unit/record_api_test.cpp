// The recorder's metrics table and its printers (JSON, status line,
// Prometheus text), JSON Pointers, route validation and the decoder registry.
#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <string>

#include "iotbridge/error.hpp"
#include "iotbridge/record/decoder.hpp"
#include "iotbridge/record/metrics.hpp"
#include "iotbridge/record/route.hpp"

using namespace iotbridge;
using namespace iotbridge::record;
using store::Document;
using store::Value;

namespace {

RecorderStats sample_stats() {
  RecorderStats s;
  s.received = 12;
  s.stored = 10;
  s.pending = 2;
  s.queue_depth = 2;
  s.queue_capacity = 100;
  s.store_ok = false;
  s.connected = true;
  s.last_error = "store: \"down\"\n";
  RouteStats a;
  a.name = "climate";
  a.received = 7;
  a.stored = 6;
  a.pending = 1;
  a.unmapped = 3;
  a.kinds = {{"json", 6}};
  RouteStats b;
  b.name = "power \"main\"";
  b.received = 5;
  b.stored = 4;
  b.pending = 1;
  b.kinds = {{"number", 4}};
  s.routes = {a, b};
  s.batch_seconds.bounds.assign(kBatchSecondsBuckets.begin(), kBatchSecondsBuckets.end());
  s.batch_seconds.counts.assign(kBatchSecondsBuckets.size() + 1, 0);
  s.batch_seconds.counts[0] = 2;  // <= 0.0005
  s.batch_seconds.counts[4] = 1;  // <= 0.01
  s.batch_seconds.count = 3;
  s.batch_seconds.sum = 0.008;
  return s;
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

}  // namespace

TEST_CASE("metrics table: the interface names are there, each once, well formed", "[record][metrics]") {
  std::set<std::string> names, fields;
  for (const auto& m : recorder_metrics()) {
    INFO(m.field);
    CHECK(fields.insert(std::string(m.field)).second);
    CHECK(!m.help.empty());
    if (m.name.empty()) continue;
    CHECK(names.insert(std::string(m.name)).second);
    CHECK(m.name.rfind("iotbridge_", 0) == 0);
    if (m.type == MetricType::counter) CHECK(m.name.ends_with("_total"));
  }
  for (const char* name :
       {"iotbridge_readings_received_total", "iotbridge_readings_stored_total", "iotbridge_readings_duplicate_total",
        "iotbridge_readings_rejected_total", "iotbridge_readings_unmapped_total", "iotbridge_readings_pending",
        "iotbridge_spool_bytes", "iotbridge_store_retries_total", "iotbridge_mqtt_connected", "iotbridge_store_up",
        "iotbridge_batch_seconds", "iotbridge_receive_to_store_seconds"}) {
    INFO(name);
    CHECK(names.count(name) == 1);
  }
}

TEST_CASE("metrics: JSON has every table field, the routes and their kinds", "[record][metrics]") {
  auto s = sample_stats();
  auto json = Document::from_json(s.to_json());
  for (const auto& m : recorder_metrics()) {
    INFO(m.field);
    CHECK(json.has(std::string(m.field)));
  }
  CHECK(json.get_int64("received") == 12);
  CHECK(json.get_bool("store_ok") == false);
  CHECK(json.get_string("last_error") == "store: \"down\"\n");
  CHECK(json.get_int64("batch_seconds.count") == 3);
  CHECK(json.get_string("routes.0.name") == "climate");
  CHECK(json.get_int64("routes.0.unmapped") == 3);
  CHECK(json.get_int64("routes.0.kinds.json") == 6);
  CHECK(json.get_string("routes.1.name") == "power \"main\"");
}

TEST_CASE("metrics: the status line shows what a person watches", "[record][metrics]") {
  auto s = sample_stats();
  auto line = s.status_line();
  INFO(line);
  CHECK(line.rfind("recv 12 stored 10 pend 2 dup 0 retry 0 spool 0 q 2/100", 0) == 0);
  CHECK(line.find("mqtt up") != std::string::npos);
  CHECK(line.find("store FAILING: store: \"down\"") != std::string::npos);
  CHECK(line.find("rejected") == std::string::npos);  // shown only when not 0
  CHECK(line.find("intake PAUSED") == std::string::npos);
  s.intake_paused = true;
  s.rejected = 4;
  line = s.status_line();
  CHECK(line.find("rejected 4") != std::string::npos);
  CHECK(line.find("intake PAUSED") != std::string::npos);
}

TEST_CASE("metrics: Prometheus text exposition 0.0.4", "[record][metrics]") {
  auto text = to_prometheus(sample_stats());
  INFO(text);
  CHECK(has_line(text, "# TYPE iotbridge_readings_received_total counter"));
  CHECK(has_line(text, "iotbridge_readings_received_total{route=\"climate\"} 7"));
  CHECK(has_line(text, "iotbridge_readings_received_total{route=\"power \\\"main\\\"\"} 5"));
  CHECK(has_line(text, "iotbridge_readings_unmapped_total{route=\"climate\"} 3"));
  CHECK(has_line(text, "# TYPE iotbridge_readings_pending gauge"));
  CHECK(has_line(text, "iotbridge_mqtt_connected 1"));
  CHECK(has_line(text, "iotbridge_store_up 0"));
  CHECK(has_line(text, "# TYPE iotbridge_batch_seconds histogram"));
  CHECK(has_line(text, "iotbridge_batch_seconds_bucket{le=\"0.0005\"} 2"));
  CHECK(has_line(text, "iotbridge_batch_seconds_bucket{le=\"0.005\"} 2"));
  CHECK(has_line(text, "iotbridge_batch_seconds_bucket{le=\"0.01\"} 3"));
  CHECK(has_line(text, "iotbridge_batch_seconds_bucket{le=\"+Inf\"} 3"));
  CHECK(has_line(text, "iotbridge_batch_seconds_count 3"));
  CHECK(has_line(text, "iotbridge_batch_seconds_sum 0.008"));
  CHECK(has_line(text, "iotbridge_readings_decoded_total{route=\"climate\",kind=\"json\"} 6"));
  CHECK(text.find("numbers") == std::string::npos);  // JSON-only rows stay out
  // Every sample line is "name{labels} value" or "name value"; HELP/TYPE precede samples.
  std::set<std::string> typed;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    REQUIRE(end != std::string::npos);
    std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.rfind("# TYPE ", 0) == 0) {
      typed.insert(line.substr(7, line.find(' ', 7) - 7));
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) continue;
    std::string name = line.substr(0, line.find_first_of("{ "));
    for (const char* suffix : {"_bucket", "_sum", "_count"})
      if (!typed.count(name) && name.ends_with(suffix)) name = name.substr(0, name.size() - std::strlen(suffix));
    CHECK(typed.count(name) == 1);
  }
}

TEST_CASE("JSON Pointer: RFC 6901 examples and escapes", "[record][route]") {
  auto doc = Value(Document::from_json(
      R"({"foo": ["bar", "baz"], "": 0, "a/b": 1, "m~n": 8, "k\"l": 6, " ": 7, "x.y": 9, "n": {"t": 21.5}})"));
  struct Row {
    const char* pointer;
    std::optional<std::string> json;
  };
  const Row rows[] = {
      {"/foo/0", "\"bar\""}, {"/a~1b", "1"},   {"/m~0n", "8"}, {"/k\"l", "6"},  {"/ ", "7"},    {"/", "0"},
      {"/x.y", "9"},         {"/n/t", "21.5"}, {"/foo/2", {}}, {"/foo/01", {}}, {"/foo/-", {}}, {"/missing", {}},
      {"/n/t/u", {}},
  };
  for (const auto& row : rows) {
    INFO(row.pointer);
    auto got = JsonPointer(row.pointer).resolve(doc);
    if (!row.json) {
      CHECK(!got);
      continue;
    }
    REQUIRE(got);
    CHECK(got->to_json() == *row.json);
  }
  CHECK(JsonPointer("").resolve(Value(3.0))->to_json() == "3.0");
  CHECK_THROWS_AS(JsonPointer("t"), Error);
  CHECK_THROWS_AS(JsonPointer("/a~2"), Error);
  CHECK_THROWS_AS(JsonPointer("/a~"), Error);
}

TEST_CASE("routes: each mistake is an error naming the route and the field", "[record][route]") {
  auto good = [] {
    Route r;
    r.name = "climate";
    r.filters = {"iot/+/climate"};
    r.fields = {{"temperature", "/t"}};
    return r;
  };
  CHECK_NOTHROW(validate_routes({good()}));
  struct Row {
    const char* what;
    std::function<void(std::vector<Route>&)> change;
    std::vector<std::string> words;
  };
  const std::vector<Row> rows = {
      {"no filter", [](auto& v) { v[0].filters.clear(); }, {"'climate'", "filters"}},
      {"bad filter", [](auto& v) { v[0].filters = {"a/#/b"}; }, {"'climate'", "filters"}},
      {"same name", [&](auto& v) { v.push_back(v[0]); }, {"'climate'", "two routes"}},
      {"bad pointer",
       [](auto& v) {
         v[0].fields = {{"t", "t"}};
       },
       {"'climate'", "fields.t", "'/'"}},
      {"bad escape",
       [](auto& v) {
         v[0].fields = {{"t", "/a~2"}};
       },
       {"'climate'", "fields.t", "~"}},
      {"reserved field",
       [](auto& v) {
         v[0].fields = {{"_id", "/t"}};
       },
       {"'climate'", "fields", "_id"}},
      {"unknown decoder", [](auto& v) { v[0].decoder = "sparkplug"; }, {"'climate'", "decoder", "sparkplug", "auto"}},
      {"pattern too long",
       [](auto& v) { v[0].document.topic_fields = TopicPattern("iot/{home}/climate/{sensor}"); },
       {"'climate'", "topic_fields", "iot/+/climate"}},
      {"pattern literal",
       [](auto& v) { v[0].document.topic_fields = TopicPattern("farm/{home}/climate"); },
       {"'climate'", "topic_fields"}},
      {"empty collection", [](auto& v) { v[0].collection.clear(); }, {"'climate'", "collection"}},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    std::vector<Route> routes{good()};
    row.change(routes);
    try {
      validate_routes(routes);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.category() == ErrorCategory::config);
      for (const auto& w : row.words) CHECK_THAT(e.what(), Catch::Contains(w));
    }
  }
  CHECK_THROWS_AS(validate_routes({}), Error);
}

TEST_CASE("routes: a topic-fields pattern fits a filter when some topic matches both", "[record][route]") {
  struct Row {
    const char* pattern;
    const char* filter;
    bool fits;
  };
  const Row rows[] = {
      {"iot/{home}/{device}/{sensor}", "iot/#", true},
      {"iot/{home}/{device}/{sensor}", "iot/+/+/+", true},
      {"iot/{home}/{device}/{sensor}", "iot/+", false},
      {"iot/{home}/#", "iot/a/b/c/d", true},
      {"iot/{home}", "home/+", false},
      {"+/{x}", "$share/g/a/b", true},
      {"a/{x}", "a", false},
      {"a/#", "a", true},
  };
  for (const auto& row : rows) {
    INFO(row.pattern << " vs " << row.filter);
    CHECK(pattern_fits_filter(TopicPattern(row.pattern), row.filter) == row.fits);
  }
}

TEST_CASE("decoders: the built-ins by name, and one of your own", "[record][decoder]") {
  DecodeOptions options;
  auto decode = [&](const char* name, std::string_view payload) {
    std::vector<DecodedItem> out;
    find_decoder(name)->decode(DecodeInput{"t", payload, options}, out);
    REQUIRE(out.size() == 1);
    return out.front();
  };
  CHECK(decode("auto", "24.5").kind == "number");
  CHECK(decode("auto", R"({"a":1})").kind == "json");
  CHECK(decode("number", R"({"a":1})").kind == "text");
  CHECK(decode("json", "24.5").kind == "json");
  CHECK(decode("text", "24.5").value == Value(std::string("24.5")));
  CHECK(decode("text", std::string_view("\xff", 1)).kind == "binary");
  CHECK(decode("binary", "24.5").kind == "binary");
  CHECK(decode("binary", "").kind == "null");

  struct Twice final : PayloadDecoder {
    std::string_view name() const noexcept override { return "test-twice"; }
    void decode(const DecodeInput& in, std::vector<DecodedItem>& out) const override {
      for (int i = 0; i < 2; ++i) out.push_back(DecodedItem{Value(std::string(in.payload)), {}, "twice"});
    }
  };
  register_decoder(std::make_shared<Twice>());
  CHECK_THROWS_AS(register_decoder(std::make_shared<Twice>()), Error);
  std::vector<DecodedItem> out;
  find_decoder("test-twice")->decode(DecodeInput{"t", "x", options}, out);
  CHECK(out.size() == 2);
  auto names = decoder_names();
  for (const char* n : {"auto", "number", "json", "text", "binary", "test-twice"})
    CHECK(std::count(names.begin(), names.end(), n) == 1);
  CHECK_THROWS_WITH(find_decoder("nope"), Catch::Contains("auto"));
}

TEST_CASE("metrics table: docs/recorder.md lists every field and metric name", "[record][metrics]") {
  std::ifstream in(std::string(IOTBRIDGE_SOURCE_DIR) + "/docs/recorder.md");
  REQUIRE(in);
  std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const auto& m : recorder_metrics()) {
    INFO(m.field);
    CHECK(doc.find("`" + std::string(m.field) + "`") != std::string::npos);
    if (!m.name.empty()) CHECK(doc.find("`" + std::string(m.name) + "`") != std::string::npos);
  }
}
