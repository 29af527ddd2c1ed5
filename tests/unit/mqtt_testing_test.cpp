// The test double of iotbridge/mqtt/testing.hpp against the behaviour table
// the real client meets with Mosquitto (tests/integration/mqtt_behaviour_test.cpp,
// mqtt_pubsub_test.cpp): where a behaviour is the broker's job too, the fake
// must show it the same way, so that a user's unit test with the fake means
// what an integration test with Mosquitto would. Each case names its
// counterpart. Plus what only the fake has: faults on demand.
#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/testing.hpp"
#include "iotbridge/topic.hpp"

using namespace iotbridge;
using namespace std::chrono_literals;
using mqtt::testing::FakeBroker;

namespace {

class Collector {
 public:
  mqtt::MessageHandler handler() {
    return [this](const mqtt::Message& m) { add(m); };
  }
  void add(const mqtt::Message& m) {
    {
      std::lock_guard lock(mutex_);
      messages_.push_back(m);
    }
    cv_.notify_all();
  }
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return messages_.size() >= n; });
  }
  std::vector<mqtt::Message> messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  std::vector<std::string> payloads() const {
    std::vector<std::string> out;
    for (const auto& m : messages()) out.push_back(m.payload);
    return out;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return messages_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<mqtt::Message> messages_;
};

template <typename F>
bool eventually(F&& condition, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

mqtt::Options named(std::string id) {
  mqtt::Options o;
  o.client_id = std::move(id);
  return o;
}

std::unique_ptr<mqtt::Client> started(FakeBroker& broker, mqtt::Options o = {}) {
  auto c = broker.make_client(std::move(o));
  c->on_log([](mqtt::LogLevel, std::string_view) {});
  c->connect();
  c->loop_start();
  return c;
}

}  // namespace

TEST_CASE("fake: wildcard routing follows the MQTT matching rules", "[mqtt][testing]") {
  // (filter, topic, delivered) as in topic_test.cpp's table and Mosquitto.
  struct Row {
    const char* filter;
    const char* topic;
    bool delivered;
  };
  const Row rows[] = {
      {"a/b", "a/b", true},        {"a/+", "a/b", true},    {"a/+", "a/b/c", false}, {"a/#", "a", true},
      {"a/#", "a/b/c", true},      {"+/+", "/b", true},     {"#", "$SYS/x", false},  {"+/x", "$SYS/x", false},
      {"$SYS/#", "$SYS/x", true},  {"a/+/c", "a//c", true}, {"a/b", "a/B", false},   {"+", "a/b", false},
      {"#", "a/b/c", true},        {"a/b/#", "a/b", true},  {"a/+/#", "a/b", true},  {"$share/g/a/#", "a/b", true},
      {"$share/g/+", "$x", false},
  };
  FakeBroker broker;
  auto pub = started(broker);
  for (const auto& row : rows) {
    INFO(row.filter << " <- " << row.topic);
    Collector got;
    auto sub = started(broker);
    REQUIRE(sub->subscribe(row.filter, 1, got.handler()).wait_for(5s));
    // No filter of the table matches "$marker"; it comes after x from the same publisher.
    REQUIRE(sub->subscribe("$marker", 1, got.handler()).wait_for(5s));
    pub->publish(row.topic, "x", 1).wait();
    pub->publish("$marker", "end", 1).wait();
    REQUIRE(eventually([&] { return got.size() > 0 && got.payloads().back() == "end"; }));
    CHECK((got.size() == 2) == row.delivered);
  }
}

