#include "artemis_cluster.hpp"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#ifndef IOTBRIDGE_ARTEMIS_DEFAULT
#define IOTBRIDGE_ARTEMIS_DEFAULT ""
#endif

namespace iotbridge::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// Replaces every `from` in `text` by `to`; throws when there is none (another
// Artemis version wrote a file this fixture does not know).
void replace_all(std::string& text, const std::string& from, const std::string& to, const fs::path& file) {
  auto at = text.find(from);
  if (at == std::string::npos)
    throw std::runtime_error("Artemis fixture: '" + from + "' not found in " + file.string() +
                             " (an Artemis other than 2.40?)");
  for (; at != std::string::npos; at = text.find(from, at + to.size())) text.replace(at, from.size(), to);
}

std::size_t count_of(const std::string& text, const std::string& what, std::string::size_type from) {
  std::size_t n = 0;
  for (auto at = text.find(what, from); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// The ports and name `artemis create` writes into the template; each node's
// copy gets its own.
constexpr int kTemplateCorePort = 61616;
constexpr int kTemplateMqttPort = 1883;
constexpr int kTemplatePeerPort = 61699;
constexpr const char* kTemplateName = "iotbridge-template";
// AMQ221027: "Bridge ClusterConnectionBridge@... is connected": a node's link
// to a peer is up (logged again when it reconnects after the peer restarted).
constexpr const char* kBridgeConnected = "AMQ221027";

// One `artemis create` per test process (a JVM run, seconds); nodes are copies.
const fs::path& template_instance() {
  static TempDir dir("iotbridge-artemis-template");
  static fs::path made;
  if (!made.empty()) return made;
  fs::path instance = dir / "instance";
  std::vector<std::string> argv = {
      ArtemisCluster::home() + "/bin/artemis", "create", instance.string(), "--silent", "--clustered",
      "--staticCluster", "tcp://127.0.0.1:" + std::to_string(kTemplatePeerPort), "--max-hops", "1", "--java-memory",
      "512M", "--no-web", "--user", ArtemisCluster::kUser, "--password", ArtemisCluster::kPassword, "--allow-anonymous",
      "--host", "127.0.0.1", "--name", kTemplateName, "--cluster-user", "iotbridge-cluster", "--cluster-password",
      "iotbridge-cluster", "--no-amqp-acceptor", "--no-hornetq-acceptor", "--no-stomp-acceptor",
      // Tests need no power-loss safety; a SIGTERM still stores everything.
      "--no-fsync"};
  std::string output;
  if (int rc = run_command(argv, &output); rc != 0)
    throw std::runtime_error("artemis create failed (exit " + std::to_string(rc) + "): " + output);
  made = instance;
  return made;
}

bool parse_long(std::string text, long& out) {
  auto b = text.find_first_not_of(' ');
  auto e = text.find_last_not_of(' ');
  if (b == std::string::npos) return false;
  text = text.substr(b, e - b + 1);
  char* end = nullptr;
  out = std::strtol(text.c_str(), &end, 10);
  return end && *end == '\0';
}

std::string trim(const std::string& text) {
  auto b = text.find_first_not_of(' ');
  if (b == std::string::npos) return "";
  return text.substr(b, text.find_last_not_of(' ') - b + 1);
}

}  // namespace

std::string ArtemisCluster::home() {
  std::string path = env("IOTBRIDGE_ARTEMIS");
  if (path.empty()) path = IOTBRIDGE_ARTEMIS_DEFAULT;
  if (path.empty() || ::access((path + "/bin/artemis").c_str(), X_OK) != 0)
    throw std::runtime_error("Apache Artemis not found at '" + path +
                             "': fetch it with scripts/build-artemis and reconfigure with "
                             "-DIOTBRIDGE_ARTEMIS=<the folder it prints>, or set IOTBRIDGE_ARTEMIS");
  return path;
}

bool artemis_opted_out() {
  if (env("IOTBRIDGE_SKIP_ARTEMIS") != "1") return false;
  if (env("CI") == "true" || env("CI") == "1") {
    std::cerr << "IOTBRIDGE_SKIP_ARTEMIS=1 is ignored in CI: the cluster tests must run\n";
    return false;
  }
  return true;
}

ArtemisCluster::ArtemisCluster(int nodes) {
  if (nodes < 2) throw std::invalid_argument("ArtemisCluster: a cluster needs at least 2 nodes");
  const fs::path& from = template_instance();
  auto t0 = Clock::now();
  nodes_.resize(static_cast<std::size_t>(nodes));
  log_marks_.assign(nodes_.size(), 0);
  // free_port() hands out a port that was free a moment ago; another process
  // can take it before the JVM binds it. The node then exits saying so, and
  // the cluster is made again on new ports rather than failing the test.
  constexpr int kAttempts = 3;
  for (int attempt = 1;; ++attempt) {
    for (int i = 0; i < nodes; ++i) {
      auto& n = node(i);
      if (n.process) stop(i);
      n.dir = dir_ / ("node" + std::to_string(i));
      fs::remove_all(n.dir);
      n.core_port = free_port();
      n.mqtt_port = free_port();
      n.starts = 0;
      fs::copy(from, n.dir, fs::copy_options::recursive);
    }
    for (int i = 0; i < nodes; ++i) configure(i);
    for (int i = 0; i < nodes; ++i) launch(i);
    try {
      wait_formed();
      break;
    } catch (const std::runtime_error& e) {
      if (attempt == kAttempts || std::string(e.what()).find("ddress already in use") == std::string::npos) throw;
    }
  }
  last_start_time_ = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
}

ArtemisCluster::~ArtemisCluster() {
  for (int i = 0; i < size(); ++i) {
    try {
      if (running(i)) stop(i);
    } catch (...) {
    }
  }
}

ArtemisCluster::Node& ArtemisCluster::node(int index) { return nodes_.at(static_cast<std::size_t>(index)); }
const ArtemisCluster::Node& ArtemisCluster::node(int index) const { return nodes_.at(static_cast<std::size_t>(index)); }

int ArtemisCluster::mqtt_port(int index) const { return node(index).mqtt_port; }
std::string ArtemisCluster::mqtt_url(int index) const { return "mqtt://127.0.0.1:" + std::to_string(mqtt_port(index)); }
std::string ArtemisCluster::core_url(int index) const {
  return "tcp://127.0.0.1:" + std::to_string(node(index).core_port);
}
pid_t ArtemisCluster::pid(int index) const {
  const auto& n = node(index);
  return n.process ? n.process->pid() : -1;
}
bool ArtemisCluster::running(int index) const {
  const auto& n = node(index);
  return n.process && n.process->alive();
}
std::string ArtemisCluster::log(int index) const { return read_text(node(index).log); }

// The copy's scripts name the template's folder, and its broker.xml the
// template's ports: each node gets its own folder, ports and peers.
void ArtemisCluster::configure(int index) {
  auto& n = node(index);
  const std::string from = template_instance().string();
  for (const char* file : {"bin/artemis", "etc/artemis.profile", "etc/artemis-utility.profile", "etc/bootstrap.xml"}) {
    std::string text = read_text(n.dir / file);
    replace_all(text, from, n.dir.string(), n.dir / file);
    write_text(n.dir / file, text);
  }
  fs::path xml = n.dir / "etc/broker.xml";
  std::string text = read_text(xml);
  replace_all(text, std::string("<name>") + kTemplateName + "</name>", "<name>node" + std::to_string(index) + "</name>",
              xml);
  replace_all(text, "127.0.0.1:" + std::to_string(kTemplateCorePort), "127.0.0.1:" + std::to_string(n.core_port), xml);
  replace_all(text, "127.0.0.1:" + std::to_string(kTemplateMqttPort) + "?",
              "127.0.0.1:" + std::to_string(n.mqtt_port) + "?", xml);
  std::string connectors, refs;
  for (int peer = 0; peer < size(); ++peer) {
    if (peer == index) continue;
    const std::string name = "peer" + std::to_string(peer);
    connectors += "<connector name=\"" + name + "\">" + core_url(peer) + "</connector>\n";
    refs += "<connector-ref>" + name + "</connector-ref>\n";
  }
  replace_all(text, "<connector name = \"node0\">tcp://127.0.0.1:" + std::to_string(kTemplatePeerPort) + "</connector>",
              connectors, xml);
  replace_all(text, "<connector-ref>node0</connector-ref>", refs, xml);
  // A shared subscription's messages held on a node whose subscriber left
  // move at once to a node where one is connected (default: never, -1).
  replace_all(text, "<address-setting match=\"#\">",
              "<address-setting match=\"#\">\n<redistribution-delay>0</redistribution-delay>", xml);
  // A test machine is loaded by design: the critical analyzer would halt a
  // JVM that stalls, which a test would read as lost messages; and a disk
  // fuller than 90% would block producers.
  replace_all(text, "<critical-analyzer>true</critical-analyzer>", "<critical-analyzer>false</critical-analyzer>", xml);
  replace_all(text, "<max-disk-usage>90</max-disk-usage>", "<max-disk-usage>100</max-disk-usage>", xml);
  write_text(xml, text);
}

void ArtemisCluster::launch(int index) {
  auto& n = node(index);
  n.log = n.dir / ("log/run-" + std::to_string(n.starts++) + ".log");
  fs::create_directories(n.log.parent_path());
  // bin/artemis execs the JVM: the PID is the broker's.
  n.process = std::make_unique<Process>(std::vector<std::string>{(n.dir / "bin/artemis").string(), "run"}, n.log);
}

bool ArtemisCluster::bridges_connected(int index, std::string::size_type from) const {
  int peers = 0;
  for (int i = 0; i < size(); ++i)
    if (i != index && running(i)) ++peers;
  return count_of(log(index), kBridgeConnected, from) >= static_cast<std::size_t>(peers);
}

void ArtemisCluster::wait_formed(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  auto fail = [&](int index, const std::string& why) {
    throw std::runtime_error("Artemis node " + std::to_string(index) + " (" + core_url(index) + ", MQTT " +
                             mqtt_url(index) + ") " + why + "; its log:\n" + log(index));
  };
  int peers = 0;
  for (int i = 0; i < size(); ++i)
    if (running(i)) ++peers;
  for (int i = 0; i < size(); ++i) {
    if (!node(i).process) continue;
    // Cheap conditions first (the port, the log), then the broker's own check (a JVM run).
    while (!wait_for_port(mqtt_port(i), std::chrono::milliseconds(200)) || !bridges_connected(i, log_marks_[i])) {
      if (!running(i)) fail(i, "exited while starting");
      // A port taken between free_port() and the bind: Artemis logs it and
      // may run on without that acceptor.
      if (log(i).find("ddress already in use", log_marks_[static_cast<std::size_t>(i)]) != std::string::npos)
        fail(i, "could not bind its ports");
      if (Clock::now() >= deadline) fail(i, "did not join the cluster in time");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    for (;;) {
      std::string output;
      int rc = run_command({(node(i).dir / "bin/artemis").string(), "check", "node", "--up", "--peers",
                            std::to_string(peers), "--url", core_url(i), "--user", kUser, "--password", kPassword},
                           &output);
      if (rc == 0) break;
      if (!running(i)) fail(i, "exited while starting");
      if (Clock::now() >= deadline) fail(i, "failed 'artemis check node --up --peers N': " + output);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
}

std::chrono::milliseconds ArtemisCluster::stop(int index, std::chrono::milliseconds grace) {
  auto& n = node(index);
  auto t0 = Clock::now();
  if (n.process) n.process->terminate(grace);
  n.process.reset();
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
}

void ArtemisCluster::start(int index) {
  if (running(index)) return;
  auto t0 = Clock::now();
  // The peers log their bridge reconnecting: count from here on.
  for (int i = 0; i < size(); ++i) log_marks_[static_cast<std::size_t>(i)] = i == index ? 0 : log(i).size();
  launch(index);
  wait_formed();
  last_start_time_ = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
}

std::vector<ArtemisCluster::QueueStat> ArtemisCluster::queues(int index) {
  std::string output;
  int rc = run_command({(node(index).dir / "bin/artemis").string(), "queue", "stat", "--url", core_url(index), "--user",
                        kUser, "--password", kPassword, "--maxColumnSize", "-1", "--maxRows", "1000"},
                       &output);
  if (rc != 0) throw std::runtime_error("artemis queue stat on node " + std::to_string(index) + " failed: " + output);
  // |NAME |ADDRESS |CONSUMER_COUNT |MESSAGE_COUNT |MESSAGES_ADDED |DELIVERING_COUNT |MESSAGES_ACKED |...
  std::vector<QueueStat> out;
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] != '|') continue;
    std::vector<std::string> cells;
    std::istringstream row(line.substr(1));
    std::string cell;
    while (std::getline(row, cell, '|')) cells.push_back(cell);
    QueueStat q;
    if (cells.size() < 7 || !parse_long(cells[2], q.consumers) || !parse_long(cells[3], q.messages) ||
        !parse_long(cells[4], q.added) || !parse_long(cells[5], q.delivering) || !parse_long(cells[6], q.acked))
      continue;  // the header
    q.name = trim(cells[0]);
    out.push_back(q);
  }
  return out;
}

std::optional<ArtemisCluster::QueueStat> ArtemisCluster::queue(int index, const std::string& name) {
  for (auto& q : queues(index))
    if (q.name == name) return q;
  return std::nullopt;
}

}  // namespace iotbridge::test
