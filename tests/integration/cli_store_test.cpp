// iotbridge-sub --store: the recorder behind the CLI. Readings wait in a
// persistent session made with iotbridge-sub -c -E (so none can be published
// before the recorder subscribes), then iotbridge-sub --store -C / -W records
// them into SQLite and the MongoDB-compatible server, read back field by field.
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "cli_helpers.hpp"
#include "iotbridge/store/open.hpp"
#include "iotbridge/store/store.hpp"

using namespace iotbridge::test;
using namespace std::chrono_literals;

namespace {

// A persistent session "id" subscribed to iot/# at QoS 1, then `lines`
// published into it (one reading per line) while nobody is connected.
void queue_readings(const MosquittoServer& broker, const std::string& id, const std::string& lines) {
  auto args = broker_args(broker);
  REQUIRE(run_tool(with({iotbridge_sub(), "-t", "iot/#", "-q", "1", "-c", "-i", id, "-E"}, args)).code == 0);
  auto pub = run_tool(with({iotbridge_pub(), "-t", "iot/home1/temp", "-q", "1", "-l"}, args), lines);
  REQUIRE(pub.code == 0);
}

// iotbridge-sub recording the session `id` into `uri` until -C `count`, with `policy` flags.
ToolResult record_session(const MosquittoServer& broker, const std::string& id, const std::string& uri,
                          const TempDir& dir, const std::string& count, const std::vector<std::string>& policy) {
  auto argv = with({iotbridge_sub(), "-t", "iot/#", "-q", "1", "-c", "-i", id, "--store", uri, "--spool",
                    (dir / "spool").string(), "-C", count, "-W", "60", "--stats-json"},
                   policy);
  return run_tool(with(argv, broker_args(broker)));
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

TEST_CASE("iotbridge-sub --store --deadband: 20.0 20.1 20.15 20.3 20.3 stores 20.0 and 20.3", "[cli][store][policy]") {
  MosquittoServer broker;
  TempDir dir;
  queue_readings(broker, "rec-deadband", "20.0\n20.1\n20.15\n20.3\n20.3\n");
  std::string uri = "sqlite:" + (dir / "deadband.db").string();
  auto r = record_session(broker, "rec-deadband", uri, dir, "5", {"--deadband", "0.2", "--heartbeat", "1h"});
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.out, "\"received\":5"));
  CHECK(contains(r.out, "\"suppressed\":3"));
  CHECK(contains(r.err, "suppressed 3"));  // the summary line
  auto readings = iotbridge::store::open_store(uri)->collection("iot_service", "sensors");
  iotbridge::store::FindOptions by_value;
  by_value.sort = iotbridge::store::Document::from_json(R"({"value": 1})");
  std::vector<double> values;
  for (const auto& d : readings->find({}, by_value)) values.push_back(d.get_double("value").value_or(-1));
  CHECK(values == std::vector<double>{20.0, 20.3});
}

