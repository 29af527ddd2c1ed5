// What this teaches: storing every MQTT reading as a document, the job the
// tutorials do with paho-mqtt + PyMongo's insert_one in on_message. Here
// record::Recorder does it: subscribe, decode "24.5" into a number, batch,
// insert_many, retry, and keep what it accepted in a journal so nothing is
// lost. Each reading becomes {_id, topic, value, reg_date} in
// iot_service.sensors of the store given by URI (MongoDB or SQLite).
// Run (a local mosquitto on localhost:1883), publish, then look:
//   build/examples/recorder --store sqlite:readings.db        # or mongodb://localhost:27017
//   mosquitto_pub -t iot/home1/temperature -m 21.5
//   build/cli/iotbridge-db --store sqlite:readings.db find iot_service sensors
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iotbridge/error.hpp>
#include <iotbridge/record/recorder.hpp>
#include <iotbridge/shutdown.hpp>
#include <iotbridge/store/open.hpp>
#include <string>

int main(int argc, char** argv) {
  iotbridge::record::RecorderOptions options;  // every field says its default in recorder.hpp
  options.mqtt.host = "localhost";
  options.mqtt.port = 1883;
  options.filters = {"iot/#"};
  options.store_uri = "sqlite:readings.db";
  CLI::App app{"Stores every reading under --filter into a document store."};
  app.option_defaults()->always_capture_default();
  app.add_option("--host", options.mqtt.host, "broker host");
  app.add_option("--port", options.mqtt.port, "broker port");
  app.add_option("--filter", options.filters, "topic filter(s) to record");
  app.add_option("--store", options.store_uri, "mongodb://host:port or sqlite:file.db");
  app.add_option("--database", options.database, "database of the sensors collection");
  app.add_option("--spool", options.spool_dir, "folder of the journal that keeps accepted readings safe");
  app.add_option("--count", options.max_messages, "stop once this many readings are stored (0: until Ctrl-C)");
  CLI11_PARSE(app, argc, argv);

  try {
    iotbridge::ShutdownSignal shutdown;
    iotbridge::record::Recorder recorder(options);
    std::printf("recording %s into %s\n", options.filters.at(0).c_str(),
                iotbridge::store::redact_uri(options.store_uri).c_str());  // never print a password
    std::fflush(stdout);
    // Connects, subscribes and stores until Ctrl-C (or --count), then stores
    // what is still queued and returns the counters.
    auto stats = recorder.run(shutdown.token());
    std::printf("stored %llu readings into %s.%s (%llu received)\n", static_cast<unsigned long long>(stats.stored),
                options.database.c_str(), options.collection.c_str(), static_cast<unsigned long long>(stats.received));
    return 0;
  } catch (const iotbridge::Error& e) {
    std::fprintf(stderr, "recorder: %s\n", e.what());
    return 1;
  }
}
