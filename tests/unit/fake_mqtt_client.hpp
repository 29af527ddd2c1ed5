// A test-only mqtt::Client with no broker: deliver() plays the network thread,
// calling the handler of every subscribed filter that matches the topic, as
// the libmosquitto client does. Thread-safe. (The public test double of the
// library-components issue replaces it once it lands.)
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "iotbridge/mqtt/client.hpp"
#include "iotbridge/topic.hpp"

namespace iotbridge::test {

class FakeMqttClient final : public mqtt::Client {
 public:
  FakeMqttClient() { options_.client_id = "fake"; }

  // Delivers one message to every matching subscription; false when none matched.
  bool deliver(const std::string& topic, const std::string& payload, int qos = 1, bool retain = false) {
    mqtt::Message m;
    m.topic = topic;
    m.payload = payload;
    m.qos = qos;
    m.retain = retain;
    std::vector<mqtt::MessageHandler> handlers;
    {
      std::lock_guard lock(mutex_);
      for (auto& [filter, handler] : handlers_) {
        auto shared = parse_shared(filter);
        if (topic_matches(shared ? shared->filter : filter, topic) && handler) handlers.push_back(handler);
      }
    }
    for (auto& h : handlers) h(m);
    return !handlers.empty();
  }
  std::vector<std::string> subscribed() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (auto& [f, h] : handlers_) out.push_back(f);
    return out;
  }

  const mqtt::Options& options() const noexcept override { return options_; }
  const std::string& client_id() const noexcept override { return options_.client_id; }
  mqtt::ConnectResult connect() override {
    connected_ = true;
    mqtt::ConnectResult r;
    r.reason = "success";
    mqtt::ConnectHandler h;
    {
      std::lock_guard lock(mutex_);
      h = on_connect_;
    }
    if (h) h(r);
    return r;
  }
  void connect_async() override { connect(); }
  mqtt::ConnectResult reconnect() override { return connect(); }
  void disconnect() override { connected_ = false; }
  bool connected() const noexcept override { return connected_; }
  bool wait_connected(std::chrono::milliseconds) const override { return connected_; }
  bool loop(std::chrono::milliseconds) override { return true; }
  void loop_start() override {}
  void loop_stop() override {}
  void loop_forever(std::stop_token) override {}
  mqtt::DeliveryToken publish(std::string_view topic, std::string_view payload, int qos, bool retain,
                              const mqtt::Properties&) override {
    deliver(std::string(topic), std::string(payload), qos, retain);
    return {};
  }
  mqtt::SubscribeToken subscribe(std::string_view filter, int qos, mqtt::MessageHandler handler) override {
    return subscribe(std::vector<mqtt::Subscription>{mqtt::Subscription{std::string(filter), qos, handler}});
  }
  mqtt::SubscribeToken subscribe(const std::vector<mqtt::Subscription>& subs) override {
    std::lock_guard lock(mutex_);
    for (const auto& s : subs) handlers_[s.filter] = s.handler;
    return {};
  }
  mqtt::SubscribeToken unsubscribe(std::string_view filter) override {
    std::lock_guard lock(mutex_);
    handlers_.erase(std::string(filter));
    return {};
  }
  std::vector<std::string> subscriptions() const override { return subscribed(); }
  void on_connect(mqtt::ConnectHandler handler) override {
    std::lock_guard lock(mutex_);
    on_connect_ = std::move(handler);
  }
  void on_disconnect(mqtt::DisconnectHandler) override {}
  void on_message(mqtt::MessageHandler) override {}
  void on_subscribe(mqtt::SubscribeHandler) override {}
  void on_publish(mqtt::PublishHandler) override {}
  void on_log(mqtt::LogHandler) override {}
  void start_consuming(std::size_t) override {}
  std::optional<mqtt::Message> consume(std::chrono::milliseconds) override { return std::nullopt; }
  void stop_consuming() override {}
  std::size_t unacknowledged() const override { return 0; }

 private:
  mqtt::Options options_;
  mutable std::mutex mutex_;
  std::map<std::string, mqtt::MessageHandler> handlers_;
  mqtt::ConnectHandler on_connect_;
  std::atomic<bool> connected_{false};
};

}  // namespace iotbridge::test
