// Every example runs against the fixture's broker and stores and prints what
// its tutorial (docs/examples/) says it prints. Long-running examples run as
// child processes; the tests wait for a line of their output, or for their
// exit after --count messages, never for a fixed time.
#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cli_helpers.hpp"
#include "iotbridge/store/open.hpp"
#include "mqtt_helpers.hpp"
#include "servers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;

namespace {

std::string example(const std::string& name) { return std::string(IOTBRIDGE_BINARY_DIR) + "/examples/" + name; }

std::vector<std::string> with_broker(std::vector<std::string> argv, const MosquittoServer& broker) {
  argv.insert(argv.begin() + 1, {"--host", broker.host(), "--port", std::to_string(broker.port())});
  return argv;
}

// The exit code of a process that ended by itself (-1 when a signal ended it).
int exit_code(int wait_status) { return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1; }

// A running example: its stdout (and stderr beside it) in a file we poll.
struct Running {
  TempDir dir{"iotbridge-example"};
  fs::path out = dir / "out";
  std::unique_ptr<Process> process;

  explicit Running(const std::vector<std::string>& argv) : process(start_tool(argv, out)) {}
  std::string output() const { return slurp(out); }
  std::string errors() const { return slurp(out.string() + ".err"); }
  bool shows(const std::string& text) {
    return wait_until([&] { return contains(output(), text) || !process->alive(); }) && contains(output(), text);
  }
  // Waits for the process to end by itself; its exit code.
  int finish(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    wait_until([&] { return !process->alive(); }, timeout);
    return exit_code(process->terminate());
  }
};

std::unique_ptr<mqtt::Client> connected_client(const MosquittoServer& broker) {
  auto client = mqtt::make_mosquitto_client(broker_options(broker));
  client->connect();
  client->loop_start();
  return client;
}

// The whitespace-separated words of the output line starting with `first`.
std::vector<std::string> row(const std::string& output, const std::string& first) {
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> v;
    for (std::string w; words >> w;) v.push_back(w);
    if (!v.empty() && v[0] == first) return v;
  }
  return {};
}

}  // namespace

TEST_CASE("example threads: a producer, a consumer pool and a timer hand over every reading", "[examples]") {
  std::string out;
  REQUIRE(run_command({example("threads"), "--count", "1000"}, &out) == 0);
  CHECK_THAT(out, Catch::Contains("consumed 1000 of 1000 readings"));
  CHECK_THAT(out, Catch::Contains("average 22.25"));
}

TEST_CASE("example publisher: publishes --count readings with the QoS and retain flag given", "[examples]") {
  MosquittoServer broker;
  auto watcher = connected_client(broker);
  Collector received;
  watcher->subscribe("iot/#", 1, received.handler()).wait();

  auto r = run_tool(with_broker({example("publisher"), "--topic", "iot/test/temperature", "--interval", "0.01",
                                 "--count", "3", "--qos", "1", "--retain"},
                                broker));
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("published iot/test/temperature 20.0 (qos 1, retained)\n"
                                    "published iot/test/temperature 20.5 (qos 1, retained)\n"
                                    "published iot/test/temperature 21.0 (qos 1, retained)\ndone\n"));
  REQUIRE(received.wait_for(3));
  CHECK(received.payloads() == std::vector<std::string>{"20.0", "20.5", "21.0"});
  CHECK(received.messages().at(0).qos == 1);

  // --retain: a subscriber arriving later still gets the last reading, flagged retained.
  auto late = connected_client(broker);
  Collector late_received;
  late->subscribe("iot/test/temperature", 0, late_received.handler()).wait();
  REQUIRE(late_received.wait_for(1));
  CHECK(late_received.messages().at(0).payload == "21.0");
  CHECK(late_received.messages().at(0).retain);
}

TEST_CASE("example publisher: Ctrl-C ends the wait between readings at once", "[examples]") {
  MosquittoServer broker;
  Running publisher(with_broker({example("publisher"), "--interval", "3600"}, broker));
  REQUIRE(publisher.shows("published iot/home1/temperature 20.0 (qos 0)"));
  publisher.process->signal(SIGINT);
  INFO(publisher.errors());
  CHECK(publisher.finish() == 0);  // an hour-long interval did not hold it
  CHECK_THAT(publisher.output(), Catch::EndsWith("done\n"));
}

TEST_CASE("example publisher: an unreachable broker is reported on stderr", "[examples]") {
  auto r = run_tool({example("publisher"), "--host", "127.0.0.1", "--port", std::to_string(free_port())});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::StartsWith("publisher: ") && Catch::Contains("connection refused"));
}

