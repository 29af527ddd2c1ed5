// Helpers shared by the MQTT integration tests: options for a fixture broker
// and a thread-safe collector of received messages that tests wait on.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "iotbridge/mqtt/client.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"
#include "servers.hpp"

namespace iotbridge::test {

inline mqtt::Options broker_options(const MosquittoServer& server, std::string client_id = {}) {
  mqtt::Options o;
  o.host = server.host();
  o.port = server.port();
  o.client_id = std::move(client_id);
  o.connect_timeout = std::chrono::seconds(10);
  o.reconnect_delay_min = std::chrono::milliseconds(100);
  o.reconnect_delay_max = std::chrono::milliseconds(500);
  return o;
}

// Publishes `payloads` to `topic` at QoS 1 on `server` with a client of its
// own; true once the broker acknowledged every one.
inline bool publish_acknowledged(const MosquittoServer& server, const std::string& topic,
                                 const std::vector<std::string>& payloads) {
  auto pub = mqtt::make_mosquitto_client(broker_options(server));
  pub->connect();
  pub->loop_start();
  std::vector<mqtt::DeliveryToken> tokens;
  for (const auto& p : payloads) tokens.push_back(pub->publish(topic, p, 1));
  bool all = true;
  for (auto& t : tokens) all = t.wait_for(std::chrono::seconds(10)) && all;
  pub->disconnect();
  return all;
}

// "prefix0", "prefix1", ...: `count` numbered payloads from `first`.
inline std::vector<std::string> numbered(const std::string& prefix, int count, int first = 0) {
  std::vector<std::string> out;
  for (int i = first; i < first + count; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

// Collects messages from any thread; tests wait for a count or a condition.
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
  // True once at least n messages arrived (false after the timeout).
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return messages_.size() >= n; });
  }
  std::vector<mqtt::Message> messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  std::vector<std::string> payloads() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& m : messages_) out.push_back(m.payload);
    return out;
  }
  std::vector<std::string> topics() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& m : messages_) out.push_back(m.topic);
    return out;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return messages_.size();
  }
  void clear() {
    std::lock_guard lock(mutex_);
    messages_.clear();
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<mqtt::Message> messages_;
};

// A marker message makes "nothing else arrived" deterministic: publish it
// after the messages that must not arrive, on the same connection, and wait
// for it; MQTT keeps order per publisher and topic subscription.
inline std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace iotbridge::test
