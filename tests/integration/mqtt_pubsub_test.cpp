// Publish/subscribe through a real Mosquitto: QoS levels, wildcards, the
// tutorials' topic hierarchy, retained and "ephemeral" messages, per-filter
// handlers and the default handler, the consumer API, MQTT 5 properties.
#include <catch2/catch.hpp>

#include "mqtt_helpers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;
using namespace std::chrono_literals;

TEST_CASE("connect, subscribe with a handler, publish QoS 0/1/2 and receive them", "[mqtt][integration]") {
  MosquittoServer broker;
  auto sub = mqtt::make_mosquitto_client(broker_options(broker));
  auto pub = mqtt::make_mosquitto_client(broker_options(broker));
  auto result = sub->connect();
  CHECK(result.reason_code == 0);
  CHECK_FALSE(result.session_present);
  CHECK(sub->connected());
  sub->loop_start();
  pub->connect();
  pub->loop_start();

  Collector got;
  auto granted = sub->subscribe("test/qos/+", 2, got.handler()).wait();
  REQUIRE(granted == std::vector<int>{2});

  for (int qos = 0; qos <= 2; ++qos) {
    auto token = pub->publish("test/qos/" + std::to_string(qos), "payload " + std::to_string(qos), qos);
    REQUIRE(token.wait_for(5s));
    CHECK(token.done());
    if (qos > 0) CHECK(token.mid() > 0);
  }
  REQUIRE(got.wait_for(3));
  auto messages = got.messages();
  REQUIRE(messages.size() == 3);
  for (int qos = 0; qos <= 2; ++qos) {
    CHECK(messages[qos].topic == "test/qos/" + std::to_string(qos));
    CHECK(messages[qos].payload == "payload " + std::to_string(qos));
    CHECK(messages[qos].qos == qos);
    CHECK_FALSE(messages[qos].retain);
  }
  CHECK(pub->unacknowledged() == 0);
  pub->disconnect();
  CHECK_FALSE(pub->connected());
}