TEST_CASE("fake: one copy per client at the highest granted QoS, QoS is the lower of publish and grant",
          "[mqtt][testing]") {
  FakeBroker broker;
  Collector got;
  auto sub = started(broker);
  sub->on_message(got.handler());
  REQUIRE(sub->subscribe({{"q/#", 0, {}}, {"q/+", 2, {}}}).wait() == std::vector<int>{0, 2});
  auto pub = started(broker);
  pub->publish("q/a", "one", 1).wait();
  pub->publish("q/b/c", "two", 2).wait();
  REQUIRE(got.wait_for(2));
  auto m = got.messages();
  CHECK(got.payloads() == std::vector<std::string>{"one", "two"});
  CHECK(m[0].qos == 1);
  CHECK(m[0].mid != 0);
  CHECK(m[1].qos == 0);  // only q/# (QoS 0) matches q/b/c
  CHECK_FALSE(m[0].retain);
  broker.set_max_qos(1);
  CHECK(sub->subscribe("capped", 2).wait() == std::vector<int>{1});
}

TEST_CASE("fake: retained messages are kept per topic, sent on subscribe with the retain flag, cleared by an empty one",
          "[mqtt][testing]") {
  // mqtt_pubsub_test.cpp: "retained messages ..."
  FakeBroker broker;
  auto pub = started(broker);
  pub->publish("r/1", "first", 1, true).wait();
  pub->publish("r/1", "second", 1, true).wait();
  pub->publish("r/2", "other", 0, true).wait();
  CHECK(broker.retained_count() == 2);
  REQUIRE(broker.retained("r/1"));
  CHECK(broker.retained("r/1")->payload == "second");

  Collector got, shared;
  auto sub = started(broker);
  auto member = started(broker);
  REQUIRE(sub->subscribe("r/#", 1, got.handler()).wait_for(5s));
  REQUIRE(member->subscribe("$share/g/r/#", 1, shared.handler()).wait_for(5s));
  REQUIRE(got.wait_for(2));
  std::set<std::string> payloads;
  for (const auto& m : got.messages()) {
    CHECK(m.retain);
    payloads.insert(m.payload);
  }
  CHECK(payloads == std::set<std::string>{"second", "other"});
  // A live subscriber gets a retained publication with the flag cleared; an
  // empty retained payload deletes the topic's retained message.
  pub->publish("r/1", "", 1, true).wait();
  REQUIRE(got.wait_for(3));
  CHECK_FALSE(got.messages()[2].retain);
  CHECK_FALSE(broker.retained("r/1"));
  CHECK(broker.retained_count() == 1);
  REQUIRE(shared.wait_for(1));  // the live publication, but no retained message before it
  CHECK(shared.payloads() == std::vector<std::string>{""});
}

TEST_CASE("fake: callbacks may call publish, subscribe, unsubscribe and disconnect without deadlock",
          "[mqtt][testing]") {
  // mqtt_behaviour_test.cpp: the same case against Mosquitto.
  FakeBroker broker;
  Collector replies, second;
  std::atomic<int> connects{0};
  auto c = broker.make_client();
  mqtt::Client* self = c.get();
  c->on_connect([&](const mqtt::ConnectResult& r) {
    if (r.reason_code != 0) return;
    ++connects;
    self->subscribe("req/#", 1, [self, &second](const mqtt::Message& m) {
      self->publish("reply/" + m.topic.substr(4), "re:" + m.payload, 1);
      self->subscribe("second/#", 1, second.handler());
      self->unsubscribe("req/#");
    });
  });
  c->connect();
  c->loop_start();
  auto pub = started(broker);
  REQUIRE(pub->subscribe("reply/#", 1, replies.handler()).wait_for(5s));
  REQUIRE(eventually([&] { return broker.subscriptions(c->client_id()).size() == 1; }));
  pub->publish("req/1", "ping", 1).wait();
  REQUIRE(replies.wait_for(1));
  CHECK(replies.messages()[0].payload == "re:ping");
  CHECK(replies.messages()[0].topic == "reply/1");
  REQUIRE(eventually([&] { return broker.subscriptions(c->client_id()) == std::vector<std::string>{"second/#"}; }));
  CHECK(c->subscriptions() == std::vector<std::string>{"second/#"});
  pub->publish("second/x", "y", 1).wait();
  REQUIRE(second.wait_for(1));
  CHECK(connects == 1);

  std::atomic<bool> disconnected{false};
  c->on_disconnect([&](const mqtt::DisconnectInfo& info) {
    CHECK_FALSE(info.unexpected);
    disconnected = true;
  });
  c->subscribe("bye", 1, [self](const mqtt::Message&) { self->disconnect(); }).wait();
  pub->publish("bye", "now", 1).wait();
  REQUIRE(eventually([&] { return disconnected.load(); }));
  CHECK_FALSE(c->connected());
}