TEST_CASE("iotbridge-sub --store --dedup-key /seq: copies of a reading are stored once", "[cli][store][policy]") {
  MosquittoServer broker;
  TempDir dir;
  // Three readings, each published twice (as a redelivery would), and one without the key.
  std::string lines;
  for (int round = 0; round < 2; ++round)
    for (int seq = 1; seq <= 3; ++seq) lines += "{\"seq\": " + std::to_string(seq) + ", \"t\": 20.5}\n";
  lines += "{\"t\": 21}\n";
  queue_readings(broker, "rec-dedup", lines);
  std::string uri = "sqlite:" + (dir / "dedup.db").string();
  auto r = record_session(broker, "rec-dedup", uri, dir, "7", {"--dedup-key", "/seq", "--batch", "2"});
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.out, "\"received\":7"));
  CHECK(contains(r.out, "\"duplicates\":3"));
  CHECK(contains(r.out, "\"without_dedup_key\":1"));
  auto readings = iotbridge::store::open_store(uri)->collection("iot_service", "sensors");
  CHECK(readings->count_documents() == 4);
  for (int seq = 1; seq <= 3; ++seq)
    CHECK(readings->count_documents(iotbridge::store::Document().append("value.seq", seq)) == 1);

  // Policy flags are refused where they do not apply, naming the flag.
  auto plain = run_tool(with({iotbridge_sub(), "-t", "iot/#", "--deadband", "0.2", "-C", "1"}, broker_args(broker)));
  CHECK(plain.code == 1);
  CHECK(contains(plain.err, "need --store"));
  auto bad =
      run_tool(with({iotbridge_sub(), "-t", "iot/#", "--store", uri, "--dedup-key", "seq"}, broker_args(broker)));
  CHECK(bad.code == 1);
  CHECK(contains(bad.err, "--dedup-key"));
  auto lonely =
      run_tool(with({iotbridge_sub(), "-t", "iot/#", "--store", uri, "--heartbeat", "15m"}, broker_args(broker)));
  CHECK(lonely.code == 1);
  CHECK(contains(lonely.err, "--deadband or --on-change"));
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
      // Nothing listens on a free port: the store is checked before anything is recorded.
      {{"--store", "mongodb://127.0.0.1:" + std::to_string(free_port()) + "/?serverSelectionTimeoutMS=300"},
       "no MongoDB server reachable"},
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

TEST_CASE("iotbridge-sub --store: a wrong password is mosquitto_sub's exit 5 and nothing is recorded",
          "[cli][store][errors][auth]") {
  MosquittoServer::Options o;
  o.users = {{"alice", "s3cret"}};
  MosquittoServer broker(o);
  TempDir dir;
  const std::string uri = "sqlite:" + (dir / "auth.db").string();
  auto argv = with({iotbridge_sub(), "-t", "iot/#", "-u", "alice", "-P", "wrong", "--store", uri, "--spool",
                    (dir / "spool").string(), "-W", "5"},
                   broker_args(broker));
  auto r = run_tool(argv);
  INFO(r.err);
  CHECK(r.code == 5);
  CHECK(r.err.rfind("Error: ", 0) == 0);
  CHECK(contains(r.err, "not authorised"));
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.out.empty());
  CHECK_FALSE(fs::exists(dir / "auth.db"));  // refused before the store is opened
  argv[0] = "mosquitto_sub";
  argv.erase(argv.begin() + 7, argv.begin() + 11);  // --store URI --spool DIR
  CHECK(run_tool(argv).code == 5);
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

namespace {

// The value of "key" in the last complete line of JSON counters in `text`
// (-1: none yet). The file may be read while a line is half written.
long long last_counter(const std::string& text, const std::string& key) {
  auto end = text.rfind("}\n");
  if (end == std::string::npos) return -1;
  const std::string needle = "\"" + key + "\":";
  auto at = text.rfind(needle, end);
  if (at == std::string::npos) return -1;
  return std::strtoll(text.c_str() + at + needle.size(), nullptr, 10);
}

// Readings "0".."n-1" in `collection`: how many are missing, how many stored twice.
struct Tally {
  std::int64_t documents = 0, missing = 0, duplicates = 0, distinct_ids = 0;
};
Tally tally(iotbridge::store::Collection& collection, int n) {
  Tally t;
  std::vector<int> copies(static_cast<std::size_t>(n), 0);
  std::set<std::string> ids;
  auto cursor = collection.find({});
  while (auto doc = cursor->next()) {
    ++t.documents;
    if (auto id = doc->get_object_id("_id")) ids.insert(id->to_hex());
    auto v = doc->get_double("value");
    if (v && *v >= 0 && *v < n) ++copies[static_cast<std::size_t>(*v)];
  }
  for (int c : copies) {
    if (c == 0) ++t.missing;
    if (c > 1) t.duplicates += c - 1;
  }
  t.distinct_ids = static_cast<std::int64_t>(ids.size());
  return t;
}

}  // namespace

