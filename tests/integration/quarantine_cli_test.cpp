// iotbridge-db quarantine, as an operator runs it: a recorder with a real
// Mosquitto and a route with max_document_bytes = 1000 gets 10 small and 5
// large readings; the CLI counts, lists, replays (with the limit still low,
// then raised in the recorder's configuration file) and drops them, on a
// SQLite file and on the MongoDB-compatible server.
#include <catch2/catch.hpp>

#include "cli_helpers.hpp"
#include "iotbridge/record/quarantine.hpp"
#include "record_helpers.hpp"

using namespace iotbridge;
using namespace std::chrono_literals;
using iotbridge::store::Document;
using iotbridge::test::TempDir;

namespace {

struct QuarantineStore {
  std::string kind, uri, database = "iot_service";
  std::shared_ptr<store::DocumentStore> db;
  QuarantineStore(const std::string& k, const TempDir& dir) : kind(k) {
    if (kind == "sqlite") {
      uri = "sqlite:" + (dir / "readings.db").string();
    } else {
      uri = test::test_mongo_uri();
      database = test::unique_db_name("iotb_quarantine");
    }
    db = store::open_store(uri);
  }
  ~QuarantineStore() {
    if (kind != "mongodb") return;
    try {
      db->drop_database(database);
    } catch (...) {
    }
  }
};

// The recorder's configuration file with this route limit.
std::string config_text(const QuarantineStore& s, std::size_t max_document_bytes) {
  return "[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n[store]\nuri = \"" + s.uri +
         "\"\n[[route]]\nname = \"r\"\nfilters = [\"iot/#\"]\ndatabase = \"" + s.database +
         "\"\nmax_document_bytes = " + std::to_string(max_document_bytes) + "\n";
}

test::ToolResult db_cli(const QuarantineStore& s, std::vector<std::string> args) {
  args.insert(args.begin(), {test::cli_tool("iotbridge-db"), "--store", s.uri});
  return test::run_tool(args);
}

}  // namespace

TEST_CASE("iotbridge-db quarantine: 10 small and 5 large readings, counted, listed, replayed when the limit is raised",
          "[quarantine][cli]") {
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "mongodb");
  if (kind == "mongodb") IOTBRIDGE_REQUIRE_MONGO();
  INFO("backend: " << kind);
  TempDir dir;
  QuarantineStore s(kind, dir);
  {
    test::MosquittoServer broker;
    auto o = test::recorder_options(broker, dir / "spool");
    record::Route r;
    r.name = "r";
    r.filters = {"iot/#"};
    r.database = s.database;
    r.max_document_bytes = 1000;
    o.filters.clear();
    o.routes = {r};
    record::Recorder recorder(o, s.db);
    recorder.start();
    {
      test::Publisher pub(broker);
      for (int i = 0; i < 10; ++i) pub.publish("iot/a/temp", std::to_string(i));
      for (int i = 0; i < 5; ++i) pub.publish("iot/a/blob" + std::to_string(i), std::string(2000, 'x'));
      pub.flush();
    }
    REQUIRE(recorder.wait_received(15, 20s));
    REQUIRE(recorder.wait_idle(20s));
    auto stats = recorder.stats();
    recorder.stop();
    CHECK(stats.stored == 10);
    CHECK(stats.quarantined == 5);
  }
  auto readings = s.db->collection(s.database, "sensors");
  REQUIRE(readings->count_documents() == 10);
  test::spit(dir / "low.toml", config_text(s, 1000));
  test::spit(dir / "raised.toml", config_text(s, 100000));

  auto count = db_cli(s, {"--db", s.database, "quarantine", "count"});
  INFO(count.err);
  CHECK(count.code == 0);
  CHECK(count.out == "5\n");
  CHECK(db_cli(s, {"--db", s.database, "quarantine", "count", "--reason", "validator"}).out == "0\n");

  auto list = db_cli(s, {"--db", s.database, "quarantine", "list", "-n", "3"});
  INFO(list.out << list.err);
  CHECK(list.code == 0);
  CHECK_THAT(list.out, Catch::Contains("too_large") && Catch::Contains("2000") && Catch::Contains("iot/a/blob0") &&
                           Catch::Contains("max_document_bytes is 1000") &&
                           Catch::Contains("3 of 5 quarantined readings in " + s.database + ".sensors_quarantine"));
  CHECK_THAT(list.out, !Catch::Contains("iot/a/blob4"));  // oldest first, three of them

  // The cause not fixed: every one refused again, kept with its reason.
  auto low =
      test::run_tool({test::cli_tool("iotbridge-db"), "quarantine", "replay", "--config", (dir / "low.toml").string()});
  INFO(low.out << low.err);
  CHECK(low.code == 1);
  CHECK_THAT(low.out, Catch::Contains("replayed 5: 0 stored") && Catch::Contains("5 refused again and kept"));
  CHECK(readings->count_documents() == 10);
  auto quarantine = s.db->collection(s.database, "sensors_quarantine");
  REQUIRE(quarantine->count_documents() == 5);
  for (const Document& d : quarantine->find(Document{})) {
    auto q = record::quarantined_reading_from_document(d);
    CHECK(q.reason == record::QuarantineReason::too_large);
    CHECK_THAT(q.message, Catch::Contains("max_document_bytes is 1000"));
  }

  // The limit raised in the file: all five go in, exactly once.
  auto raised = test::run_tool({test::cli_tool("iotbridge-db"), "quarantine", "replay", "--config",
                                (dir / "raised.toml").string(), "--route", "r"});
  INFO(raised.out << raised.err);
  CHECK(raised.code == 0);
  CHECK_THAT(raised.out, Catch::Contains("max_document_bytes 100000") &&
                             Catch::Contains("replayed 5: 5 stored in " + s.database + ".sensors") &&
                             Catch::Contains("0 refused again"));
  CHECK(readings->count_documents() == 15);
  CHECK(readings->count_documents(Document().append("value", std::string(2000, 'x'))) == 5);
  CHECK(quarantine->count_documents() == 0);
  CHECK(db_cli(s, {"--db", s.database, "quarantine", "count"}).out == "0\n");
}

