// iotbridge-sub --store: the recorder behind the CLI. Readings wait in a
// persistent session made with iotbridge-sub -c -E (so none can be published
// before the recorder subscribes), then iotbridge-sub --store -C / -W records
// them into SQLite and the MongoDB-compatible server, read back field by field.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "cli_helpers.hpp"
#include "iotbridge/store/open.hpp"
#include "iotbridge/store/store.hpp"

using namespace iotbridge::test;

namespace {

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A persistent session "id" subscribed to iot/# at QoS 1, then `lines`
// published into it (one reading per line) while nobody is connected.
void queue_readings(const MosquittoServer& broker, const std::string& id, const std::string& lines) {
  auto args = broker_args(broker);
  REQUIRE(run_tool(with({iotbridge_sub(), "-t", "iot/#", "-q", "1", "-c", "-i", id, "-E"}, args)).code == 0);
  auto pub = run_tool(with({iotbridge_pub(), "-t", "iot/home1/temp", "-q", "1", "-l"}, args), lines);
  REQUIRE(pub.code == 0);
}

}  // namespace

TEST_CASE("iotbridge-sub --store sqlite: -C N stores N documents with topic fields, then exits 0",
          "[cli][store][sqlite]") {
  MosquittoServer broker;
  TempDir dir;
  const int n = 300;
  std::string lines;
  for (int i = 0; i < n; ++i) lines += std::to_string(20 + i * 0.5) + "\n";
  queue_readings(broker, "rec-sqlite", lines);

  std::string uri = "sqlite:" + (dir / "readings.db").string();
  auto r = run_tool(with({iotbridge_sub(),
                          "-t",
                          "iot/#",
                          "-q",
                          "1",
                          "-c",
                          "-i",
                          "rec-sqlite",
                          "--store",
                          uri,
                          "-C",
                          std::to_string(n),
                          "--topic-fields",
                          "iot/{home}/{sensor}",
                          "--spool",
                          (dir / "spool").string(),
                          "--batch",
                          "64",
                          "--stats-json",
                          "-W",
                          "60"},
                         broker_args(broker)));
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.out, "\"stored\":300"));
  CHECK(contains(r.out, "\"pending\":0"));

  auto store = iotbridge::store::open_store(uri);
  auto sensors = store->collection("iot_service", "sensors");
  CHECK(sensors->count_documents() == n);
  iotbridge::store::FindOptions by_value;
  by_value.sort = iotbridge::store::Document::from_json(R"({"value": 1})");
  auto cursor = sensors->find({}, by_value);
  int i = 0;
  while (auto doc = cursor->next()) {
    CHECK(doc->get_double("value") == Approx(20 + i * 0.5));
    CHECK(doc->get_string("topic") == "iot/home1/temp");
    CHECK(doc->get_string("home") == "home1");
    CHECK(doc->get_string("sensor") == "temp");
    CHECK(doc->get_datetime("reg_date").has_value());
    CHECK(doc->get_object_id("_id").has_value());
    ++i;
  }
  CHECK(i == n);
}

TEST_CASE("iotbridge-sub --store: -W ends the run having stored everything received", "[cli][store][sqlite]") {
  MosquittoServer broker;
  TempDir dir;
  queue_readings(broker, "rec-w", "1\n{\"t\":2}\nthree\n\n");
  std::string uri = "sqlite:" + (dir / "w.db").string();
  auto r = run_tool(with({iotbridge_sub(), "-t", "iot/#", "-q", "1", "-c", "-i", "rec-w", "--store", uri, "--db",
                          "farm", "--collection", "readings", "--spool", (dir / "spool").string(), "-W", "2"},
                         broker_args(broker)));
  INFO(r.err);
  CHECK(r.code == 0);  // with --store, -W is a run length, not a failure
  auto readings = iotbridge::store::open_store(uri)->collection("farm", "readings");
  CHECK(readings->count_documents() == 4);
  CHECK(readings->count_documents(iotbridge::store::Document::from_json(R"({"value": "three"})")) == 1);
  CHECK(readings->count_documents(iotbridge::store::Document::from_json(R"({"value.t": 2})")) == 1);
  CHECK(readings->count_documents(iotbridge::store::Document::from_json(R"({"value": null})")) == 1);
}

