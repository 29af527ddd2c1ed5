// What this teaches: retained messages. The broker keeps the last retained
// message of a topic and hands it to every new subscriber at once, so a late
// subscriber still learns the current value; an ordinary (ephemeral) message
// goes only to those subscribed at the time. An empty retained message
// deletes the kept one.
// Run (a local mosquitto on localhost:1883):
//   build/examples/retained_and_ephemeral
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iotbridge/error.hpp>
#include <iotbridge/mqtt/mosquitto.hpp>
#include <string>

int main(int argc, char** argv) {
  std::string host = "localhost", prefix = "iot/demo";
  int port = 1883;
  CLI::App app{"A late subscriber gets the retained reading, not the ephemeral one."};
  app.option_defaults()->always_capture_default();
  app.add_option("--host", host, "broker host");
  app.add_option("--port", port, "broker port");
  app.add_option("--prefix", prefix, "topics used: PREFIX/retained, PREFIX/ephemeral, PREFIX/end");
  CLI11_PARSE(app, argc, argv);

  try {
    iotbridge::mqtt::Options options;
    options.host = host;
    options.port = port;
    auto publisher = iotbridge::mqtt::make_mosquitto_client(options);
    publisher->connect();
    publisher->loop_start();
    // Nobody is subscribed yet. wait(): the broker has it (QoS 1 acknowledged).
    publisher->publish(prefix + "/retained", "21.5", 1, /*retain=*/true).wait();
    publisher->publish(prefix + "/ephemeral", "22.0", 1, /*retain=*/false).wait();
    std::printf("published %s/retained 21.5 (retained) and %s/ephemeral 22.0 (not retained)\n", prefix.c_str(),
                prefix.c_str());

    // The late subscriber. Pull-style: messages queue up until consume() takes them.
    auto late = iotbridge::mqtt::make_mosquitto_client(options);
    late->start_consuming();
    late->connect();
    late->loop_start();
    late->subscribe(prefix + "/#", 1).wait();
    // Retained messages come right after the SUBACK, before anything published
    // later: when this marker arrives, every retained message has.
    publisher->publish(prefix + "/end", "", 1).wait();

    int retained = 0, ephemeral = 0;
    while (auto message = late->consume(std::chrono::seconds(10))) {
      if (message->topic == prefix + "/end") break;
      std::printf("late subscriber got %s %s (retain flag %s)\n", message->topic.c_str(), message->payload.c_str(),
                  message->retain ? "set" : "not set");
      (message->topic == prefix + "/retained" ? retained : ephemeral)++;
    }
    std::printf("late subscriber: %d retained, %d ephemeral\n", retained, ephemeral);

    // Clean up: an empty retained payload removes the kept message.
    publisher->publish(prefix + "/retained", "", 1, /*retain=*/true).wait();
    std::printf("cleared the retained reading\n");
    late->disconnect();
    publisher->disconnect();
    return retained == 1 && ephemeral == 0 ? 0 : 1;
  } catch (const iotbridge::Error& e) {
    std::fprintf(stderr, "retained_and_ephemeral: %s\n", e.what());
    return 1;
  }
}
