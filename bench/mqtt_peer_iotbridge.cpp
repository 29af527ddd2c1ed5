// The iotbridge side of bench/cpp_peer_compare.py: mqtt::Client with its
// defaults (max_inflight 20, max_queued 1000, Nagle on unless --nodelay 1),
// callbacks on its network thread. CLI and output: bench/mqtt_peer_common.hpp.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"
#include "mqtt_peer_common.hpp"

using namespace iotbridge;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<mqtt::Client> connected(const peer::Args& a, const char* role) {
  mqtt::Options o;
  o.host = "127.0.0.1";
  o.port = a.port;
  o.tcp_nodelay = a.nodelay;
  if (a.inflight > 0) o.max_inflight = static_cast<std::size_t>(a.inflight);
  o.client_id = std::string("peer-iotbridge-") + role;
  auto c = mqtt::make_mosquitto_client(o);
  c->connect();
  c->loop_start();
  return c;
}

// Subscribes; the handler records every arrival.
std::unique_ptr<mqtt::Client> subscriber(const peer::Args& a, peer::Received& r, std::atomic<long>& n) {
  auto c = connected(a, "sub");
  r.reserve(a.count);
  c->subscribe(a.topic, a.qos, [&r, &n](const mqtt::Message& m) {
     r.add(m.payload.data(), m.payload.size());
     n.fetch_add(1, std::memory_order_release);
   }).wait();
  return c;
}

// Publishes count messages; returns the seconds until the last is acknowledged
// (QoS 1) or written (QoS 0).
double publish_all(mqtt::Client& c, const peer::Args& a) {
  peer::Pacer pacer(a.rate);
  std::string payload;
  mqtt::DeliveryToken last;
  auto start = peer::Clock::now();
  for (long i = 0; i < a.count; ++i) {
    pacer.wait(i);
    peer::stamp(payload, a.size);
    last = c.publish(a.topic, payload, a.qos);
  }
  last.wait();
  while (c.unacknowledged() > 0) std::this_thread::sleep_for(1ms);
  return std::chrono::duration<double>(peer::Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  peer::Args a = peer::parse(argc, argv);
  try {
    if (a.mode == "pub") {
      auto c = connected(a, "pub");
      double seconds = publish_all(*c, a);
      c->disconnect();
      c->loop_stop();
      peer::print_result("iotbridge", a, a.count, seconds, nullptr);
    } else if (a.mode == "sub") {
      peer::Received r;
      std::atomic<long> n{0};
      auto c = subscriber(a, r, n);
      std::printf("ready\n");
      std::fflush(stdout);
      peer::wait_received(n, a.count);
      c->disconnect();
      c->loop_stop();
      peer::print_result("iotbridge", a, 0, 0, &r);
    } else {
      peer::Received r;
      std::atomic<long> n{0};
      auto sub = subscriber(a, r, n);
      auto pub = connected(a, "pub");
      double seconds = publish_all(*pub, a);
      peer::wait_received(n, a.count);
      pub->disconnect();
      sub->disconnect();
      pub->loop_stop();
      sub->loop_stop();
      peer::print_result("iotbridge", a, a.count, seconds, &r);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "mqtt_peer_iotbridge: %s\n", e.what());
    return 1;
  }
  return 0;
}
