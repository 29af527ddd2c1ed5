// Failover through a list of brokers (Options::failover) with real
// Mosquittos: the first connect() goes down the list, a lost connection moves
// on to the next address at once, subscriptions follow the client, and a
// session another broker claims to have is not trusted for the subscriptions.
// Brokers are stopped by PID (SIGTERM); every wait is on a condition.
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "iotbridge/error.hpp"
#include "mqtt_helpers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;
using namespace std::chrono_literals;

namespace {

mqtt::Options failover_options(const MosquittoServer& first, const std::vector<int>& others,
                               std::string client_id = {}) {
  mqtt::Options o = broker_options(first, std::move(client_id));
  for (int port : others) o.failover.push_back({"127.0.0.1", port});
  return o;
}

std::string address_of(int port, int place, int count) {
  return "mqtt://127.0.0.1:" + std::to_string(port) + " (address " + std::to_string(place) + " of " +
         std::to_string(count) + ")";
}

// What the client's callbacks saw, for the test thread to wait on.
class Events {
 public:
  void attach(mqtt::Client& client) {
    client.on_connect([this](const mqtt::ConnectResult& r) {
      std::lock_guard lock(mutex_);
      if (r.reason_code == 0) connects_.push_back(r.address);
      cv_.notify_all();
    });
    client.on_subscribe([this](const mqtt::SubscribeResult& r) {
      std::lock_guard lock(mutex_);
      if (r.all_granted()) ++subacks_;
      cv_.notify_all();
    });
    client.on_log([this](mqtt::LogLevel, std::string_view line) {
      std::lock_guard lock(mutex_);
      logs_.emplace_back(line);
    });
  }
  // True once the n-th successful CONNACK came from `address`.
  bool wait_connect(std::size_t n, const std::string& address, std::chrono::milliseconds timeout = 20s) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return connects_.size() >= n; });
    return connects_.size() >= n && connects_[n - 1] == address;
  }
  bool wait_subacks(std::size_t n, std::chrono::milliseconds timeout = 20s) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return subacks_ >= n; });
  }
  std::vector<std::string> connects() const {
    std::lock_guard lock(mutex_);
    return connects_;
  }
  bool logged(const std::string& text) const {
    std::lock_guard lock(mutex_);
    for (const auto& l : logs_)
      if (l.find(text) != std::string::npos) return true;
    return false;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> connects_;
  std::size_t subacks_ = 0;
  std::vector<std::string> logs_;
};

void publish_on(const MosquittoServer& server, const std::string& topic, const std::string& prefix, int count) {
  REQUIRE(publish_acknowledged(server, topic, numbered(prefix, count)));
}

}  // namespace

TEST_CASE("failover: a client whose broker stops moves to the next address with its subscription",
          "[mqtt][integration][failover]") {
  MosquittoServer a, b;
  auto client = mqtt::make_mosquitto_client(failover_options(a, {b.port()}));
  Events events;
  events.attach(*client);
  Collector got;
  client->subscribe("fo/#", 1, got.handler());
  auto first = client->connect();
  CHECK(first.address == address_of(a.port(), 1, 2));
  client->loop_start();
  REQUIRE(events.wait_subacks(1));
  publish_on(a, "fo/x", "a", 3);
  REQUIRE(got.wait_for(3));

  a.stop();  // SIGTERM by PID
  REQUIRE(events.wait_connect(2, address_of(b.port(), 2, 2)));
  REQUIRE(events.wait_subacks(2));  // the subscription restored on B
  publish_on(b, "fo/y", "b", 20);
  REQUIRE(got.wait_for(23));
  auto payloads = got.payloads();
  CHECK(sorted(payloads) == sorted([] {
          auto all = numbered("a", 3);
          auto more = numbered("b", 20);
          all.insert(all.end(), more.begin(), more.end());
          return all;
        }()));
  CHECK(events.logged("connection to " + address_of(a.port(), 1, 2) + " lost"));
  CHECK(events.logged("connected to " + address_of(b.port(), 2, 2)));

  // Round robin: B stops, A is back: the client returns to A.
  a.start();
  b.stop();
  REQUIRE(events.wait_connect(3, address_of(a.port(), 1, 2)));
  REQUIRE(events.wait_subacks(3));
  publish_on(a, "fo/z", "again", 5);
  REQUIRE(got.wait_for(28));
  client->disconnect();
}

TEST_CASE("failover: connect() goes down the list when the first broker is down", "[mqtt][integration][failover]") {
  MosquittoServer a, b;
  a.stop();
  auto client = mqtt::make_mosquitto_client(failover_options(a, {b.port()}));
  Events events;
  events.attach(*client);
  auto result = client->connect();
  CHECK(result.address == address_of(b.port(), 2, 2));
  CHECK(client->connected());
  CHECK(events.logged("cannot connect to " + address_of(a.port(), 1, 2) + ": connection refused"));
  CHECK(events.logged("trying " + address_of(b.port(), 2, 2)));

  // Through a network thread too (loop_start before connect()).
  auto threaded = mqtt::make_mosquitto_client(failover_options(a, {b.port()}));
  threaded->loop_start();
  CHECK(threaded->connect().address == address_of(b.port(), 2, 2));
  threaded->disconnect();
  client->disconnect();
}

TEST_CASE("failover: connect() names every address when none answers", "[mqtt][integration][failover]") {
  MosquittoServer a, b;
  a.stop();
  b.stop();
  auto client = mqtt::make_mosquitto_client(failover_options(a, {b.port()}));
  client->on_log([](mqtt::LogLevel, std::string_view) {});
  try {
    client->connect();
    FAIL("connected");
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::mqtt);
    CHECK_THAT(e.what(), Catch::StartsWith("cannot connect to any of the 2 brokers: "));
    CHECK_THAT(e.what(), Catch::Contains(address_of(a.port(), 1, 2) + ": connection refused"));
    CHECK_THAT(e.what(), Catch::Contains(address_of(b.port(), 2, 2) + ": connection refused"));
  }
  CHECK_FALSE(client->connected());
  // A broker that comes back is found by the next connect().
  b.start();
  CHECK(client->connect().address == address_of(b.port(), 2, 2));
  client->disconnect();
}

TEST_CASE("failover: a persistent session another broker claims does not skip the resubscribe",
          "[mqtt][integration][failover]") {
  MosquittoServer a, b;
  const std::string id = "failover-persistent";
  {
    // B keeps an old session of this client id, subscribed to something else.
    mqtt::Options old = broker_options(b, id);
    old.clean_session = false;
    auto c = mqtt::make_mosquitto_client(old);
    c->connect();
    c->subscribe("elsewhere/#", 1).wait_for(10s);
    c->disconnect();
  }
  mqtt::Options o = failover_options(a, {b.port()}, id);
  o.clean_session = false;
  auto client = mqtt::make_mosquitto_client(o);
  Events events;
  events.attach(*client);
  Collector got;
  client->subscribe("fo/#", 1, got.handler());
  CHECK_FALSE(client->connect().session_present);
  client->loop_start();
  REQUIRE(events.wait_subacks(1));

  a.stop();
  REQUIRE(events.wait_connect(2, address_of(b.port(), 2, 2)));
  REQUIRE(events.wait_subacks(2));  // B said "session present", the client subscribed anyway
  publish_on(b, "fo/p", "p", 10);
  REQUIRE(got.wait_for(10));
  CHECK(sorted(got.payloads()) == sorted(numbered("p", 10)));
  client->disconnect();
}