TEST_CASE("iotbridge-sub --store: SIGINT / SIGTERM mid-stream stores everything received and exits 0",
          "[cli][store][sqlite][signal]") {
  const int sig = GENERATE(SIGINT, SIGTERM);
  INFO("signal " << sig);
  MosquittoServer broker;
  TempDir dir;
  const int n = 5000;
  std::string lines;
  for (int i = 0; i < n; ++i) lines += std::to_string(i) + "\n";
  const std::string id = "rec-signal-" + std::to_string(sig);
  queue_readings(broker, id, lines);  // all n wait in the session: the run below is mid-stream from its start

  const std::string uri = "sqlite:" + (dir / "signal.db").string();
  auto recorder_argv =
      with({iotbridge_sub(), "-t", "iot/#", "-q", "1", "-c", "-i", id, "--store", uri, "--spool",
            (dir / "spool").string(), "--batch", "50", "--flush-ms", "10", "--stats-json", "--stats-interval", "0.05"},
           broker_args(broker));
  // First run: signalled as soon as its counters show a reading received.
  fs::path out1 = dir / "run1";
  auto run1 = start_tool(recorder_argv, out1);
  REQUIRE(wait_until([&] { return last_counter(slurp(out1.string() + ".err"), "received") > 0; }, 60s));
  run1->signal(sig);
  REQUIRE(wait_until([&] { return !run1->alive(); }, 60s));
  const int status = run1->terminate();
  const std::string final1 = slurp(out1);  // the counters at the end, on stdout
  INFO("stdout: " << final1 << "\nstderr tail: " << slurp(out1.string() + ".err").substr(0, 2000));
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  const long long received = last_counter(final1, "received");
  REQUIRE(received > 0);
  CHECK(last_counter(final1, "stored") == received);
  CHECK(last_counter(final1, "pending") == 0);
  {
    auto sensors = iotbridge::store::open_store(uri)->collection("iot_service", "sensors");
    auto t = tally(*sensors, n);
    CHECK(t.documents == received);  // everything it accepted is in the store, once
    CHECK(t.distinct_ids == t.documents);
    CHECK(t.duplicates == 0);
    std::printf("signal %d: the first run stored %lld of %d readings before it stopped\n", sig, received, n);
  }

  // Second run on the same session: the broker kept the rest (QoS 1), so the
  // union is every reading. QoS 1 redelivery: Mosquitto 2.0 sends a backlog
  // far ahead of the PUBACKs it has read, and at a disconnect it counts the
  // unread ones as undelivered, so the next run gets again readings the first
  // one stored (measured: 60 to 1000 of ~2000-4000 here; mosquitto_sub -c
  // interrupted the same way sees the same). A duplicate can only be a
  // reading of the first run: that is the bound.
  fs::path out2 = dir / "run2";
  auto run2 = start_tool(recorder_argv, out2);
  auto sensors = iotbridge::store::open_store(uri)->collection("iot_service", "sensors");
  CHECK(wait_until(
      [&] {
        try {
          return tally(*sensors, n).missing == 0;
        } catch (const std::exception&) {
          return false;  // the recorder holds the write lock for a moment
        }
      },
      120s));
  // Its signal handler is in place once it prints counters.
  REQUIRE(wait_until([&] { return last_counter(slurp(out2.string() + ".err"), "received") >= 0; }, 60s));
  run2->signal(sig);
  REQUIRE(wait_until([&] { return !run2->alive(); }, 60s));
  const int status2 = run2->terminate();
  CHECK(WIFEXITED(status2));
  CHECK(WEXITSTATUS(status2) == 0);
  INFO("second run: " << slurp(out2));
  CHECK(last_counter(slurp(out2), "pending") == 0);
  auto t = tally(*sensors, n);
  std::printf("signal %d: %lld documents for %d readings, %lld duplicates (QoS 1 redelivery)\n", sig,
              static_cast<long long>(t.documents), n, static_cast<long long>(t.duplicates));
  CHECK(t.missing == 0);
  CHECK(t.distinct_ids == t.documents);
  CHECK(t.duplicates <= received);
}
