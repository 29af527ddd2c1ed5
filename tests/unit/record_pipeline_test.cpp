// The recorder's pipeline with no broker: a fake MQTT client plays the
// network thread, SQLite stores. Routes (several, overlapping, mapped,
// reloaded), decoders (one message -> several documents, a failing decoder),
// readings of an earlier run carrying their route, and the accounting
// received + replayed = stored + rejected + pending, per route and in total.
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "fake_mqtt_client.hpp"
#include "iotbridge/error.hpp"
#include "iotbridge/record/decoder.hpp"
#include "iotbridge/record/journal.hpp"
#include "iotbridge/record/recorder.hpp"
#include "iotbridge/store/open.hpp"
#include "record/pipeline.hpp"
#include "servers.hpp"

using namespace iotbridge;
using namespace iotbridge::record;
using namespace std::chrono_literals;
using store::Document;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

RecorderOptions options(const fs::path& spool) {
  RecorderOptions o;
  o.spool_dir = spool;
  o.batch_size = 50;
  o.flush_interval = 5ms;
  o.retry_delay_min = 10ms;
  o.retry_delay_max = 50ms;
  o.sync_write_ahead = false;
  o.on_log = [](mqtt::LogLevel, std::string_view) {};
  return o;
}

Route route(std::string name, std::vector<std::string> filters, std::string collection) {
  Route r;
  r.name = std::move(name);
  r.filters = std::move(filters);
  r.collection = std::move(collection);
  return r;
}

void check_accounting(const RecorderStats& s) {
  INFO(s.to_json());
  CHECK(s.received + s.replayed == s.stored + s.rejected + s.pending);
  for (const auto& r : s.routes) {
    INFO(r.name);
    CHECK(r.received + r.replayed == r.stored + r.rejected + r.pending);
  }
}

const RouteStats& route_stats(const RecorderStats& s, const std::string& name) {
  for (const auto& r : s.routes)
    if (r.name == name) return r;
  FAIL("no route " << name);
  throw;
}

std::vector<Document> all(store::DocumentStore& db, const std::string& collection) {
  std::vector<Document> out;
  for (const Document& d : db.collection("iot_service", collection)->find(Document{})) out.push_back(d);
  return out;
}

}  // namespace

TEST_CASE("pipeline: two routes, a message matching both is stored by each, mapping picks fields", "[record]") {
  TempDir dir;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store("sqlite::memory:"));
  auto client = std::make_shared<test::FakeMqttClient>();
  auto o = options(dir / "spool");
  Route raw = route("raw", {"iot/#"}, "raw");
  Route climate = route("climate", {"iot/+/climate"}, "climate");
  climate.decoder = "json";
  climate.fields = {{"temperature", "/t"}, {"battery", "/bat"}};
  climate.keep_payload = false;
  o.routes = {raw, climate};
  Recorder recorder(o, db, client);
  recorder.start();
  for (int i = 0; i < 100; ++i) REQUIRE(client->deliver("iot/kitchen/climate", R"({"t": )" + std::to_string(i) + "}"));
  client->deliver("iot/kitchen/power", "230.5");
  REQUIRE(recorder.wait_idle(20s));
  auto s = recorder.stats();
  recorder.stop();
  check_accounting(s);
  CHECK(s.messages == 101);
  CHECK(s.received == 201);
  CHECK(s.stored == 201);
  CHECK(route_stats(s, "raw").stored == 101);
  CHECK(route_stats(s, "climate").stored == 100);
  CHECK(route_stats(s, "climate").unmapped == 100);  // no "/bat" in any payload
  CHECK(route_stats(s, "climate").kinds == std::vector<std::pair<std::string, std::uint64_t>>{{"json", 100}});

  auto climate_docs = all(*db, "climate");
  REQUIRE(climate_docs.size() == 100);
  for (const auto& d : climate_docs) {
    CHECK(d.get_double("temperature"));
    CHECK(!d.has("battery"));
    CHECK(!d.has("value"));
    CHECK(d.get_string("topic") == "iot/kitchen/climate");
  }
  auto raw_docs = all(*db, "raw");
  REQUIRE(raw_docs.size() == 101);
  CHECK(raw_docs.back().get_double("value") == 230.5);
}

TEST_CASE("pipeline: update_routes while running loses and doubles nothing", "[record]") {
  TempDir dir;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store("sqlite::memory:"));
  auto client = std::make_shared<test::FakeMqttClient>();
  auto o = options(dir / "spool");
  o.routes = {route("a", {"iot/a/#"}, "a")};
  Recorder recorder(o, db, client);
  recorder.start();
  for (int i = 0; i < 300; ++i) client->deliver("iot/a/x", std::to_string(i));
  Route b = route("b", {"iot/b/#"}, "b");
  Route a2 = route("a", {"iot/a/#"}, "a2");  // same name, another collection
  recorder.update_routes({a2, b});
  CHECK(client->subscribed() == std::vector<std::string>{"iot/a/#", "iot/b/#"});
  for (int i = 0; i < 200; ++i) {
    client->deliver("iot/a/x", std::to_string(i));
    client->deliver("iot/b/y", std::to_string(i));
  }
  REQUIRE(recorder.wait_idle(20s));
  auto s = recorder.stats();
  recorder.stop();
  check_accounting(s);
  CHECK(s.pending == 0);
  CHECK(route_stats(s, "a").received == 500);
  CHECK(route_stats(s, "b").received == 200);
  CHECK(all(*db, "a").size() + all(*db, "a2").size() == 500);
  CHECK(all(*db, "a2").size() >= 200);
  CHECK(all(*db, "b").size() == 200);
  CHECK_THROWS_AS(recorder.update_routes({route("x", {}, "x")}), Error);
  CHECK(recorder.routes().size() == 2);
}

