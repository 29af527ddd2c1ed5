// The recorder under faults, with real servers, each ending with an exact
// accounting (published = distinct readings stored; duplicates counted and
// bounded by what QoS 1 redelivery allows):
//  - the MongoDB-compatible server stopped for seconds mid-stream (spool);
//  - the recorder process killed with SIGKILL mid-stream and started again
//    (persistent session, QoS 1, write-ahead replay);
//  - the broker restarted mid-stream;
//  - three recorders in one $share group.
#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "iotbridge/record/recorder.hpp"
#include "iotbridge/store/open.hpp"
#include "record_helpers.hpp"
#include "servers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;
using namespace std::chrono_literals;

namespace {

// Publishes "0".."n-1" (QoS 1) on iot/stream/<i % 4> at about `per_ms`
// messages per millisecond, from its own thread.
class StreamPublisher {
 public:
  StreamPublisher(const MosquittoServer& broker, int n, std::string client_id = {}, int per_ms = 1)
      : thread_([this, &broker, n, client_id, per_ms] {
          try {
            auto o = broker_options(broker, client_id);
            if (!client_id.empty()) o.clean_session = false;
            o.max_queued = 5000;
            o.max_inflight = 50;
            auto client = mqtt::make_mosquitto_client(o);
            client->connect();
            client->loop_start();
            std::vector<mqtt::DeliveryToken> tokens;
            auto next = std::chrono::steady_clock::now();
            for (int i = 0; i < n; ++i) {
              tokens.push_back(client->publish("iot/stream/" + std::to_string(i % 4), std::to_string(i), 1));
              sent_ = i + 1;
              if ((i + 1) % per_ms == 0) {
                next += 1ms;
                std::this_thread::sleep_until(next);
              }
            }
            for (auto& t : tokens) t.wait_for(120s);
            client->disconnect();
            client->loop_stop();
            done_ = true;
          } catch (const std::exception& e) {
            error_ = e.what();
            done_ = true;
          }
        }) {}
  ~StreamPublisher() {
    if (thread_.joinable()) thread_.join();
  }
  void join() { thread_.join(); }
  int sent() const { return sent_; }
  const std::string& error() const { return error_; }

 private:
  std::atomic<int> sent_{0};
  std::atomic<bool> done_{false};
  std::string error_;
  std::thread thread_;
};

// Readings "0".."n-1" found in the collection (other documents ignored).
std::size_t distinct_expected(store::Collection& coll, int n) {
  auto acc = account(coll);
  std::size_t found = 0;
  for (int i = 0; i < n; ++i) found += acc.per_payload.count(number_key(i));
  return found;
}

void wait_distinct(store::Collection& coll, int n, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline && distinct_expected(coll, n) < std::size_t(n))
    std::this_thread::sleep_for(200ms);
}

void check_complete(store::Collection& coll, int n, std::int64_t max_duplicates) {
  auto acc = account(coll);
  std::vector<int> missing;
  std::int64_t duplicates = 0;
  for (int i = 0; i < n; ++i) {
    auto it = acc.per_payload.find(number_key(i));
    if (it == acc.per_payload.end())
      missing.push_back(i);
    else
      duplicates += it->second - 1;
  }
  INFO("documents " << acc.documents << ", duplicates " << duplicates << ", missing " << missing.size()
                    << (missing.empty() ? "" : " (first " + std::to_string(missing.front()) + ")"));
  std::printf("accounting: published %d, documents %lld, duplicates %lld, missing %zu\n", n,
              static_cast<long long>(acc.documents), static_cast<long long>(duplicates), missing.size());
  CHECK(missing.empty());
  CHECK(acc.distinct_ids.size() == static_cast<std::size_t>(acc.documents));  // never the same _id twice
  CHECK(duplicates <= max_duplicates);
}

}  // namespace