TEST_CASE("iotbridge-db quarantine: drop by filter or --all, and usage mistakes", "[quarantine][cli]") {
  TempDir dir;
  QuarantineStore s("sqlite", dir);
  auto quarantine = s.db->collection(s.database, "sensors_quarantine");
  for (int i = 0; i < 4; ++i) {
    record::QuarantinedReading q;
    q.reading.id = store::ObjectId::generate();
    q.reading.topic = "iot/a/" + std::to_string(i);
    q.reading.payload = "payload";
    q.reading.received = store::DateTime::now();
    q.route = i < 3 ? "r" : "other";
    q.reason = i == 0 ? record::QuarantineReason::validator : record::QuarantineReason::too_large;
    q.quarantined_at = store::DateTime::now();
    quarantine->insert_one(record::to_document(q));
  }
  auto nothing = db_cli(s, {"quarantine", "drop"});
  CHECK(nothing.code == 2);
  CHECK_THAT(nothing.err, Catch::Contains("--all"));
  CHECK(db_cli(s, {"quarantine", "count", "--reason", "tall"}).code == 2);
  CHECK(db_cli(s, {"quarantine", "count", "-n", "3"}).code == 2);  // -n is list's
  CHECK(db_cli(s, {"quarantine", "sweep"}).code == 2);
  CHECK(db_cli(s, {"quarantine", "count", "--config", (dir / "missing.toml").string()}).code == 2);
  CHECK(quarantine->count_documents() == 4);

  auto validator = db_cli(s, {"quarantine", "drop", "--reason", "validator"});
  CHECK(validator.code == 0);
  CHECK_THAT(validator.out, Catch::Contains("dropped 1 quarantined readings from iot_service.sensors_quarantine"));
  auto by_route = db_cli(s, {"quarantine", "drop", "--route", "other"});
  CHECK_THAT(by_route.out, Catch::Contains("dropped 1 "));
  CHECK(db_cli(s, {"quarantine", "count", R"({"topic": "iot/a/1"})"}).out == "1\n");
  auto all = db_cli(s, {"quarantine", "drop", "--all"});
  CHECK(all.code == 0);
  CHECK_THAT(all.out, Catch::Contains("dropped 2 "));
  CHECK(quarantine->count_documents() == 0);
}