TEST_CASE("pipeline: a decoder may make several documents of one message, a failing one falls back", "[record]") {
  struct Pair final : PayloadDecoder {
    std::string_view name() const noexcept override { return "test-pair"; }
    void decode(const DecodeInput& in, std::vector<DecodedItem>& out) const override {
      if (in.payload == "boom") throw std::runtime_error("cannot read boom");
      out.push_back(DecodedItem{store::Value(1.0), {}, "pair"});
      out.push_back(DecodedItem{{}, {{"second", store::Value(2.0)}}, "pair"});
    }
  };
  static bool registered = false;
  if (!registered) register_decoder(std::make_shared<Pair>());
  registered = true;
  TempDir dir;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store("sqlite::memory:"));
  auto client = std::make_shared<test::FakeMqttClient>();
  auto o = options(dir / "spool");
  Route r = route("pairs", {"p/#"}, "pairs");
  r.decoder = "test-pair";
  o.routes = {r};
  std::vector<std::string> warnings;
  std::mutex warnings_mutex;
  o.on_log = [&](mqtt::LogLevel level, std::string_view text) {
    std::lock_guard lock(warnings_mutex);
    if (level >= mqtt::LogLevel::warning) warnings.emplace_back(text);
  };
  Recorder recorder(o, db, client);
  recorder.start();
  for (int i = 0; i < 10; ++i) client->deliver("p/x", "x");
  client->deliver("p/x", "boom");
  REQUIRE(recorder.wait_idle(20s));
  auto s = recorder.stats();
  recorder.stop();
  check_accounting(s);
  CHECK(s.stored == 11);
  auto docs = all(*db, "pairs");
  REQUIRE(docs.size() == 21);
  std::set<std::string> ids;
  for (const auto& d : docs) ids.insert(d.at("_id").to_json());
  CHECK(ids.size() == 21);
  CHECK(db->collection("iot_service", "pairs")->count_documents(Document::from_json(R"({"second": 2.0})")) == 10);
  CHECK(db->collection("iot_service", "pairs")->count_documents(Document::from_json(R"({"value": "boom"})")) == 1);
  std::lock_guard lock(warnings_mutex);
  REQUIRE(!warnings.empty());
  CHECK_THAT(warnings.front(), Catch::Contains("test-pair") && Catch::Contains("cannot read boom"));
}

TEST_CASE("pipeline: readings an earlier run journaled go to the route they name", "[record]") {
  TempDir dir;
  {
    JournalOptions jo;
    jo.prefix = "wal";
    jo.fsync = false;
    Journal wal(dir / "spool" / "wal", jo);
    for (int i = 0; i < 30; ++i) {
      Reading r;
      r.id = store::ObjectId::generate();
      r.received = store::DateTime::now();
      r.topic = "iot/x";
      r.payload = std::to_string(i);
      r.route = i % 3 == 0 ? "b" : (i % 3 == 1 ? "a" : i % 2 ? "" : "gone");
      wal.append(encode_reading(r));
    }
  }
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store("sqlite::memory:"));
  auto client = std::make_shared<test::FakeMqttClient>();
  auto o = options(dir / "spool");
  o.routes = {route("a", {"iot/a"}, "a"), route("b", {"iot/b"}, "b")};
  Recorder recorder(o, db, client);
  recorder.start();
  REQUIRE(recorder.wait_idle(20s));
  auto s = recorder.stats();
  recorder.stop();
  check_accounting(s);
  CHECK(s.replayed == 30);
  CHECK(route_stats(s, "b").replayed == 10);
  CHECK(route_stats(s, "a").replayed == 20);  // its own, "" (the first route) and a route that is gone
  CHECK(all(*db, "b").size() == 10);
  CHECK(all(*db, "a").size() == 20);
}

TEST_CASE("route set: the first matching filter's handler takes a message for all its routes", "[record]") {
  detail::Counters counters;
  Route a = route("a", {"iot/#"}, "a");
  Route b = route("b", {"iot/+/t", "iot/k/t"}, "b");
  detail::RouteSet set({a, b}, counters);
  CHECK(set.filters() == std::vector<std::string>{"iot/#", "iot/+/t", "iot/k/t"});
  std::vector<const detail::CompiledRoute*> out;
  // "iot/k/t" matches all three filters: only "iot/#"'s handler takes it, for both routes.
  CHECK(set.match("iot/#", "iot/k/t", out));
  REQUIRE(out.size() == 2);
  CHECK(out[0]->route.name == "a");
  CHECK(out[1]->route.name == "b");
  CHECK(!set.match("iot/+/t", "iot/k/t", out));
  CHECK(!set.match("iot/k/t", "iot/k/t", out));
  CHECK(set.match("iot/#", "iot/k", out));
  CHECK(out.size() == 1);
  // A handler of a filter no route has any more (a reload): not taken, or unrouted when nothing matches.
  CHECK(!set.match("old/#", "iot/k", out));
  CHECK(set.match("old/#", "old/k", out));
  CHECK(out.empty());
}
