// Publish/subscribe through a real Mosquitto: QoS levels, wildcards, the
// tutorials' topic hierarchy, retained and "ephemeral" messages, per-filter
// handlers and the default handler, the consumer API, MQTT 5 properties.
#include <catch2/catch.hpp>
#include <set>

#include "mqtt_helpers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;
using namespace std::chrono_literals;

TEST_CASE("connect, subscribe with a handler, publish QoS 0/1/2 and receive them", "[mqtt][integration]") {
  MosquittoServer broker;
  Collector got;
  auto sub = mqtt::make_mosquitto_client(broker_options(broker));
  auto pub = mqtt::make_mosquitto_client(broker_options(broker));
  auto result = sub->connect();
  CHECK(result.reason_code == 0);
  CHECK_FALSE(result.session_present);
  CHECK(sub->connected());
  sub->loop_start();
  pub->connect();
  pub->loop_start();

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
    // The packet id the broker chose for its PUBLISH to us: none for QoS 0.
    if (qos == 0)
      CHECK(messages[qos].mid == 0);
    else
      CHECK(messages[qos].mid > 0);
  }
  CHECK(pub->unacknowledged() == 0);
  pub->disconnect();
  CHECK_FALSE(pub->connected());
}

namespace {

std::unique_ptr<mqtt::Client> started(mqtt::Options o) {
  auto c = mqtt::make_mosquitto_client(std::move(o));
  c->connect();
  c->loop_start();
  return c;
}

}  // namespace

TEST_CASE("the tutorials' hierarchy: home/living_room/+, home/+/light and # get exactly their topics",
          "[mqtt][integration]") {
  MosquittoServer broker;
  Collector room, lights, all, room_h, lights_h, all_h, fallback;
  auto c_room = started(broker_options(broker));
  auto c_lights = started(broker_options(broker));
  auto c_all = started(broker_options(broker));
  // One client with three per-filter handlers: each handler sees what its filter matches.
  auto c_handlers = started(broker_options(broker));
  c_handlers->on_message(fallback.handler());
  REQUIRE(c_room->subscribe("home/living_room/+", 1, room.handler()).wait_for(5s));
  REQUIRE(c_lights->subscribe("home/+/light", 1, lights.handler()).wait_for(5s));
  REQUIRE(c_all->subscribe("#", 1, all.handler()).wait_for(5s));
  REQUIRE(c_handlers
              ->subscribe({{"home/living_room/+", 1, room_h.handler()},
                           {"home/+/light", 1, lights_h.handler()},
                           {"#", 1, all_h.handler()}})
              .wait_for(5s));
  CHECK(sorted(c_handlers->subscriptions()) == sorted({"#", "home/+/light", "home/living_room/+"}));

  auto pub = started(broker_options(broker));
  const std::vector<std::string> topics = {"home/living_room/light", "home/living_room/temperature",
                                           "home/kitchen/light",     "home/kitchen/temperature",
                                           "office/light",           "home/living_room"};
  for (const auto& t : topics) REQUIRE(pub->publish(t, "v:" + t, 1).wait_for(5s));
  // An end marker every filter matches: whatever else was coming arrived before it.
  REQUIRE(pub->publish("home/living_room/light", "end", 1).wait_for(5s));
  for (Collector* c : {&room, &lights, &all, &room_h, &lights_h, &all_h}) {
    REQUIRE(c->wait_for(1));
    REQUIRE(c->wait_for(c == &room || c == &room_h ? 3 : c == &lights || c == &lights_h ? 3 : 7));
  }
  auto without_end = [](const Collector& c) {
    std::vector<std::string> out;
    for (const auto& m : c.messages())
      if (m.payload != "end") out.push_back(m.topic);
    return out;
  };
  const std::vector<std::string> want_room = {"home/living_room/light", "home/living_room/temperature"};
  const std::vector<std::string> want_lights = {"home/living_room/light", "home/kitchen/light"};
  CHECK(without_end(room) == want_room);
  CHECK(without_end(lights) == want_lights);
  CHECK(without_end(all) == topics);
  CHECK(without_end(room_h) == want_room);
  CHECK(without_end(lights_h) == want_lights);
  CHECK(without_end(all_h) == topics);
  CHECK(fallback.size() == 0);
  for (const auto& m : all.messages()) CHECK(m.payload == (m.payload == "end" ? "end" : "v:" + m.topic));
}

