// What this teaches: one client, a different handler per topic filter (what
// paho-mqtt calls message_callback_add), and the default on_message for
// everything no handler takes. Every handler whose filter matches a message is
// called; on_message only gets what none of them matched.
// Run (a local mosquitto on localhost:1883), then publish from another shell:
//   build/examples/per_topic_handlers
//   mosquitto_pub -t iot/kitchen/temperature -m 21.5
//   mosquitto_pub -t iot/kitchen/humidity -m 40
//   mosquitto_pub -t iot/kitchen/door -m open
#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <iotbridge/error.hpp>
#include <iotbridge/mqtt/mosquitto.hpp>
#include <iotbridge/shutdown.hpp>
#include <string>

using iotbridge::mqtt::Message;

int main(int argc, char** argv) {
  std::string host = "localhost";
  int port = 1883, count = 0;
  CLI::App app{"Routes temperature, humidity and other readings to different handlers."};
  app.option_defaults()->always_capture_default();
  app.add_option("--host", host, "broker host");
  app.add_option("--port", port, "broker port");
  app.add_option("--count", count, "stop after this many messages (0: until Ctrl-C)");
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // print each line at once, also into a pipe

  try {
    iotbridge::ShutdownSignal shutdown;
    std::atomic<int> handled = 0;
    auto counted = [&] {
      if (++handled == count) shutdown.request_stop();
    };

    iotbridge::mqtt::Options options;
    options.host = host;
    options.port = port;
    auto client = iotbridge::mqtt::make_mosquitto_client(options);
    client->on_message([&](const Message& m) {  // the default: what no handler below takes
      std::printf("[on_message]  %s %s\n", m.topic.c_str(), m.payload.c_str());
      counted();
    });
    client->connect();
    client->loop_start();
    client
        ->subscribe({
            {"iot/+/temperature", 1,
             [&](const Message& m) {
               std::printf("[temperature] %s is %s C\n", m.topic.c_str(), m.payload.c_str());
               counted();
             }},
            {"iot/+/humidity", 1,
             [&](const Message& m) {
               std::printf("[humidity]    %s is %s %%\n", m.topic.c_str(), m.payload.c_str());
               counted();
             }},
            {"iot/#", 1, {}},  // no handler: its messages go to on_message
        })
        .wait();  // the broker granted all three
    std::printf("subscribed to iot/+/temperature, iot/+/humidity and iot/#\n");

    shutdown.wait();  // Ctrl-C, or --count messages handled
    client->disconnect();
    client->loop_stop();
    std::printf("handled %d messages\n", handled.load());
    return 0;
  } catch (const iotbridge::Error& e) {
    std::fprintf(stderr, "per_topic_handlers: %s\n", e.what());
    return 1;
  }
}
