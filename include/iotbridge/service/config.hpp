/// @file
/// The configuration file of iotbridge-recorder: TOML (tables [mqtt], [store],
/// [durability], [metrics] and one [[route]] per stream) read into
/// RecorderOptions plus what the service itself needs (the metrics address).
///
/// Every key is declared once, in the table config_keys() returns: the parser
/// takes its type, default and checks from there, `iotbridge-recorder --keys`
/// prints it, and docs/recorder-config.md is checked against it. A key the
/// table does not know is an error, never ignored: a typo must not change
/// behaviour silently.
///
/// Errors are iotbridge::ConfigError: "FILE:LINE:COLUMN: what is wrong; what
/// to write instead". Secrets come from files (password_file, uri_file) or the
/// environment (IOTBRIDGE_PASSWORD, IOTBRIDGE_STORE) and are never printed:
/// the describe_*() texts show the store URI redacted.
///
/// Pure functions of the file and the environment; safe from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "iotbridge/error.hpp"
#include "iotbridge/record/recorder.hpp"

namespace iotbridge::service {

/// A configuration that cannot be used, with where in the file: the message
/// is "FILE:LINE:COLUMN: ..." (line and column 0 when the problem is not at
/// one place, e.g. a missing table). Category config.
class ConfigError : public Error {
 public:
  ConfigError(const std::string& file, int line, int column, const std::string& what);
  const std::string& file() const noexcept { return file_; }
  int line() const noexcept { return line_; }
  int column() const noexcept { return column_; }

 private:
  std::string file_;
  int line_;
  int column_;
};

/// Where /metrics, /healthz and /readyz listen: "127.0.0.1:9464", "[::1]:9464".
struct ListenAddress {
  std::string host;               ///< an address (the endpoint binds to it only), without IPv6 brackets
  int port = 0;                   ///< 1..65535; 0 only in tests: any free port
  std::string to_string() const;  ///< "host:port", IPv6 in brackets
};

/// "127.0.0.1:9464" -> {127.0.0.1, 9464}; "[::1]:9464" -> {::1, 9464}.
/// @throws Error (config) for a missing port ("host without a port"), a port
///         outside 1..65535 or an empty host, saying what to write instead
ListenAddress parse_listen_address(std::string_view text);

struct ServiceConfig {
  std::filesystem::path file;         ///< the file read ("" for parse_config_text)
  record::RecorderOptions recorder;   ///< the routes, the connection, the store, durability
  std::vector<record::Route> routes;  ///< the [[route]]s, in file order (also in recorder.routes)
  bool metrics_enabled = false;       ///< [metrics] listen given
  ListenAddress metrics;              ///< where the HTTP endpoint listens when enabled
  int metrics_line = 0;               ///< where [metrics] listen is in the file, for errors about it
  int metrics_column = 0;
  /// Things that are allowed but worth saying (a secret file readable by
  /// others); printed at start.
  std::vector<std::string> warnings;
};

/// Reads and checks a configuration file.
/// @throws ConfigError (unreadable file, TOML syntax, unknown key, wrong type,
///         missing or invalid value, unreadable secret file)
ServiceConfig load_config(const std::filesystem::path& file);

/// The same from text; `file_name` is what messages call it.
ServiceConfig parse_config_text(std::string_view text, const std::string& file_name);

/// One key of the file, as the table declares it.
struct ConfigKeyInfo {
  std::string_view table;          ///< "mqtt", "store", "durability", "metrics", "route"
  std::string_view name;           ///< "url", "client_id", ...
  std::string_view type;           ///< "string", "integer", "boolean", "array of strings", "table of strings"
  std::string_view default_value;  ///< as TOML would write it; "required" or "" (none)
  std::string_view help;           ///< one sentence
};

/// Every key, in the order the documentation lists them.
std::span<const ConfigKeyInfo> config_keys();

/// What the loader understood, one line per route (for --check and the start
/// line): "route climate: iot/+/+/temp, iot/+/+/humi -> iot_service.sensors (decoder auto, ...)".
std::vector<std::string> describe_routes(const ServiceConfig& config);

/// The start line: broker, store (password redacted), routes, durability folder, metrics address.
std::string describe_start(const ServiceConfig& config);

}  // namespace iotbridge::service