TEST_CASE("example subscriber: prints topic and value of what matches iot/#, with either loop", "[examples]") {
  const bool background = GENERATE(false, true);
  INFO("--background " << background);
  MosquittoServer broker;
  std::vector<std::string> argv = with_broker({example("subscriber"), "--count", "3"}, broker);
  if (background) argv.push_back("--background");
  Running subscriber(argv);
  REQUIRE(subscriber.shows("subscribed to iot/# (granted qos 0)"));
  CHECK_THAT(subscriber.output(), Catch::StartsWith("connected (success)\n"));  // on_connect ran first

  auto publisher = connected_client(broker);
  publisher->publish("elsewhere/temperature", "99", 1).wait();  // does not match iot/#
  publisher->publish("iot/home1/temperature", "21.5", 1).wait();
  publisher->publish("iot/home1/humidity", "40", 1).wait();
  publisher->publish("iot/garden/soil/moisture", "0.31", 1).wait();
  INFO(subscriber.errors());
  REQUIRE(subscriber.finish() == 0);  // --count 3 stopped it
  CHECK_THAT(subscriber.output(),
             Catch::EndsWith("iot/home1/temperature 21.5\niot/home1/humidity 40\niot/garden/soil/moisture 0.31\n"
                             "received 3 messages\n"));
  CHECK_THAT(subscriber.output(), !Catch::Contains("elsewhere"));
}

TEST_CASE("example subscriber: Ctrl-C stops loop_forever", "[examples]") {
  MosquittoServer broker;
  Running subscriber(with_broker({example("subscriber"), "--filter", "iot/+/temperature"}, broker));
  REQUIRE(subscriber.shows("subscribed to iot/+/temperature (granted qos 0)"));
  subscriber.process->signal(SIGINT);
  CHECK(subscriber.finish() == 0);
  CHECK_THAT(subscriber.output(), Catch::EndsWith("received 0 messages\n"));
}

TEST_CASE("example recorder: stores --count readings as documents in SQLite and MongoDB", "[examples]") {
  const std::string backend = GENERATE(as<std::string>{}, "sqlite", "mongodb");
  INFO("backend " << backend);
  if (backend == "mongodb") IOTBRIDGE_REQUIRE_MONGO();
  MosquittoServer broker;
  TempDir dir("iotbridge-example-recorder");
  const std::string uri = backend == "sqlite" ? "sqlite:" + (dir / "readings.db").string() : test_mongo_uri();
  const std::string database = unique_db_name("iotb_example");
  Running recorder(with_broker({example("recorder"), "--store", uri, "--database", database, "--spool",
                                (dir / "spool").string(), "--count", "5"},
                               broker));
  REQUIRE(recorder.shows("recording iot/# into "));

  // The recorder prints nothing once subscribed, so readings go out until it
  // has stored 5 and exits; it takes exactly 5 in a row and ignores the rest.
  auto publisher = connected_client(broker);
  int published = 0;
  wait_until([&] {
    publisher->publish("iot/recorder/reading", std::to_string(++published), 1).wait();
    return !recorder.process->alive();
  });
  INFO(recorder.errors());
  REQUIRE(recorder.finish() == 0);
  CHECK_THAT(recorder.output(), Catch::Contains("stored 5 readings into " + database + ".sensors (5 received)"));

  auto store = store::open_store(uri);
  auto sensors = store->collection(database, "sensors");
  CHECK(sensors->count_documents() == 5);
  store::FindOptions by_value;
  by_value.sort = store::Document::from_json(R"({"value": 1})");
  std::vector<double> values;
  auto cursor = sensors->find({}, by_value);  // kept: a range-for over *find(...) would outlive it
  for (const auto& doc : *cursor) {
    CHECK(doc.get_string("topic") == "iot/recorder/reading");
    CHECK(doc.get_datetime("reg_date").has_value());
    values.push_back(doc.get_double("value").value_or(-1));  // "3" was stored as the number 3
  }
  REQUIRE(values.size() == 5);
  for (std::size_t i = 1; i < values.size(); ++i) CHECK(values[i] == values[0] + static_cast<double>(i));
  if (backend == "mongodb") store->drop_database(database);
}