TEST_CASE("iotbridge-sub --store mongodb: readings land in the MongoDB-compatible server", "[cli][store][mongo]") {
  IOTBRIDGE_REQUIRE_MONGO();
  MosquittoServer broker;
  TempDir dir;
  const std::string db = unique_db_name("iotb_cli");
  queue_readings(broker, "rec-mongo", "24.5\n25\n-3.25\n");
  auto r = run_tool(with({iotbridge_sub(), "-t", "iot/#", "-q", "1", "-c", "-i", "rec-mongo", "--store",
                          test_mongo_uri(), "--db", db, "-C", "3", "--spool", (dir / "spool").string(), "-W", "60"},
                         broker_args(broker)));
  INFO(r.err);
  CHECK(r.code == 0);
  auto store = iotbridge::store::open_store(test_mongo_uri());
  auto sensors = store->collection(db, "sensors");
  CHECK(sensors->count_documents() == 3);
  CHECK(sensors->count_documents(iotbridge::store::Document::from_json(R"({"value": {"$gt": 24.1}})")) == 2);
  store->drop_database(db);
}

TEST_CASE("iotbridge-sub --store: errors are one sentence with exit 1", "[cli][store][errors]") {
  MosquittoServer broker;
  TempDir dir;
  auto args = broker_args(broker);
  auto spool = (dir / "spool").string();
  struct Case {
    std::vector<std::string> flags;
    const char* says;
  };
  const std::vector<Case> cases = {
      {{"--store", "bogus:x"}, "unsupported store URI scheme"},
      {{"--store", "sqlite:" + (dir / "x.db").string(), "--topic-fields", "iot/{a}/{a}"}, "invalid --topic-fields"},
      {{"--store", "sqlite:" + (dir / "x.db").string(), "-v"}, "--store records the messages instead of printing"},
      {{"--store", "sqlite:" + (dir / "x.db").string(), "-T", "a"}, "do not apply"},
      {{"--store", "sqlite:" + (dir / "no-such-dir" / "x.db").string()}, "Error: "},
  };
  for (const auto& c : cases) {
    auto argv = with(with({iotbridge_sub(), "-t", "iot/#", "--spool", spool, "-W", "5"}, args), c.flags);
    auto r = run_tool(argv);
    INFO(c.says << "\n" << r.err);
    CHECK(r.code == 1);
    CHECK(r.err.rfind("Error: ", 0) == 0);
    CHECK(contains(r.err, c.says));
    CHECK(r.out.empty());
  }
}

TEST_CASE("iotbridge-sub --store-file: the store URI comes from a file, never from the command line",
          "[cli][store][sqlite]") {
  MosquittoServer broker;
  TempDir dir;
  queue_readings(broker, "rec-file", "21.5\n22.5\n");
  std::string uri = "sqlite:" + (dir / "from-file.db").string();
  spit(dir / "store", uri + "\n");
  ::chmod((dir / "store").c_str(), 0600);
  auto args =
      with({iotbridge_sub(), "-t", "iot/#", "-q", "1", "-c", "-i", "rec-file", "--spool", (dir / "spool").string()},
           broker_args(broker));

  auto both = run_tool(with(args, {"--store", uri, "--store-file", (dir / "store").string(), "-C", "2"}));
  CHECK(both.code != 0);
  CHECK_THAT(both.err, Catch::Contains("--store or --store-file, not both"));

  auto missing = run_tool(with(args, {"--store-file", (dir / "nope").string(), "-C", "2"}));
  CHECK(missing.code != 0);
  CHECK_THAT(missing.err, Catch::Contains("cannot read the store URI file"));

  auto r = run_tool(with(args, {"--store-file", (dir / "store").string(), "-C", "2"}));
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.err, !Catch::Contains("readable by other users"));
  auto store = iotbridge::store::open_store(uri);
  CHECK(store->collection("iot_service", "sensors")->count_documents() == 2);
}
