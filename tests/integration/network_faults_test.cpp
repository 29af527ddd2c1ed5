// Network faults through toxiproxy (scripts/build-toxiproxy): between the MQTT
// client and Mosquitto, and between the recorder and the MongoDB-compatible
// server: added latency, a bandwidth limit, a connection reset, a black hole.
// The client reconnects and resubscribes; the recorder accounts for every
// reading (its public API only: received, pending, and what the store holds).
#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "cli_helpers.hpp"
#include "iotbridge/error.hpp"
#include "mqtt_helpers.hpp"
#include "record_helpers.hpp"
#include "toxiproxy.hpp"

using namespace iotbridge;
using namespace iotbridge::test;
using namespace std::chrono_literals;

namespace {

// Connection events of one client, for "it dropped, then it came back".
struct Drops {
  std::atomic<int> unexpected{0};
  std::atomic<int> connects{0};
  void watch(mqtt::Client& c) {
    c.on_disconnect([this](const mqtt::DisconnectInfo& info) {
      if (info.unexpected) ++unexpected;
    });
    c.on_connect([this](const mqtt::ConnectResult& r) {
      if (r.reason_code == 0) ++connects;
    });
  }
};

// Mosquitto with toxiproxy in front ("mqtt"), a subscriber to "nf/#" through
// the proxy (restoring it after reconnects) and a publisher straight to the
// broker.
struct ThroughProxy {
  MosquittoServer broker;
  Toxiproxy toxi;
  int port = toxi.add_proxy("mqtt", broker.port());
  Collector got;
  Drops drops;
  std::unique_ptr<mqtt::Client> sub;
  std::unique_ptr<mqtt::Client> pub;

  explicit ThroughProxy(std::chrono::seconds keepalive) {
    auto o = broker_options(broker);
    o.port = port;
    o.keepalive = keepalive;
    sub = mqtt::make_mosquitto_client(o);
    drops.watch(*sub);
    sub->subscribe("nf/#", 1, got.handler());
    sub->connect();
    sub->loop_start();
    pub = mqtt::make_mosquitto_client(broker_options(broker));
    pub->connect();
    pub->loop_start();
  }
  ~ThroughProxy() {
    sub->disconnect();
    pub->disconnect();
  }

  // Publishes `payload` until the subscriber holds one message more than now.
  bool flows(const std::string& payload) {
    auto n = got.messages().size() + 1;
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      pub->publish("nf/probe", payload, 1).wait();
      if (got.wait_for(n, 200ms)) return true;
    }
    return false;
  }

  // After a fault: connected again, and the restored subscription delivers.
  void check_recovered() {
    REQUIRE(sub->wait_connected(30s));
    REQUIRE(flows("after"));
    CHECK(got.payloads().back() == "after");
    CHECK(drops.connects >= 2);
    CHECK(sub->subscriptions() == std::vector<std::string>{"nf/#"});
  }
};

}  // namespace

TEST_CASE("network faults: latency and a bandwidth limit slow the client, every QoS 1 message arrives in order",
          "[mqtt][integration][fault]") {
  MosquittoServer broker;
  Toxiproxy toxi;
  int port = toxi.add_proxy("mqtt", broker.port());
  Collector got;
  auto sub = mqtt::make_mosquitto_client(broker_options(broker));
  sub->subscribe("nf/#", 1, got.handler());
  sub->connect();
  sub->loop_start();

  auto o = broker_options(broker);
  o.port = port;
  auto pub = mqtt::make_mosquitto_client(o);
  Drops drops;
  drops.watch(*pub);
  pub->connect();
  pub->loop_start();

  toxi.add_toxic("mqtt", "slow_up", "latency", "upstream", "{\"latency\":100,\"jitter\":20}");
  toxi.add_toxic("mqtt", "slow_down", "latency", "downstream", "{\"latency\":100,\"jitter\":20}");
  std::vector<mqtt::DeliveryToken> tokens;
  std::vector<std::string> expected;
  for (int i = 0; i < 60; ++i) {
    expected.push_back("late " + std::to_string(i));
    tokens.push_back(pub->publish("nf/latency", expected.back(), 1));
  }
  for (auto& t : tokens) REQUIRE(t.wait_for(30s));
  toxi.remove_toxic("mqtt", "slow_up");
  toxi.remove_toxic("mqtt", "slow_down");

  // 16 KB/s each way; 24 messages of 1 KB: about a second and a half.
  toxi.add_toxic("mqtt", "narrow_up", "bandwidth", "upstream", "{\"rate\":16}");
  toxi.add_toxic("mqtt", "narrow_down", "bandwidth", "downstream", "{\"rate\":16}");
  tokens.clear();
  for (int i = 0; i < 24; ++i) {
    expected.push_back(std::to_string(i) + std::string(1024, 'x'));
    tokens.push_back(pub->publish("nf/bandwidth", expected.back(), 1));
  }
  for (auto& t : tokens) REQUIRE(t.wait_for(30s));

  REQUIRE(got.wait_for(expected.size(), 30s));
  CHECK(got.payloads() == expected);
  CHECK(drops.unexpected == 0);
  CHECK(pub->connected());
  pub->disconnect();
  sub->disconnect();
}

TEST_CASE("network faults: a connection reset: the client reconnects and resubscribes by itself",
          "[mqtt][integration][fault]") {
  ThroughProxy net(60s);
  REQUIRE(net.flows("before"));
  // The next bytes towards the client reset its connection.
  net.toxi.add_toxic("mqtt", "reset", "reset_peer", "downstream", "{\"timeout\":0}");
  net.pub->publish("nf/x", "lost in the reset", 1).wait();
  REQUIRE(wait_until([&] { return net.drops.unexpected > 0; }, 30s));
  net.toxi.remove_toxic("mqtt", "reset");
  net.check_recovered();
}

