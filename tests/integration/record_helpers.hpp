// Helpers shared by the recorder's integration tests: recorder options for a
// fixture broker, a QoS 1 publisher, and an accounting of what a collection
// holds (how many documents, how many distinct readings, which are missing).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "iotbridge/mqtt/client.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"
#include "iotbridge/record/recorder.hpp"
#include "iotbridge/store/open.hpp"
#include "mqtt_helpers.hpp"
#include "servers.hpp"

namespace iotbridge::test {

inline record::RecorderOptions recorder_options(const MosquittoServer& server, const fs::path& spool,
                                                std::vector<std::string> filters = {"iot/#"}) {
  record::RecorderOptions o;
  o.filters = std::move(filters);
  o.qos = 1;
  o.mqtt = broker_options(server);
  o.spool_dir = spool;
  o.batch_size = 200;
  o.flush_interval = std::chrono::milliseconds(20);
  o.retry_delay_min = std::chrono::milliseconds(50);
  o.retry_delay_max = std::chrono::milliseconds(500);
  o.on_log = [](mqtt::LogLevel level, std::string_view text) {
    if (level >= mqtt::LogLevel::warning) std::fprintf(stderr, "recorder: %.*s\n", int(text.size()), text.data());
  };
  return o;
}

// A QoS 1 publisher that waits for every acknowledgement.
class Publisher {
 public:
  explicit Publisher(const MosquittoServer& server, std::string client_id = {}) {
    auto o = broker_options(server, std::move(client_id));
    o.max_queued = 5000;
    o.max_inflight = 100;
    client_ = mqtt::make_mosquitto_client(o);
    client_->connect();
    client_->loop_start();
  }
  ~Publisher() {
    try {
      client_->disconnect();
      client_->loop_stop();
    } catch (...) {
    }
  }
  void publish(const std::string& topic, const std::string& payload, int qos = 1, bool retain = false) {
    tokens_.push_back(client_->publish(topic, payload, qos, retain));
    if (tokens_.size() >= 2000) flush();
  }
  // Waits for every acknowledgement so far.
  void flush() {
    for (auto& t : tokens_) t.wait();
    tokens_.clear();
  }
  mqtt::Client& client() { return *client_; }

 private:
  std::unique_ptr<mqtt::Client> client_;
  std::vector<mqtt::DeliveryToken> tokens_;
};

// What a collection holds, for "published = stored" checks.
struct Accounting {
  std::int64_t documents = 0;
  std::set<std::string> distinct_ids;
  std::map<std::string, int> per_payload;  // value as relaxed JSON -> copies
  std::int64_t duplicate_documents() const {
    std::int64_t d = 0;
    for (const auto& [k, n] : per_payload) d += n - 1;
    return d;
  }
};

inline Accounting account(store::Collection& collection) {
  Accounting a;
  auto cursor = collection.find(store::Document());
  while (auto doc = cursor->next()) {
    ++a.documents;
    if (auto id = doc->get_object_id("_id")) a.distinct_ids.insert(id->to_hex());
    auto value = doc->get("value");
    a.per_payload[value ? value->to_json() : "<none>"]++;
  }
  return a;
}

// Waits until `collection` counts at least `n` documents.
inline bool wait_for_count(store::Collection& collection, std::int64_t n,
                           std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      if (collection.count_documents() >= n) return true;
    } catch (...) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// The relaxed-JSON key account() uses for a number payload "i".
// The argv of the recorder child process (record_child_main.cpp) subscribed
// to iot/# on `server`, recording into `store_uri` with its journal and spool
// in `spool` under a persistent session `client_id`; `extra` flags appended.
inline std::vector<std::string> record_child_argv(const MosquittoServer& server, const std::string& store_uri,
                                                  const fs::path& spool, const std::string& client_id,
                                                  const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {IOTBRIDGE_RECORD_CHILD,
                                   "--host",
                                   server.host(),
                                   "--port",
                                   std::to_string(server.port()),
                                   "--filter",
                                   "iot/#",
                                   "--store",
                                   store_uri,
                                   "--spool",
                                   spool.string(),
                                   "--client-id",
                                   client_id};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

inline std::string number_key(int i) { return store::Value(static_cast<double>(i)).to_json(); }

}  // namespace iotbridge::test
