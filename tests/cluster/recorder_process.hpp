// iotbridge-recorder as an operator runs it on a cluster node: its own
// process, a configuration file (one route, a persistent session, a metrics
// endpoint on a free loopback port), stopped by PID with SIGTERM. The tests
// read its counters from /metrics while it runs and its summary line at the
// stop. Not thread-safe; one test thread drives each.
#pragma once

#include <httplib.h>

#include <chrono>
#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli_helpers.hpp"
#include "servers.hpp"

namespace iotbridge::test {

class RecorderProcess {
 public:
  struct Config {
    std::string name;               // client id, spool folder and log names
    std::vector<std::string> urls;  // the broker node(s): mqtt://127.0.0.1:PORT
    std::string protocol = "5";     // "5" or "3.1.1"
    std::string filter;             // e.g. $share/recorders/iot/cluster/#
    std::string store_uri;
    std::string database;
    std::string dedup_key;  // empty: none
  };

  RecorderProcess(const fs::path& dir, Config config) : config_(std::move(config)), dir_(dir / config_.name) {
    fs::create_directories(dir_);
    metrics_port_ = free_port();
    std::string text = "[mqtt]\n";
    if (config_.urls.size() == 1) {
      text += "url = \"" + config_.urls[0] + "\"\n";
    } else {
      text += "urls = [";
      for (std::size_t i = 0; i < config_.urls.size(); ++i) text += (i ? ", \"" : "\"") + config_.urls[i] + "\"";
      text += "]\n";
    }
    text += "client_id = \"" + config_.name + "\"\nclean_session = false\nprotocol = \"" + config_.protocol + "\"\n" +
            "[store]\nuri = \"" + config_.store_uri + "\"\ndatabase = \"" + config_.database +
            "\"\nbatch_size = 200\nflush_ms = 20\n" + "[durability]\ndir = \"" + (dir_ / "spool").string() +
            "\"\nsync = false\n" + "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port_) + "\"\n" +
            "[[route]]\nname = \"stream\"\nfilters = [\"" + config_.filter + "\"]\n";
    if (!config_.dedup_key.empty()) text += "dedup_key = \"" + config_.dedup_key + "\"\n";
    spit(dir_ / "recorder.toml", text);
    process_ = start_tool(
        {cli_tool("iotbridge-recorder"), "--config", (dir_ / "recorder.toml").string(), "--status-interval", "1"},
        dir_ / "recorder.out");
    bool up = wait_until([&] { return !process_->alive() || metric("iotbridge_mqtt_connected") == 1.0; },
                         std::chrono::seconds(60));
    if (!up || !process_->alive())
      throw std::runtime_error("iotbridge-recorder " + config_.name + " did not start: " + output());
  }
  ~RecorderProcess() {
    if (process_) process_->terminate(std::chrono::seconds(60));
  }
  RecorderProcess(const RecorderProcess&) = delete;
  RecorderProcess& operator=(const RecorderProcess&) = delete;

  const std::string& name() const { return config_.name; }
  bool alive() { return process_ && process_->alive(); }
  /// SIGSTOP / SIGCONT: a recorder that stops reading (its connection stays
  /// open, so the broker keeps it as the group's consumer on its node).
  void pause() { process_->signal(SIGSTOP); }
  void resume() { process_->signal(SIGCONT); }

  /// A metric from /metrics ("iotbridge_readings_received_total": the route
  /// "stream"'s value for a per-route one); nullopt when not answering.
  std::optional<double> metric(const std::string& metric_name) const {
    httplib::Client client("127.0.0.1", metrics_port_);
    client.set_connection_timeout(2);
    client.set_read_timeout(5);
    auto r = client.Get("/metrics");
    if (!r || r->status != 200) return std::nullopt;
    for (const std::string& prefix : {metric_name + "{route=\"stream\"} ", metric_name + " "}) {
      auto at = r->body.find("\n" + prefix);
      if (at != std::string::npos) return std::stod(r->body.substr(at + 1 + prefix.size()));
    }
    return std::nullopt;
  }
  double received() const { return metric("iotbridge_readings_received_total").value_or(-1); }
  double pending() const { return metric("iotbridge_readings_pending").value_or(-1); }

  /// SIGTERM; waits until it stored what it holds and exited. Returns the
  /// exit status; summary() then has its last line.
  int stop() {
    int status = process_->terminate(std::chrono::seconds(60));
    process_.reset();
    return status;
  }
  /// Everything it printed (start line, status lines, summary).
  std::string output() const { return slurp(fs::path(dir_ / "recorder.out.err")); }
  /// "stopped after ...: received N, stored N, pending 0, spooled 0[, duplicates D]".
  std::string summary() const {
    std::string text = output();
    auto at = text.rfind("stopped after");
    return at == std::string::npos ? "" : text.substr(at, text.find('\n', at) - at);
  }
  /// A number of the summary line ("received", "duplicates"); 0 when absent.
  long summary_count(const std::string& word) const {
    std::string s = summary();
    auto at = s.find(" " + word + " ");
    return at == std::string::npos ? 0 : std::stol(s.substr(at + word.size() + 2));
  }

 private:
  Config config_;
  fs::path dir_;
  int metrics_port_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace iotbridge::test