TEST_CASE("fake: an exception thrown by a callback is caught and logged, the loop goes on", "[mqtt][testing]") {
  FakeBroker broker;
  Collector got;
  std::mutex mutex;
  std::vector<std::string> errors;
  auto c = broker.make_client();
  c->on_log([&](mqtt::LogLevel level, std::string_view text) {
    if (level != mqtt::LogLevel::error) return;
    std::lock_guard lock(mutex);
    errors.emplace_back(text);
  });
  c->on_connect([](const mqtt::ConnectResult&) { throw std::runtime_error("boom in on_connect"); });
  c->connect();
  c->loop_start();
  c->subscribe("ex/#", 1, [&](const mqtt::Message& m) {
     if (m.payload == "throw") throw std::runtime_error("boom in handler");
     got.add(m);
   }).wait();
  auto pub = started(broker);
  pub->publish("ex/1", "throw", 1).wait();
  pub->publish("ex/1", "after", 1).wait();
  REQUIRE(got.wait_for(1));
  CHECK(got.payloads() == std::vector<std::string>{"after"});
  std::lock_guard lock(mutex);
  REQUIRE(errors.size() == 2);
  CHECK_THAT(errors[0], Catch::Contains("boom in on_connect"));
  CHECK_THAT(errors[1], Catch::Contains("boom in handler"));
}

TEST_CASE("fake: loop_forever until the stop token fires, loop(timeout) by hand", "[mqtt][testing]") {
  FakeBroker broker;
  Collector got;
  auto c = broker.make_client();
  c->subscribe("lf/#", 1, got.handler());  // remembered, sent on connect
  c->connect();
  std::stop_source stop;
  std::thread runner([&] { c->loop_forever(stop.get_token()); });
  auto pub = started(broker);
  REQUIRE(eventually([&] { return broker.subscriptions(c->client_id()).size() == 1; }));
  pub->publish("lf/x", "hello", 1).wait();
  REQUIRE(got.wait_for(1));
  CHECK_THROWS_AS(c->loop_start(), Error);  // one network owner at a time
  stop.request_stop();
  runner.join();
  CHECK_FALSE(c->connected());

  Collector manual;
  auto h = broker.make_client();
  h->connect();
  auto sub = h->subscribe("manual/#", 1, manual.handler());
  while (!sub.done()) h->loop(50ms);
  auto token = h->publish("manual/1", "by hand", 1);
  for (int i = 0; i < 200 && !(token.done() && manual.size() == 1); ++i) h->loop(50ms);
  CHECK(token.done());
  CHECK(manual.payloads() == std::vector<std::string>{"by hand"});
  h->disconnect();
  CHECK_FALSE(h->connected());
}

