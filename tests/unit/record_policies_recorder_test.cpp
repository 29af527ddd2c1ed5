// Route policies inside the recorder, with no broker (a fake MQTT client
// plays the network thread) and real SQLite files: deadband with a heartbeat
// and a restart, quarantine of oversized readings and its accounting, dedup
// keys, expiry while inserts go on. Accounting, always:
// received + replayed = stored + rejected + suppressed + quarantined + pending.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "fake_mqtt_client.hpp"
#include "iotbridge/record/dedup.hpp"
#include "iotbridge/record/quarantine.hpp"
#include "iotbridge/record/recorder.hpp"
#include "iotbridge/store/open.hpp"
#include "servers.hpp"

using namespace iotbridge;
using namespace iotbridge::record;
using namespace std::chrono_literals;
using store::Document;
using test::TempDir;

namespace {

RecorderOptions options(const std::filesystem::path& spool, Route route) {
  RecorderOptions o;
  o.spool_dir = spool;
  o.batch_size = 50;
  o.flush_interval = 5ms;
  o.retry_delay_min = 10ms;
  o.retry_delay_max = 50ms;
  o.sync_write_ahead = false;
  o.on_log = [](mqtt::LogLevel, std::string_view) {};
  route.name = "r";
  route.filters = {"iot/#"};
  o.routes = {route};
  return o;
}

void check_accounting(const RecorderStats& s) {
  INFO(s.to_json());
  CHECK(s.received + s.replayed == s.stored + s.rejected + s.suppressed + s.quarantined + s.pending);
  for (const auto& r : s.routes)
    CHECK(r.received + r.replayed == r.stored + r.rejected + r.suppressed + r.quarantined + r.pending);
}

std::vector<double> values(store::DocumentStore& db, const std::string& collection = "sensors") {
  std::vector<double> out;
  store::FindOptions by_time;
  by_time.sort = Document().append("reg_date", 1).append("_id", 1);
  for (const Document& d : db.collection("iot_service", collection)->find(Document{}, by_time))
    out.push_back(d.get_double("value").value_or(-1));
  return out;
}

// Runs one recorder over `payloads` on topic iot/a/temp and returns its final stats.
RecorderStats run_recorder(const std::shared_ptr<store::DocumentStore>& db, const RecorderOptions& o,
                           const std::vector<std::string>& payloads, const std::string& topic = "iot/a/temp") {
  auto client = std::make_shared<test::FakeMqttClient>();
  Recorder recorder(o, db, client);
  recorder.start();
  for (const auto& p : payloads) REQUIRE(client->deliver(topic, p));
  REQUIRE(recorder.wait_idle(20s));
  auto s = recorder.stats();
  recorder.stop();
  check_accounting(s);
  return s;
}

std::shared_ptr<store::DocumentStore> sqlite_file(const TempDir& dir) {
  return store::open_store("sqlite:" + (dir.path() / "store.db").string());
}

// A SQLite file, or a fresh database on the MongoDB-compatible server of the
// fixture (FerretDB 1.x: no TTL indexes, so the recorder's own expiry).
struct PolicyStore {
  std::shared_ptr<store::DocumentStore> db;
  std::string database = "iot_service";
  bool mongo = false;
  PolicyStore(const std::string& kind, const TempDir& dir) : mongo(kind == "mongodb") {
    if (!mongo) {
      db = sqlite_file(dir);
      return;
    }
    db = store::open_store(test::test_mongo_uri());
    database = test::unique_db_name("iotb_policy");
  }
  ~PolicyStore() {
    if (!mongo) return;
    try {
      db->drop_database(database);
    } catch (...) {
    }
  }
};

}  // namespace

// Each test case that uses it runs once on a SQLite file, once on FerretDB.
#define FOR_EACH_POLICY_STORE(dir, ps)                                       \
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "mongodb"); \
  if (kind == "mongodb") IOTBRIDGE_REQUIRE_MONGO();                          \
  INFO("backend: " << kind);                                                 \
  TempDir dir;                                                               \
  PolicyStore ps(kind, dir)

