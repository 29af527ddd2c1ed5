// iotbridge-pub: publish a message, a file, stdin, or stdin line by line, with
// mosquitto_pub's flags. Unlike mosquitto_pub, QoS 1/2 streams (-l) are flow
// controlled by the client library (a bounded number of unacknowledged
// messages), so the broker never disconnects us for flooding it, and the exit
// code is 0 only when every message was sent and, for QoS 1/2, acknowledged.
#include <stdio.h>  // getline

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/client.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"
#include "iotbridge/shutdown.hpp"
#include "iotbridge/topic.hpp"

namespace {

using namespace iotbridge;
using namespace iotbridge::cli;
using Clock = std::chrono::steady_clock;

struct PubFlags {
  std::vector<std::string> topics;
  std::string topic;
  std::optional<std::string> message;
  std::string file;
  bool stdin_line = false;
  bool stdin_file = false;
  bool null_message = false;
  bool retain = false;
  int repeat = 1;
  double repeat_delay = 0;
  double rate = 0;
  bool stats = false;
  bool simulate = false;
  double base = 24.0;
  double noise = 0.5;
  long long count = 0;
  int max_inflight = 0;
  std::vector<std::vector<std::string>> properties;  // -D command identifier [name] value
};

std::string lowercase(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::uint32_t parse_uint(const std::string& text, std::uint32_t max, const std::string& what) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || text[0] == '-' || *end != '\0' || errno != 0 || v > max)
    throw UsageError("invalid " + what + " '" + text + "': use 0 to " + std::to_string(max) + ".");
  return static_cast<std::uint32_t>(v);
}

// -D publish <property> <value> / -D publish user-property <name> <value>.
mqtt::Properties parse_properties(const std::vector<std::vector<std::string>>& groups) {
  mqtt::Properties props;
  for (const auto& g : groups) {
    if (g.size() < 3 || g.size() > 4)
      throw UsageError("-D takes a command, a property name and a value (two for user-property).");
    std::string command = lowercase(g[0]);
    if (command != "publish")
      throw UsageError("-D " + g[0] +
                       ": only PUBLISH properties can be set here (content-type, correlation-data, "
                       "message-expiry-interval, payload-format-indicator, response-topic, user-property).");
    std::string name = lowercase(g[1]);
    bool pair = name == "user-property";
    if (g.size() != (pair ? 4u : 3u))
      throw UsageError("-D publish " + g[1] + (pair ? " takes a name and a value." : " takes one value."));
    if (name == "content-type") {
      props.content_type = g[2];
    } else if (name == "correlation-data") {
      props.correlation_data = g[2];
    } else if (name == "response-topic") {
      if (auto problem = topic_problem(g[2]))
        throw UsageError("invalid response-topic '" + g[2] + "': " + *problem + ".");
      props.response_topic = g[2];
    } else if (name == "message-expiry-interval") {
      props.message_expiry_interval = parse_uint(g[2], 4294967295u, "message-expiry-interval");
    } else if (name == "payload-format-indicator") {
      props.payload_format_utf8 = parse_uint(g[2], 1, "payload-format-indicator") == 1;
    } else if (pair) {
      props.user_properties.emplace_back(g[2], g[3]);
    } else {
      throw UsageError("-D publish " + g[1] + ": unknown or unsupported property.");
    }
  }
  return props;
}

// Publishes and keeps the delivery tokens of messages not yet complete, so
// that the end of the run can wait for every acknowledgement and count the
// failures. Completed tokens are dropped as they finish: memory stays bounded
// by the client's flow-control window.
class Publisher {
 public:
  Publisher(mqtt::Client& client, std::string topic, int qos, bool retain, mqtt::Properties properties)
      : client_(client), topic_(std::move(topic)), qos_(qos), retain_(retain), properties_(std::move(properties)) {}

