// Test fixtures for real servers: a Mosquitto broker and a MongoDB-compatible
// server (FerretDB, or the mongod named by IOTBRIDGE_TEST_MONGO_URI), each on a
// free loopback port in a temporary folder, stopped by PID when the fixture
// goes. Also the small helpers they need: temporary folders, free ports,
// child processes. Not thread-safe; one test thread drives each fixture.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace iotbridge::test {

namespace fs = std::filesystem;

// A fresh folder under $TMPDIR, removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "iotbridge-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// A loopback TCP port that was free a moment ago (bound to port 0, then closed).
int free_port();

// Waits until something accepts TCP connections on 127.0.0.1:port; false on timeout.
bool wait_for_port(int port, std::chrono::milliseconds timeout);

// Where a program lives: PATH, then /usr/sbin and /sbin. Empty when absent.
std::string find_program(const std::string& name);

// Runs a command to completion; returns its exit code (-1 if it could not run).
// Its stdout is appended to *output when given; stderr goes to the test log.
int run_command(const std::vector<std::string>& argv, std::string* output = nullptr);

// A child process, killed (SIGKILL) if the test process dies first.
class Process {
 public:
  // Starts argv; stdout and stderr go to `log`.
  Process(std::vector<std::string> argv, const fs::path& log);
  ~Process();  // terminate()
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool alive();
  // SIGTERM, then SIGKILL after `grace`; reaps the child. Returns its exit status.
  int terminate(std::chrono::milliseconds grace = std::chrono::seconds(5));
  void kill_hard();  // SIGKILL and reap
  void signal(int sig);

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// A Mosquitto broker on a free loopback port with a generated configuration.
class MosquittoServer {
 public:
  struct Options {
    bool persistence = false;                                // keep sessions across restart()
    std::vector<std::pair<std::string, std::string>> users;  // password file; disables anonymous
    std::string acl;                                         // ACL file text ("user NAME\ntopic read a/#" ...)
    bool tls = false;                                        // also a TLS listener (tls_port())
    bool require_client_certificate = false;
    // The broker certificate's subjectAltName; the default covers 127.0.0.1,
    // ::1 and localhost. Another name makes a host name mismatch.
    std::string tls_subject_alt_name = "IP:127.0.0.1,IP:::1,DNS:localhost";
    std::string extra_config;  // appended verbatim
  };

  MosquittoServer();  // default options
  explicit MosquittoServer(Options options);
  ~MosquittoServer();

  int port() const { return port_; }
  int tls_port() const { return tls_port_; }
  std::string host() const { return "127.0.0.1"; }
  pid_t pid() const;
  const fs::path& dir() const { return dir_.path(); }
  // With tls: the CA that signed the broker's certificate, a client cert/key
  // it signed, and a CA that did not sign anything here (for failure tests).
  fs::path ca_file() const { return dir_ / "ca.crt"; }
  fs::path client_cert() const { return dir_ / "client.crt"; }
  fs::path client_key() const { return dir_ / "client.key"; }
  fs::path other_ca_file() const { return dir_ / "other-ca.crt"; }
  std::string log() const;

  void stop();   // SIGTERM and wait
  void kill();   // SIGKILL
  void start();  // (again) on the same ports, same config
  void restart() {
    stop();
    start();
  }

 private:
  void write_config();
  Options options_;
  TempDir dir_;
  int port_;
  int tls_port_ = 0;
  std::unique_ptr<Process> process_;
};

// A MongoDB-compatible server. start_ferretdb() runs FerretDB 1.x (SQLite
// backend) built by scripts/build-ferretdb, on a free port.
class MongoServer {
 public:
  // Throws std::runtime_error naming the server and why it cannot start.
  MongoServer();
  ~MongoServer();

  std::string uri() const;  // mongodb://127.0.0.1:PORT/
  int port() const { return port_; }
  pid_t pid() const;
  void stop();
  void start();
  void pause();   // SIGSTOP: the server hangs, connections stall
  void resume();  // SIGCONT

  // The FerretDB binary: $IOTBRIDGE_FERRETDB, else the path CMake found.
  static std::string ferretdb_binary();

 private:
  TempDir dir_;
  int port_;
  std::unique_ptr<Process> process_;
};

// The URI MongoDB tests use: $IOTBRIDGE_TEST_MONGO_URI when set, else a
// FerretDB started once for this test process. Throws std::runtime_error
// (naming the server and the reason) when neither can be had.
std::string test_mongo_uri();

// True when a developer opted out of the MongoDB tests (IOTBRIDGE_SKIP_MONGO=1)
// outside CI. In CI (CI=true) opting out is refused and the tests fail.
bool mongo_opted_out();

// Marks the rest of the current test case as not run, for `reason`. At the
// end of the test case a listener (catch_main.cpp) prints the line that ctest's
// SKIP_REGULAR_EXPRESSION reports as "Skipped" -- but only when nothing in the
// test case failed: a failure in the part that did run (the SQLite half of a
// two-backend test, say) must stay a failure, not hide behind "Skipped".
void skip_rest_of_test(const std::string& reason);
// The reason given to skip_rest_of_test in the current test case, taken (the
// listener calls this once per test case); empty when nothing was skipped.
std::string take_skip_reason();

// A database name no other test uses (tests share a server when
// IOTBRIDGE_TEST_MONGO_URI is set).
std::string unique_db_name(const std::string& prefix = "iotb_test");

}  // namespace iotbridge::test

// Ends the current test case when MongoDB tests are opted out; ctest then
// reports it as "Skipped" (see skip_rest_of_test), or as failed when an
// assertion before this point failed.
#define IOTBRIDGE_REQUIRE_MONGO()                                                               \
  do {                                                                                          \
    if (::iotbridge::test::mongo_opted_out()) {                                                 \
      ::iotbridge::test::skip_rest_of_test("MongoDB tests opted out (IOTBRIDGE_SKIP_MONGO=1)"); \
      return;                                                                                   \
    }                                                                                           \
  } while (0)
