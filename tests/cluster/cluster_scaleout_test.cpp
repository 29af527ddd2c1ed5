// Scale-out on a real clustered broker: two Apache Artemis nodes on loopback,
// one iotbridge-recorder connected to each, both in one shared-subscription
// group ($share/recorders/...), both writing to one FerretDB. A QoS 1 stream
// published on node 0 is stored once in total; a node stopped mid-stream
// (SIGTERM) loses nothing; the readings held on a stopped node are named, and
// stored once it returns; a recorder given both nodes (urls) moves to the
// surviving one and keeps recording. Counted by value: every reading carries its
// sequence number ({"seq": N}).
#include <catch2/catch.hpp>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "artemis_cluster.hpp"
#include "iotbridge/mqtt/client.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"
#include "iotbridge/store/open.hpp"
#include "recorder_process.hpp"
#include "servers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* kFilter = "$share/recorders/iot/cluster/#";
// The durable queue Artemis makes for that group: GROUP.FILTER with '/' as '.'.
constexpr const char* kGroupQueue = "recorders.iot.cluster.#";

// Polls `condition` every `every` (each poll of a store or a JVM tool costs
// CPU the brokers need); false when `timeout` passes first.
bool poll_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds every = 250ms) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(every);
  }
  return true;
}

std::string reading(int seq) { return "{\"seq\":" + std::to_string(seq) + "}"; }

// A QoS 1 publisher on one node that waits for every acknowledgement.
class NodePublisher {
 public:
  explicit NodePublisher(const std::string& url) {
    auto o = mqtt::options_from_url(url);
    o.client_id = "stream-publisher";
    o.max_inflight = 100;
    o.max_queued = 5000;
    o.connect_timeout = 30s;
    client_ = mqtt::make_mosquitto_client(o);
    client_->connect();
    client_->loop_start();
  }
  ~NodePublisher() {
    try {
      client_->disconnect();
      client_->loop_stop();
    } catch (...) {
    }
  }
  void publish(int seq) {
    tokens_.push_back(client_->publish("iot/cluster/s" + std::to_string(seq % 4), reading(seq), 1, false));
    if (tokens_.size() >= 1000) flush();
  }
  void flush() {
    for (auto& t : tokens_) t.wait();
    tokens_.clear();
  }

 private:
  std::unique_ptr<mqtt::Client> client_;
  std::vector<mqtt::DeliveryToken> tokens_;
};

// The seq of every stored document, with how many documents hold it.
std::map<int, int> stored_seqs(store::Collection& collection) {
  std::map<int, int> out;
  auto cursor = collection.find(store::Document());
  while (auto doc = cursor->next()) {
    auto seq = doc->get_int64("value.seq");
    if (!seq) throw std::runtime_error("a stored document without value.seq: " + doc->to_json());
    out[static_cast<int>(*seq)]++;
  }
  return out;
}

[[maybe_unused]] std::string list(const std::vector<int>& values) {
  std::string out;
  for (int v : values) out += (out.empty() ? "" : " ") + std::to_string(v);
  return out;
}

// Publishes readings first..n-1 on its own thread, one every 4 ms (a stream
// that is still flowing while a node stops), and halts at `checkpoint` until
// resume() is called.
class PacedStream {
 public:
  PacedStream(NodePublisher& publisher, int first, int checkpoint, int n)
      : thread_([this, &publisher, first, checkpoint, n] {
          for (int seq = first; seq < n; ++seq) {
            if (seq == checkpoint) {
              std::unique_lock lock(mutex_);
              cv_.wait(lock, [this] { return resumed_; });
            }
            publisher.publish(seq);
            std::this_thread::sleep_for(4ms);  // pacing, not a wait for a condition
          }
          publisher.flush();
        }) {}
  ~PacedStream() {
    resume();
    if (thread_.joinable()) thread_.join();
  }
  void resume() {
    {
      std::lock_guard lock(mutex_);
      resumed_ = true;
    }
    cv_.notify_all();
  }
  // Waits until every reading was published and acknowledged.
  void join() {
    resume();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool resumed_ = false;
  std::thread thread_;
};

// Two nodes, a recorder on each, a FerretDB database of its own.
struct Rig {
  ArtemisCluster cluster;
  TempDir dir{"iotbridge-cluster-test"};
  std::string uri = test_mongo_uri();
  std::string database = unique_db_name("cluster");
  std::shared_ptr<store::DocumentStore> db = store::open_store(uri);
  std::shared_ptr<store::Collection> sensors = db->collection(database, "sensors");
  std::vector<std::unique_ptr<RecorderProcess>> recorders;