TEST_CASE("fake: broker stopped and started: reconnect and resubscribe by itself, QoS 1 kept meanwhile",
          "[mqtt][testing]") {
  FakeBroker broker;
  Collector got;
  std::atomic<int> connects{0}, lost{0}, subacks{0};
  auto sub = broker.make_client();
  sub->on_log([](mqtt::LogLevel, std::string_view) {});
  sub->on_connect([&](const mqtt::ConnectResult& r) {
    if (r.reason_code == 0) ++connects;
  });
  sub->on_disconnect([&](const mqtt::DisconnectInfo& info) {
    if (!info.unexpected) return;  // the destructor's clean disconnect
    CHECK(info.reason_code != 0);
    CHECK_THAT(info.reason, !Catch::Contains("disconnected by the client"));
    ++lost;
  });
  sub->on_subscribe([&](const mqtt::SubscribeResult&) { ++subacks; });
  sub->connect();
  sub->loop_start();
  REQUIRE(sub->subscribe("stream/#", 1, got.handler()).wait_for(5s));
  auto pub = started(broker);
  for (int i = 0; i < 10; ++i) pub->publish("stream/x", "before " + std::to_string(i), 1).wait();
  REQUIRE(got.wait_for(10));

  broker.stop();
  REQUIRE(eventually([&] { return lost.load() == 1 && !sub->connected() && !pub->connected(); }));
  CHECK_THROWS_WITH(broker.make_client()->connect(), Catch::Contains("connection refused"));
  auto queued = pub->publish("stream/x", "while down", 1);
  CHECK_FALSE(queued.done());
  CHECK(pub->unacknowledged() == 1);
  broker.start();
  REQUIRE(sub->wait_connected(10s));
  REQUIRE(pub->wait_connected(10s));
  REQUIRE(eventually([&] { return subacks.load() == 2; }));
  CHECK(connects == 2);
  REQUIRE(queued.wait_for(10s));
  for (int i = 0; i < 10; ++i) pub->publish("stream/x", "after " + std::to_string(i), 1).wait();
  REQUIRE(eventually([&] {
    auto p = got.payloads();
    return std::count(p.begin(), p.end(), "after 9") == 1;
  }));
  auto p = got.payloads();
  CHECK(std::count(p.begin(), p.end(), "while down") <= 1);
  for (int i = 0; i < 10; ++i) CHECK(std::count(p.begin(), p.end(), "after " + std::to_string(i)) == 1);
}

TEST_CASE("fake: persistent session: QoS 1 published while away arrives on return, not resubscribed",
          "[mqtt][testing]") {
  FakeBroker broker;
  auto pub = started(broker);
  for (auto protocol : {mqtt::Protocol::v311, mqtt::Protocol::v5}) {
    INFO("protocol " << static_cast<int>(protocol));
    auto o = named("persistent-" + std::to_string(static_cast<int>(protocol)));
    o.clean_session = false;
    o.protocol = protocol;
    Collector got, fresh;
    {
      auto sub = broker.make_client(o);
      CHECK_FALSE(sub->connect().session_present);
      sub->loop_start();
      REQUIRE(sub->subscribe("persist/#", 1, got.handler()).wait_for(5s));
      sub->disconnect();
    }
    for (int i = 0; i < 5; ++i) pub->publish("persist/x", "away " + std::to_string(i), 1).wait();
    pub->publish("persist/x", "qos0 is not kept", 0).wait();
    auto back = broker.make_client(o);
    back->on_message(fresh.handler());
    auto r = back->connect();
    CHECK(r.session_present);
    back->loop_start();
    REQUIRE(fresh.wait_for(5));
    CHECK(fresh.payloads() == std::vector<std::string>{"away 0", "away 1", "away 2", "away 3", "away 4"});
    CHECK(got.size() == 0);
    CHECK(broker.subscriptions(o.client_id) == std::vector<std::string>{"persist/#"});
    back->disconnect();
  }
}

TEST_CASE("fake: the will goes out when the broker drops a client, not on disconnect()", "[mqtt][testing]") {
  FakeBroker broker;
  Collector wills;
  auto watcher = started(broker);
  REQUIRE(watcher->subscribe("devices/+/status", 1, wills.handler()).wait_for(5s));
  auto o = named("d1");
  o.will = mqtt::Will{"devices/d1/status", "offline (unexpected)", 1, true};
  auto device = started(broker, o);
  auto clean = named("d2");
  clean.will = mqtt::Will{"devices/d2/status", "gone", 1, false};
  started(broker, clean)->disconnect();

  std::atomic<int> reconnects{0};
  device->on_connect([&](const mqtt::ConnectResult&) { ++reconnects; });
  CHECK(broker.drop("d1"));
  CHECK_FALSE(broker.drop("nobody"));
  REQUIRE(wills.wait_for(1));
  CHECK(wills.messages()[0].topic == "devices/d1/status");
  CHECK(wills.messages()[0].payload == "offline (unexpected)");
  REQUIRE(broker.retained("devices/d1/status"));
  // auto_reconnect: back at once.
  REQUIRE(eventually([&] { return reconnects.load() == 1 && device->connected(); }));
  watcher->publish("devices/marker/status", "marker", 1).wait();
  REQUIRE(wills.wait_for(2));
  CHECK(wills.payloads() == std::vector<std::string>{"offline (unexpected)", "marker"});
}

