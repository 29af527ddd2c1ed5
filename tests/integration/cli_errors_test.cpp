// Every error path of iotbridge-pub / iotbridge-sub: one "Error: ..." sentence
// on stderr (plus the --help hint for usage errors), nothing on stdout, and
// the exit code mosquitto_pub / mosquitto_sub return for the same mistake.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "cli_helpers.hpp"

using namespace iotbridge::test;

namespace {

struct ErrorCase {
  bool pub;                       // iotbridge-pub, else iotbridge-sub
  std::vector<std::string> args;  // after -h/-p of the broker
  int code;
  const char* says;        // a piece of the sentence
  bool usage;              // a usage error: the --help hint follows
  bool same_as_mosquitto;  // mosquitto_pub/sub take the same flags and return the same code
};

}  // namespace

TEST_CASE("iotbridge-pub/-sub: bad flags and values, one sentence and mosquitto's exit code", "[cli][errors]") {
  MosquittoServer broker;
  TempDir dir;
  const std::vector<ErrorCase> cases = {
      {false, {"--bogus"}, 1, "--bogus", true, true},
      {false, {}, 1, "give a filter to subscribe to with -t", true, true},
      {false, {"-t", "a/#/b"}, 1, "invalid subscription filter 'a/#/b'", true, true},
      {false, {"-t", "a/b#"}, 1, "invalid subscription filter", true, true},
      {false, {"-t", "a", "-T", "x/+y"}, 1, "invalid -T filter", true, false},
      {false, {"-t", "a", "-q", "3"}, 1, "invalid QoS 3", true, true},
      {false, {"-t", "a", "-k", "2"}, 1, "invalid keepalive 2", true, true},
      {false, {"-t", "a", "-V", "7"}, 1, "invalid protocol version '7'", true, true},
      {false, {"-t", "a", "-c"}, 1, "needs a client id", true, true},
      {false, {"-t", "a", "-i", "x", "-I", "y"}, 1, "-i and -I cannot be used together", true, true},
      {false, {"-t", "a", "-P", "x"}, 1, "a password needs a user name", true, true},
      {false, {"-t", "a", "--will-payload", "x"}, 1, "need --will-topic", true, false},
      {false, {"-t", "a", "--will-topic", "w/#"}, 1, "invalid will topic", true, false},
      {false, {"-t", "a", "--cert", "c.pem"}, 1, "--cert and --key go together", true, false},
      {false, {"-t", "a", "--tls-version", "sslv3"}, 1, "invalid --tls-version", true, false},
      {false, {"-t", "a", "--json", "-F", "%t"}, 1, "--json and -F", true, false},
      {false, {"-t", "a", "-x", "60"}, 1, "needs MQTT 5", true, false},
      {false, {"-t", "a", "-V", "5", "-x", "60"}, 1, "needs a client id", true, false},
      {false, {"-t", "a", "-V", "5", "-x", "soon", "-i", "x"}, 1, "invalid session expiry 'soon'", true, false},
      {false, {"-t", "a", "-V", "5", "-x", "0", "-c", "-i", "x"}, 1, "-x 0 contradicts -c", true, false},
      {false,
       {"-t", "a", "-u", "u", "--password-file", "/nonexistent/pw"},
       1,
       "cannot read the password file",
       true,
       false},
      {false, {"-t", "a", "-u", "u", "-P", "p", "--password-file", "pw"}, 1, "not both", true, false},
      {true, {"-t", "a/#", "-m", "x"}, 1, "invalid publish topic 'a/#'", true, true},
      {true, {"-t", "a/+", "-m", "x"}, 1, "invalid publish topic 'a/+'", true, true},
      {true, {"-m", "x"}, 1, "give a topic (-t) and a message", true, true},
      {true, {"-t", "a"}, 1, "give a topic (-t) and a message", true, true},
      {true, {"-t", "a", "-m", "x", "-n"}, 1, "give only one of", true, true},
      {true, {"-t", "a", "-m", "x", "-q", "3"}, 1, "invalid QoS 3", true, true},
      {true, {"-t", "a", "-f", "/nonexistent/file"}, 1, "cannot read the file '/nonexistent/file'", false, true},
      {true, {"-t", "a", "-s"}, 1, "stdin was empty", false, true},
      {true, {"-t", "a", "-l", "--repeat", "2"}, 1, "--repeat does not apply to -l", true, false},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv = {c.pub ? iotbridge_pub() : iotbridge_sub(), "-h", broker.host(), "-p",
                                     std::to_string(broker.port())};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    std::string shown;
    for (const auto& a : c.args) shown += a + " ";
    INFO((c.pub ? "iotbridge-pub " : "iotbridge-sub ") << shown);
    auto r = run_tool(argv);
    CHECK(r.code == c.code);
    CHECK(r.out.empty());
    CHECK(r.err.rfind("Error: ", 0) == 0);
    CHECK(contains(r.err, c.says));
    if (c.usage) {
      CHECK(contains(r.err, "--help' to see usage.\n"));
      CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 2);
    } else {
      CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    }
    if (c.same_as_mosquitto) {
      argv[0] = c.pub ? "mosquitto_pub" : "mosquitto_sub";
      CHECK(run_tool(argv).code == c.code);
    }
  }
}

TEST_CASE("iotbridge-pub/-sub: unreachable broker, and --quiet", "[cli][errors]") {
  int port = free_port();  // nothing listens there
  for (const bool pub : {true, false}) {
    std::vector<std::string> argv = {
        pub ? iotbridge_pub() : iotbridge_sub(), "-h", "127.0.0.1", "-p", std::to_string(port), "-t", "a"};
    if (pub) argv.insert(argv.end(), {"-m", "x"});
    auto r = run_tool(argv);
    INFO(r.err);
    CHECK(r.code == 1);
    CHECK(r.err.rfind("Error: cannot connect to mqtt://127.0.0.1:" + std::to_string(port), 0) == 0);
    CHECK(contains(r.err, "connection refused"));
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    argv[0] = pub ? "mosquitto_pub" : "mosquitto_sub";
    CHECK(run_tool(argv).code == 1);

    argv[0] = pub ? iotbridge_pub() : iotbridge_sub();
    argv.push_back("--quiet");
    auto quiet = run_tool(argv);
    CHECK(quiet.code == 1);
    CHECK(quiet.err.empty());
  }
}
