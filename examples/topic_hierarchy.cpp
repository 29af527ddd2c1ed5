// What this teaches: how topic filters match. One subscriber per filter
// (home/living_room/+, home/+/light, #, $SYS/#), then a few readings
// published here, and a table of which filter the broker delivered each topic
// to. "+" is exactly one level, "#" is any number of levels, and "#" does not
// match topics starting with "$" (the broker's own $SYS statistics).
// Run (a local mosquitto on localhost:1883):
//   build/examples/topic_hierarchy
#include <CLI/CLI.hpp>
#include <condition_variable>
#include <cstdio>
#include <iotbridge/error.hpp>
#include <iotbridge/mqtt/mosquitto.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::string host = "localhost";
  int port = 1883;
  CLI::App app{"Shows which topic filters receive which topics."};
  app.option_defaults()->always_capture_default();
  app.add_option("--host", host, "broker host");
  app.add_option("--port", port, "broker port");
  CLI11_PARSE(app, argc, argv);

  const std::vector<std::string> filters = {"home/living_room/+", "home/+/light", "#", "$SYS/#"};
  const std::vector<std::string> topics = {"home/living_room/temperature", "home/kitchen/light", "home/kitchen",
                                           "garden/soil/moisture",
                                           "home/living_room/light"};  // last: matches all three
  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::string, std::set<std::string>> received;  // filter -> topics it received
  try {
    iotbridge::mqtt::Options options;
    options.host = host;
    options.port = port;
    std::vector<std::unique_ptr<iotbridge::mqtt::Client>> subscribers;
    for (const auto& filter : filters) {
      auto client = iotbridge::mqtt::make_mosquitto_client(options);
      client->connect();
      client->loop_start();
      auto on_message = [&, filter](const iotbridge::mqtt::Message& message) {
        std::lock_guard lock(mutex);
        received[filter].insert(message.topic);
        changed.notify_all();
      };
      client->subscribe(filter, 1, on_message).wait();  // wait(): subscribed before anything is published
      subscribers.push_back(std::move(client));
    }

    auto publisher = iotbridge::mqtt::make_mosquitto_client(options);
    publisher->connect();
    publisher->loop_start();
    for (const auto& topic : topics) publisher->publish(topic, "1", 1).wait();

    // A broker delivers one publisher's messages in order, so once the last
    // topic (which all home filters match) arrived, everything before it has.
    std::unique_lock lock(mutex);
    bool complete = changed.wait_for(lock, std::chrono::seconds(10), [&] {
      return received["home/living_room/+"].count(topics.back()) && received["home/+/light"].count(topics.back()) &&
             received["#"].count(topics.back()) && !received["$SYS/#"].empty();
    });
    if (!complete) throw iotbridge::Error(iotbridge::ErrorCategory::mqtt, "the readings did not all arrive in 10 s");

    std::printf("%-30s", "topic \\ filter");
    for (const auto& filter : filters) std::printf(" %-18s", filter.c_str());
    std::printf("\n");
    std::vector<std::string> rows = topics;
    const auto& statistics = received["$SYS/#"];  // the broker's own topics, e.g. $SYS/broker/version
    rows.push_back(statistics.count("$SYS/broker/version") ? "$SYS/broker/version" : *statistics.begin());
    for (const auto& topic : rows) {
      std::printf("%-30s", topic.c_str());
      for (const auto& filter : filters) std::printf(" %-18s", received[filter].count(topic) ? "yes" : "-");
      std::printf("\n");
    }
    return 0;
  } catch (const iotbridge::Error& e) {
    std::fprintf(stderr, "topic_hierarchy: %s\n", e.what());
    return 1;
  }
}