TEST_CASE("fake: flow control bounds unacknowledged QoS 1 while the broker is paused", "[mqtt][testing]") {
  FakeBroker broker;
  mqtt::Options o;
  o.max_inflight = 2;
  o.max_queued = 5;
  o.when_full = mqtt::WhenFull::fail;
  auto c = started(broker, o);
  broker.pause();
  std::vector<mqtt::DeliveryToken> tokens;
  for (int i = 0; i < 5; ++i) tokens.push_back(c->publish("flow/x", std::to_string(i), 1));
  CHECK(c->unacknowledged() == 5);
  CHECK_THROWS_WITH(c->publish("flow/x", "sixth", 1), Catch::Contains("Options::max_queued"));
  c->publish("flow/x", "qos0", 0);  // QoS 0 is not counted
  CHECK(c->unacknowledged() == 5);
  broker.resume();
  for (auto& t : tokens) REQUIRE(t.wait_for(10s));
  REQUIRE(eventually([&] { return c->unacknowledged() == 0; }));

  auto ob = o;
  ob.when_full = mqtt::WhenFull::block;
  ob.publish_timeout = 100ms;
  auto b = started(broker, ob);
  broker.pause();
  for (int i = 0; i < 5; ++i) b->publish("flow/y", std::to_string(i), 1);
  CHECK_THROWS_WITH(b->publish("flow/y", "blocked", 1), Catch::Contains("timed out after 100 ms"));
  broker.resume();

  ob.publish_timeout = 30s;
  Collector got;
  auto sub = started(broker);
  REQUIRE(sub->subscribe("flow/z", 1, got.handler()).wait_for(5s));
  auto fast = started(broker, ob);
  std::size_t most = 0;
  mqtt::DeliveryToken last;
  for (int i = 0; i < 2000; ++i) {
    last = fast->publish("flow/z", std::to_string(i), 1);
    most = std::max(most, fast->unacknowledged());
  }
  REQUIRE(last.wait_for(30s));
  CHECK(most <= 5);
  REQUIRE(got.wait_for(2000, 30s));
  CHECK(got.size() == 2000);
}

TEST_CASE("fake: QoS 0 while disconnected is refused, or queued (bounded) when asked", "[mqtt][testing]") {
  FakeBroker broker;
  Collector got;
  auto sub = started(broker);
  REQUIRE(sub->subscribe("offline/#", 0, got.handler()).wait_for(5s));
  auto plain = broker.make_client();
  CHECK_THROWS_WITH(plain->publish("offline/x", "no", 0), Catch::Contains("Options::queue_qos0_offline"));
  mqtt::Options o;
  o.queue_qos0_offline = true;
  o.max_offline_queue = 3;
  o.when_full = mqtt::WhenFull::fail;
  auto c = broker.make_client(o);
  std::vector<mqtt::DeliveryToken> tokens;
  for (int i = 0; i < 3; ++i) tokens.push_back(c->publish("offline/x", std::to_string(i), 0));
  CHECK_FALSE(tokens[0].done());
  CHECK_THROWS_WITH(c->publish("offline/x", "fourth", 0), Catch::Contains("offline queue full"));
  c->connect();
  c->loop_start();
  for (auto& t : tokens) REQUIRE(t.wait_for(10s));
  REQUIRE(got.wait_for(3));
  CHECK(got.payloads() == std::vector<std::string>{"0", "1", "2"});
}