  // failover: node 1's recorder lists node 1, then node 0 (config urls).
  Rig(const std::string& protocol, const std::string& dedup_key, bool failover = false) {
    std::printf("cluster of %d nodes formed in %.1f s\n", cluster.size(),
                static_cast<double>(cluster.last_start_time().count()) / 1000.0);
    for (int node = 0; node < cluster.size(); ++node) {
      RecorderProcess::Config c;
      c.name = "recorder-" + std::to_string(node);
      c.urls = {cluster.mqtt_url(node)};
      if (failover && node == 1) c.urls.push_back(cluster.mqtt_url(0));
      c.protocol = protocol;
      c.filter = kFilter;
      c.store_uri = uri;
      c.database = database;
      c.dedup_key = dedup_key;
      recorders.push_back(std::make_unique<RecorderProcess>(dir.path(), c));
    }
    // Both subscriptions exist (a message published before would go nowhere).
    for (int node = 0; node < cluster.size(); ++node) {
      REQUIRE(poll_until(
          [&] {
            auto q = cluster.queue(node, kGroupQueue);
            return q && q->consumers == 1;
          },
          120s));
    }
  }

  // Publishes readings from `seq` on, one at a time, until the recorder of
  // node 1 received one: node 0 then knows the remote subscriber and splits
  // the stream (about 0.1 s after the subscription). Returns the next seq.
  int warm_up(NodePublisher& publisher, int seq) {
    const int limit = seq + 1000;
    while (recorders[1]->received() <= 0) {
      REQUIRE(seq < limit);  // 1000 readings, 20+ s: node 0 never learnt of node 1's subscriber
      publisher.publish(seq++);
      publisher.flush();
      std::this_thread::sleep_for(20ms);  // pacing: a reading at a time while the binding travels
    }
    return seq;
  }

  // Every reading 0..n-1 stored at least once, and nothing left in a recorder.
  bool wait_all_stored(int n, std::chrono::milliseconds timeout = 300s) {
    return poll_until(
        [&] {
          if (sensors->count_documents() < n || static_cast<int>(stored_seqs(*sensors).size()) < n) return false;
          for (auto& r : recorders)
            if (r->pending() != 0) return false;
          return true;
        },
        timeout);
  }

  // Stops the recorders; the sums of their summaries' counts.
  struct Totals {
    long received = 0;
    long duplicates = 0;
    // Store retries: a batch retried after an insert that went in but timed
    // out (FerretDB slow under load) finds its documents stored already and
    // counts them as duplicates too.
    long retries = 0;
  };
  Totals stop_recorders() {
    Totals t;
    for (auto& r : recorders) {
      t.retries += static_cast<long>(r->metric("iotbridge_store_retries_total").value_or(0));
      CHECK(r->stop() == 0);
      INFO(r->output());
      CHECK_FALSE(r->summary().empty());
      std::printf("%s: %s\n", r->name().c_str(), r->summary().c_str());
      t.received += r->summary_count("received");
      t.duplicates += r->summary_count("duplicates");
    }
    return t;
  }
};

}  // namespace

TEST_CASE("two recorders in one shared group (one per node) store a QoS 1 stream once", "[cluster][mongo]") {
  IOTBRIDGE_REQUIRE_MONGO();
  IOTBRIDGE_REQUIRE_ARTEMIS();
  std::string protocol;
  SECTION("MQTT 5") { protocol = "5"; }
  SECTION("MQTT 3.1.1") { protocol = "3.1.1"; }
  Rig rig(protocol, "");
  constexpr int kReadings = 3000;
  {
    NodePublisher publisher(rig.cluster.mqtt_url(0));
    for (int seq = rig.warm_up(publisher, 0); seq < kReadings; ++seq) publisher.publish(seq);
    publisher.flush();
  }
  REQUIRE(rig.wait_all_stored(kReadings));
  std::vector<double> parts;
  for (auto& r : rig.recorders) parts.push_back(r->received());
  long received = rig.stop_recorders().received;
  auto seqs = stored_seqs(*rig.sensors);
  CHECK(static_cast<int>(seqs.size()) == kReadings);
  CHECK(seqs.begin()->first == 0);
  CHECK(seqs.rbegin()->first == kReadings - 1);
  // Once in total: no node and no recorder saw a reading twice here.
  CHECK(rig.sensors->count_documents() == kReadings);
  CHECK(received == kReadings);
  // Each recorder stored part of the stream.
  std::printf("MQTT %s: recorder-0 received %.0f, recorder-1 %.0f of %d\n", protocol.c_str(), parts[0], parts[1],
              kReadings);
  CHECK(parts[0] > 0);
  CHECK(parts[1] > 0);
  CHECK(parts[0] + parts[1] == kReadings);
}

