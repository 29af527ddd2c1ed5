// Uses the MQTT component alone: topics, the libmosquitto client's factory and
// the test double. Prints "mqtt consumer ok".
#include <iostream>
#include <iotbridge/mqtt.hpp>
#include <iotbridge/mqtt/testing.hpp>

int main() {
  using namespace iotbridge;
  mqtt::testing::FakeBroker broker;
  auto sub = broker.make_client();
  sub->connect();
  sub->loop_start();
  sub->start_consuming();
  sub->subscribe("home/+/temperature", 1).wait();
  auto pub = broker.make_client();
  pub->connect();
  pub->loop_start();
  pub->publish("home/kitchen/temperature", "21.5", 1).wait();
  auto got = sub->consume(std::chrono::seconds(10));
  auto real = mqtt::make_mosquitto_client({});  // links libmosquitto; does not connect
  bool ok = got && got->payload == "21.5" && topic_matches("home/#", "home/kitchen") &&
            std::string(mqtt::mosquitto_library_version()).size() > 0 && real->client_id().size() > 0;
  std::cout << (ok ? "mqtt consumer ok" : "mqtt consumer FAILED") << "\n";
  return ok ? 0 : 1;
}
