// What this teaches: a payload format of your own. Devices here publish
// "t=21.5;h=40;room=kitchen" lines; a PayloadDecoder turns each line into
// top-level fields {t: 21.5, h: 40, room: "kitchen"}, register_decoder() makes
// it known by name ("kv"), and a record::Route picks it by that name. The
// recorder counts what each decoder made of the payloads ("kinds").
// Run (a local mosquitto on localhost:1883), publish, then look:
//   build/examples/custom_decoder --store sqlite:readings.db
//   mosquitto_pub -t iot/kitchen/climate -m 't=21.5;h=40;room=kitchen'
//   build/cli/iotbridge-db --store sqlite:readings.db find iot_service sensors
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iotbridge/error.hpp>
#include <iotbridge/record/decoder.hpp>
#include <iotbridge/record/recorder.hpp>
#include <iotbridge/shutdown.hpp>
#include <iotbridge/store/open.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace record = iotbridge::record;

// "key=value;key=value": each pair becomes a field, a value that reads as a
// number becomes a number. A payload with no pair at all is kept as text, so
// nothing a device sends is lost. decode() only reads its arguments: one
// decoder serves every route and thread.
class KeyValueDecoder final : public record::PayloadDecoder {
 public:
  std::string_view name() const noexcept override { return "kv"; }

  void decode(const record::DecodeInput& in, std::vector<record::DecodedItem>& out) const override {
    record::DecodedItem item;
    std::string_view rest = in.payload;
    while (!rest.empty()) {
      auto end = rest.find(';');
      std::string_view pair = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      auto eq = pair.find('=');
      if (eq == std::string_view::npos || eq == 0) continue;  // not a pair: skipped
      std::string key(pair.substr(0, eq));
      std::string_view text = pair.substr(eq + 1);
      if (auto number = record::parse_number(text))
        item.fields.emplace_back(key, *number);
      else
        item.fields.emplace_back(key, std::string(text));
    }
    if (item.fields.empty()) {
      item.value = std::string(in.payload);
      item.kind = "text";
    } else {
      item.kind = "kv";
    }
    out.push_back(std::move(item));
  }
};

int main(int argc, char** argv) {
  record::RecorderOptions options;  // every field says its default in recorder.hpp
  options.mqtt.host = "localhost";
  options.mqtt.port = 1883;
  options.store_uri = "sqlite:readings.db";
  record::Route route;  // name "default", iot_service.sensors
  route.filters = {"iot/#"};
  CLI::App app{"Stores key=value;key=value readings as documents with one field per key."};
  app.option_defaults()->always_capture_default();
  app.add_option("--host", options.mqtt.host, "broker host");
  app.add_option("--port", options.mqtt.port, "broker port");
  app.add_option("--filter", route.filters, "topic filter(s) to record");
  app.add_option("--store", options.store_uri, "mongodb://host:port or sqlite:file.db");
  app.add_option("--database", route.database, "database of the sensors collection");
  app.add_option("--spool", options.spool_dir, "folder of the journal that keeps accepted readings safe");
  app.add_option("--count", options.max_messages, "stop once this many readings are stored (0: until Ctrl-C)");
  CLI11_PARSE(app, argc, argv);

  try {
    // Registered once, before a route names it.
    record::register_decoder(std::make_shared<KeyValueDecoder>());
    route.decoder = "kv";
    options.routes = {route};
    iotbridge::ShutdownSignal shutdown;
    record::Recorder recorder(options);
    recorder.start();  // subscribed once it returns: what is published from now on is recorded
    std::printf("recording %s with the kv decoder into %s\n", route.filters.at(0).c_str(),
                iotbridge::store::redact_uri(options.store_uri).c_str());  // never print a password
    std::fflush(stdout);
    auto stats = recorder.run(shutdown.token());  // until Ctrl-C or --count, then store what is queued
    std::printf("stored %llu readings into %s.%s (%llu received)\n", static_cast<unsigned long long>(stats.stored),
                route.database.c_str(), route.collection.c_str(), static_cast<unsigned long long>(stats.received));
    for (const auto& [kind, count] : stats.routes.at(0).kinds)
      std::printf("decoded as %s: %llu\n", kind.c_str(), static_cast<unsigned long long>(count));
    return 0;
  } catch (const iotbridge::Error& e) {
    std::fprintf(stderr, "custom_decoder: %s\n", e.what());
    return 1;
  }
}