  void publish(std::string_view payload) { publish(topic_, payload); }
  void publish(std::string_view topic, std::string_view payload) {
    pending_.push_back(client_.publish(topic, payload, qos_, retain_, properties_));
    ++sent_;
    while (!pending_.empty() && pending_.front().done()) settle(pending_.front()), pending_.pop_front();
  }

  // Waits for every outstanding delivery, up to `timeout` each.
  void finish(std::chrono::milliseconds timeout) {
    while (!pending_.empty()) {
      auto& token = pending_.front();
      try {
        if (!token.wait_for(timeout)) {
          ++failed_;
          if (first_failure_.empty()) first_failure_ = "no acknowledgement from the broker in time";
        } else {
          settle(token);
        }
      } catch (const Error& e) {
        ++failed_;
        if (first_failure_.empty()) first_failure_ = e.what();
      }
      pending_.pop_front();
    }
  }

  std::size_t sent() const { return sent_; }
  std::size_t completed() const { return completed_; }
  std::size_t failed() const { return failed_; }
  const std::string& first_failure() const { return first_failure_; }

 private:
  void settle(const mqtt::DeliveryToken& token) {
    try {
      token.wait();
      ++completed_;
    } catch (const Error& e) {
      ++failed_;
      if (first_failure_.empty()) first_failure_ = e.what();
    }
  }

  mqtt::Client& client_;
  std::string topic_;
  int qos_;
  bool retain_;
  mqtt::Properties properties_;
  std::deque<mqtt::DeliveryToken> pending_;
  std::size_t sent_ = 0;
  std::size_t completed_ = 0;
  std::size_t failed_ = 0;
  std::string first_failure_;
};

