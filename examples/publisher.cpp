// What this teaches: publishing readings. Connect to a broker, publish a
// simulated temperature every --interval seconds with the QoS and retain flag
// you choose, and stop cleanly on Ctrl-C (or after --count readings).
// Run (a local mosquitto on localhost:1883; watch with mosquitto_sub):
//   mosquitto_sub -t 'iot/#' -v &
//   build/examples/publisher --topic iot/home1/temperature --interval 1 --qos 1
#include <CLI/CLI.hpp>
#include <condition_variable>
#include <cstdio>
#include <iotbridge/error.hpp>
#include <iotbridge/mqtt/mosquitto.hpp>
#include <iotbridge/shutdown.hpp>
#include <mutex>
#include <string>

int main(int argc, char** argv) {
  std::string host = "localhost", topic = "iot/home1/temperature";
  int port = 1883, qos = 0, count = 0;
  double interval = 1.0;
  bool retain = false;
  CLI::App app{"Publishes a simulated temperature reading every --interval seconds."};
  app.option_defaults()->always_capture_default();
  app.add_option("--host", host, "broker host");
  app.add_option("--port", port, "broker port");
  app.add_option("--topic", topic, "topic to publish to");
  app.add_option("--interval", interval, "seconds between readings (fractions allowed)")->check(CLI::PositiveNumber);
  app.add_option("--qos", qos, "0 at most once, 1 at least once, 2 exactly once")->check(CLI::Range(0, 2));
  app.add_flag("--retain", retain, "the broker keeps the last reading for late subscribers");
  app.add_option("--count", count, "stop after this many readings (0: until Ctrl-C)");
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // print each line at once, also into a pipe

  try {
    iotbridge::ShutdownSignal shutdown;  // Ctrl-C (SIGINT) or SIGTERM -> shutdown.token() fires
    iotbridge::mqtt::Options options;
    options.host = host;
    options.port = port;
    auto client = iotbridge::mqtt::make_mosquitto_client(options);
    client->connect();     // blocks until the broker accepts us; throws with its reason otherwise
    client->loop_start();  // a background thread now sends, receives acks, keeps alive and reconnects

    for (int i = 0; count == 0 || i < count; ++i) {
      char value[32];
      std::snprintf(value, sizeof value, "%.1f", 20.0 + i % 10 * 0.5);
      // The token completes when the broker acknowledged (QoS 1 / 2) or the
      // bytes were written (QoS 0); waiting makes "published" mean it.
      client->publish(topic, value, qos, retain).wait();
      std::printf("published %s %s (qos %d%s)\n", topic.c_str(), value, qos, retain ? ", retained" : "");
      if (count != 0 && i + 1 == count) break;

      // Sleep for the interval, but wake up at once on Ctrl-C.
      std::mutex mutex;
      std::condition_variable_any wake;
      std::unique_lock lock(mutex);
      auto interval_ms = std::chrono::milliseconds(static_cast<long>(interval * 1000));
      wake.wait_for(lock, shutdown.token(), interval_ms, [] { return false; });
      if (shutdown.stop_requested()) break;
    }
    client->disconnect();  // a clean DISCONNECT: the broker does not publish our will
    client->loop_stop();
    std::printf("done\n");
    return 0;
  } catch (const iotbridge::Error& e) {
    std::fprintf(stderr, "publisher: %s\n", e.what());
    return 1;
  }
}