TEST_CASE("example custom_decoder: key=value payloads stored as one field per key", "[examples]") {
  MosquittoServer broker;
  TempDir dir("iotbridge-example-decoder");
  const std::string uri = "sqlite:" + (dir / "readings.db").string();
  Running recorder(with_broker(
      {example("custom_decoder"), "--store", uri, "--spool", (dir / "spool").string(), "--count", "3"}, broker));
  REQUIRE(recorder.shows("recording iot/# with the kv decoder into "));

  // Two readings of the format, then one that is not: kept as text.
  auto publisher = connected_client(broker);
  publisher->publish("iot/kitchen/climate", "t=21.5;h=40;room=kitchen", 1).wait();
  publisher->publish("iot/hall/climate", "t=19;h=45;room=hall", 1).wait();
  publisher->publish("iot/hall/climate", "hello", 1).wait();
  INFO(recorder.errors());
  REQUIRE(recorder.finish() == 0);
  CHECK_THAT(recorder.output(), Catch::Contains("stored 3 readings into iot_service.sensors (3 received)"));
  CHECK_THAT(recorder.output(), Catch::Contains("decoded as kv: 2") && Catch::Contains("decoded as text: 1"));

  auto store = store::open_store(uri);
  auto sensors = store->collection("iot_service", "sensors");
  CHECK(sensors->count_documents() == 3);
  auto kitchen = sensors->find_one(store::Document::from_json(R"({"room": "kitchen"})"));
  REQUIRE(kitchen);
  CHECK(kitchen->get_double("t") == 21.5);
  CHECK(kitchen->get_double("h") == 40);
  CHECK(!kitchen->has("value"));
  CHECK(kitchen->get_string("topic") == "iot/kitchen/climate");
  CHECK(sensors->count_documents(store::Document::from_json(R"({"value": "hello"})")) == 1);
}

TEST_CASE("example topic_hierarchy: prints which filter received which topic", "[examples]") {
  MosquittoServer broker;
  auto r = run_tool(with_broker({example("topic_hierarchy")}, broker));
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  using Row = std::vector<std::string>;
  // Columns: home/living_room/+, home/+/light, #, $SYS/#.
  CHECK(row(r.out, "home/living_room/temperature") == Row{"home/living_room/temperature", "yes", "-", "yes", "-"});
  CHECK(row(r.out, "home/kitchen/light") == Row{"home/kitchen/light", "-", "yes", "yes", "-"});
  CHECK(row(r.out, "home/kitchen") == Row{"home/kitchen", "-", "-", "yes", "-"});  // + is exactly one level
  CHECK(row(r.out, "garden/soil/moisture") == Row{"garden/soil/moisture", "-", "-", "yes", "-"});
  CHECK(row(r.out, "home/living_room/light") == Row{"home/living_room/light", "yes", "yes", "yes", "-"});
  // The broker's own topic reaches $SYS/# but not #.
  CHECK(row(r.out, "$SYS/broker/version") == Row{"$SYS/broker/version", "-", "-", "-", "yes"});
}

TEST_CASE("example retained_and_ephemeral: a late subscriber gets only the retained reading", "[examples]") {
  MosquittoServer broker;
  auto r = run_tool(with_broker({example("retained_and_ephemeral"), "--prefix", "iot/test"}, broker));
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("late subscriber got iot/test/retained 21.5 (retain flag set)\n"
                                    "late subscriber: 1 retained, 0 ephemeral\ncleared the retained reading\n"));
  CHECK_THAT(r.out, !Catch::Contains("got iot/test/ephemeral"));

  // The example cleared what it retained: a new subscriber gets nothing
  // before a marker published after it subscribed.
  auto client = connected_client(broker);
  Collector received;
  client->subscribe("iot/test/#", 1, received.handler()).wait();
  client->publish("iot/test/marker", "m", 1).wait();
  REQUIRE(received.wait_for(1));
  CHECK(received.topics() == std::vector<std::string>{"iot/test/marker"});
}

TEST_CASE("example per_topic_handlers: each filter's handler, on_message for the rest", "[examples]") {
  MosquittoServer broker;
  Running handlers(with_broker({example("per_topic_handlers"), "--count", "4"}, broker));
  REQUIRE(handlers.shows("subscribed to iot/+/temperature, iot/+/humidity and iot/#"));
  auto publisher = connected_client(broker);
  publisher->publish("iot/kitchen/temperature", "21.5", 1).wait();
  publisher->publish("iot/kitchen/humidity", "40", 1).wait();
  publisher->publish("iot/kitchen/door", "open", 1).wait();
  publisher->publish("iot/hall/temperature", "19", 1).wait();
  INFO(handlers.errors());
  REQUIRE(handlers.finish() == 0);
  CHECK_THAT(handlers.output(), Catch::EndsWith("[temperature] iot/kitchen/temperature is 21.5 C\n"
                                                "[humidity]    iot/kitchen/humidity is 40 %\n"
                                                "[on_message]  iot/kitchen/door open\n"
                                                "[temperature] iot/hall/temperature is 19 C\n"
                                                "handled 4 messages\n"));
}