TEST_CASE("messages no handler takes go to the default on_message, unsubscribe stops them", "[mqtt][integration]") {
  MosquittoServer broker;
  Collector handled, fallback;
  auto sub = started(broker_options(broker));
  sub->on_message(fallback.handler());
  REQUIRE(sub->subscribe("a/+", 1, handled.handler()).wait_for(5s));
  REQUIRE(sub->subscribe("b/#", 1).wait_for(5s));  // no handler: the default one
  auto pub = started(broker_options(broker));
  pub->publish("a/1", "to handler", 1).wait();
  pub->publish("b/1/2", "to default", 1).wait();
  REQUIRE(handled.wait_for(1));
  REQUIRE(fallback.wait_for(1));
  CHECK(handled.payloads() == std::vector<std::string>{"to handler"});
  CHECK(fallback.payloads() == std::vector<std::string>{"to default"});

  REQUIRE(sub->unsubscribe("a/+").wait_for(5s));
  CHECK(sub->subscriptions() == std::vector<std::string>{"b/#"});
  pub->publish("a/1", "after unsubscribe", 1).wait();
  pub->publish("b/end", "marker", 1).wait();
  REQUIRE(fallback.wait_for(2));
  CHECK(handled.size() == 1);
  CHECK(fallback.payloads() == std::vector<std::string>{"to default", "marker"});
}

TEST_CASE("retained: a late subscriber gets only the last one, an empty payload clears it", "[mqtt][integration]") {
  MosquittoServer broker;
  auto pub = started(broker_options(broker));
  pub->publish("house/door", "open", 1, true).wait();
  pub->publish("house/door", "closed", 1, true).wait();
  {
    Collector late;
    auto sub = started(broker_options(broker));
    REQUIRE(sub->subscribe("house/#", 1, late.handler()).wait_for(5s));
    pub->publish("house/marker", "marker", 1).wait();
    REQUIRE(late.wait_for(2));
    auto m = late.messages();
    CHECK(m[0].topic == "house/door");
    CHECK(m[0].payload == "closed");
    CHECK(m[0].retain);
    CHECK(m[1].payload == "marker");
    CHECK_FALSE(m[1].retain);
    CHECK(late.size() == 2);
  }
  pub->publish("house/door", "", 1, true).wait();  // clears the retained message
  {
    Collector later;
    auto sub = started(broker_options(broker));
    REQUIRE(sub->subscribe("house/#", 1, later.handler()).wait_for(5s));
    pub->publish("house/marker", "marker", 1).wait();
    REQUIRE(later.wait_for(1));
    CHECK(later.payloads() == std::vector<std::string>{"marker"});
  }
}

TEST_CASE("ephemeral: a message published with no subscriber is not delivered later", "[mqtt][integration]") {
  MosquittoServer broker;
  auto pub = started(broker_options(broker));
  pub->publish("ephemeral/x", "nobody listens", 1).wait();
  Collector got;
  auto sub = started(broker_options(broker));
  REQUIRE(sub->subscribe("ephemeral/#", 1, got.handler()).wait_for(5s));
  pub->publish("ephemeral/x", "now someone does", 1).wait();
  REQUIRE(got.wait_for(1));
  CHECK(got.payloads() == std::vector<std::string>{"now someone does"});
}