TEST_CASE("a node stopped mid-stream (SIGTERM) and restarted loses nothing", "[cluster][mongo]") {
  IOTBRIDGE_REQUIRE_MONGO();
  IOTBRIDGE_REQUIRE_ARTEMIS();
  std::string protocol, dedup_key;
  SECTION("with dedup_key: every reading stored exactly once") {
    protocol = "3.1.1";
    dedup_key = "/seq";
  }
  SECTION("without dedup_key: the readings stored twice are counted") { protocol = "5"; }
  Rig rig(protocol, dedup_key);
  constexpr int kReadings = 3000;
  NodePublisher publisher(rig.cluster.mqtt_url(0));
  {
    PacedStream stream(publisher, rig.warm_up(publisher, 0), kReadings / 2, kReadings);
    // Mid-stream: node 1's recorder is taking its part.
    REQUIRE(poll_until([&] { return rig.recorders[1]->received() >= 300; }, 120s));
    stream.resume();
    auto took = rig.cluster.stop(1);
    std::printf("node 1 stopped (SIGTERM) in %.1f s\n", static_cast<double>(took.count()) / 1000.0);
    rig.cluster.start(1);
    std::printf("node 1 back, cluster formed again in %.1f s\n",
                static_cast<double>(rig.cluster.last_start_time().count()) / 1000.0);
    stream.join();
  }
  REQUIRE(rig.wait_all_stored(kReadings));
  auto totals = rig.stop_recorders();
  auto seqs = stored_seqs(*rig.sensors);
  const long documents = static_cast<long>(rig.sensors->count_documents());
  // Nothing lost.
  CHECK(static_cast<int>(seqs.size()) == kReadings);
  // A reading the stopped node had sent and not seen acknowledged came again,
  // to one of the recorders: each such receipt is one more than the stream.
  const long redelivered = totals.received - kReadings;
  std::vector<int> twice;
  for (auto [seq, copies] : seqs)
    if (copies > 1) twice.push_back(seq);
  std::printf(
      "MQTT %s, dedup_key '%s': %ld redelivered, %ld documents, duplicates counted %ld (store retries %ld); stored "
      "twice: [%s]\n",
      protocol.c_str(), dedup_key.c_str(), redelivered, documents, totals.duplicates, totals.retries,
      list(twice).c_str());
  CHECK(redelivered >= 0);
  if (!dedup_key.empty()) {
    // Exactly once: each redelivered copy met its first one's _id and was
    // counted as a duplicate.
    CHECK(documents == kReadings);
    CHECK(twice.empty());
    CHECK(totals.duplicates >= redelivered);
    if (totals.retries == 0) CHECK(totals.duplicates == redelivered);
  } else {
    // A redelivered copy is a new reading to the recorder that got it (a new
    // _id, maybe another recorder): stored again, and counted by value here.
    CHECK(documents - kReadings == redelivered);
    long copies_by_value = 0;
    for (auto [seq, copies] : seqs) copies_by_value += copies - 1;
    CHECK(copies_by_value == redelivered);
    if (totals.retries == 0) CHECK(totals.duplicates == 0);
  }
}

