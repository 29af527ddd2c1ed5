// iotbridge-pub: publish a message, a file, stdin, or stdin line by line, with
// mosquitto_pub's flags. Unlike mosquitto_pub, QoS 1/2 streams (-l) are flow
// controlled by the client library (a bounded number of unacknowledged
// messages), so the broker never disconnects us for flooding it, and the exit
// code is 0 only when every message was sent and, for QoS 1/2, acknowledged.
#include <stdio.h>  // getline

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "common.hpp"
#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/client.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"
#include "iotbridge/topic.hpp"

namespace {

using namespace iotbridge;
using namespace iotbridge::cli;
using Clock = std::chrono::steady_clock;

struct PubFlags {
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
  int max_inflight = 0;
};

// Publishes and keeps the delivery tokens of messages not yet complete, so
// that the end of the run can wait for every acknowledgement and count the
// failures. Completed tokens are dropped as they finish: memory stays bounded
// by the client's flow-control window.
class Publisher {
 public:
  Publisher(mqtt::Client& client, std::string topic, int qos, bool retain)
      : client_(client), topic_(std::move(topic)), qos_(qos), retain_(retain) {}

  void publish(std::string_view payload) {
    pending_.push_back(client_.publish(topic_, payload, qos_, retain_));
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
  std::deque<mqtt::DeliveryToken> pending_;
  std::size_t sent_ = 0;
  std::size_t completed_ = 0;
  std::size_t failed_ = 0;
  std::string first_failure_;
};

// Paces sends at `rate` per second (0: as fast as flow control allows).
class Pacer {
 public:
  explicit Pacer(double rate) : rate_(rate), start_(Clock::now()) {}
  void before(std::size_t index) {
    if (rate_ <= 0) return;
    auto due = start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(index / rate_));
    std::this_thread::sleep_until(due);
  }

 private:
  double rate_;
  Clock::time_point start_;
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
  add_connection_flags(app, conn);
  app.add_option("-t,--topic", f.topic, "Topic to publish to");
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
  app.add_flag("--stats", f.stats, "Print a summary (sent, acknowledged, rate) to stderr at the end");

  if (auto code = parse_or_exit(app, argc, argv)) return *code;

  Connection connection;
  try {
    connection = resolve_connection(conn);
    if (f.topic.empty()) f.topic = connection.url_topic;
    int modes = (f.message ? 1 : 0) + (f.file.empty() ? 0 : 1) + (f.stdin_line ? 1 : 0) + (f.stdin_file ? 1 : 0) +
                (f.null_message ? 1 : 0);
    if (f.topic.empty() || modes == 0)
      throw UsageError("give a topic (-t) and a message (-m, -f, -l, -s or -n).");
    if (modes > 1) throw UsageError("give only one of -m, -f, -l, -s and -n.");
    if (auto problem = topic_problem(f.topic))
      throw UsageError("invalid publish topic '" + f.topic + "': " + *problem + ".");
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

  Publisher publisher(*client, f.topic, conn.qos, f.retain);
  Pacer pacer(f.rate);
  const auto started = Clock::now();
  int exit_code = kExitOk;
  try {
    if (f.stdin_line) {
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
    std::cerr << "iotbridge-pub: sent " << publisher.sent() << ", "
              << (conn.qos > 0 ? "acknowledged " : "written ") << publisher.completed() << ", failed "
              << publisher.failed() << ", in " << seconds << " s ("
              << static_cast<long long>(seconds > 0 ? publisher.sent() / seconds : 0) << " msg/s)\n";
  }
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "Error: " << e.what() << '\n';
    return kExitError;
  }
}
