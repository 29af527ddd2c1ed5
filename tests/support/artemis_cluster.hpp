// A cluster of Apache ActiveMQ Artemis brokers (scripts/build-artemis fetches
// it) for the scale-out tests: each node a broker instance in a temporary
// folder with an MQTT acceptor and a core (cluster) acceptor on free loopback
// ports, joined to the others by static connectors, with redistribution-delay
// 0 so that a shared subscription's messages move to a node whose subscriber
// is connected. Nodes are stopped by PID (SIGTERM) and restarted on their own
// data folder. Not thread-safe; one test thread drives it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "servers.hpp"

namespace iotbridge::test {

class ArtemisCluster {
 public:
  /// One queue's numbers, as `artemis queue stat` prints them.
  struct QueueStat {
    std::string name;
    long consumers = 0;
    long messages = 0;    // held now, including those being delivered
    long delivering = 0;  // sent to a consumer, not acknowledged yet
    long added = 0;
    long acked = 0;
  };

  /// Creates `nodes` broker instances (one `artemis create`, copied per
  /// node), starts them and waits until every node sees all the others.
  /// Throws std::runtime_error naming what is missing or which node failed,
  /// with its log.
  explicit ArtemisCluster(int nodes = 2);
  ~ArtemisCluster();  // stops every node that runs
  ArtemisCluster(const ArtemisCluster&) = delete;
  ArtemisCluster& operator=(const ArtemisCluster&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  int mqtt_port(int node) const;
  std::string mqtt_url(int node) const;  // mqtt://127.0.0.1:PORT
  pid_t pid(int node) const;             // -1 while stopped
  bool running(int node) const;
  const fs::path& dir() const { return dir_.path(); }
  std::string log(int node) const;  // this node's output since it last started

  /// SIGTERM to the node's JVM, and waits until it exited (SIGKILL after
  /// `grace`). Returns how long it took to stop.
  std::chrono::milliseconds stop(int node, std::chrono::milliseconds grace = std::chrono::seconds(60));
  /// Starts a stopped node again on its data folder (its durable queues and
  /// the messages in them come back) and waits until the cluster is whole.
  void start(int node);

  /// Waits until every running node's cluster bridges are connected and
  /// `artemis check node --up --peers N` passes on each (N: running nodes).
  /// Throws std::runtime_error after `timeout`.
  void wait_formed(std::chrono::milliseconds timeout = std::chrono::seconds(180));

  /// The queues of a running node (`artemis queue stat`: a JVM, seconds).
  std::vector<QueueStat> queues(int node);
  /// The queue of a node named `name`; nullopt when it has none.
  std::optional<QueueStat> queue(int node, const std::string& name);

  /// How long the last whole start took (the constructor, or start(node)
  /// until the cluster was formed again).
  std::chrono::milliseconds last_start_time() const { return last_start_time_; }

  /// Artemis' home folder: $IOTBRIDGE_ARTEMIS, else the one CMake was given
  /// (-DIOTBRIDGE_ARTEMIS). Throws std::runtime_error saying how to get one.
  static std::string home();

  /// The user the nodes are created with (also allowed: anonymous clients).
  static constexpr const char* kUser = "iotbridge";
  static constexpr const char* kPassword = "iotbridge";

 private:
  struct Node {
    fs::path dir;
    int core_port = 0;
    int mqtt_port = 0;
    int starts = 0;
    fs::path log;
    std::unique_ptr<Process> process;
  };
  void configure(int index);
  void launch(int index);
  bool bridges_connected(int index, std::string::size_type from) const;
  std::string core_url(int index) const;
  Node& node(int index);
  const Node& node(int index) const;

  TempDir dir_{"iotbridge-artemis"};
  std::vector<Node> nodes_;
  std::vector<std::string::size_type> log_marks_;  // where each log stood at the last (re)start
  std::chrono::milliseconds last_start_time_{0};
};

/// True when a developer opted out of the cluster tests (IOTBRIDGE_SKIP_ARTEMIS=1)
/// outside CI. In CI (CI=true) opting out is refused and the tests fail.
bool artemis_opted_out();

}  // namespace iotbridge::test

// Ends the current test case when the cluster tests are opted out; ctest then
// reports it as "Skipped" (see skip_rest_of_test), never as passed.
#define IOTBRIDGE_REQUIRE_ARTEMIS()                                                                       \
  do {                                                                                                    \
    if (::iotbridge::test::artemis_opted_out()) {                                                         \
      ::iotbridge::test::skip_rest_of_test("Artemis cluster tests opted out (IOTBRIDGE_SKIP_ARTEMIS=1)"); \
      return;                                                                                             \
    }                                                                                                     \
  } while (0)