TEST_CASE("fake: on_publish reports each acknowledgement, reconnect() keeps subscriptions", "[mqtt][testing]") {
  FakeBroker broker;
  Collector got;
  std::mutex mutex;
  std::vector<mqtt::PublishResult> acks;
  std::atomic<int> connects{0};
  auto c = broker.make_client();
  c->on_publish([&](const mqtt::PublishResult& r) {
    std::lock_guard lock(mutex);
    acks.push_back(r);
  });
  c->on_connect([&](const mqtt::ConnectResult& r) {
    if (r.reason_code == 0) ++connects;
  });
  c->connect();
  c->loop_start();
  REQUIRE(c->subscribe("re/#", 1, got.handler()).wait_for(5s));
  auto t0 = c->publish("re/a", "0", 0);
  auto t1 = c->publish("re/a", "1", 1);
  auto t2 = c->publish("re/a", "2", 2);
  REQUIRE(t2.wait_for(5s));
  REQUIRE(t1.wait_for(5s));
  REQUIRE(t0.wait_for(5s));
  {
    std::lock_guard lock(mutex);
    std::set<int> mids;
    for (const auto& a : acks) mids.insert(a.mid);
    CHECK(mids == std::set<int>{t0.mid(), t1.mid(), t2.mid()});
  }
  CHECK(c->reconnect().reason_code == 0);
  REQUIRE(eventually([&] { return connects.load() == 2; }));
  REQUIRE(got.wait_for(3));
  REQUIRE(eventually([&] { return broker.subscriptions(c->client_id()).size() == 1; }));
  c->publish("re/b", "after reconnect", 1).wait();
  REQUIRE(got.wait_for(4));
  CHECK(got.messages()[3].payload == "after reconnect");
}

TEST_CASE("fake: connect_async + loop_start connect in the background, connect_async waits for a stopped broker",
          "[mqtt][testing]") {
  FakeBroker broker;
  auto c = broker.make_client();
  c->connect_async();
  CHECK_FALSE(c->connected());  // nothing runs the network yet
  c->loop_start();
  REQUIRE(c->wait_connected(10s));
  c->loop_stop();
  CHECK(c->connected());  // loop_stop does not disconnect

  broker.stop();
  auto late = broker.make_client();
  late->on_log([](mqtt::LogLevel, std::string_view) {});
  late->connect_async();
  late->loop_start();
  CHECK_FALSE(late->wait_connected(50ms));
  broker.start();
  REQUIRE(late->wait_connected(10s));
}

TEST_CASE("fake: bad input is refused with the real client's errors before anything is sent", "[mqtt][testing]") {
  FakeBroker broker;
  for (auto protocol : {mqtt::Protocol::v311, mqtt::Protocol::v5}) {
    INFO("protocol " << static_cast<int>(protocol));
    mqtt::Options o;
    o.protocol = protocol;
    o.max_payload_size = 1000;
    auto c = started(broker, o);
    auto refused = [](auto&& f, ErrorCategory category, const char* words) {
      try {
        f();
        FAIL("accepted");
      } catch (const Error& e) {
        CHECK(e.category() == category);
        CHECK_THAT(e.what(), Catch::Contains(words));
      }
    };
    const auto topic = ErrorCategory::topic;
    refused([&] { c->publish("bad/+/topic", "x", 1); }, topic, "cannot publish to 'bad/+/topic'");
    refused([&] { c->publish("bad/#", "x", 0); }, topic, "cannot publish to 'bad/#'");
    refused([&] { c->publish("", "x", 1); }, topic, "cannot publish");
    refused([&] { c->publish(std::string("bad/\xc3\x28", 6), "x", 1); }, topic, "cannot publish");
    refused([&] { c->publish(std::string("bad/\0nul", 8), "x", 1); }, topic, "cannot publish");
    refused([&] { c->publish(std::string(kMaxTopicLength + 1, 'a'), "x", 1); }, topic, "cannot publish");
    refused([&] { c->subscribe("bad/#/x", 1); }, topic, "cannot subscribe to 'bad/#/x'");
    refused([&] { c->subscribe("bad/a+", 1); }, topic, "cannot subscribe");
    refused([&] { c->subscribe("$share/g", 1); }, topic, "cannot subscribe");
    refused([&] { c->subscribe({{"ok/1", 1, {}}, {"bad/\xff", 1, {}}}); }, topic, "cannot subscribe");
    refused([&] { c->unsubscribe("bad/##"); }, topic, "cannot unsubscribe");
    refused([&] { c->publish("ok/qos", "x", 3); }, ErrorCategory::config, "QoS must be 0, 1 or 2");
    refused([&] { c->subscribe("ok/qos", -1); }, ErrorCategory::config, "QoS must be 0, 1 or 2");
    refused([&] { c->publish("ok/big", std::string(1001, 'x'), 1); }, ErrorCategory::mqtt,
            "exceeds the limit of 1000 bytes");
    if (protocol == mqtt::Protocol::v5) {
      mqtt::Properties p;
      p.response_topic = "reply/+";
      refused([&] { c->publish("ok/props", "x", 1, false, p); }, topic, "invalid response topic");
    }
    CHECK(c->unacknowledged() == 0);
    CHECK(c->subscriptions().empty());
  }
  CHECK(broker.published().empty());  // nothing reached the broker
  mqtt::Options bad;
  bad.clean_session = false;
  CHECK_THROWS_WITH(broker.make_client(bad), Catch::Contains("needs a fixed client_id"));
}

