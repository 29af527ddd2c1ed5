// Helpers for the CLI tests: run the built iotbridge-pub / iotbridge-sub (and
// Debian's mosquitto_pub / mosquitto_sub) with given stdin, capturing stdout
// and stderr apart; start subscribers in the background and wait, by polling
// their output, until they receive. Not thread-safe; one test thread each.
#pragma once

#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "servers.hpp"

namespace iotbridge::test {

/// argv `a` followed by `b`: a command line built from shared parts.
inline std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

inline std::string cli_tool(const std::string& name) { return std::string(IOTBRIDGE_BINARY_DIR) + "/cli/" + name; }
inline std::string iotbridge_pub() { return cli_tool("iotbridge-pub"); }
inline std::string iotbridge_sub() { return cli_tool("iotbridge-sub"); }

inline std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void spit(const fs::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

struct ToolResult {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs argv (a program name on PATH or a path) to completion with `input` on
// stdin; `env` entries ("NAME=value") are added to its environment.
inline ToolResult run_tool(const std::vector<std::string>& argv, const std::string& input = "",
                           const std::vector<std::string>& env = {}) {
  TempDir dir("iotbridge-cli-run");
  spit(dir / "in", input);
  std::vector<std::string> cmd = {"sh",
                                  "-c",
                                  "in=$1; err=$2; shift 2; exec \"$@\" <\"$in\" 2>\"$err\"",
                                  "sh",
                                  (dir / "in").string(),
                                  (dir / "err").string()};
  if (!env.empty()) {
    cmd.push_back("env");
    cmd.insert(cmd.end(), env.begin(), env.end());
  }
  cmd.insert(cmd.end(), argv.begin(), argv.end());
  ToolResult r;
  r.code = run_command(cmd, &r.out);
  r.err = slurp(dir / "err");
  return r;
}

// A tool running in the background: stdout to `out`, stderr to `out`.err.
inline std::unique_ptr<Process> start_tool(const std::vector<std::string>& argv, const fs::path& out) {
  std::vector<std::string> cmd = {"/bin/sh", "-c", "err=$1; shift; exec \"$@\" 2>\"$err\"", "sh",
                                  out.string() + ".err"};
  cmd.insert(cmd.end(), argv.begin(), argv.end());
  return std::make_unique<Process>(cmd, out);
}

// Polls `condition` every 10 ms; false when `timeout` passes first.
inline bool wait_until(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Publishes `payload` to `topic` with mosquitto_pub until every file in
// `outputs` shows `marker`: then each of those subscribers is subscribed.
inline bool sync_subscribers(const MosquittoServer& broker, const std::string& topic, const std::string& payload,
                             const std::vector<fs::path>& outputs, const std::string& marker) {
  return wait_until([&] {
    run_command(
        {"mosquitto_pub", "-h", broker.host(), "-p", std::to_string(broker.port()), "-t", topic, "-m", payload});
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (const auto& f : outputs)
      if (!contains(slurp(f), marker)) return false;
    return true;
  });
}

// `text` without its leading repetitions of `unit` (the sync messages).
inline std::string strip_leading(std::string text, const std::string& unit) {
  while (!unit.empty() && text.compare(0, unit.size(), unit) == 0) text.erase(0, unit.size());
  return text;
}

inline std::vector<std::string> broker_args(const MosquittoServer& broker) {
  return {"-h", broker.host(), "-p", std::to_string(broker.port())};
}

}  // namespace iotbridge::test