TEST_CASE("recorder: the MongoDB server stopped mid-stream, then back: every reading once", "[record][mongo][fault]") {
  IOTBRIDGE_REQUIRE_MONGO();
  MongoServer mongo;  // our own: this test stops it
  MosquittoServer broker;
  TempDir dir;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store(mongo.uri() + "?serverSelectionTimeoutMS=1000"));
  auto opts = recorder_options(broker, dir / "spool");
  opts.database = "outage";
  opts.queue_capacity = 2000;
  opts.spill_threshold = 300;  // spill to disk early: the spool path is what is tested
  record::Recorder recorder(opts, db);
  recorder.start();

  constexpr int kCount = 6000;
  auto coll = db->collection("outage", "sensors");
  {
    StreamPublisher pub(broker, kCount);
    REQUIRE(wait_for_count(*coll, 1000, 60s));
    mongo.stop();
    // Several seconds down while the stream goes on (the scenario, not a timing check).
    auto resume_at = std::chrono::steady_clock::now() + 4s;
    while (std::chrono::steady_clock::now() < resume_at) std::this_thread::sleep_for(100ms);
    auto during = recorder.stats();
    CHECK_FALSE(during.store_ok);
    mongo.start();
    pub.join();
    REQUIRE(pub.error().empty());
  }
  REQUIRE(recorder.wait_received(kCount, 60s));
  REQUIRE(recorder.wait_idle(120s));
  auto stats = recorder.stats();
  recorder.stop();
  std::printf("outage: %s\n", stats.to_json().c_str());
  CHECK(stats.received == kCount);
  CHECK(stats.retries > 0);
  CHECK(stats.spooled > 0);
  CHECK(stats.unspooled == stats.spooled);
  CHECK(stats.pending == 0);
  CHECK(stats.spool_bytes == 0);
  // The drained spool is deleted, not left behind.
  std::size_t segments = 0;
  for (const auto& entry : fs::directory_iterator(dir / "spool" / "spool"))
    segments += entry.path().extension() == ".log";
  CHECK(segments == 0);
  check_complete(*coll, kCount, 0);
}

TEST_CASE("recorder: killed with SIGKILL mid-stream and restarted: nothing lost", "[record][sqlite][fault]") {
  MosquittoServer broker;
  TempDir dir;
  const std::string db_uri = "sqlite:" + (dir / "r.db").string();
  auto argv = record_child_argv(broker, db_uri, dir / "spool", "recorder-kill",
                                {"--qos", "1", "--batch", "100", "--flush-ms", "20"});
  auto db = store::open_store(db_uri);
  auto coll = db->collection("iot_service", "sensors");
  // First run: subscribe once so the broker keeps the session while we are down.
  auto child = std::make_unique<Process>(argv, dir / "child1.log");
  {
    // The persistent session exists once the first reading is stored.
    Publisher probe(broker);
    for (int tries = 0; tries < 100 && coll->count_documents() == 0; ++tries) {
      probe.publish("iot/probe", "-1");
      probe.flush();
      std::this_thread::sleep_for(100ms);
    }
    REQUIRE(coll->count_documents() > 0);
  }

  constexpr int kCount = 8000;
  StreamPublisher pub(broker, kCount, "", 2);
  REQUIRE(wait_for_count(*coll, 1500, 60s));
  child->kill_hard();
  std::int64_t at_kill = coll->count_documents();
  int sent_at_kill = pub.sent();
  // Down for a moment while the stream goes on; the broker queues for the session.
  std::this_thread::sleep_for(500ms);
  child = std::make_unique<Process>(argv, dir / "child2.log");
  pub.join();
  REQUIRE(pub.error().empty());
  // Everything published arrives; then a clean stop.
  wait_distinct(*coll, kCount, 90s);
  CHECK(child->terminate(10s) == 0);
  std::printf("sigkill: stored %lld before the kill, %d published by then\n", static_cast<long long>(at_kill),
              sent_at_kill);
  // QoS 1 redelivery can duplicate at most what was in flight (max_inflight_messages 20).
  check_complete(*coll, kCount, 20);
}