TEST_CASE("fake: connect() and reconnect() inside a callback throw (config) and leave the connection up",
          "[mqtt][testing]") {
  FakeBroker broker;
  std::mutex mutex;
  std::vector<std::string> errors;
  auto c = started(broker);
  mqtt::Client* self = c.get();
  std::atomic<int> tried{0};
  REQUIRE(c->subscribe("cb/try", 1, [&, self](const mqtt::Message&) {
             for (auto call : {+[](mqtt::Client* x) { x->connect(); }, +[](mqtt::Client* x) { x->reconnect(); }}) {
               try {
                 call(self);
               } catch (const Error& e) {
                 std::lock_guard lock(mutex);
                 if (e.category() == ErrorCategory::config) errors.emplace_back(e.what());
               }
             }
             ++tried;
           }).wait_for(5s));
  c->publish("cb/try", "go", 1).wait();
  REQUIRE(eventually([&] { return tried.load() == 1; }));
  std::lock_guard lock(mutex);
  REQUIRE(errors.size() == 2);
  CHECK_THAT(errors[0], Catch::Contains("connect() cannot wait") && Catch::Contains("use connect_async()"));
  CHECK_THAT(errors[1], Catch::Contains("reconnect() cannot wait"));
  CHECK(c->connected());
}

TEST_CASE("fake: refusals on demand: connect, subscribe, publish", "[mqtt][testing]") {
  FakeBroker broker;
  SECTION("connect refused with the CONNACK code, in each protocol's numbering") {
    broker.refuse_connections(5);
    auto c = broker.make_client();
    std::atomic<int> seen{-1};
    c->on_connect([&](const mqtt::ConnectResult& r) { seen = r.reason_code; });
    try {
      c->connect();
      FAIL("connected");
    } catch (const Error& e) {
      CHECK(e.category() == ErrorCategory::mqtt);
      CHECK(e.code() == 5);
      CHECK_THAT(e.what(), Catch::Contains("not authorised (CONNACK code 5)"));
    }
    CHECK(seen == 5);
    mqtt::Options v5;
    v5.protocol = mqtt::Protocol::v5;
    CHECK_THROWS_WITH(broker.make_client(v5)->connect(), Catch::Contains("CONNACK code 0x87"));
    broker.accept_connections();
    CHECK(broker.make_client()->connect().reason_code == 0);
  }
  SECTION("subscribe refused per filter") {
    broker.refuse_subscriptions("secret/#");
    auto c = started(broker);
    auto token = c->subscribe({{"open/#", 1, {}}, {"secret/#", 1, {}}});
    CHECK(token.wait() == std::vector<int>{1, 0x80});
    CHECK(broker.subscriptions(c->client_id()) == std::vector<std::string>{"open/#"});
    mqtt::Options v5;
    v5.protocol = mqtt::Protocol::v5;
    broker.refuse_subscriptions("deny", 0x87);
    CHECK(started(broker, v5)->subscribe("deny", 0).wait() == std::vector<int>{0x87});
  }
  SECTION("publish refused: MQTT 5 token fails, 3.1.1 acknowledged and dropped") {
    Collector got;
    auto watcher = started(broker);
    REQUIRE(watcher->subscribe("#", 1, got.handler()).wait_for(5s));
    broker.refuse_publications("locked/#");
    mqtt::Options v5;
    v5.protocol = mqtt::Protocol::v5;
    auto c5 = started(broker, v5);
    CHECK_THROWS_WITH(c5->publish("locked/a", "x", 1).wait(), Catch::Contains("not authorised (reason 0x87)"));
    auto c3 = started(broker);
    CHECK(c3->publish("locked/a", "x", 1).wait_for(5s));
    c3->publish("open", "marker", 1).wait();
    REQUIRE(got.wait_for(1));
    CHECK(got.payloads() == std::vector<std::string>{"marker"});
    broker.clear_refusals();
    c3->publish("locked/a", "now", 1).wait();
    REQUIRE(got.wait_for(2));
  }
}

