// What the two C++ MQTT peers of bench/cpp_peer_compare.py share, so that
// they differ only in the client library: the command line, the payload
// (publish time in it), the pacing, the latency percentiles, the peak RSS and
// the one result line the driver parses. Header-only, standard C++ and Linux
// /proc: the paho peer must not link iotbridge.
//
//   PEER --port P --mode pub|sub|latency [--qos Q] [--count N] [--rate R] [--size S] [--topic T]
//        [--nodelay 0|1] [--inflight N (at most 1000; 0: the client's default)]
//
//  - pub: publish N messages (R per second, 0: as fast as the client takes
//    them) and wait until the last one is acknowledged (QoS 1) or written
//    (QoS 0); the rate is N / (first publish -> that moment).
//  - sub: subscribe, print "ready", receive until N arrived or nothing came for
//    5 s; the rate is received / (first -> last arrival).
//  - latency: both in one process on two connections, publishing at R per
//    second; publish-to-receive latency from the time in each payload.
// Every mode ends with one line: "result key=value ...".
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace peer {

using Clock = std::chrono::steady_clock;

struct Args {
  int port = 1883;
  std::string mode = "latency";
  int qos = 0;
  long count = 10000;
  long rate = 0;
  std::size_t size = 32;
  std::string topic = "bench/peer";
  bool nodelay = false;  // TCP_NODELAY where the client offers it (iotbridge: Options::tcp_nodelay)
  int inflight = 0;      // QoS 1 messages on the wire unacknowledged; 0: the client's default
};

[[noreturn]] inline void usage(const char* program, const std::string& why) {
  std::fprintf(stderr,
               "%s: %s\nusage: %s --port P --mode pub|sub|latency [--qos 0|1] [--count N] [--rate MSG_PER_S] "
               "[--size BYTES] [--topic T] [--nodelay 0|1] [--inflight N]\n",
               program, why.c_str(), program);
  std::exit(2);
}

inline Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) usage(argv[0], "missing the value of " + flag);
    std::string value = argv[++i];
    char* end = nullptr;
    long number = std::strtol(value.c_str(), &end, 10);
    bool numeric = !value.empty() && *end == '\0';
    if (flag == "--mode") {
      a.mode = value;
    } else if (flag == "--topic") {
      a.topic = value;
    } else if (!numeric || number < 0) {
      usage(argv[0], flag + " needs a number >= 0, not '" + value + "'");
    } else if (flag == "--port") {
      a.port = static_cast<int>(number);
    } else if (flag == "--qos") {
      a.qos = static_cast<int>(number);
    } else if (flag == "--count") {
      a.count = number;
    } else if (flag == "--rate") {
      a.rate = number;
    } else if (flag == "--inflight") {
      a.inflight = static_cast<int>(std::min(number, 1000L));
    } else if (flag == "--nodelay") {
      a.nodelay = number != 0;
    } else if (flag == "--size") {
      a.size = static_cast<std::size_t>(number);
    } else {
      usage(argv[0], "unknown option " + flag);
    }
  }
  if (a.mode != "pub" && a.mode != "sub" && a.mode != "latency") usage(argv[0], "mode must be pub, sub or latency");
  if (a.qos > 1) usage(argv[0], "qos must be 0 or 1");
  if (a.count < 1) usage(argv[0], "count must be at least 1");
  if (a.size < 20) a.size = 20;  // the timestamp takes 20 digits
  return a;
}

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// The payload: the publish time (steady clock, ns, 20 digits; the same clock
// in every process of the machine), padded to `size` bytes.
inline void stamp(std::string& payload, std::size_t size) {
  payload.assign(size, 'x');
  char digits[24];
  std::snprintf(digits, sizeof digits, "%020lld", static_cast<long long>(now_ns()));
  std::memcpy(payload.data(), digits, 20);
}

inline std::int64_t stamped_at(const char* data, std::size_t size) {
  if (size < 20) return 0;
  std::int64_t t = 0;
  for (int i = 0; i < 20; ++i) t = t * 10 + (data[i] - '0');
  return t;
}

// Sleeps until message `index` is due at `rate` per second (0: never sleeps).
class Pacer {
 public:
  explicit Pacer(long rate) : rate_(rate), start_(Clock::now()) {}
  void wait(long index) const {
    if (rate_ <= 0) return;
    auto due = start_ + std::chrono::nanoseconds(static_cast<std::int64_t>(index) * 1000000000 / rate_);
    if (Clock::now() < due) std::this_thread::sleep_until(due);
  }

 private:
  long rate_;
  Clock::time_point start_;
};

// What the subscribing side records: filled on the client's thread, read after.
struct Received {
  std::vector<std::int64_t> latency_ns;
  std::int64_t first_ns = 0;
  std::int64_t last_ns = 0;

  void reserve(long count) { latency_ns.reserve(static_cast<std::size_t>(count)); }
  void add(const char* data, std::size_t size) {
    std::int64_t now = now_ns();
    if (latency_ns.empty()) first_ns = now;
    last_ns = now;
    latency_ns.push_back(now - stamped_at(data, size));
  }
};

// Until `count` arrived (n counts them, bumped by the client's thread), or
// nothing arrived for 5 s.
inline void wait_received(const std::atomic<long>& n, long count) {
  using namespace std::chrono_literals;
  long seen = -1;
  auto quiet_since = Clock::now();
  for (long now; (now = n.load(std::memory_order_acquire)) < count; std::this_thread::sleep_for(1ms)) {
    if (now != seen) {
      seen = now;
      quiet_since = Clock::now();
    } else if (Clock::now() - quiet_since > 5s) {
      return;
    }
  }
}

inline double percentile_us(std::vector<std::int64_t> values, double p) {
  if (values.empty()) return 0.0;
  auto k = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<long>(k), values.end());
  return static_cast<double>(values[k]) / 1000.0;
}

// Peak resident set size of this process (VmHWM), in KiB.
inline long peak_rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return 0;
}

inline void print_result(const char* client, const Args& a, long sent, double pub_seconds, const Received* r) {
  std::printf("result client=%s mode=%s qos=%d count=%ld rate=%ld size=%zu sent=%ld", client, a.mode.c_str(), a.qos,
              a.count, a.rate, a.size, sent);
  if (sent > 0) std::printf(" pub_seconds=%.6f pub_msg_per_s=%.1f", pub_seconds, sent / pub_seconds);
  if (r) {
    double span = static_cast<double>(r->last_ns - r->first_ns) / 1e9;
    auto n = static_cast<long>(r->latency_ns.size());
    std::printf(" received=%ld sub_seconds=%.6f sub_msg_per_s=%.1f p50_us=%.1f p99_us=%.1f max_us=%.1f", n, span,
                span > 0 ? static_cast<double>(n) / span : 0.0, percentile_us(r->latency_ns, 0.50),
                percentile_us(r->latency_ns, 0.99), percentile_us(r->latency_ns, 1.0));
  }
  std::printf(" peak_rss_kib=%ld\n", peak_rss_kib());
  std::fflush(stdout);
}

}  // namespace peer
