// iotbridge-recorder: the recorder as a configured service. Reads a TOML file
// (iotbridge/service/config.hpp), runs iotbridge::service::Service until
// SIGINT/SIGTERM, re-reads the file on SIGHUP. Parsing and printing here only.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <string>

#include "iotbridge/error.hpp"
#include "iotbridge/service/config.hpp"
#include "iotbridge/service/service.hpp"
#include "iotbridge/shutdown.hpp"

namespace {

using namespace iotbridge;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;  // could not run, or readings left unstored
constexpr int kExitConfig = 2;  // the configuration (file or flags) is wrong

constexpr const char* kFooter = R"(Exit status: 0 stopped with everything stored; 1 could not start (broker or store
unreachable) or readings wait in the durability folder; 2 the configuration is wrong
(FILE:LINE:COLUMN: what to write instead).

Signals: SIGINT/SIGTERM stop (store what was received, then exit); SIGHUP re-reads
the file (an invalid file is refused and the running configuration stays).

The status line (stderr, every 10 s while the numbers change; --quiet: none):
  recv     readings accepted from the broker     stored  confirmed by the store
  pend     accepted, not yet stored              dup     stored already (a replay)
  q        readings queued in memory             retry   store writes retried
  spool    readings written to the disk spool    mqtt up|DOWN, store ok|FAILING
  shown only when not 0: replayed (from an earlier run), rejected (refused by the store),
  unmapped (a mapped field missing), unrouted (no route matched), text, binary (payloads kept so)
Keys of the file: iotbridge-recorder --keys; docs/recorder-config.md.)";

void print_keys() {
  std::string table;
  for (const auto& k : service::config_keys()) {
    std::string title = k.table == "route" ? "[[route]]" : "[" + std::string(k.table) + "]";
    if (title != table) {
      std::cout << (table.empty() ? "" : "\n") << title << '\n';
      table = title;
    }
    std::cout << "  " << k.name << " (" << k.type
              << (k.default_value.empty() ? ""
                                          : ", " + std::string(k.default_value == "required" ? "" : "default ") +
                                                std::string(k.default_value))
              << "): " << k.help << '\n';
  }
}

int run(int argc, char** argv) {
  CLI::App app{"Record MQTT readings into a document store, as configured in a TOML file.", "iotbridge-recorder"};
  std::string config_file;
  bool check = false;
  bool keys = false;
  bool quiet = false;
  double status_interval = 10;
  app.set_help_flag("--help", "Print this help and exit");
  app.set_version_flag("--version", "iotbridge-recorder " IOTBRIDGE_VERSION, "Print the version and exit");
  app.add_option("--config", config_file, "The configuration file (TOML), e.g. /etc/iotbridge/recorder.toml");
  app.add_flag("--check", check, "Check the file, print the routes as understood, exit 0 (or 2 with the error)");
  app.add_flag("--keys", keys, "Print every key the file may hold, with its type and default, and exit");
  app.add_flag("--quiet", quiet, "No status lines (the start line, the summary and errors still show)");
  app.add_option("--status-interval", status_interval, "Seconds between status lines (default 10)")
      ->check(CLI::Range(0.01, 86400.0));
  app.footer(kFooter);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return kExitOk;
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << '\n';
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    std::cerr << "Error: " << e.what() << "\nUse 'iotbridge-recorder --help' to see usage.\n";
    return kExitConfig;
  }
  if (keys) {
    print_keys();
    return kExitOk;
  }
  if (config_file.empty()) {
    std::cerr << "Error: give the configuration file with --config FILE (e.g. /etc/iotbridge/recorder.toml).\n"
                 "Use 'iotbridge-recorder --help' to see usage.\n";
    return kExitConfig;
  }

  service::ServiceConfig config;
  try {
    config = service::load_config(config_file);
  } catch (const Error& e) {
    std::cerr << "Error: " << e.what() << '\n';
    return kExitConfig;
  }
  if (check) {
    std::cout << config_file << ": ok\n" << service::describe_start(config) << '\n';
    for (const auto& line : service::describe_routes(config)) std::cout << line << '\n';
    for (const auto& w : config.warnings) std::cout << "Warning: " << w << '\n';
    return kExitOk;
  }

  service::ServiceOptions options;
  options.print = [](std::string_view line) { std::cerr << line << std::endl; };
  options.status_interval =
      quiet ? std::chrono::milliseconds(0)
            : std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double>(status_interval));
  const std::string spool = config.recorder.spool_dir.string();
  ShutdownSignal shutdown;
  service::Service svc(std::move(config), options);
  record::RecorderStats stats;
  try {
    stats = svc.run(shutdown.token());
  } catch (const service::ConfigError& e) {
    std::cerr << "Error: " << e.what() << '\n';
    return kExitConfig;
  } catch (const Error& e) {
    std::cerr << "Error: " << e.what() << '\n';
    return kExitFailed;
  }
  if (stats.pending > 0) {
    std::cerr << "Error: " << stats.pending << " readings are not stored yet (" << stats.last_error
              << "); they wait in '" << spool << "' for the next start.\n";
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "Error: " << e.what() << '\n';
    return kExitFailed;
  }
}