TEST_CASE("fake: shared subscriptions give each message to one member", "[mqtt][testing]") {
  FakeBroker broker;
  Collector a, b, plain;
  auto ca = started(broker);
  auto cb = started(broker);
  auto cp = started(broker);
  REQUIRE(ca->subscribe("$share/workers/jobs/#", 1, a.handler()).wait_for(5s));
  REQUIRE(cb->subscribe("$share/workers/jobs/#", 1, b.handler()).wait_for(5s));
  REQUIRE(cp->subscribe("jobs/#", 1, plain.handler()).wait_for(5s));
  auto pub = started(broker);
  for (int i = 0; i < 10; ++i) pub->publish("jobs/x", std::to_string(i), 1).wait();
  REQUIRE(plain.wait_for(10));
  REQUIRE(eventually([&] { return a.size() + b.size() == 10; }));
  CHECK(a.size() > 0);
  CHECK(b.size() > 0);
}

TEST_CASE("fake: a second connection with the same client id takes the session over", "[mqtt][testing]") {
  FakeBroker broker;
  std::atomic<int> taken{0};
  auto first = broker.make_client(named("same"));
  first->on_log([](mqtt::LogLevel, std::string_view) {});
  first->on_disconnect([&](const mqtt::DisconnectInfo& info) {
    if (info.unexpected && info.reason_code == 0x8E) ++taken;
  });
  first->connect();
  first->loop_start();
  auto second = started(broker, named("same"));
  REQUIRE(eventually([&] { return taken.load() == 1 && !first->connected(); }));
  CHECK(second->connected());
  CHECK(broker.connected_clients() == std::vector<std::string>{"same"});
}

TEST_CASE("fake: consume() takes messages no handler takes, many threads publish at once", "[mqtt][testing]") {
  FakeBroker broker;
  auto sub = started(broker);
  sub->start_consuming(100);
  REQUIRE(sub->subscribe("load/#", 1).wait_for(5s));
  constexpr int kThreads = 4, kEach = 200;
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<mqtt::Client>> pubs;
  for (int t = 0; t < kThreads; ++t) pubs.push_back(started(broker));
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) pubs[t]->publish("load/" + std::to_string(t), std::to_string(i), 1);
    });
  std::vector<std::vector<int>> seen(kThreads);
  for (int n = 0; n < kThreads * kEach; ++n) {
    auto m = sub->consume(10s);
    REQUIRE(m);
    seen[std::stoi(m->topic.substr(5))].push_back(std::stoi(m->payload));
  }
  for (auto& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) {
    REQUIRE(seen[t].size() == kEach);
    for (int i = 0; i < kEach; ++i) CHECK(seen[t][i] == i);  // in order per publisher
  }
  CHECK(broker.wait_published(kThreads * kEach));
}
