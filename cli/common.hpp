// What iotbridge-pub and iotbridge-sub share: the connection flags they both
// take (mosquitto_pub / mosquitto_sub spelling), turning them into
// mqtt::Options, connecting with mosquitto-like exit codes, and the way both
// report errors. Single-threaded use from main().
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "iotbridge/mqtt/client.hpp"

namespace iotbridge::cli {

// Exit codes, as mosquitto_pub / mosquitto_sub use them: 0 success, 1 any
// error (bad usage, network, TLS, ...), the CONNACK code when the broker
// refused the connection (5 not authorised on MQTT 3.1.1, 134/135 on MQTT 5),
// 27 (libmosquitto's MOSQ_ERR_TIMEOUT) when -W ran out.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitTimeout = 27;

// Bad flags or values: printed as "Error: ...", then the --help hint; exit 1.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ConnectionFlags {
  std::vector<std::string> hosts;  // -h host[:port]; several: a failover list (none: localhost)
  int port = 0;                    // -p: the port of every -h that names none
  std::vector<std::string> urls;   // -L mqtt(s)://[user[:pass]@]host[:port]/topic; several: a failover list
  std::string bind_address;
  std::string id;
  std::string id_prefix;
  bool disable_clean_session = false;
  int keepalive = 60;
  std::string username;
  std::optional<std::string> password;
  std::string password_file;
  std::string protocol = "311";
  std::optional<std::string> session_expiry;  // -x, as text: "-1" and "∞" mean never
  int qos = 0;
  std::string will_topic;
  std::optional<std::string> will_payload;
  std::optional<int> will_qos;
  bool will_retain = false;
  std::string cafile;
  std::string capath;
  std::string cert;
  std::string key;
  std::string tls_version;
  bool insecure = false;
  bool nodelay = false;
  bool debug = false;
  bool quiet = false;
};

// Registers the shared flags on `app` (and replaces CLI11's -h help flag
// with --help only, since -h is the host here).
void add_connection_flags(CLI::App& app, ConnectionFlags& flags);

struct Connection {
  mqtt::Options options;
  std::string url_topic;              // the /topic part of -L, if any
  std::vector<std::string> warnings;  // printed before connecting unless --quiet
};

// Checks the flags together and builds the client options. Reads the password
// from --password-file, or from $IOTBRIDGE_PASSWORD when a user name is given
// and no password is. Throws UsageError with a sentence a person can act on.
Connection resolve_connection(const ConnectionFlags& flags);

// The first line of a file holding a secret (a password, a store URI with
// credentials), so that it never shows in `ps`. `what` names the file in
// errors ("password file"); a file others can read adds a warning.
std::string read_secret_file(const std::string& path, const std::string& what, std::vector<std::string>& warnings);

// Parses argv; returns an exit code to stop with (help shown, or a usage
// error printed), or nullopt to go on.
std::optional<int> parse_or_exit(CLI::App& app, int argc, char** argv);

// Prints "Error: <what>" to stderr unless quiet.
void report_error(bool quiet, std::string_view what);

// The body of a tool's main(): runs `run`, turning an exception that escaped
// it into one line on stderr and kExitError (no tool ever dies of one).
int guarded_main(int (*run)(int, char**), int argc, char** argv);
// Prints "Error: <what>\nUse '<tool> --help' to see usage." (never quiet).
void report_usage_error(std::string_view tool, std::string_view what);

// Connects, blocking. On failure prints one sentence (unless quiet) and
// returns the exit code: the CONNACK code when the broker refused, else 1.
// With debug, library log lines go to stderr.
std::optional<int> connect_client(mqtt::Client& client, const ConnectionFlags& flags);

}  // namespace iotbridge::cli
