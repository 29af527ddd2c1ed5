#include "commands.hpp"

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "../run_verb.hpp"
#include "duration.hpp"
#include "iotbridge/error.hpp"
#include "iotbridge/shutdown.hpp"
#include "iotbridge/store/open.hpp"
#include "listen.hpp"
#include "plot.hpp"
#include "server.hpp"

namespace iotbridge::view {

namespace {

// Flags plot and serve share: what the readings look like.
struct Source {
  std::string field = "value";
  std::string by = "topic";
  std::string time_field = "reg_date";
};

void add_source_flags(CLI::App* sub, Source& source) {
  sub->add_option("--field", source.field, "The numeric field to draw (default value)");
  sub->add_option("--by", source.by, "One line per distinct value of this field (default topic)");
  sub->add_option("--time-field", source.time_field, "The reading's time, a date field (default reg_date)");
}

std::string flag_or_env(const std::string& flag, const char* env, const char* fallback) {
  if (!flag.empty()) return flag;
  const char* value = std::getenv(env);
  return value && *value ? value : fallback;
}

// Read-only, as iotbridge-db's other reading verbs: a mistyped SQLite path is
// an error, never a new empty file.
std::unique_ptr<store::DocumentStore> open_read_only(const StoreFlags& flags) {
  std::string uri = flag_or_env(flags.store_uri, "IOTBRIDGE_STORE", "");
  if (uri.empty())
    throw Error(ErrorCategory::config,
                "no store given: pass --store URI or set IOTBRIDGE_STORE (e.g. sqlite:iot.db, "
                "mongodb://localhost:27017/)");
  store::OpenOptions options;
  options.read_only = true;
  return store::open_store(uri, options);
}

std::shared_ptr<store::Collection> readings(store::DocumentStore& store, const StoreFlags& flags) {
  return store.collection(flag_or_env(flags.db, "IOTBRIDGE_DB", "iot_service"),
                          flag_or_env(flags.collection, "IOTBRIDGE_COLLECTION", "sensors"));
}

// Runs a verb, prints its error, and hands the exit code to iotbridge-db.
template <typename Verb>
[[noreturn]] void run_verb(const char* name, Verb&& verb) {
  cli::run_verb(std::string("iotbridge-db ") + name, std::forward<Verb>(verb));
}

}  // namespace

void add_view_commands(CLI::App& app, StoreFlags flags) {
  auto source = std::make_shared<Source>();
  auto plot = std::make_shared<PlotRequest>();
  auto* plot_cmd = app.add_subcommand(
      "plot", "Draw readings over time to a PNG or SVG file: one line per topic, dated axis, legend");
  plot_cmd->add_option("filter", plot->filter_text, "Filter, a JSON document (default {})");
  add_source_flags(plot_cmd, *source);
  plot_cmd->add_option("--since", plot->since, "Only readings this recent: 90s, 15m, 1h, 2d, 1w (default: all)");
  plot_cmd->add_option("--output,-o", plot->output, "The chart file: NAME.png or NAME.svg")->required();
  plot_cmd->add_option("--title", plot->title, "Title above the chart (default: field by topic, db.collection)");
  plot_cmd->add_option("--width", plot->width, "Width in pixels (default 960)")->check(CLI::Range(200, 10000));
  plot_cmd->add_option("--height", plot->height, "Height in pixels (default 480)")->check(CLI::Range(150, 10000));
  plot_cmd->callback([flags, source, plot] {
    run_verb("plot", [&] {
      plot->query.field = source->field;
      plot->query.by = source->by;
      plot->query.time_field = source->time_field;
      check_plot_request(*plot);  // bad --since or output name: before connecting
      auto store = open_read_only(flags);
      auto summary = run_plot(*readings(*store, flags), *plot);
      fmt::print("{}\n", summary);
      return 0;
    });
  });

  auto listen = std::make_shared<std::string>("127.0.0.1:8080");
  auto* serve_cmd = app.add_subcommand(
      "serve",
      "A read-only web page and JSON API (/api/topics, /api/series, /api/readings, /api/stats) of the readings");
  auto serve_source = std::make_shared<Source>();
  add_source_flags(serve_cmd, *serve_source);
  serve_cmd->add_option("--listen", *listen,
                        "HOST:PORT to listen on (default 127.0.0.1:8080; port 0: any free port; another host than "
                        "this machine's loopback makes the page reachable from the network)");
  serve_cmd->callback([flags, serve_source, listen] {
    run_verb("serve", [&] {
      auto address = parse_listen(*listen);
      std::shared_ptr<store::DocumentStore> store = open_read_only(flags);
      store->ping();
      ApiSource source;
      source.store = store.get();
      source.collection = readings(*store, flags);
      source.shape.field = serve_source->field;
      source.shape.by = serve_source->by;
      source.shape.time_field = serve_source->time_field;
      ViewServer server(source);
      int port = server.bind(address);
      if (!address.loopback)
        std::cerr << fmt::format(
            "iotbridge-db serve: warning: listening on {}, reachable from other machines; the page and the API show "
            "every reading to anyone who can connect, without a password\n",
            address.host);
      ShutdownSignal shutdown;
      server.start();
      fmt::print("iotbridge-db serve: {} ({}.{} in {}; read-only; Ctrl-C to stop)\n", address.url(port),
                 source.collection->database_name(), source.collection->name(), store->description());
      std::fflush(stdout);
      shutdown.wait();
      fmt::print("iotbridge-db serve: stopping ({})\n", shutdown.signal_number() == SIGTERM  ? "SIGTERM"
                                                        : shutdown.signal_number() == SIGINT ? "SIGINT"
                                                                                             : "requested");
      std::fflush(stdout);
      server.stop();
      fmt::print("iotbridge-db serve: stopped after {} requests\n", server.requests());
      return 0;
    });
  });
}

}  // namespace iotbridge::view
