// The paho.mqtt.cpp side of bench/cpp_peer_compare.py (Debian's
// libpaho-mqttpp-dev 1.2 over paho.mqtt.c 1.3): mqtt::async_client, no
// persistence, the message callback on paho's thread. QoS 1 is bounded as
// iotbridge's is by default: 1000 accepted and unacknowledged (the oldest
// token is waited for before the next publish); on the wire paho's own
// max_inflight (65535 by default, so the window: 1000) unless --inflight N.
// CLI and output:
// bench/mqtt_peer_common.hpp. Links no iotbridge code.
#include <mqtt/async_client.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <thread>

#include "mqtt_peer_common.hpp"

using namespace std::chrono_literals;

namespace {

constexpr std::size_t kWindow = 1000;  // iotbridge's Options::max_queued default

std::unique_ptr<mqtt::async_client> connected(const peer::Args& a, const char* role) {
  // paho.mqtt.c refuses a publish (-12, "No more messages can be buffered")
  // once max_buffered_messages (default 100) wait in its command queue, also
  // while connected: raised to the run's count, as libmosquitto does not
  // bound its queue either (QoS 1 stays bounded by the window below).
  int buffered = static_cast<int>(std::max<long>(a.count, kWindow));
  auto c = std::make_unique<mqtt::async_client>("tcp://127.0.0.1:" + std::to_string(a.port),
                                                std::string("peer-paho-") + role, buffered, nullptr);
  auto options = mqtt::connect_options_builder().clean_session(true).finalize();
  if (a.inflight > 0) options.set_max_inflight(a.inflight);
  c->connect(options)->wait();
  return c;
}

std::unique_ptr<mqtt::async_client> subscriber(const peer::Args& a, peer::Received& r, std::atomic<long>& n) {
  auto c = connected(a, "sub");
  r.reserve(a.count);
  c->set_message_callback([&r, &n](mqtt::const_message_ptr m) {
    const auto& payload = m->get_payload_ref();
    r.add(payload.data(), payload.size());
    n.fetch_add(1, std::memory_order_release);
  });
  c->subscribe(a.topic, a.qos)->wait();
  return c;
}

double publish_all(mqtt::async_client& c, const peer::Args& a) {
  peer::Pacer pacer(a.rate);
  std::string payload;
  std::deque<mqtt::delivery_token_ptr> pending;
  auto start = peer::Clock::now();
  for (long i = 0; i < a.count; ++i) {
    pacer.wait(i);
    if (a.qos > 0 && pending.size() >= kWindow) {
      pending.front()->wait();
      pending.pop_front();
    }
    peer::stamp(payload, a.size);
    auto token = c.publish(a.topic, payload.data(), payload.size(), a.qos, false);
    if (a.qos > 0)
      pending.push_back(std::move(token));
    else
      pending.assign(1, std::move(token));  // QoS 0: only the last one is waited for
  }
  for (auto& token : pending) token->wait();
  return std::chrono::duration<double>(peer::Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  peer::Args a = peer::parse(argc, argv);
  try {
    if (a.mode == "pub") {
      auto c = connected(a, "pub");
      double seconds = publish_all(*c, a);
      c->disconnect()->wait();
      peer::print_result("paho.mqtt.cpp", a, a.count, seconds, nullptr);
    } else if (a.mode == "sub") {
      peer::Received r;
      std::atomic<long> n{0};
      auto c = subscriber(a, r, n);
      std::printf("ready\n");
      std::fflush(stdout);
      peer::wait_received(n, a.count);
      c->disconnect()->wait();
      peer::print_result("paho.mqtt.cpp", a, 0, 0, &r);
    } else {
      peer::Received r;
      std::atomic<long> n{0};
      auto sub = subscriber(a, r, n);
      auto pub = connected(a, "pub");
      double seconds = publish_all(*pub, a);
      peer::wait_received(n, a.count);
      pub->disconnect()->wait();
      sub->disconnect()->wait();
      peer::print_result("paho.mqtt.cpp", a, a.count, seconds, &r);
    }
  } catch (const mqtt::exception& e) {
    std::fprintf(stderr, "mqtt_peer_paho: %s\n", e.what());
    return 1;
  }
  return 0;
}
