// Failover as a user runs it: iotbridge-recorder with `urls = [A, B]` and
// iotbridge-sub with two -h keep receiving when the broker they are on is
// stopped (SIGTERM by PID), and what was published after the switch is
// accounted for exactly. Two independent Mosquittos; each phase publishes only
// once the tool is subscribed on the broker that is up (a marker it received).
#include <catch2/catch.hpp>
#include <csignal>
#include <map>
#include <string>
#include <vector>

#include "cli_helpers.hpp"
#include "iotbridge/store/open.hpp"
#include "mqtt_helpers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;

namespace {

std::string address_of(const MosquittoServer& server, int place) {
  return "mqtt://127.0.0.1:" + std::to_string(server.port()) + " (address " + std::to_string(place) + " of 2)";
}

// value -> how many documents of `topic` hold it.
std::map<long, int> stored_values(const fs::path& db, const std::string& topic) {
  auto store = store::open_store("sqlite:" + db.string());
  auto cursor =
      store->collection("iot_service", "sensors")->find(store::Document::from_json(R"({"topic": ")" + topic + "\"}"));
  std::map<long, int> out;
  while (auto doc = cursor->next()) ++out[static_cast<long>(doc->get_double("value").value_or(-1))];
  return out;
}

std::int64_t stored_count(const fs::path& db, const std::string& topic) {
  if (!fs::exists(db)) return 0;
  auto store = store::open_store("sqlite:" + db.string());
  return store->collection("iot_service", "sensors")
      ->count_documents(store::Document::from_json(R"({"topic": ")" + topic + "\"}"));
}

std::vector<std::string> numbers(int first, int count) {
  std::vector<std::string> out;
  for (int i = first; i < first + count; ++i) out.push_back(std::to_string(i));
  return out;
}

std::string url_of(const MosquittoServer& server) { return "mqtt://127.0.0.1:" + std::to_string(server.port()); }

// A recorder file: `mqtt` (the broker keys), a persistent session, route fo/# into `db`.
std::string recorder_config(const TempDir& dir, const fs::path& db, const std::string& mqtt) {
  return "[mqtt]\n" + mqtt + "client_id = \"recorder-fo\"\nclean_session = false\n" +
         "[store]\nuri = \"sqlite:" + db.string() + "\"\nbatch_size = 10\nflush_ms = 10\n" + "[durability]\ndir = \"" +
         (dir / "spool").string() + "\"\n" + "[[route]]\nname = \"fo\"\nfilters = [\"fo/#\"]\n";
}

// Subscribed on `server` once a marker published there is stored (markers
// published before the subscription landed go nowhere).
bool subscribed_on(const MosquittoServer& server, const fs::path& db) {
  std::int64_t before = stored_count(db, "fo/marker");
  return wait_until(
      [&] {
        publish_acknowledged(server, "fo/marker", {"-1"});
        return stored_count(db, "fo/marker") > before;
      },
      std::chrono::seconds(30));
}

// Values first .. first+count-1 added to `expected`; true once the store holds
// exactly `expected` under fo/data (each value once, nothing else).
bool stored_once(const fs::path& db, std::map<long, int>& expected, int first, int count) {
  for (int i = first; i < first + count; ++i) expected[i] = 1;
  return wait_until([&] { return stored_values(db, "fo/data") == expected; }, std::chrono::seconds(30));
}

}  // namespace

TEST_CASE("failover: iotbridge-recorder with urls = [A, B] records a QoS 1 stream on whichever broker is up",
          "[service][cli][failover]") {
  TempDir dir("iotbridge-recorder-failover");
  MosquittoServer a, b;
  const auto db = dir / "readings.db";
  spit(dir / "recorder.toml", recorder_config(dir, db, "urls = [\"" + url_of(a) + "\", \"" + url_of(b) + "\"]\n"));
  auto out = dir / "recorder.out";
  auto recorder = start_tool({cli_tool("iotbridge-recorder"), "--config", (dir / "recorder.toml").string()}, out);
  auto err = fs::path(out.string() + ".err");
  REQUIRE(wait_until([&] { return contains(slurp(err), "recording mqtt://127.0.0.1:"); }));
  CHECK_THAT(slurp(err), Catch::Contains(", failover to mqtt://127.0.0.1:" + std::to_string(b.port())));

  std::map<long, int> expected;

  // Phase 1: on A.
  REQUIRE(subscribed_on(a, db));
  REQUIRE(publish_acknowledged(a, "fo/data", numbers(0, 50)));
  REQUIRE(stored_once(db, expected, 0, 50));

  // Phase 2: A stops; the recorder moves to B at once and subscribes there.
  a.stop();
  REQUIRE(wait_until([&] { return contains(slurp(err), "connected to " + address_of(b, 2)); }));
  REQUIRE(subscribed_on(b, db));
  REQUIRE(publish_acknowledged(b, "fo/data", numbers(50, 50)));
  REQUIRE(stored_once(db, expected, 50, 50));

  // Phase 3: A is back and B stops: round robin, back to A.
  a.start();
  b.stop();
  REQUIRE(wait_until([&] { return contains(slurp(err), "connection to " + address_of(b, 2) + " lost"); }));
  REQUIRE(subscribed_on(a, db));
  REQUIRE(publish_acknowledged(a, "fo/data", numbers(100, 50)));
  REQUIRE(stored_once(db, expected, 100, 50));

  CHECK(recorder->terminate() == 0);
  std::string text = slurp(err);
  INFO(text);
  CHECK_THAT(text, Catch::Contains("connection to " + address_of(a, 1) + " lost"));
  CHECK(stored_values(db, "fo/data") == expected);  // 150 readings, each once, nothing else
  auto all = std::to_string(150 + stored_count(db, "fo/marker"));
  CHECK_THAT(text, Catch::Contains("received " + all + ", stored " + all + ", pending 0"));
}

