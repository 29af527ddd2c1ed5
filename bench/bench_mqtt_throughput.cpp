// End-to-end MQTT throughput of iotbridge::mqtt::Client: one client publishes
// N small messages as fast as flow control lets it, another subscribes, both
// through a real broker. Prints one line per run:
//   iotbridge qos=1 count=100000 received=100000 lost=0 seconds=1.23 msg_per_s=81234
// The clock runs from the first publish to the last message received.
// bench/mqtt_compare.sh starts a broker and compares against mosquitto_pub/sub
// and paho-mqtt. Usage:
//   bench_mqtt_throughput --port P [--host H] [--qos 0|1|2] [--count N]
//                         [--size BYTES] [--inflight N] [--queued N]
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"

using namespace std::chrono;
using namespace iotbridge;

namespace {

struct Args {
  std::string host = "127.0.0.1";
  int port = 1883;
  int qos = 0;
  long count = 200000;
  std::size_t size = 16;
  std::size_t inflight = 20;  // the library defaults
  std::size_t queued = 1000;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value after %s\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--host")
      a.host = next();
    else if (k == "--port")
      a.port = std::stoi(next());
    else if (k == "--qos")
      a.qos = std::stoi(next());
    else if (k == "--count")
      a.count = std::stol(next());
    else if (k == "--size")
      a.size = std::stoul(next());
    else if (k == "--inflight")
      a.inflight = std::stoul(next());
    else if (k == "--queued")
      a.queued = std::stoul(next());
    else {
      std::fprintf(stderr,
                   "usage: %s --port P [--host H] [--qos Q] [--count N] [--size B] [--inflight N] [--queued N]\n",
                   argv[0]);
      std::exit(2);
    }
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) try {
  Args a = parse(argc, argv);
  mqtt::Options o;
  o.host = a.host;
  o.port = a.port;
  o.max_inflight = a.inflight;
  o.max_queued = std::max(a.queued, a.inflight);

  std::atomic<long> received{0};
  std::mutex mutex;
  std::condition_variable cv;
  steady_clock::time_point last_at;
  auto sub = mqtt::make_mosquitto_client(o);
  // Remembered before connect, sent with the CONNECT; the clock starts once granted.
  auto subscribed = sub->subscribe("bench/iotbridge", a.qos, [&](const mqtt::Message&) {
    long n = received.fetch_add(1, std::memory_order_relaxed) + 1;
    if (n == a.count) {
      std::lock_guard lock(mutex);
      last_at = steady_clock::now();
      cv.notify_all();
    }
  });
  sub->connect();
  sub->loop_start();
  subscribed.wait();
  auto pub = mqtt::make_mosquitto_client(o);
  pub->connect();
  pub->loop_start();

  std::string payload(a.size, 'x');
  auto start = steady_clock::now();
  mqtt::DeliveryToken last;
  for (long i = 0; i < a.count; ++i) {
    std::snprintf(payload.data(), payload.size(), "%ld", i);
    last = pub->publish("bench/iotbridge", payload, a.qos);
  }
  last.wait_for(minutes(5));
  auto published_at = steady_clock::now();
  // Wait for the last message, or until nothing has arrived for 3 s (loss).
  long seen = -1;
  {
    std::unique_lock lock(mutex);
    while (received.load() < a.count) {
      if (cv.wait_for(lock, seconds(3), [&] { return received.load() >= a.count; })) break;
      if (received.load() == seen) break;
      seen = received.load();
    }
  }
  long got = received.load();
  auto end = got >= a.count ? last_at : steady_clock::now();
  double secs = duration<double>(end - start).count();
  std::printf("iotbridge qos=%d count=%ld received=%ld lost=%ld seconds=%.3f msg_per_s=%.0f publish_s=%.3f\n", a.qos,
              a.count, got, a.count - got, secs, got / secs, duration<double>(published_at - start).count());
  pub->disconnect();
  sub->disconnect();
  return got == a.count ? 0 : 1;
} catch (const iotbridge::Error& e) {
  std::fprintf(stderr, "bench_mqtt_throughput: %s\n", e.what());
  return 1;
}
