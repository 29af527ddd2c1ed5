// iotbridge-sub: subscribe to MQTT topics and print what arrives, with the
// flags and output of mosquitto_sub (default and -v output byte-identical),
// plus JSON lines (--json). Parsing here; formatting in iotbridge/mqtt/format.hpp.
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "iotbridge/duration.hpp"
#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/client.hpp"
#include "iotbridge/mqtt/format.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"
#include "iotbridge/record/recorder.hpp"
#include "iotbridge/record/report.hpp"
#include "iotbridge/shutdown.hpp"
#include "iotbridge/store/open.hpp"
#include "iotbridge/topic.hpp"

namespace {

using namespace iotbridge;
using namespace iotbridge::cli;
using Clock = std::chrono::steady_clock;

struct SubFlags {
  std::vector<std::string> topics;
  std::vector<std::string> filter_outs;
  std::vector<std::string> unsubscribes;
  bool verbose = false;
  int count = 0;
  double timeout_seconds = 0;
  bool no_retained = false;
  bool retained_only = false;
  bool remove_retained = false;
  bool no_eol = false;
  bool exit_after_subscribe = false;
  std::string format;
  bool pretty = false;
  bool json = false;

  // --store: record instead of printing (iotbridge::record::Recorder).
  std::string store;
  std::string store_file;
  std::string database = "iot_service";
  std::string collection = "sensors";
  int batch = 1000;
  int flush_ms = 100;
  std::string spool = "iotbridge-spool";
  std::string topic_fields;
  double stats_interval = 0;
  bool stats_json = false;
  // --store policies: the [[route]] keys of iotbridge-recorder, with dashes.
  std::string dedup_key;
  std::optional<double> deadband;
  bool on_change = false;
  std::string heartbeat;
  std::string expire_after;
  std::size_t max_document_bytes = 0;
  std::string quarantine;
  record::Route route;  // built from the flags above before recording
};

// The route --store records: the single route of RecorderOptions ("default",
// as a recorder names it), with the policy flags. Throws UsageError naming
// the flag.
record::Route store_route(const SubFlags& f) {
  record::Route r;
  r.filters = f.topics;
  r.database = f.database;
  r.collection = f.collection;
  r.dedup_key = f.dedup_key;
  r.deadband = f.deadband;
  r.on_change = f.on_change;
  r.max_document_bytes = f.max_document_bytes;
  r.quarantine = f.quarantine;
  try {
    if (!f.heartbeat.empty()) r.heartbeat = parse_duration(f.heartbeat, "--heartbeat");
    if (!f.expire_after.empty())
      r.expire_after =
          std::chrono::duration_cast<std::chrono::seconds>(parse_duration(f.expire_after, "--expire-after"));
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  if (!f.expire_after.empty() && r.expire_after.count() <= 0)
    throw UsageError("--expire-after must be at least 1s; e.g. --expire-after 30d");
  if (r.heartbeat.count() > 0 && !r.deadband && !r.on_change)
    throw UsageError(
        "--heartbeat forces a store when nothing was stored, which only happens with --deadband or "
        "--on-change: give one of them, or drop --heartbeat.");
  try {
    record::validate_routes({r});
  } catch (const Error& e) {
    std::string what = e.what();
    // "route 'default': dedup_key: ..." -> "--dedup-key: ..."
    if (auto colon = what.find("': "); colon != std::string::npos) {
      what = what.substr(colon + 3);
      auto field_end = what.find(':');
      std::string field = what.substr(0, field_end);
      for (char& c : field)
        if (c == '_') c = '-';
      what = "--" + field + what.substr(field_end);
    }
    throw UsageError(what);
  }
  return r;
}

// Output is collected and written in blocks; it is flushed whenever no
// further message is waiting, so an interactive user sees each line at once.
class Output {
 public:
  void flush() {
    if (buffer_.empty()) return;
    std::fwrite(buffer_.data(), 1, buffer_.size(), stdout);
    std::fflush(stdout);
    buffer_.clear();
  }
  std::string& buffer() { return buffer_; }
  ~Output() { flush(); }

