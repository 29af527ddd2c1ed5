// What this teaches: subscribing with callbacks, the way paho-mqtt tutorials
// do it. on_connect subscribes (so a reconnect subscribes again), on_message
// prints each reading's topic and value, and the network loop runs either on
// this thread (loop_forever, the default) or on a background thread
// (loop_start / loop_stop, with --background) while main waits for Ctrl-C.
// Run (a local mosquitto on localhost:1883), then publish from another shell:
//   build/examples/subscriber --filter 'iot/#'
//   mosquitto_pub -t iot/home1/temperature -m 21.5
#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <iotbridge/error.hpp>
#include <iotbridge/mqtt/mosquitto.hpp>
#include <iotbridge/shutdown.hpp>
#include <string>

int main(int argc, char** argv) {
  std::string host = "localhost", filter = "iot/#";
  int port = 1883, qos = 0, count = 0;
  bool background = false;
  CLI::App app{"Prints every reading published under --filter."};
  app.option_defaults()->always_capture_default();
  app.add_option("--host", host, "broker host");
  app.add_option("--port", port, "broker port");
  app.add_option("--filter", filter, "topic filter to subscribe to (+ one level, # the rest)");
  app.add_option("--qos", qos, "subscription QoS")->check(CLI::Range(0, 2));
  app.add_option("--count", count, "stop after this many messages (0: until Ctrl-C)");
  app.add_flag("--background", background, "run the network loop on a background thread (loop_start)");
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // print each line at once, also into a pipe

  try {
    iotbridge::ShutdownSignal shutdown;  // Ctrl-C stops the loop below
    iotbridge::mqtt::Options options;
    options.host = host;
    options.port = port;
    auto client = iotbridge::mqtt::make_mosquitto_client(options);

    // Callbacks run on the network thread. Set them before connecting.
    client->on_connect([&](const iotbridge::mqtt::ConnectResult& result) {
      std::printf("connected (%s)\n", result.reason.c_str());
      client->subscribe(filter, qos);  // here, so that every reconnect subscribes again
    });
    client->on_subscribe([](const iotbridge::mqtt::SubscribeResult& result) {
      std::printf("subscribed to %s (granted qos %d)\n", result.filters.at(0).c_str(), result.granted_qos.at(0));
    });
    std::atomic<int> received = 0;
    client->on_message([&](const iotbridge::mqtt::Message& message) {
      std::printf("%s %.*s\n", message.topic.c_str(), static_cast<int>(message.payload.size()), message.payload.data());
      if (++received == count) shutdown.request_stop();  // --count reached: stop as Ctrl-C would
    });

    client->connect();  // throws with the broker's reason when refused or unreachable
    if (!background) {
      // paho's loop_forever(): the network runs here until the token fires
      // (Ctrl-C or --count), which also disconnects.
      client->loop_forever(shutdown.token());
    } else {
      // paho's loop_start(): the network runs on its own thread; main is free.
      client->loop_start();
      shutdown.wait();  // main could do other work here instead
      client->disconnect();
      client->loop_stop();
    }
    std::printf("received %d messages\n", received.load());
    return 0;
  } catch (const iotbridge::Error& e) {
    std::fprintf(stderr, "subscriber: %s\n", e.what());
    return 1;
  }
}