TEST_CASE("recorder: the broker restarted mid-stream: every reading stored", "[record][sqlite][fault]") {
  MosquittoServer::Options bo;
  bo.persistence = true;
  MosquittoServer broker(bo);
  TempDir dir;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store("sqlite:" + (dir / "r.db").string()));
  auto opts = recorder_options(broker, dir / "spool");
  opts.mqtt.client_id = "recorder-broker-restart";
  opts.mqtt.clean_session = false;
  record::Recorder recorder(opts, db);
  recorder.start();
  auto coll = db->collection("iot_service", "sensors");

  constexpr int kCount = 5000;
  {
    StreamPublisher pub(broker, kCount, "publisher-broker-restart");
    REQUIRE(wait_for_count(*coll, 1000, 60s));
    broker.restart();
    pub.join();
    REQUIRE(pub.error().empty());
  }
  wait_distinct(*coll, kCount, 60s);
  REQUIRE(recorder.wait_idle(30s));
  auto stats = recorder.stats();
  recorder.stop();
  std::printf("broker restart: %s\n", stats.to_json().c_str());
  CHECK(stats.reconnects >= 1);
  // Redelivery after the restart may repeat what was in flight on either side.
  check_complete(*coll, kCount, 100);
}

TEST_CASE("recorder: three recorders in one $share group split the stream, each reading once",
          "[record][sqlite][share]") {
  MosquittoServer broker;
  TempDir dir;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store("sqlite:" + (dir / "r.db").string()));
  std::vector<std::unique_ptr<record::Recorder>> recorders;
  for (int i = 0; i < 3; ++i) {
    auto opts = recorder_options(broker, dir / ("spool" + std::to_string(i)), {"$share/recorders/iot/#"});
    recorders.push_back(std::make_unique<record::Recorder>(opts, db));
    recorders.back()->start();
  }
  constexpr int kCount = 3000;
  {
    Publisher pub(broker);
    for (int i = 0; i < kCount; ++i) pub.publish("iot/share/" + std::to_string(i % 5), std::to_string(i));
    pub.flush();
  }
  auto coll = db->collection("iot_service", "sensors");
  REQUIRE(wait_for_count(*coll, kCount, 60s));
  std::uint64_t total = 0;
  for (auto& r : recorders) {
    REQUIRE(r->wait_idle(30s));
    auto s = r->stats();
    std::printf("share member: received %llu\n", static_cast<unsigned long long>(s.received));
    CHECK(s.received > 0);  // Mosquitto spreads a group's messages over its members
    total += s.received;
    r->stop();
  }
  CHECK(total == kCount);
  check_complete(*coll, kCount, 0);
  CHECK(coll->count_documents() == kCount);
}

TEST_CASE("recorder: stopped while the store is down, the next start stores what was left", "[record][mongo][fault]") {
  IOTBRIDGE_REQUIRE_MONGO();
  MongoServer mongo;
  MosquittoServer broker;
  TempDir dir;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store(mongo.uri() + "?serverSelectionTimeoutMS=500"));
  auto coll = db->collection("leftover", "sensors");
  auto opts = recorder_options(broker, dir / "spool");
  opts.database = "leftover";
  opts.spill_threshold = 100;
  opts.shutdown_timeout = std::chrono::milliseconds(1500);
  constexpr int kCount = 1000;
  {
    record::Recorder recorder(opts, db);
    recorder.start();
    mongo.stop();
    {
      Publisher pub(broker);
      for (int i = 0; i < kCount; ++i) pub.publish("iot/left/" + std::to_string(i % 3), std::to_string(i));
      pub.flush();
    }
    REQUIRE(recorder.wait_received(kCount, 20s));
    recorder.stop();  // gives up after shutdown_timeout without progress
    auto s = recorder.stats();
    std::printf("left over: %s\n", s.to_json().c_str());
    CHECK(s.stored == 0);
    CHECK(s.pending == kCount);
    CHECK_FALSE(s.store_ok);
  }
  mongo.start();
  record::Recorder next(opts, db);
  next.start();
  REQUIRE(next.wait_idle(60s));
  auto s = next.stats();
  next.stop();
  CHECK(s.replayed == kCount);
  CHECK(s.stored == kCount);
  check_complete(*coll, kCount, 0);
  CHECK(coll->count_documents() == kCount);
}