TEST_CASE("readings held on a stopped node are named and stored once it returns", "[cluster][mongo]") {
  IOTBRIDGE_REQUIRE_MONGO();
  IOTBRIDGE_REQUIRE_ARTEMIS();
  Rig rig("5", "/seq");
  constexpr int kReadings = 3000;
  NodePublisher publisher(rig.cluster.mqtt_url(0));
  std::set<int> missing;
  {
    PacedStream stream(publisher, rig.warm_up(publisher, 0), kReadings / 2, kReadings);
    REQUIRE(poll_until([&] { return rig.recorders[1]->received() >= 300; }, 120s));
    // Node 1's recorder stops reading (a slow consumer): MQTT 5's receive
    // maximum holds the broker to a few readings in flight to it, so node 1
    // builds up a backlog of its share of the stream.
    rig.recorders[1]->pause();
    stream.resume();
    REQUIRE(poll_until(
        [&] {
          auto q = rig.cluster.queue(1, kGroupQueue);
          return q && q->messages - q->delivering >= 50;
        },
        120s, 500ms));
    auto took = rig.cluster.stop(1);
    std::printf("node 1 stopped (SIGTERM) in %.1f s\n", static_cast<double>(took.count()) / 1000.0);
    rig.recorders[1]->resume();
    stream.join();
  }
  // Everything node 0 can deliver without node 1 is stored ...
  REQUIRE(poll_until(
      [&] {
        auto q = rig.cluster.queue(0, kGroupQueue);
        return q && q->messages == 0;
      },
      120s, 500ms));
  REQUIRE(poll_until([&] { return rig.recorders[0]->pending() == 0 && rig.recorders[1]->pending() == 0; }, 120s));
  auto before = stored_seqs(*rig.sensors);
  for (int seq = 0; seq < kReadings; ++seq)
    if (!before.count(seq)) missing.insert(seq);
  long held_on_node0 = 0;
  for (const auto& q : rig.cluster.queues(0))
    if (q.name.rfind("$.artemis.internal.sf.", 0) == 0) held_on_node0 += q.messages;
  // ... and what is missing is what node 1 holds, or node 0 holds for it.
  std::printf("%zu readings wait for node 1 (%ld of them on node 0's store-and-forward queue to it): [%s]\n",
              missing.size(), held_on_node0, list({missing.begin(), missing.end()}).c_str());
  CHECK(missing.size() >= 50);
  CHECK(static_cast<long>(missing.size()) >= held_on_node0);
  // Still missing while node 1 is away (read again after the JVM tool runs).
  auto still = stored_seqs(*rig.sensors);
  CHECK(still.size() == before.size());

  rig.cluster.start(1);
  REQUIRE(rig.wait_all_stored(kReadings));
  auto totals = rig.stop_recorders();
  auto after = stored_seqs(*rig.sensors);
  CHECK(static_cast<int>(after.size()) == kReadings);
  for (int seq : missing) CHECK(after.count(seq) == 1);
  CHECK(rig.sensors->count_documents() == kReadings);
  CHECK(totals.duplicates >= totals.received - kReadings);
  if (totals.retries == 0) CHECK(totals.duplicates == totals.received - kReadings);
}

TEST_CASE("a recorder whose node stops moves to the surviving node (urls) and keeps recording", "[cluster][mongo]") {
  IOTBRIDGE_REQUIRE_MONGO();
  IOTBRIDGE_REQUIRE_ARTEMIS();
  // Recorder 1 lists node 1 first, node 0 after it.
  Rig rig("5", "/seq", /*failover=*/true);
  constexpr int kReadings = 3000;
  NodePublisher publisher(rig.cluster.mqtt_url(0));
  int seq = rig.warm_up(publisher, 0);
  for (; seq < kReadings / 2; ++seq) publisher.publish(seq);
  publisher.flush();
  REQUIRE(poll_until([&] { return rig.recorders[1]->received() > 0 && rig.recorders[1]->pending() == 0; }, 120s));
  auto took = rig.cluster.stop(1);
  std::printf("node 1 stopped (SIGTERM) in %.1f s\n", static_cast<double>(took.count()) / 1000.0);
  // Recorder 1 is on node 0 now: connected again, and node 0 counts two
  // consumers of the group.
  REQUIRE(poll_until(
      [&] {
        return rig.recorders[1]->metric("iotbridge_mqtt_reconnects_total").value_or(0) >= 1 &&
               rig.recorders[1]->metric("iotbridge_mqtt_connected") == 1.0;
      },
      120s));
  REQUIRE(poll_until(
      [&] {
        auto q = rig.cluster.queue(0, kGroupQueue);
        return q && q->consumers == 2;
      },
      120s, 500ms));
  // And says where it is.
  CHECK_THAT(rig.recorders[1]->output(),
             Catch::Contains("connected to " + rig.cluster.mqtt_url(0) + " (address 2 of 2)"));
  const double before = rig.recorders[1]->received();
  for (; seq < kReadings; ++seq) publisher.publish(seq);
  publisher.flush();
  // It keeps recording: node 0 splits the rest of the stream between both.
  REQUIRE(poll_until([&] { return rig.recorders[1]->received() > before; }, 120s));
  std::printf("recorder 1 received %.0f before node 1 stopped, %.0f in all\n", before, rig.recorders[1]->received());
  // What node 1 held comes once it is back; every reading once.
  rig.cluster.start(1);
  REQUIRE(rig.wait_all_stored(kReadings));
  auto totals = rig.stop_recorders();
  auto seqs = stored_seqs(*rig.sensors);
  CHECK(static_cast<int>(seqs.size()) == kReadings);
  CHECK(rig.sensors->count_documents() == kReadings);
  CHECK(totals.duplicates >= totals.received - kReadings);
  if (totals.retries == 0) CHECK(totals.duplicates == totals.received - kReadings);
}