TEST_CASE("example store_crud: every step's result on SQLite and MongoDB", "[examples]") {
  const std::string backend = GENERATE(as<std::string>{}, "sqlite", "mongodb");
  INFO("backend " << backend);
  if (backend == "mongodb") IOTBRIDGE_REQUIRE_MONGO();
  TempDir dir("iotbridge-example-crud");
  const std::string uri = backend == "sqlite" ? "sqlite:" + (dir / "crud.db").string() : test_mongo_uri();
  const std::string database = unique_db_name("iotb_example");

  // Twice: the example starts from scratch, so a second run prints the same.
  for (int run = 1; run <= 2; ++run) {
    INFO("run " << run);
    auto r = run_tool({example("store_crud"), "--store", uri, "--database", database});
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    const std::string& out = r.out;
    CHECK_THAT(out, Catch::Contains("1. capped events (max 3), newest first:\n"
                                    "  { \"event\" : 5 }\n  { \"event\" : 4 }\n  { \"event\" : 3 }\n"));
    CHECK_THAT(out, Catch::Contains("2. insert_one: _id { \"$oid\" : \""));
    CHECK_THAT(out, Catch::Contains("3. insert_many failed at document 1 (1 inserted before it, duplicate key: yes)"));
    CHECK_THAT(out, Catch::Contains("E11000"));
    CHECK_THAT(out, Catch::Contains("   readings now: 4\n"));
    CHECK_THAT(out, Catch::Contains("4. value > 20, highest first:\n"
                                    "  { \"topic\" : \"iot/kitchen/humidity\", \"value\" : 40.0 }\n"
                                    "  { \"topic\" : \"iot/kitchen/temperature\", \"value\" : 21.5 }\n"
                                    "  { \"topic\" : \"iot/hall/temperature\", \"value\" : 20.5 }\n5."));
    CHECK_THAT(out,
               Catch::Contains("5. sensor.room = bedroom: iot/bedroom/temperature, its sensor.type is temperature"));
    CHECK_THAT(out, Catch::Contains("6. replace_one upsert value 18.0: matched 0, modified 0, upserted yes\n"
                                    "6. replace_one upsert value 18.5: matched 1, modified 1, upserted no\n"));
    CHECK_THAT(out, Catch::Contains("7. update_many value < 25, $set checked: matched 4, modified 4\n"));
    CHECK_THAT(out, Catch::Contains("8. delete_one _id 2: 1, delete_many value < 20: 1, left: 3\n"
                                    "  { \"topic\" : \"iot/kitchen/humidity\", \"value\" : 40.0 }\n"
                                    "  { \"topic\" : \"iot/kitchen/temperature\", \"value\" : 21.5 }\n"
                                    "  { \"topic\" : \"iot/hall/temperature\", \"value\" : 20.5 }\n"));
  }
  // What the example left is really in the store.
  auto store = store::open_store(uri);
  CHECK(store->collection(database, "readings")->count_documents() == 3);
  CHECK(store->collection_stats(database, "events").capped);
  if (backend == "mongodb") store->drop_database(database);
}

TEST_CASE("example testing_handlers: the thermostat's checks pass against the fake broker, no broker needed",
          "[examples]") {
  std::string out;
  REQUIRE(run_command({example("testing_handlers")}, &out) == 0);
  CHECK_THAT(out, Catch::Contains("ok   a cold kitchen switches its heater on (retained)"));
  CHECK_THAT(out, Catch::Contains("ok   after a dropped connection it still answers"));
  CHECK_THAT(out, Catch::Contains("0 of 4 checks failed"));
}

TEST_CASE("examples: each opens with what it teaches and how to run it, and has a tutorial", "[examples]") {
  const fs::path source_dir = fs::path(IOTBRIDGE_SOURCE_DIR);
  const std::string index = slurp(source_dir / "docs/examples/README.md");
  int examples = 0;
  for (const auto& entry : fs::directory_iterator(source_dir / "examples")) {
    if (entry.path().extension() != ".cpp") continue;
    ++examples;
    const std::string name = entry.path().stem().string();
    INFO(name);
    const std::string text = slurp(entry.path());
    CHECK_THAT(text, Catch::StartsWith("// What this teaches:"));
    CHECK_THAT(text, Catch::Contains("// Run") && Catch::Contains("build/examples/" + name));
    CHECK(fs::exists(source_dir / "docs/examples" / (name + ".md")));
    CHECK_THAT(index, Catch::Contains("(" + name + ".md)"));
  }
  CHECK(examples == 9);
}