TEST_CASE(
    "recorder policies: deadband 0.2 stores 20.0 and 20.3 of 20.0 20.1 20.15 20.3 20.3, and a restart keeps it right",
    "[record][policy]") {
  TempDir dir;
  Route r;
  r.deadband = 0.2;
  auto o = options(dir / "spool", r);
  auto s = run_recorder(sqlite_file(dir), o, {"20.0", "20.1", "20.15", "20.3", "20.3"});
  CHECK(s.received == 5);
  CHECK(s.stored == 2);
  CHECK(s.suppressed == 3);
  CHECK(values(*sqlite_file(dir)) == std::vector<double>{20.0, 20.3});
  CHECK_THAT(to_prometheus(s), Catch::Contains("iotbridge_readings_suppressed_total{route=\"r\"} 3"));

  // The next run reads the last stored value back: 20.4 is no change from
  // 20.3 (no burst of unchanged values), 20.5 is (no missed change).
  auto again = run_recorder(sqlite_file(dir), o, {"20.3", "20.4", "20.5"});
  CHECK(again.stored == 1);
  CHECK(again.suppressed == 2);
  CHECK(values(*sqlite_file(dir)) == std::vector<double>{20.0, 20.3, 20.5});
}

TEST_CASE("recorder policies: the heartbeat stores an unchanged value after its interval", "[record][policy]") {
  TempDir dir;
  Route r;
  r.on_change = true;
  r.heartbeat = 1s;
  auto o = options(dir / "spool", r);
  auto db = sqlite_file(dir);
  auto client = std::make_shared<test::FakeMqttClient>();
  Recorder recorder(o, db, client);
  recorder.start();
  REQUIRE(client->deliver("iot/a/temp", "20.0"));
  REQUIRE(client->deliver("iot/a/temp", "20.0"));
  REQUIRE(recorder.wait_idle(20s));
  CHECK(recorder.stats().stored == 1);
  // Past the heartbeat (receive times are the intake's clock): stored again.
  const auto first = store::DateTime::now();
  while (store::DateTime::now().millis - first.millis < 1100) std::this_thread::sleep_for(20ms);
  REQUIRE(client->deliver("iot/a/temp", "20.0"));
  REQUIRE(client->deliver("iot/a/temp", "20.0"));
  REQUIRE(recorder.wait_idle(20s));
  auto s = recorder.stats();
  recorder.stop();
  check_accounting(s);
  CHECK(s.stored == 2);
  CHECK(s.suppressed == 2);
}

TEST_CASE("recorder policies: max_document_bytes 1000, 10 small and 5 large: 10 stored, 5 quarantined, replayed later",
          "[record][policy][quarantine]") {
  FOR_EACH_POLICY_STORE(dir, ps);
  Route r;
  r.database = ps.database;
  r.max_document_bytes = 1000;
  auto o = options(dir / "spool", r);
  std::vector<std::string> payloads;
  for (int i = 0; i < 15; ++i) payloads.push_back(i % 3 == 2 ? std::string(2000, 'x') : std::to_string(i));
  auto db = ps.db;
  auto s = run_recorder(db, o, payloads);
  CHECK(s.received == 15);
  CHECK(s.stored == 10);
  CHECK(s.quarantined == 5);
  CHECK(s.routes.at(0).quarantine_reasons == std::vector<std::pair<std::string, std::uint64_t>>{{"too_large", 5}});
  CHECK_THAT(to_prometheus(s),
             Catch::Contains("iotbridge_readings_quarantined_total{route=\"r\",reason=\"too_large\"} 5"));
  auto quarantine = db->collection(ps.database, "sensors_quarantine");
  REQUIRE(quarantine->count_documents() == 5);
  for (const Document& d : quarantine->find(Document{})) {
    auto q = quarantined_reading_from_document(d);
    CHECK(q.reading.payload == std::string(2000, 'x'));
    CHECK(q.route == "r");
    CHECK(q.reason == QuarantineReason::too_large);
    CHECK_THAT(q.message, Catch::Contains("max_document_bytes is 1000"));
  }

  // The cause fixed (the limit raised), the quarantined readings go in.
  r.name = "r";
  r.filters = {"iot/#"};
  r.max_document_bytes = 0;
  auto moved = replay_quarantine(*db, r);
  CHECK(moved.moved == 5);
  CHECK(moved.failed == 0);
  CHECK(quarantine->count_documents() == 0);
  CHECK(db->collection(ps.database, "sensors")->count_documents() == 15);
  CHECK(replay_quarantine(*db, r).moved == 0);  // nothing left: nothing twice
}