TEST_CASE("failover: a reload from url to urls reconnects with the list, and the list is then used",
          "[service][cli][failover]") {
  TempDir dir("iotbridge-recorder-failover-reload");
  MosquittoServer a, b;
  const auto db = dir / "readings.db";
  auto file = dir / "recorder.toml";
  spit(file, recorder_config(dir, db, "url = \"" + url_of(a) + "\"\n"));
  auto out = dir / "recorder.out";
  auto recorder = start_tool({cli_tool("iotbridge-recorder"), "--config", file.string()}, out);
  auto err = fs::path(out.string() + ".err");
  REQUIRE(wait_until([&] { return contains(slurp(err), "recording " + url_of(a) + " -> "); }));
  CHECK_THAT(slurp(err), !Catch::Contains(", failover to "));
  std::map<long, int> expected;
  REQUIRE(subscribed_on(a, db));
  REQUIRE(publish_acknowledged(a, "fo/data", numbers(0, 10)));
  REQUIRE(stored_once(db, expected, 0, 10));

  spit(file, recorder_config(dir, db, "urls = [\"" + url_of(a) + "\", \"" + url_of(b) + "\"]\n"));
  recorder->signal(SIGHUP);
  REQUIRE(wait_until([&] { return contains(slurp(err), "reloaded "); }));
  CHECK_THAT(slurp(err), Catch::Contains(", failover to " + url_of(b)));
  REQUIRE(subscribed_on(a, db));
  a.stop();
  REQUIRE(wait_until([&] { return contains(slurp(err), "connected to " + address_of(b, 2)); }));
  REQUIRE(subscribed_on(b, db));
  REQUIRE(publish_acknowledged(b, "fo/data", numbers(10, 10)));
  REQUIRE(stored_once(db, expected, 10, 10));
  CHECK(recorder->terminate() == 0);
  INFO(slurp(err));
  CHECK(stored_values(db, "fo/data") == expected);
}

TEST_CASE("failover: iotbridge-sub with two -h host:port follows the broker that is up", "[cli][sub][failover]") {
  TempDir dir("iotbridge-sub-failover");
  MosquittoServer a, b;
  auto out = dir / "sub.out";
  auto sub = start_tool({iotbridge_sub(), "-h", "127.0.0.1:" + std::to_string(a.port()), "-h",
                         "127.0.0.1:" + std::to_string(b.port()), "-t", "fo/#", "-q", "1", "-v"},
                        out);
  auto err = fs::path(out.string() + ".err");
  REQUIRE(wait_until([&] {
    publish_acknowledged(a, "fo/marker", {"a"});
    return contains(slurp(out), "fo/marker a\n");
  }));
  a.stop();
  REQUIRE(wait_until([&] { return contains(slurp(err), "connected to " + address_of(b, 2)); }));
  REQUIRE(wait_until([&] {
    publish_acknowledged(b, "fo/marker", {"b"});
    return contains(slurp(out), "fo/marker b\n");
  }));
  REQUIRE(publish_acknowledged(b, "fo/data", numbers(0, 20)));
  REQUIRE(wait_until([&] { return contains(slurp(out), "fo/data 19\n"); }));
  sub->terminate();
  std::string text = slurp(out);
  INFO(text << slurp(err));
  std::string data;
  for (std::size_t at = 0; (at = text.find("fo/data ", at)) != std::string::npos;) {
    auto end = text.find('\n', at);
    data += text.substr(at, end + 1 - at);
    at = end;
  }
  std::string expected;
  for (const auto& n : numbers(0, 20)) expected += "fo/data " + n + "\n";
  CHECK(data == expected);  // each once, in order
  CHECK_THAT(slurp(err), Catch::Contains("connection to " + address_of(a, 1) + " lost"));
}

TEST_CASE("failover: bad -h / -L lists are refused with one sentence, exit 1", "[cli][errors][failover]") {
  struct Case {
    bool pub;
    std::vector<std::string> args;
    const char* says;
  };
  const std::vector<Case> cases = {
      {false, {"-h", "a", "b", "-t", "x"}, "not expected: b"},
      {false, {"-h", "a", "-L", "mqtt://b/x"}, "give the brokers with -h or with -L, not both"},
      {false, {"-h", "a", "-h", "a:x", "-t", "x"}, "invalid -h 'a:x': the port must be a number from 1 to 65535"},
      {false, {"-h", "a", "-h", "a:0", "-t", "x"}, "invalid -h 'a:0'"},
      {false, {"-h", "[::1", "-t", "x"}, "invalid -h '[::1': unclosed '['"},
      {true, {"-h", "a", "-h", "", "-t", "x", "-m", "y"}, "invalid -h '': no host"},
      {false, {"-L", "mqtt://a/t1", "-L", "mqtt://b/t2"}, "the -L URLs name different topics ('t1' and 't2')"},
      {false, {"-L", "mqtt://a/t", "-L", "mqtts://b"}, "URL 2 of 2 and URL 1 differ in TLS"},
      {false, {"-L", "mqtt://a/t", "-L", "mqtt://b:0"}, "URL 2 of 2: invalid MQTT URL"},
      {true, {"-L", "mqtt://a/t", "-L", "mqtt://b", "-p", "1", "-m", "x"}, "-p cannot go with several -L"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv = {c.pub ? iotbridge_pub() : iotbridge_sub()};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    auto r = run_tool(argv);
    INFO(argv[0] << " ... -> " << r.err);
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::StartsWith("Error: ") && Catch::Contains(c.says));
  }
}