TEST_CASE("network faults: a black hole: keepalive notices, the client reconnects once the path is back",
          "[mqtt][integration][fault]") {
  ThroughProxy net(5s);  // the shortest keepalive
  REQUIRE(net.flows("before"));
  // Bytes vanish both ways and the connection stays open: only the missing
  // PINGRESP tells (after one to two keepalive intervals).
  net.toxi.add_toxic("mqtt", "hole_up", "timeout", "upstream", "{\"timeout\":0}");
  net.toxi.add_toxic("mqtt", "hole_down", "timeout", "downstream", "{\"timeout\":0}");
  REQUIRE(wait_until([&] { return net.drops.unexpected > 0; }, 30s));
  net.toxi.remove_toxic("mqtt", "hole_up");
  net.toxi.remove_toxic("mqtt", "hole_down");
  // An attempt made into the hole would wait out its own keepalive: closing
  // every proxied connection sends the next attempt through at once.
  net.toxi.set_enabled("mqtt", false);
  net.toxi.set_enabled("mqtt", true);
  net.check_recovered();
}

namespace {

// Publishes "0" .. "n-1" (QoS 1, each acknowledged) to iot/nf/1, paced at
// about one per millisecond so that the faults hit a live stream.
class PacedStream {
 public:
  PacedStream(const MosquittoServer& broker, int n)
      : thread_([this, &broker, n] {
          try {
            Publisher pub(broker);
            for (int i = 0; i < n; ++i) {
              pub.publish("iot/nf/1", std::to_string(i));
              sent_ = i + 1;
              std::this_thread::sleep_for(1ms);  // the pace of the stream
            }
            pub.flush();
          } catch (const std::exception& e) {
            std::lock_guard lock(mutex_);
            error_ = e.what();
          }
        }) {}
  ~PacedStream() {
    if (thread_.joinable()) thread_.join();
  }
  void join() { thread_.join(); }
  int sent() const { return sent_; }
  std::string error() {
    std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  std::atomic<int> sent_{0};
  std::mutex mutex_;
  std::string error_;
  std::thread thread_;
};

// Every reading "0" .. "n-1" in the collection, once.
void check_every_reading(store::Collection& coll, int n) {
  auto acc = account(coll);
  std::size_t missing = 0;
  for (int i = 0; i < n; ++i) missing += acc.per_payload.count(number_key(i)) == 0;
  INFO("documents " << acc.documents << ", missing " << missing << ", duplicates " << acc.duplicate_documents());
  CHECK(missing == 0);
  CHECK(acc.documents == n);
  CHECK(acc.duplicate_documents() == 0);
}

}  // namespace

TEST_CASE("network faults: recorder to the MongoDB server through latency, a reset and a black hole: every reading",
          "[record][mongo][fault]") {
  IOTBRIDGE_REQUIRE_MONGO();
  MongoServer mongo;
  MosquittoServer broker;
  Toxiproxy toxi;
  TempDir dir;
  int port = toxi.add_proxy("mongo", mongo.port());
  // Short socket timeouts: a write into the black hole fails and is retried
  // instead of waiting libmongoc's default five minutes.
  auto proxied = std::shared_ptr<store::DocumentStore>(
      store::open_store("mongodb://127.0.0.1:" + std::to_string(port) +
                        "/?serverSelectionTimeoutMS=1000&connectTimeoutMS=1000&socketTimeoutMS=1500"));
  auto direct = std::shared_ptr<store::DocumentStore>(store::open_store(mongo.uri()));
  auto opts = recorder_options(broker, dir / "spool");
  opts.database = "faults";
  record::Recorder recorder(opts, proxied);
  recorder.start();
  auto coll = direct->collection("faults", "sensors");

  constexpr int kCount = 3000;
  {
    PacedStream stream(broker, kCount);
    REQUIRE(wait_for_count(*coll, 200, 60s));
    toxi.add_toxic("mongo", "slow", "latency", "downstream", "{\"latency\":150,\"jitter\":50}");
    REQUIRE(wait_until([&] { return stream.sent() >= 1000; }, 60s));
    toxi.remove_toxic("mongo", "slow");

    toxi.add_toxic("mongo", "reset", "reset_peer", "downstream", "{\"timeout\":0}");
    REQUIRE(wait_until([&] { return recorder.stats().retries > 0; }, 30s));
    toxi.remove_toxic("mongo", "reset");

    auto retries = recorder.stats().retries;
    toxi.add_toxic("mongo", "hole_up", "timeout", "upstream", "{\"timeout\":0}");
    toxi.add_toxic("mongo", "hole_down", "timeout", "downstream", "{\"timeout\":0}");
    REQUIRE(wait_until([&] { return recorder.stats().retries > retries; }, 30s));
    toxi.remove_toxic("mongo", "hole_up");
    toxi.remove_toxic("mongo", "hole_down");
    toxi.set_enabled("mongo", false);  // drop the connections opened into the hole
    toxi.set_enabled("mongo", true);
    stream.join();
    REQUIRE(stream.error().empty());
  }
  REQUIRE(recorder.wait_received(kCount, 60s));
  REQUIRE(recorder.wait_idle(120s));
  auto stats = recorder.stats();
  recorder.stop();
  std::printf("network faults (recorder): %s\n", stats.to_json().c_str());
  CHECK(stats.received == kCount);
  CHECK(stats.pending == 0);
  CHECK(stats.rejected == 0);
  check_every_reading(*coll, kCount);
}