TEST_CASE("recorder: a spool limit keeps readings in memory and says so, never corrupts", "[record][mongo][fault]") {
  IOTBRIDGE_REQUIRE_MONGO();
  MongoServer mongo;
  MosquittoServer broker;
  TempDir dir;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store(mongo.uri() + "?serverSelectionTimeoutMS=500"));
  auto coll = db->collection("spoolfull", "sensors");
  auto opts = recorder_options(broker, dir / "spool");
  opts.database = "spoolfull";
  opts.spill_threshold = 100;
  opts.spool_max_bytes = 32 * 1024;  // a few batches, then full
  opts.retry_delay_max = std::chrono::milliseconds(200);
  record::Recorder recorder(opts, db);
  recorder.start();
  mongo.stop();
  constexpr int kCount = 3000;
  {
    Publisher pub(broker);
    for (int i = 0; i < kCount; ++i) pub.publish("iot/full/" + std::to_string(i % 3), std::to_string(i));
    pub.flush();
  }
  REQUIRE(recorder.wait_received(kCount, 30s));
  // The worker spills between store attempts until the spool refuses more.
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline && recorder.stats().spool_errors == 0)
    std::this_thread::sleep_for(50ms);
  auto during = recorder.stats();
  std::printf("spool full: %s\n", during.to_json().c_str());
  CHECK(during.spooled > 0);
  CHECK(during.spooled < kCount);  // the limit held
  CHECK(during.spool_bytes <= 32 * 1024);
  CHECK(during.spool_errors > 0);
  mongo.start();
  REQUIRE(recorder.wait_idle(60s));
  auto s = recorder.stats();
  recorder.stop();
  CHECK(s.stored == kCount);
  check_complete(*coll, kCount, 0);
}

TEST_CASE("recorder: stop() with a full queue and a store coming back stores every accepted reading",
          "[record][mongo][fault]") {
  IOTBRIDGE_REQUIRE_MONGO();
  MongoServer mongo;
  MosquittoServer broker;
  TempDir dir;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store(mongo.uri() + "?serverSelectionTimeoutMS=500"));
  auto coll = db->collection("fullq", "sensors");
  auto opts = recorder_options(broker, dir / "spool");
  opts.database = "fullq";
  opts.queue_capacity = 10;
  opts.batch_size = 20;
  opts.spool_dir.clear();  // no spool: a full queue holds up the network thread
  record::Recorder recorder(opts, db);
  recorder.start();
  mongo.stop();
  {
    Publisher pub(broker);
    for (int i = 0; i < 300; ++i) pub.publish("iot/fullq", std::to_string(i));
    pub.flush();
  }
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline && recorder.stats().queue_depth < 10)
    std::this_thread::sleep_for(20ms);
  REQUIRE(recorder.stats().queue_depth == 10);  // the network thread now waits for room
  mongo.start();
  recorder.stop();
  auto s = recorder.stats();
  std::printf("full queue at stop: %s\n", s.to_json().c_str());
  // The worker holds the batch it was trying to insert, the queue holds 10 more,
  // and the network thread was waiting for room: more than the queue alone.
  CHECK(s.received > 10);
  CHECK(s.stored == s.received);
  CHECK(s.pending == 0);
  CHECK(coll->count_documents() == static_cast<std::int64_t>(s.received));
}
