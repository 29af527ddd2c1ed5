// What this teaches: unit-testing your own MQTT handler without a broker. The
// application code below (a Thermostat that switches a room's heater from its
// temperature readings) takes any mqtt::Client; its tests give it a client of
// mqtt::testing::FakeBroker (iotbridge/mqtt/testing.hpp), an in-process broker
// with retained messages, wildcards, QoS acknowledgements and faults on demand
// (a dropped connection here). In your project these checks would be Catch2 or
// GoogleTest cases; here each prints one line.
// Run (no broker needed):
//   build/examples/testing_handlers
#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdio>
#include <iotbridge/error.hpp>
#include <iotbridge/mqtt/client.hpp>
#include <iotbridge/mqtt/testing.hpp>
#include <optional>
#include <string>
#include <thread>

using namespace std::chrono_literals;
namespace mqtt = iotbridge::mqtt;

// ---- the application code under test -------------------------------------

// Reads home/<room>/temperature; publishes home/<room>/heater "on" below
// on_below and "off" above off_above (retained, so that a heater that starts
// later learns its state). Anything that is not a number is ignored.
class Thermostat {
 public:
  Thermostat(mqtt::Client& client, double on_below, double off_above)
      : client_(client), on_below_(on_below), off_above_(off_above) {}

  void start() {
    client_.subscribe("home/+/temperature", 1, [this](const mqtt::Message& m) { on_reading(m); }).wait();
  }

 private:
  void on_reading(const mqtt::Message& m) {
    double celsius = 0;
    auto [end, error] = std::from_chars(m.payload.data(), m.payload.data() + m.payload.size(), celsius);
    if (error != std::errc() || end != m.payload.data() + m.payload.size()) return;
    std::string room = m.topic.substr(5, m.topic.rfind('/') - 5);  // home/<room>/temperature
    if (celsius < on_below_) client_.publish("home/" + room + "/heater", "on", 1, true);
    if (celsius > off_above_) client_.publish("home/" + room + "/heater", "off", 1, true);
  }

  mqtt::Client& client_;
  double on_below_, off_above_;
};

// ---- its tests ------------------------------------------------------------

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

// The retained heater state of a room, once the broker has routed `count` messages in all.
std::optional<std::string> heater(mqtt::testing::FakeBroker& broker, std::size_t count, const std::string& room) {
  if (!broker.wait_published(count, 5s)) return std::nullopt;
  auto m = broker.retained("home/" + room + "/heater");
  return m ? std::optional(m->payload) : std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Tests a Thermostat handler against the in-process fake broker (no Mosquitto needed)."};
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  try {
    mqtt::testing::FakeBroker broker;
    mqtt::Options options;
    options.client_id = "thermostat";
    auto client = broker.make_client(options);
    client->connect();
    client->loop_start();  // handlers run on this thread, as with the real client
    Thermostat thermostat(*client, 18.0, 22.0);
    thermostat.start();

    auto sensor = broker.make_client();
    sensor->connect();
    sensor->loop_start();
    // wait() returns once the broker routed the reading; the thermostat's answer follows.
    sensor->publish("home/kitchen/temperature", "17.5", 1).wait();
    check(heater(broker, 2, "kitchen") == "on", "a cold kitchen switches its heater on (retained)");

    sensor->publish("home/kitchen/temperature", "23", 1).wait();
    check(heater(broker, 4, "kitchen") == "off", "a warm kitchen switches it off");

    sensor->publish("home/kitchen/temperature", "warm-ish", 1).wait();
    sensor->publish("home/hall/temperature", "20", 1).wait();
    sensor->publish("home/cellar/temperature", "12", 1).wait();
    check(heater(broker, 8, "cellar") == "on" && broker.published().size() == 8 && !broker.retained("home/hall/heater"),
          "text and readings in between publish nothing");

    // A dropped connection: the client reconnects and resubscribes by itself.
    broker.drop("thermostat");
    bool back = client->wait_connected(5s);
    for (int i = 0; back && broker.subscriptions("thermostat").empty() && i < 5000; ++i)
      std::this_thread::sleep_for(1ms);  // polls until the broker holds the restored subscription
    sensor->publish("home/hall/temperature", "16", 1).wait();
    check(back && heater(broker, 10, "hall") == "on", "after a dropped connection it still answers");

    std::printf("%d of 4 checks failed\n", failures);
    return failures == 0 ? 0 : 1;
  } catch (const iotbridge::Error& e) {
    std::fprintf(stderr, "testing_handlers: %s\n", e.what());
    return 1;
  }
}