 private:
  std::string buffer_;
};

// Requests a stop after `seconds` (the -W of --store), unless cancelled first.
class StopTimer {
 public:
  StopTimer(ShutdownSignal& shutdown, double seconds) {
    if (seconds <= 0) return;
    thread_ = std::thread([this, &shutdown, seconds] {
      std::unique_lock lock(mutex_);
      if (!cv_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return cancelled_; }))
        shutdown.request_stop();
    });
  }
  ~StopTimer() {
    {
      std::lock_guard lock(mutex_);
      cancelled_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool cancelled_ = false;
  std::thread thread_;
};

// iotbridge-sub --store: the Recorder does the work; this only wires flags to
// RecorderOptions and reports. -C and -W end the run once everything
// received is stored (exit 0); readings the store did not take before the
// end stay in the spool folder for the next run (exit 1, said so).
int run_recorder(const ConnectionFlags& conn, const Connection& connection, const SubFlags& f, int qos) {
  record::RecorderOptions o;
  o.qos = qos;
  o.mqtt = connection.options;
  o.store_uri = f.store;
  o.batch_size = static_cast<std::size_t>(f.batch);
  o.flush_interval = std::chrono::milliseconds(f.flush_ms);
  o.spool_dir = f.spool;
  o.max_messages = f.count > 0 ? static_cast<std::uint64_t>(f.count) : 0;
  try {
    if (!f.topic_fields.empty()) o.document.topic_fields = record::TopicPattern(f.topic_fields);
  } catch (const Error& e) {
    report_usage_error("iotbridge-sub", std::string("invalid --topic-fields: ") + e.what());
    return kExitError;
  }
  o.routes = {f.route};
  o.routes.front().document = o.document;
  const bool debug = conn.debug;
  const bool quiet = conn.quiet;
  o.on_log = [debug, quiet](mqtt::LogLevel level, std::string_view line) {
    if (debug || (!quiet && level >= mqtt::LogLevel::warning)) std::cerr << line << '\n';
  };
  const bool stats_json = f.stats_json;
  if (f.stats_interval > 0) {
    o.stats_interval =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double>(f.stats_interval));
    o.on_stats = [stats_json](const record::RecorderStats& s) {
      std::cerr << (stats_json ? s.to_json() : s.status_line()) << '\n';
    };
  }

  ShutdownSignal shutdown;
  std::shared_ptr<mqtt::Client> client;
  try {
    client = mqtt::make_mosquitto_client(connection.options);
  } catch (const Error& e) {
    report_error(quiet, e.what());
    return kExitError;
  }
  // Connect here first, for mosquitto_sub's exit codes (the CONNACK code when refused).
  if (auto code = connect_client(*client, conn)) return *code;
  record::RecorderStats stats;
  try {
    record::Recorder recorder(o, nullptr, client);
    recorder.start();  // first, so that the start line follows a start that worked
    if (!quiet) std::cerr << record::start_line(o) << std::endl;
    StopTimer timer(shutdown, f.timeout_seconds);
    stats = recorder.run(shutdown.token());
  } catch (const Error& e) {
    report_error(quiet, e.what());
    return kExitError;
  }
  if (stats_json) std::cout << stats.to_json() << '\n';
  if (!quiet) std::cerr << record::summary_line(stats) << '\n';  // not the status line: no "mqtt DOWN" at a clean stop
  if (stats.pending > 0) {
    report_error(quiet, std::to_string(stats.pending) + " readings are not stored yet (" + stats.last_error +
                            "); they wait in '" + f.spool + "' for the next run.");
    return kExitError;
  }
  return kExitOk;
}

int run(int argc, char** argv) {
  CLI::App app{"Subscribe to MQTT topics and print the messages (mosquitto_sub compatible).", "iotbridge-sub"};
  ConnectionFlags conn;
  SubFlags f;
  app.set_version_flag("--version", "iotbridge-sub " IOTBRIDGE_VERSION, "Print the version and exit");
  add_connection_flags(app, conn);
  app.add_option("-t,--topic", f.topics, "Filter to subscribe to (repeatable)");
  app.add_option("-T,--filter-out", f.filter_outs,
                 "Do not print messages whose topic matches this filter (repeatable)");
  app.add_option("-U,--unsubscribe", f.unsubscribes, "Unsubscribe from this filter (with -c sessions; repeatable)");
  app.add_flag("-v,--verbose", f.verbose, "Print \"topic payload\"");
  app.add_option("-C", f.count, "Exit after this many messages were printed (with --store: received and stored)");
  app.add_option("-W", f.timeout_seconds,
                 "Exit (code 27) after this many seconds from connecting (with --store: record this long, exit 0)");
  app.add_flag("-R", f.no_retained, "Do not print retained (stale) messages");
  app.add_flag("--retained-only", f.retained_only, "Print only retained messages; exit at the first fresh one");
  app.add_flag("--remove-retained", f.remove_retained,
               "Clear every retained message received (not those -T filters out)");
  app.add_flag("-N", f.no_eol, "Do not add a newline after each message");
  app.add_flag("-E", f.exit_after_subscribe, "Exit once the broker acknowledged the subscriptions");
  app.add_option("-F", f.format, "Output format: %t topic, %p payload, %q %r %l %m %x %X %I %U %j %J, @ strftime ...");
  app.add_flag("--pretty", f.pretty, "Spread JSON output (%j, %J, --json) over indented lines");
  app.add_flag("--json", f.json,
               "One JSON object per message: topic, payload or payload_base64, qos, retain, received_at");

  auto* store_group = app.add_option_group("Recording", "Store every message as a document instead of printing it");
  store_group->add_option("--store", f.store, "Store URI: sqlite:PATH, sqlite::memory: or mongodb://...");
  store_group->add_option("--store-file", f.store_file,
                          "Read the store URI from the first line of this file (keeps its password out of ps)");
  store_group->add_option("--db", f.database, "Database (default iot_service)");
  store_group->add_option("--collection", f.collection, "Collection (default sensors)");
  store_group->add_option("--batch", f.batch, "Documents per insert (default 1000)")->check(CLI::Range(1, 1000000));
  store_group->add_option("--flush-ms", f.flush_ms, "A partial batch waits at most this (default 100 ms)")
      ->check(CLI::Range(1, 3600000));
  store_group->add_option("--spool", f.spool,
                          "Folder for the write-ahead journal and the disk spool (default ./iotbridge-spool)");
  store_group->add_option("--topic-fields", f.topic_fields,
                          "Copy topic levels into fields: iot/{home}/{device}/{sensor}");
  store_group->add_option("--stats-interval", f.stats_interval,
                          "Print a status line to stderr every this many seconds");
  store_group->add_flag("--stats-json", f.stats_json, "Print the counters as JSON (at the intervals, and at the end)");
  // The policies: iotbridge-recorder's [[route]] keys (docs/recorder.md, "Policies").
  store_group->add_option("--dedup-key", f.dedup_key,
                          "The _id from a key, so a redelivered reading is stored once: /seq (JSON Pointer), "
                          "user_property:NAME or payload");
  store_group->add_option("--deadband", f.deadband,
                          "Store a number only when it moved at least this far from the last stored one, per topic");
  store_group->add_flag("--on-change", f.on_change, "Store a value only when it differs from the last stored one");
  store_group->add_option(
      "--heartbeat", f.heartbeat,
      "With --deadband or --on-change: store anyway after this long without a stored reading (15m)");
  store_group->add_option("--expire-after", f.expire_after,
                          "Documents older than this (by reg_date) disappear: 30d, 12h, 2s (default: kept forever)");
  store_group->add_option("--max-document-bytes", f.max_document_bytes,
                          "A larger document is quarantined as too_large (default 0: 16 MiB - 16 KiB)");
  store_group->add_option("--quarantine", f.quarantine,
                          "Collection of the readings the store refuses (default <collection>_quarantine)");
  const CLI::Option* qos_option = app.get_option("-q");

  if (auto code = parse_or_exit(app, argc, argv)) return *code;

  Connection connection;
  std::vector<mqtt::Subscription> subscriptions;
  try {
    connection = resolve_connection(conn);
    // A subscriber writes only acknowledgements: with Nagle's algorithm a
    // PUBACK can wait for the broker's delayed ACK (up to 40 ms) while the
    // broker waits for the PUBACK to send more, and at the broker's default
    // queue limit a QoS 1 burst is then dropped (bench/README.md, QoS 1 burst).
    connection.options.tcp_nodelay = true;
    if (!f.store_file.empty()) {
      if (!f.store.empty()) throw UsageError("give the store with --store or --store-file, not both.");
      f.store = read_secret_file(f.store_file, "store URI file", connection.warnings);
      if (f.store.empty()) throw UsageError("the store URI file '" + f.store_file + "' is empty.");
    }
    if (!connection.url_topic.empty()) f.topics.insert(f.topics.begin(), connection.url_topic);
    if (f.topics.empty() && f.unsubscribes.empty()) throw UsageError("give a filter to subscribe to with -t.");
    for (const auto& t : f.topics) {
      if (auto problem = filter_problem(t))
        throw UsageError("invalid subscription filter '" + t + "': " + *problem + ".");
      subscriptions.push_back(mqtt::Subscription{t, conn.qos, {}});
    }
    for (const auto& t : f.filter_outs)
      if (auto problem = filter_problem(t)) throw UsageError("invalid -T filter '" + t + "': " + *problem + ".");
    for (const auto& t : f.unsubscribes)
      if (auto problem = filter_problem(t)) throw UsageError("invalid -U filter '" + t + "': " + *problem + ".");
    if (f.count < 0) throw UsageError("invalid -C count " + std::to_string(f.count) + ": use a positive number.");
    if (f.timeout_seconds < 0) throw UsageError("invalid -W timeout: use a positive number of seconds.");
    if (f.json && !f.format.empty()) throw UsageError("--json and -F choose different outputs: give one of them.");
    if (auto problem = mqtt::format_problem(f.format)) throw UsageError(*problem);
    if (!f.store.empty()) {
      if (f.verbose || f.json || !f.format.empty() || f.no_eol || f.pretty)
        throw UsageError(
            "--store records the messages instead of printing them: drop -v, -F, -N, --json and --pretty.");
      if (!f.filter_outs.empty() || f.no_retained || f.retained_only || f.remove_retained || !f.unsubscribes.empty() ||
          f.exit_after_subscribe)
        throw UsageError(
            "--store records every message: -T, -R, -U, -E, --retained-only and --remove-retained do not apply.");
      if (f.topics.empty()) throw UsageError("give a filter to record with -t.");
      if (f.stats_interval < 0) throw UsageError("invalid --stats-interval: use a positive number of seconds.");
      f.route = store_route(f);
    } else if (!f.dedup_key.empty() || f.deadband || f.on_change || !f.heartbeat.empty() || !f.expire_after.empty() ||
               f.max_document_bytes || !f.quarantine.empty()) {
      throw UsageError(
          "--dedup-key, --deadband, --on-change, --heartbeat, --expire-after, --max-document-bytes and --quarantine "
          "are recording policies: they need --store.");
    }
  } catch (const UsageError& e) {
    report_usage_error("iotbridge-sub", e.what());
    return kExitError;
  }
  if (!conn.quiet)
    for (const auto& w : connection.warnings) std::cerr << "Warning: " << w << '\n';

  if (!f.store.empty()) return run_recorder(conn, connection, f, qos_option->count() > 0 ? conn.qos : 1);

  mqtt::OutputOptions output_options;
  output_options.style = f.json              ? mqtt::OutputStyle::json
                         : !f.format.empty() ? mqtt::OutputStyle::custom
                         : f.verbose         ? mqtt::OutputStyle::verbose
                                             : mqtt::OutputStyle::payload;
  output_options.format = f.format;
  output_options.end_of_line = !f.no_eol;
  output_options.pretty = f.pretty;
  const mqtt::MessageFormatter formatter(output_options);

  ShutdownSignal shutdown;
  std::unique_ptr<mqtt::Client> client;
  try {
    client = mqtt::make_mosquitto_client(connection.options);
  } catch (const Error& e) {
    report_error(conn.quiet, e.what());
    return kExitError;
  }
  // The network runs on this thread (client->loop()) and each message is
  // formatted in the on_message callback straight into the output buffer, as
  // mosquitto_sub does: no hand-off between threads per message.
  Output output;
  std::vector<mqtt::DeliveryToken> removals;
  std::string removal_error;
  std::uint64_t received = 0;
  int printed = 0;
  // -C reached, --retained-only saw a fresh message, or -E (which prints nothing).
  bool done = f.exit_after_subscribe;
  const bool needs_time = formatter.uses_time();
  constexpr std::size_t kFlushBytes = 64 * 1024;
  mqtt::Client& mqtt_client = *client;
  client->on_message([&](const mqtt::Message& message) {
    ++received;
    if (done) return;
    if (f.retained_only && !message.retain) {
      done = true;
      return;
    }
    if (f.no_retained && message.retain) return;
    for (const auto& out : f.filter_outs)
      if (topic_matches(out, message.topic)) return;
    if (f.remove_retained && message.retain) {
      try {
        removals.push_back(mqtt_client.publish(message.topic, "", 1, true));
      } catch (const Error& e) {
        if (removal_error.empty()) removal_error = e.what();
      }
    }
    auto received_at = needs_time ? std::chrono::system_clock::now() : std::chrono::system_clock::time_point{};
    std::string problem;
    if (!formatter.append(output.buffer(), message, received_at, &problem) && !conn.quiet) {
      output.flush();
      std::cerr << problem << '\n';
    }
    if (f.count > 0 && ++printed >= f.count) done = true;
  });
  if (auto code = connect_client(*client, conn)) return *code;
  const auto connected_at = Clock::now();

  // Runs the network until `condition` holds; false at `limit` or on a signal.
  auto pump = [&](const auto& condition, std::chrono::milliseconds limit) {
    auto until = Clock::now() + limit;
    while (!condition()) {
      if (Clock::now() >= until || shutdown.stop_requested()) return false;
      client->loop(std::chrono::milliseconds(50));
    }
    return true;
  };

  int exit_code = kExitOk;
  try {
    if (!subscriptions.empty()) {
      auto token = client->subscribe(subscriptions);
      // A broker that refuses a filter may close the connection instead of
      // answering (Mosquitto does, past 200 levels): say so, do not loop.
      bool dropped = false;
      if (!pump([&] { return token.done() || (dropped = !client->connected()); }, connection.options.connect_timeout) ||
          dropped) {
        if (shutdown.stop_requested()) {
          client->disconnect();
          return kExitOk;
        }
        report_error(conn.quiet, dropped ? "the broker closed the connection instead of answering the subscription; it "
                                           "refuses a filter (Mosquitto does so past 200 levels) or this client."
                                         : "the broker did not acknowledge the subscription in time.");
        client->disconnect();
        return kExitError;
      }
      auto granted = token.granted_qos();
      if (conn.debug) {
        std::cerr << "Subscribed (mid: " << token.mid() << "):";
        for (std::size_t i = 0; i < granted.size(); ++i) std::cerr << (i ? ", " : " ") << granted[i];
        std::cerr << '\n';
      }
      bool any_granted = false;
      for (std::size_t i = 0; i < granted.size(); ++i) {
        if (!mqtt::SubscribeResult::is_failure(granted[i])) {
          any_granted = true;
        } else if (!conn.quiet && i < subscriptions.size()) {
          std::cerr << "Warning: the broker refused the subscription to '" << subscriptions[i].filter << "' (code 0x"
                    << std::hex << granted[i] << std::dec << ").\n";
        }
      }
      if (!any_granted) {
        output.flush();
        report_error(conn.quiet, "the broker refused every subscription (check the ACL for this user).");
        client->disconnect();
        return kExitError;
      }
    }
    for (const auto& u : f.unsubscribes) {
      auto token = client->unsubscribe(u);
      pump([&] { return token.done(); }, connection.options.connect_timeout);
    }
    if (f.exit_after_subscribe) {
      client->disconnect();
      return kExitOk;
    }

    std::optional<Clock::time_point> deadline;
    if (f.timeout_seconds > 0)
      deadline =
          connected_at + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(f.timeout_seconds));
    while (!done && !shutdown.stop_requested()) {
      auto wait = output.buffer().empty() ? std::chrono::milliseconds(100) : std::chrono::milliseconds(0);
      if (deadline) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now());
        if (left <= std::chrono::milliseconds(0)) {
          output.flush();
          if (!conn.quiet) std::cerr << "Timed out\n";
          exit_code = kExitTimeout;
          break;
        }
        wait = std::min(wait, left + std::chrono::milliseconds(1));
      }
      auto before = received;
      client->loop(wait);
      // Written out whenever the socket had nothing more for us, so a person
      // watching sees each message at once; in blocks while a stream pours in.
      if (received == before || output.buffer().size() >= kFlushBytes) output.flush();
    }
    output.flush();
    pump(
        [&] {
          for (const auto& t : removals)
            if (!t.done()) return false;
          return true;
        },
        connection.options.publish_timeout);
    for (auto& t : removals) {
      try {
        if (!t.done()) throw Error(ErrorCategory::mqtt, "no acknowledgement from the broker in time");
        t.wait();
      } catch (const Error& e) {
        if (removal_error.empty()) removal_error = e.what();
      }
    }
    if (!removal_error.empty()) {
      report_error(conn.quiet, "could not clear a retained message: " + removal_error);
      exit_code = kExitError;
    }
  } catch (const Error& e) {
    output.flush();
    report_error(conn.quiet, e.what());
    exit_code = kExitError;
  }
  client->disconnect();
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) { return iotbridge::cli::guarded_main(run, argc, argv); }