// Paces sends at `rate` per second (0: as fast as flow control allows).
// Returns false when `stop` was requested while waiting.
class Pacer {
 public:
  explicit Pacer(double rate, const ShutdownSignal* stop = nullptr) : rate_(rate), start_(Clock::now()), stop_(stop) {}
  bool before(std::size_t index) {
    if (rate_ <= 0) return !stopped();
    auto due = start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(index / rate_));
    while (Clock::now() < due) {
      if (stopped()) return false;
      std::this_thread::sleep_until(std::min(due, Clock::now() + std::chrono::milliseconds(50)));
    }
    return !stopped();
  }

 private:
  bool stopped() const { return stop_ && stop_->stop_requested(); }
  double rate_;
  Clock::time_point start_;
  const ShutdownSignal* stop_;
};

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int run(int argc, char** argv) {
  CLI::App app{"Publish MQTT messages (mosquitto_pub compatible).", "iotbridge-pub"};
  ConnectionFlags conn;
  PubFlags f;
  app.set_version_flag("--version", "iotbridge-pub " IOTBRIDGE_VERSION, "Print the version and exit");
  add_connection_flags(app, conn);
  app.add_option("-t,--topic", f.topics, "Topic to publish to (repeatable only with --simulate)");
  app.add_option_function<std::string>(
      "-m,--message", [&f](const std::string& v) { f.message = v; }, "Send this message");
  app.add_option("-f,--file", f.file, "Send the contents of this file as one message");
  app.add_flag("-l,--stdin-line", f.stdin_line, "Send each line of stdin as a message");
  app.add_flag("-s,--stdin-file", f.stdin_file, "Send all of stdin as one message");
  app.add_flag("-n,--null-message", f.null_message, "Send an empty message");
  app.add_flag("-r,--retain", f.retain, "Ask the broker to retain the message");
  app.add_option("--repeat", f.repeat, "With -m, -f, -s or -n: send the message this many times");
  app.add_option("--repeat-delay", f.repeat_delay, "Seconds to wait between repeats");
  app.add_option("--rate", f.rate, "At most this many messages per second (with -l or --repeat)");
  app.add_option("--max-inflight", f.max_inflight,
                 "QoS 1/2 messages sent ahead of the broker's acknowledgements (default 20)")
      ->check(CLI::Range(1, 65535));
  app.add_option("-D,--property", f.properties,
                 "MQTT 5 property of the message: -D publish content-type|correlation-data|message-expiry-interval|"
                 "payload-format-indicator|response-topic VALUE, or -D publish user-property NAME VALUE (implies -V 5)")
      ->expected(3, 4)
      ->allow_extra_args();
  app.add_flag("--stats", f.stats, "Print a summary (sent, acknowledged, rate) to stderr at the end");
  auto* sim = app.add_option_group("Simulation", "Send sensor readings: a base value plus noise, on every -t topic");
  sim->add_flag("--simulate", f.simulate, "Send simulated readings (\"24.37\") instead of a message");
  sim->add_option("--base", f.base, "The value readings vary around (default 24.0)");
  sim->add_option("--noise", f.noise, "Readings are base +- up to this much (default 0.5)");
  sim->add_option("--count", f.count, "Readings per topic, then stop (default 0: until interrupted)");

  const CLI::Option* protocol_option = app.get_option("-V");
  if (auto code = parse_or_exit(app, argc, argv)) return *code;

  Connection connection;
  mqtt::Properties properties;
  try {
    if (!f.properties.empty()) {
      properties = parse_properties(f.properties);
      if (protocol_option->count() > 0 && conn.protocol != "5" && conn.protocol != "mqttv5")
        throw UsageError("-D (MQTT 5 properties) needs MQTT 5, not -V " + conn.protocol + ".");
      conn.protocol = "5";  // as mosquitto_pub: -D makes it an MQTT 5 client
    }
    connection = resolve_connection(conn);
    if (f.topics.empty() && !connection.url_topic.empty()) f.topics.push_back(connection.url_topic);
    int modes = (f.message ? 1 : 0) + (f.file.empty() ? 0 : 1) + (f.stdin_line ? 1 : 0) + (f.stdin_file ? 1 : 0) +
                (f.null_message ? 1 : 0) + (f.simulate ? 1 : 0);
    if (f.topics.empty() || modes == 0)
      throw UsageError("give a topic (-t) and a message (-m, -f, -l, -s, -n or --simulate).");
    if (modes > 1) throw UsageError("give only one of -m, -f, -l, -s, -n and --simulate.");
    if (f.topics.size() > 1 && !f.simulate)
      throw UsageError("give one topic (-t more than once only with --simulate).");
    for (const auto& t : f.topics)
      if (auto problem = topic_problem(t)) throw UsageError("invalid publish topic '" + t + "': " + *problem + ".");
    f.topic = f.topics.front();
    if (f.simulate) {
      if (f.count < 0 || f.noise < 0) throw UsageError("--count and --noise cannot be negative.");
      if (f.rate == 0) f.rate = 1;  // a sensor-like pace unless asked otherwise
    } else if (f.count != 0) {
      throw UsageError("--count applies to --simulate; use --repeat to send a message several times.");
    }
    if (f.repeat < 1) throw UsageError("invalid --repeat " + std::to_string(f.repeat) + ": use 1 or more.");
    if (f.repeat > 1 && f.stdin_line) throw UsageError("--repeat does not apply to -l.");
    if (f.repeat_delay < 0 || f.rate < 0) throw UsageError("--repeat-delay and --rate cannot be negative.");
  } catch (const UsageError& e) {
    report_usage_error("iotbridge-pub", e.what());
    return kExitError;
  }
  if (!conn.quiet)
    for (const auto& w : connection.warnings) std::cerr << "Warning: " << w << '\n';

  // The single message, read before connecting so that a bad file costs no connection.
  std::string payload;
  if (f.message) {
    payload = *f.message;
  } else if (!f.file.empty()) {
    auto content = read_file(f.file);
    if (!content) {
      report_error(false, "cannot read the file '" + f.file + "': " + std::strerror(errno) + ".");
      return kExitError;
    }
    payload = std::move(*content);
  } else if (f.stdin_file) {
    payload.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (payload.empty()) {
      report_error(false, "stdin was empty; to send an empty message use -n.");
      return kExitError;
    }
  }

  mqtt::Options options = connection.options;
  options.when_full = mqtt::WhenFull::block;  // flow control: wait for acknowledgements, never flood
  options.queue_qos0_offline = true;          // ride out a reconnect instead of failing mid-stream
  if (f.max_inflight > 0) {
    options.max_inflight = static_cast<std::size_t>(f.max_inflight);
    options.max_queued = std::max(options.max_queued, options.max_inflight);
  }
  std::unique_ptr<mqtt::Client> client;
  try {
    client = mqtt::make_mosquitto_client(options);
  } catch (const Error& e) {
    report_error(conn.quiet, e.what());
    return kExitError;
  }
  if (auto code = connect_client(*client, conn)) return *code;
  client->loop_start();

  // Only a simulation runs until interrupted; the other modes end by themselves.
  std::optional<ShutdownSignal> shutdown;
  if (f.simulate) shutdown.emplace();
  Publisher publisher(*client, f.topic, conn.qos, f.retain, properties);
  Pacer pacer(f.rate, shutdown ? &*shutdown : nullptr);
  const auto started = Clock::now();
  int exit_code = kExitOk;
  try {
    if (f.simulate) {
      std::mt19937_64 random(std::random_device{}());
      std::uniform_real_distribution<double> jitter(-f.noise, f.noise);
      char text[64];
      for (std::size_t tick = 0; f.count == 0 || tick < static_cast<std::size_t>(f.count); ++tick) {
        if (!pacer.before(tick)) break;
        for (const auto& topic : f.topics) {
          int n = std::snprintf(text, sizeof text, "%.2f", f.base + jitter(random));
          publisher.publish(topic, std::string_view(text, static_cast<std::size_t>(n)));
        }
      }
    } else if (f.stdin_line) {
      char* line = nullptr;
      std::size_t capacity = 0;
      ssize_t length = 0;
      std::size_t index = 0;
      struct FreeLine {
        char*& p;
        ~FreeLine() { std::free(p); }
      } free_line{line};
      while ((length = ::getline(&line, &capacity, stdin)) >= 0) {
        std::size_t n = static_cast<std::size_t>(length);
        if (n > 0 && line[n - 1] == '\n') --n;  // as mosquitto_pub: '\r' stays
        pacer.before(index++);
        publisher.publish(std::string_view(line, n));
      }
    } else {
      for (int i = 0; i < f.repeat; ++i) {
        if (i > 0 && f.repeat_delay > 0) {
          publisher.finish(options.publish_timeout);  // the delay counts from delivery, as mosquitto_pub's
          std::this_thread::sleep_for(std::chrono::duration<double>(f.repeat_delay));
        }
        pacer.before(static_cast<std::size_t>(i));
        publisher.publish(payload);
      }
    }
    publisher.finish(options.publish_timeout);
  } catch (const Error& e) {
    report_error(conn.quiet, e.what());
    exit_code = kExitError;
    publisher.finish(std::chrono::milliseconds(2000));
  }
  client->disconnect();
  client->loop_stop();

  if (publisher.failed() > 0) {
    report_error(conn.quiet, std::to_string(publisher.failed()) + " of " + std::to_string(publisher.sent()) +
                                 " messages were not delivered: " + publisher.first_failure() + ".");
    exit_code = kExitError;
  }
  if (f.stats || conn.debug) {
    double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    std::cerr << "iotbridge-pub: sent " << publisher.sent() << ", " << (conn.qos > 0 ? "acknowledged " : "written ")
              << publisher.completed() << ", failed " << publisher.failed() << ", in " << seconds << " s ("
              << std::llround(seconds > 0 ? static_cast<double>(publisher.sent()) / seconds : 0.0) << " msg/s)\n";
  }
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) { return iotbridge::cli::guarded_main(run, argc, argv); }
