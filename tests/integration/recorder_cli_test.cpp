// iotbridge-recorder as a user runs it: --check, bad files refused with
// FILE:LINE:COLUMN and exit 2 before anything starts, and a real run against
// Mosquitto with its start line, status lines and summary.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <string>

#include "cli_helpers.hpp"
#include "servers.hpp"

using namespace iotbridge::test;

namespace {

std::string recorder_tool() { return cli_tool("iotbridge-recorder"); }

// A valid file for a broker on `mqtt_port`, recording into `dir`.
std::string config_text(const TempDir& dir, int mqtt_port, const std::string& extra = "") {
  return "[mqtt]\nurl = \"mqtt://127.0.0.1:" + std::to_string(mqtt_port) + "\"\n" +
         "[store]\nuri = \"sqlite:" + (dir / "readings.db").string() + "\"\n" + "[durability]\ndir = \"" +
         (dir / "spool").string() + "\"\n" + extra +
         "[[route]]\nname = \"climate\"\nfilters = [\"iot/+/+/temp\"]\ntopic_fields = "
         "\"iot/{home}/{device}/{sensor}\"\n";
}

// A TCP socket listening on 127.0.0.1, closed on destruction: a port in use.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 1) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Listener() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace

TEST_CASE("iotbridge-recorder --check prints the routes as understood", "[service][cli]") {
  TempDir dir("iotbridge-recorder-check");
  spit(dir / "recorder.toml", config_text(dir, 1883, "[metrics]\nlisten = \"127.0.0.1:9464\"\n"));
  auto r = run_tool({recorder_tool(), "--config", (dir / "recorder.toml").string(), "--check"});
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("route climate: iot/+/+/temp -> iot_service.sensors"));
  CHECK_THAT(r.out, Catch::Contains("metrics http://127.0.0.1:9464/metrics"));
  CHECK_FALSE(fs::exists(dir / "spool"));

  auto example = run_tool(
      {recorder_tool(), "--config", std::string(IOTBRIDGE_SOURCE_DIR) + "/packaging/config/recorder.toml", "--check"});
  INFO(example.out << example.err);
  CHECK(example.code == 0);
}

TEST_CASE("iotbridge-recorder refuses a bad file with FILE:LINE:COLUMN, exit 2, nothing started", "[service][cli]") {
  TempDir dir("iotbridge-recorder-bad");
  Listener in_use;
  struct Case {
    const char* what;
    std::string text;
    std::string says;  // after "FILE:"
  };
  const std::vector<Case> cases = {
      {"unknown key", config_text(dir, 1, "[metrics]\nlisen = \"127.0.0.1:1\"\n"), "8:1: unknown key 'lisen'"},
      {"wrong type", config_text(dir, 1, "[metrics]\nlisten = 9464\n"), "8:10: [metrics] listen must be a string"},
      {"host without a port", config_text(dir, 1, "[metrics]\nlisten = \"localhost\"\n"), "8:10: [metrics] listen"},
      {"unreadable password file",
       "[mqtt]\nusername = \"u\"\npassword_file = \"" + (dir / "missing").string() + "\"\n" +
           config_text(dir, 1).substr(7),
       "3:17: cannot read the password file"},
      {"metrics address in use",
       config_text(dir, 1, "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(in_use.port()) + "\"\n"),
       "8:10: [metrics] listen: cannot listen on 127.0.0.1:" + std::to_string(in_use.port())},
  };
  for (const auto& c : cases) {
    spit(dir / "recorder.toml", c.text);
    for (bool check : {true, false}) {
      if (check && c.what == std::string("metrics address in use")) continue;  // --check binds nothing
      std::vector<std::string> argv = {recorder_tool(), "--config", (dir / "recorder.toml").string()};
      if (check) argv.push_back("--check");
      auto r = run_tool(argv);
      INFO(c.what << (check ? " (--check)" : "") << ":\n" << c.text << "\n-> " << r.err);
      CHECK(r.code == 2);
      CHECK_THAT(r.err, Catch::StartsWith("Error: " + (dir / "recorder.toml").string() + ":" + c.says));
      CHECK(r.out.empty());
      CHECK_FALSE(fs::exists(dir / "spool"));  // the durability folder is the recorder's first act
    }
  }
  auto missing = run_tool({recorder_tool(), "--config", (dir / "nope.toml").string()});
  CHECK(missing.code == 2);
  CHECK_THAT(missing.err, Catch::Contains("cannot read the configuration file"));
  auto no_config = run_tool({recorder_tool()});
  CHECK(no_config.code == 2);
  CHECK_THAT(no_config.err, Catch::Contains("--config FILE"));
}

TEST_CASE("iotbridge-recorder records, says so, and ends with a summary", "[service][cli]") {
  TempDir dir("iotbridge-recorder-run");
  MosquittoServer broker;
  spit(dir / "recorder.toml", config_text(dir, broker.port()));
  auto out = dir / "recorder.out";
  auto recorder =
      start_tool({recorder_tool(), "--config", (dir / "recorder.toml").string(), "--status-interval", "0.05"}, out);
  auto err = fs::path(out.string() + ".err");
  REQUIRE(wait_until([&] { return contains(slurp(err), "recording mqtt://127.0.0.1:"); }));
  // Retained: the recorder gets them whenever its subscription lands.
  for (int i = 0; i < 3; ++i)
    REQUIRE(run_command({"mosquitto_pub", "-p", std::to_string(broker.port()), "-t",
                         "iot/home1/dev" + std::to_string(i) + "/temp", "-m", std::to_string(20 + i), "-q", "1",
                         "-r"}) == 0);
  REQUIRE(wait_until([&] { return contains(slurp(err), "stored 3 pend 0"); }));
  int status = recorder->terminate();
  std::string text = slurp(err);
  INFO(text);
  CHECK(status == 0);
  CHECK_THAT(text, Catch::Contains("route climate ("));
  CHECK_THAT(text, Catch::Contains("received 3, stored 3, pending 0"));
  // The last line is the summary, never a status line saying the broker is down.
  auto last = text.substr(text.rfind('\n', text.size() - 2) + 1);
  CHECK_THAT(last, Catch::StartsWith("stopped after"));
  CHECK_THAT(last, !Catch::Contains("DOWN"));
  auto rows = run_tool({cli_tool("iotbridge-db"), "--store", "sqlite:" + (dir / "readings.db").string(), "count",
                        "iot_service", "sensors"});
  CHECK(rows.out == "3\n");
}