TEST_CASE("recorder policies: a replay that fails again keeps the reading with the new reason",
          "[record][policy][quarantine]") {
  TempDir dir;
  Route r;
  r.max_document_bytes = 1000;
  auto o = options(dir / "spool", r);
  auto db = sqlite_file(dir);
  run_recorder(db, o, {std::string(1500, 'y')});
  r.name = "r";
  r.filters = {"iot/#"};
  r.max_document_bytes = 1200;  // raised, not enough
  auto result = replay_quarantine(*db, r);
  CHECK(result.moved == 0);
  CHECK(result.failed == 1);
  auto left = db->collection("iot_service", "sensors_quarantine")->find_one(Document{});
  REQUIRE(left);
  CHECK_THAT(left->get_string("message").value_or(""), Catch::Contains("max_document_bytes is 1200"));
}

TEST_CASE("recorder policies: on_unmapped = quarantine keeps readings that lack a mapped field aside",
          "[record][policy][quarantine]") {
  TempDir dir;
  Route r;
  r.decoder = "json";
  r.fields = {{"temperature", "/t"}};
  r.on_unmapped = Route::OnUnmapped::quarantine;
  auto o = options(dir / "spool", r);
  auto db = sqlite_file(dir);
  auto s = run_recorder(db, o, {R"({"t": 1})", R"({"h": 2})", R"({"t": 3})"});
  CHECK(s.stored == 2);
  CHECK(s.quarantined == 1);
  CHECK(s.routes.at(0).quarantine_reasons == std::vector<std::pair<std::string, std::uint64_t>>{{"unmapped", 1}});
}

TEST_CASE("recorder policies: a dedup key stores a reading delivered twice once", "[record][policy][dedup]") {
  TempDir dir;
  Route r;
  r.decoder = "json";
  r.dedup_key = "/seq";
  auto o = options(dir / "spool", r);
  auto db = sqlite_file(dir);
  // Each reading twice (a QoS 1 redelivery), and one without the key.
  auto s = run_recorder(db, o,
                        {R"({"seq": 1, "t": 20})", R"({"seq": 2, "t": 21})", R"({"seq": 1, "t": 20})",
                         R"({"seq": 2, "t": 21})", R"({"t": 22})"});
  CHECK(s.received == 5);
  CHECK(s.stored == 5);      // confirmed by the store ...
  CHECK(s.duplicates == 2);  // ... two of them as already there
  CHECK(s.without_dedup_key == 1);
  CHECK(db->collection("iot_service", "sensors")->count_documents() == 3);
  auto doc = db->collection("iot_service", "sensors")->find_one(Document().append("value.seq", 1));
  REQUIRE(doc);
  CHECK(doc->get_object_id("_id") == dedup_id("r", "iot/a/temp", "n1"));
  // Another run (a replay, the other recorder of a $share group): the same _ids.
  run_recorder(db, o, {R"({"seq": 2, "t": 21})"});
  CHECK(db->collection("iot_service", "sensors")->count_documents() == 3);
}

TEST_CASE("recorder policies: expire_after removes old readings while inserts go on, newer ones stay",
          "[record][policy][retention]") {
  FOR_EACH_POLICY_STORE(dir, ps);
  Route r;
  r.database = ps.database;
  r.decoder = "json";
  r.document.timestamp_field = "ts";  // expiry by the payload's time: old and new are fixed, not raced
  r.expire_after = 2s;
  auto o = options(dir / "spool", r);
  auto db = ps.db;
  auto client = std::make_shared<test::FakeMqttClient>();
  Recorder recorder(o, db, client);
  recorder.start();
  const auto now = store::DateTime::now().millis;
  auto reading = [](std::int64_t ts, int n) { return fmt::format(R"({{"ts": {}, "n": {}}})", ts, n); };
  for (int i = 0; i < 300; ++i) REQUIRE(client->deliver("iot/a/temp", reading(now - 3600 * 1000, i)));
  auto coll = db->collection(ps.database, "sensors");
  const auto old = Document::from_json(R"({"value.n": {"$lt": 1000}})");
  // Inserts go on while the old ones expire.
  int n = 1000;
  while (coll->count_documents(old) > 0 || recorder.stats().stored < 300) {
    REQUIRE(client->deliver("iot/a/temp", reading(now + 3600 * 1000, n++)));
    REQUIRE(n < 1000 + 200000);  // expiry never came
    std::this_thread::sleep_for(5ms);
  }
  REQUIRE(recorder.wait_idle(20s));
  auto s = recorder.stats();
  recorder.stop();
  check_accounting(s);
  CHECK(coll->count_documents() == n - 1000);  // every newer reading stays
  CHECK(s.stored == 300 + static_cast<std::uint64_t>(n - 1000));
}