TEST_CASE("$share: three clients in one group receive disjoint sets whose union is everything", "[mqtt][integration]") {
  MosquittoServer broker;
  Collector a, b, c, plain;
  std::vector<std::unique_ptr<mqtt::Client>> members;
  for (Collector* col : {&a, &b, &c}) {
    members.push_back(started(broker_options(broker)));
    REQUIRE(members.back()->subscribe("$share/recorders/shared/#", 1, col->handler()).wait_for(5s));
  }
  // One member also has a plain subscription with its own handler: the
  // "$share/..." handler gets only what arrives for the shared filter.
  REQUIRE(members[0]->subscribe("plain/#", 1, plain.handler()).wait_for(5s));
  auto pub = started(broker_options(broker));
  constexpr int kCount = 300;
  for (int i = 0; i < kCount; ++i) pub->publish("shared/" + std::to_string(i % 7), std::to_string(i), 1);
  REQUIRE(pub->publish("shared/last", "last", 1).wait_for(10s));
  std::set<std::string> seen;
  std::size_t total = 0;
  // Wait until the union is complete.
  for (int round = 0; round < 200 && total < kCount + 1; ++round) {
    total = a.size() + b.size() + c.size();
    if (total < kCount + 1) a.wait_for(a.size() + 1, 50ms);
  }
  for (Collector* col : {&a, &b, &c}) {
    CHECK(col->size() > 0);
    for (const auto& p : col->payloads()) CHECK(seen.insert(p).second);  // disjoint
  }
  CHECK(seen.size() == kCount + 1);  // complete
  CHECK(total == kCount + 1);
  REQUIRE(pub->publish("plain/x", "plain", 1).wait_for(10s));
  REQUIRE(plain.wait_for(1));
  CHECK(plain.payloads() == std::vector<std::string>{"plain"});
  CHECK(a.size() + b.size() + c.size() == kCount + 1);
}

TEST_CASE("consumer API: start_consuming + consume return messages in order", "[mqtt][integration]") {
  MosquittoServer broker;
  auto sub = started(broker_options(broker));
  sub->start_consuming(8);  // smaller than the burst: the network thread waits for us
  REQUIRE(sub->subscribe("pull/#", 1).wait_for(5s));
  auto pub = started(broker_options(broker));
  for (int i = 0; i < 50; ++i) pub->publish("pull/x", std::to_string(i), 1);
  for (int i = 0; i < 50; ++i) {
    auto m = sub->consume(10s);
    REQUIRE(m);
    CHECK(m->payload == std::to_string(i));
    CHECK(m->topic == "pull/x");
  }
  CHECK_FALSE(sub->consume(10ms));
  sub->stop_consuming();
  CHECK_FALSE(sub->consume(10ms));
}

TEST_CASE("MQTT 5 properties travel with the message", "[mqtt][integration]") {
  MosquittoServer broker;
  auto o = broker_options(broker);
  o.protocol = mqtt::Protocol::v5;
  Collector got;
  auto sub = started(o);
  REQUIRE(sub->subscribe("props/#", 2, got.handler()).wait() == std::vector<int>{2});
  auto pub = started(o);
  mqtt::Properties p;
  p.content_type = "application/json";
  p.response_topic = "props/reply";
  p.correlation_data = std::string("\x00\x01\xff", 3);
  p.message_expiry_interval = 3600;
  p.payload_format_utf8 = true;
  p.user_properties = {{"unit", "celsius"}, {"sensor", "t1"}, {"unit", "again"}};
  auto token = pub->publish("props/x", "{\"t\":21.5}", 1, false, p);
  REQUIRE(token.wait_for(5s));
  CHECK(token.reason_code() == 0);
  REQUIRE(got.wait_for(1));
  auto m = got.messages().at(0);
  CHECK(m.properties.content_type == p.content_type);
  CHECK(m.properties.response_topic == p.response_topic);
  CHECK(m.properties.correlation_data == p.correlation_data);
  REQUIRE(m.properties.message_expiry_interval);
  CHECK(*m.properties.message_expiry_interval <= 3600);
  CHECK(m.properties.payload_format_utf8 == std::optional<bool>(true));
  CHECK(m.properties.user_properties == p.user_properties);
}

TEST_CASE("binary payloads arrive byte-identical", "[mqtt][integration]") {
  MosquittoServer broker;
  Collector got;
  auto sub = started(broker_options(broker));
  REQUIRE(sub->subscribe("bin", 1, got.handler()).wait_for(5s));
  auto pub = started(broker_options(broker));
  std::string payload;
  for (int i = 0; i < 100000; ++i) payload += static_cast<char>((i * 7919) & 0xff);
  pub->publish("bin", payload, 1).wait();
  pub->publish("bin", "", 1).wait();
  REQUIRE(got.wait_for(2));
  CHECK(got.messages()[0].payload == payload);
  CHECK(got.messages()[1].payload.empty());
}
