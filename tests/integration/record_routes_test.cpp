// Routes through a real Mosquitto: one recorder, one connection, two routes
// (climate: JSON payloads mapped by JSON Pointer into top-level fields; power:
// plain numbers) into two collections, on SQLite and on the MongoDB-compatible
// server, where PyMongo reads both collections back.
#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "iotbridge/record/recorder.hpp"
#include "iotbridge/store/open.hpp"
#include "record_helpers.hpp"
#include "servers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;
using namespace std::chrono_literals;
using store::Document;

namespace {

constexpr int kEach = 60;  // readings per route

const char* kRead = R"PY(
import sys, datetime, pymongo
uri, dbname, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)[dbname]
climate = list(db["climate"].find({}, {"_id": 0}).sort("temperature"))
assert len(climate) == n, ("climate count", len(climate))
for i, d in enumerate(climate):
    assert set(d) == {"topic", "temperature", "battery", "reg_date", "home"} or (
        set(d) == {"topic", "temperature", "reg_date", "home"} and i % 10 == 0), ("climate fields", d)
    assert isinstance(d["temperature"], float), ("temperature", d)
    assert isinstance(d["reg_date"], datetime.datetime), d
power = list(db["power"].find({"value": {"$gte": 0}}, {"_id": 0, "topic": 1, "value": 1}).sort("value"))
assert len(power) == n, ("power count", len(power))
assert [d["value"] for d in power] == [float(i) for i in range(n)], [d["value"] for d in power]
assert all(isinstance(d["value"], float) for d in power)
print("pymongo OK", len(climate), len(power))
)PY";

record::RecorderOptions two_routes(const MosquittoServer& broker, const fs::path& spool, const std::string& db) {
  auto o = recorder_options(broker, spool, {});
  record::Route climate;
  climate.name = "climate";
  climate.filters = {"home/+/climate"};
  climate.database = db;
  climate.collection = "climate";
  climate.decoder = "json";
  climate.fields = {{"temperature", "/t"}, {"battery", "/meta/bat"}};
  climate.keep_payload = false;
  climate.document.topic_fields = record::TopicPattern("home/{home}/climate");
  record::Route power;
  power.name = "power";
  power.filters = {"home/+/power"};
  power.database = db;
  power.collection = "power";
  power.decoder = "number";
  o.routes = {climate, power};
  return o;
}

// Publishes kEach readings to each route; every tenth climate payload lacks
// "/meta/bat" (stored without "battery", counted as unmapped).
void publish_both(const MosquittoServer& broker) {
  Publisher pub(broker);
  for (int i = 0; i < kEach; ++i) {
    std::string meta = i % 10 == 0 ? "{}" : R"({"bat": )" + std::to_string(90 - i) + "}";
    pub.publish("home/h" + std::to_string(i % 3) + "/climate",
                R"({"t": )" + std::to_string(20 + i) + ".5, \"meta\": " + meta + "}");
    pub.publish("home/h1/power", std::to_string(i));
  }
  pub.flush();
}

void check_stats(const record::RecorderStats& s) {
  INFO(s.to_json());
  CHECK(s.received == 2 * kEach);
  CHECK(s.stored == 2 * kEach);
  CHECK(s.pending == 0);
  CHECK(s.received + s.replayed == s.stored + s.rejected + s.pending);
  REQUIRE(s.routes.size() == 2);
  CHECK(s.routes[0].name == "climate");
  CHECK(s.routes[0].stored == kEach);
  CHECK(s.routes[0].unmapped == kEach / 10);
  CHECK(s.routes[1].name == "power");
  CHECK(s.routes[1].stored == kEach);
  CHECK(s.routes[1].kinds == std::vector<std::pair<std::string, std::uint64_t>>{{"number", kEach}});
  auto text = record::to_prometheus(s);
  CHECK(text.find("iotbridge_readings_unmapped_total{route=\"climate\"} 6\n") != std::string::npos);
  CHECK(text.find("iotbridge_readings_stored_total{route=\"power\"} 60\n") != std::string::npos);
}

void record_both(const MosquittoServer& broker, const fs::path& spool, std::shared_ptr<store::DocumentStore> db,
                 const std::string& name) {
  record::Recorder recorder(two_routes(broker, spool, name), db);
  recorder.start();
  publish_both(broker);
  REQUIRE(recorder.wait_received(2 * kEach, 20s));
  REQUIRE(recorder.wait_idle(20s));
  recorder.stop();
  check_stats(recorder.stats());
}

}  // namespace

TEST_CASE("recorder routes: JSON-mapped and plain-number routes into two collections (SQLite)", "[record][sqlite]") {
  MosquittoServer broker;
  TempDir dir;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store("sqlite:" + (dir / "r.db").string()));
  record_both(broker, dir / "spool", db, "iot_service");

  auto climate = db->collection("iot_service", "climate");
  CHECK(climate->count_documents() == kEach);
  CHECK(climate->count_documents(Document::from_json(R"({"battery": {"$exists": false}})")) == kEach / 10);
  CHECK(climate->count_documents(Document::from_json(R"({"value": {"$exists": true}})")) == 0);
  auto one = climate->find_one(Document::from_json(R"({"temperature": 25.5})"));
  REQUIRE(one);
  CHECK(one->get_string("home") == "h2");
  CHECK(one->get_int64("battery") == 85);
  auto power = db->collection("iot_service", "power");
  CHECK(power->count_documents() == kEach);
  CHECK(power->count_documents(Document::from_json(R"({"value": {"$gte": 30}})")) == kEach - 30);
}

TEST_CASE("recorder routes: JSON-mapped and plain-number routes into two collections, PyMongo reads both",
          "[record][mongo][interop]") {
  IOTBRIDGE_REQUIRE_MONGO();
  const char* python = "/usr/bin/python3";
  if (!fs::exists(python)) FAIL("Debian's /usr/bin/python3 (with python3-pymongo) is needed");
  MosquittoServer broker;
  TempDir dir;
  std::ofstream(dir / "read.py") << kRead;
  auto uri = test_mongo_uri();
  auto name = unique_db_name("iotb_routes");
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store(uri));
  record_both(broker, dir / "spool", db, name);

  std::string out;
  int rc = run_command({python, (dir / "read.py").string(), uri, name, std::to_string(kEach)}, &out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("pymongo OK 60 60") != std::string::npos);
  db->drop_database(name);
}
