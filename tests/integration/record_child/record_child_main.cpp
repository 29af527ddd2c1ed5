// A recorder in its own process, for the tests that kill it (SIGKILL) or stop
// it (SIGTERM) and start it again. Flags (all "--name value"):
//   --host H --port P --filter F [--filter F2] --store URI --spool DIR
//   [--client-id ID (persistent session)] [--qos Q] [--batch N] [--flush-ms T]
//   [--stats FILE (final stats JSON)] [--database NAME]
// Exits 0 after a clean stop (SIGINT/SIGTERM), 1 on a start-up error.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "iotbridge/record/recorder.hpp"
#include "iotbridge/shutdown.hpp"

int main(int argc, char** argv) {
  using namespace iotbridge;
  record::RecorderOptions o;
  std::string stats_file;
  o.mqtt.reconnect_delay_min = std::chrono::milliseconds(100);
  o.mqtt.reconnect_delay_max = std::chrono::milliseconds(500);
  o.batch_size = 200;
  o.flush_interval = std::chrono::milliseconds(20);
  o.retry_delay_min = std::chrono::milliseconds(50);
  o.retry_delay_max = std::chrono::milliseconds(500);
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--host")
      o.mqtt.host = v;
    else if (k == "--port")
      o.mqtt.port = std::stoi(v);
    else if (k == "--filter")
      o.filters.push_back(v);
    else if (k == "--store")
      o.store_uri = v;
    else if (k == "--spool")
      o.spool_dir = v;
    else if (k == "--client-id") {
      o.mqtt.client_id = v;
      o.mqtt.clean_session = false;
    } else if (k == "--qos")
      o.qos = std::stoi(v);
    else if (k == "--batch")
      o.batch_size = std::stoul(v);
    else if (k == "--flush-ms")
      o.flush_interval = std::chrono::milliseconds(std::stoi(v));
    else if (k == "--stats")
      stats_file = v;
    else if (k == "--database")
      o.database = v;
    else {
      std::fprintf(stderr, "record_child: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  try {
    ShutdownSignal signals;
    record::Recorder recorder(o);
    auto stats = recorder.run(signals.token());
    std::printf("%s\n", stats.to_json().c_str());
    if (!stats_file.empty()) std::ofstream(stats_file) << stats.to_json() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "record_child: %s\n", e.what());
    return 1;
  }
}
