// The recorder and a flow-controlled QoS 1 publisher as programs, for the
// end-to-end comparison in bench/record_compare.py (not a Google Benchmark).
//
//   bench_record_e2e record  --port P --store URI --spool DIR --count N
//                            [--filter F] [--batch N] [--flush-ms T] [--no-sync] [--no-wal]
//                            [--client-id ID (persistent session)]
//                            [--deadband X] [--on-change] [--dedup-key K] (route policies)
//       prints "ready" once subscribed, then one JSON line when N readings
//       are stored: elapsed seconds (first reading received -> all stored),
//       CPU seconds of the process, peak RSS, the recorder's stats.
//   bench_record_e2e publish --port P --count N [--qos Q] [--topics K] [--json-seq]
//       publishes N small readings ("24.37", or {"seq": i, "t": 24.37} with
//       --json-seq) on iot/bench/<i % K>, waits for every acknowledgement,
//       prints the elapsed seconds.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "iotbridge/mqtt/mosquitto.hpp"
#include "iotbridge/record/recorder.hpp"
#include "iotbridge/shutdown.hpp"

using namespace iotbridge;
using Clock = std::chrono::steady_clock;

namespace {

long peak_rss_kb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(ru.ru_utime) + seconds(ru.ru_stime);
}

int run_recorder(const std::vector<std::string>& args) {
  record::RecorderOptions o;
  o.mqtt.host = "127.0.0.1";
  std::uint64_t count = 0;
  record::Route policies;  // a route of its own when a policy flag is given
  bool with_policies = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& k = args[i];
    auto next = [&]() -> std::string { return i + 1 < args.size() ? args[++i] : std::string(); };
    if (k == "--port")
      o.mqtt.port = std::stoi(next());
    else if (k == "--deadband") {
      policies.deadband = std::stod(next());
      with_policies = true;
    } else if (k == "--on-change") {
      policies.on_change = true;
      with_policies = true;
    } else if (k == "--dedup-key") {
      policies.dedup_key = next();
      with_policies = true;
    } else if (k == "--host")
      o.mqtt.host = next();
    else if (k == "--filter")
      o.filters.push_back(next());
    else if (k == "--store")
      o.store_uri = next();
    else if (k == "--spool")
      o.spool_dir = next();
    else if (k == "--count")
      count = std::stoull(next());
    else if (k == "--batch")
      o.batch_size = std::stoul(next());
    else if (k == "--flush-ms")
      o.flush_interval = std::chrono::milliseconds(std::stoi(next()));
    else if (k == "--no-sync")
      o.sync_write_ahead = false;
    else if (k == "--no-wal")
      o.spool_dir.clear();
    else if (k == "--client-id") {
      o.mqtt.client_id = next();
      o.mqtt.clean_session = false;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (o.filters.empty()) o.filters.push_back("iot/bench/#");
  if (with_policies) {
    policies.filters = std::move(o.filters);
    o.filters.clear();
    o.routes = {policies};
  }
  o.max_messages = count;
  ShutdownSignal signals;
  record::Recorder recorder(o);
  recorder.start();
  std::printf("ready\n");
  std::fflush(stdout);
  while (recorder.stats().received == 0 && !signals.stop_requested())
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  auto first = Clock::now();
  while (!signals.stop_requested()) {
    auto s = recorder.stats();
    if (s.received >= count && s.pending == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto done = Clock::now();
  recorder.stop();
  auto s = recorder.stats();
  std::printf("{\"elapsed\":%.6f,\"cpu_seconds\":%.6f,\"peak_rss_kb\":%ld,\"stats\":%s}\n",
              std::chrono::duration<double>(done - first).count(), cpu_seconds(), peak_rss_kb(), s.to_json().c_str());
  return s.stored + s.suppressed >= count ? 0 : 1;  // a deadband stores fewer
}

int publish(const std::vector<std::string>& args) {
  mqtt::Options o;
  o.host = "127.0.0.1";
  std::size_t count = 0;
  int qos = 1;
  int topics = 10;
  bool json_seq = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& k = args[i];
    auto next = [&]() -> std::string { return i + 1 < args.size() ? args[++i] : std::string(); };
    if (k == "--port")
      o.port = std::stoi(next());
    else if (k == "--host")
      o.host = next();
    else if (k == "--count")
      count = std::stoul(next());
    else if (k == "--qos")
      qos = std::stoi(next());
    else if (k == "--topics")
      topics = std::stoi(next());
    else if (k == "--json-seq")
      json_seq = true;
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  o.max_inflight = 1000;
  o.max_queued = 20000;
  auto client = mqtt::make_mosquitto_client(o);
  client->connect();
  client->loop_start();
  std::vector<std::string> names;
  for (int t = 0; t < topics; ++t) names.push_back("iot/bench/sensor" + std::to_string(t));
  auto start = Clock::now();
  mqtt::DeliveryToken last;
  char payload[64];
  for (std::size_t i = 0; i < count; ++i) {
    const double value = 20.0 + static_cast<double>(i % 1000) / 100.0;
    int n = json_seq ? std::snprintf(payload, sizeof payload, "{\"seq\": %zu, \"t\": %.2f}", i, value)
                     : std::snprintf(payload, sizeof payload, "%.2f", value);
    last = client->publish(names[i % names.size()], std::string_view(payload, static_cast<std::size_t>(n)), qos);
  }
  last.wait();
  while (client->unacknowledged() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  client->disconnect();
  client->loop_stop();
  std::printf("{\"published\":%zu,\"elapsed\":%.6f,\"peak_rss_kb\":%ld}\n", count, elapsed, peak_rss_kb());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s record|publish [flags]\n", argv[0]);
    return 2;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  try {
    std::string mode = argv[1];
    if (mode == "record") return run_recorder(args);
    if (mode == "publish") return publish(args);
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_record_e2e: %s\n", e.what());
    return 1;
  }
}
