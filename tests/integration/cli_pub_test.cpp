// iotbridge-pub against a real Mosquitto, read back with Debian's
// mosquitto_sub (interop) and with iotbridge-sub: every message mode, flow
// controlled QoS 1 streams, credentials from a file or the environment, TLS.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_helpers.hpp"

using namespace iotbridge::test;

TEST_CASE("iotbridge-pub -m -f -s -n -l -r --repeat reach mosquitto_sub intact", "[cli][pub][interop]") {
  MosquittoServer broker;
  TempDir dir;
  auto args = broker_args(broker);
  auto out = dir / "received";
  auto sub = start_tool(with({find_program("mosquitto_sub"), "-t", "p/#", "-v", "-q", "2"}, args), out);
  REQUIRE(sync_subscribers(broker, "p/sync", "s", {out}, "p/sync s"));

  auto pub = [&](std::vector<std::string> extra, const std::string& input = "") {
    auto r = run_tool(with(with({iotbridge_pub()}, args), extra), input);
    INFO("stderr: " << r.err);
    REQUIRE(r.code == 0);
    CHECK(r.err.empty());
    CHECK(r.out.empty());
  };
  spit(dir / "file", std::string("bin\x00\xff\n", 6));
  pub({"-t", "p/m", "-m", "24.5", "--nodelay"});
  pub({"-t", "p/dash", "-m", "-5.5"});  // a value starting with '-' is a value, as in mosquitto_pub
  pub({"-t", "p/f", "-f", (dir / "file").string(), "-q", "1"});
  pub({"-t", "p/s", "-s", "-q", "2"}, "whole\nstdin");
  pub({"-t", "p/n", "-n"});
  pub({"-t", "p/l", "-l", "-q", "1"}, "one\n\ntwo\r\nthree");
  pub({"-t", "p/r", "-m", "again", "--repeat", "3", "--repeat-delay", "0.01"});
  pub({"-t", "p/end", "-m", "end", "-q", "2"});  // QoS 0 could overtake queued QoS 1/2 messages
  REQUIRE(wait_until([&] { return contains(slurp(out), "p/end end\n"); }));
  sub->terminate();
  std::string expected = "p/m 24.5\np/dash -5.5\np/f " + std::string("bin\x00\xff\n", 6) +
                         "\np/s whole\nstdin\np/n (null)\np/l one\np/l (null)\np/l two\r\np/l three\np/r again\np/r "
                         "again\np/r again\np/end end\n";
  CHECK(strip_leading(slurp(out), "p/sync s\n") == expected);

  // -r: a later subscriber gets the retained message; -r -n clears it.
  REQUIRE(run_tool(with({iotbridge_pub(), "-t", "p/keep", "-m", "kept", "-r", "-q", "1"}, args)).code == 0);
  auto kept = run_tool(with({"mosquitto_sub", "-t", "p/keep", "-C", "1", "-W", "5", "-F", "%r %p"}, args));
  CHECK(kept.out == "1 kept\n");
  REQUIRE(run_tool(with({iotbridge_pub(), "-t", "p/keep", "-n", "-r"}, args)).code == 0);
  CHECK(run_tool(with({"mosquitto_sub", "-t", "p/keep", "--retained-only", "-W", "1"}, args)).out.empty());
}

TEST_CASE("iotbridge-pub -l -q 1 delivers every line in order, flow controlled", "[cli][pub][flow]") {
  MosquittoServer broker;
  TempDir dir;
  auto args = broker_args(broker);
  constexpr int kLines = 20000;
  std::string lines;
  for (int i = 0; i < kLines; ++i) lines += std::to_string(i) + "\n";
  auto out = dir / "received";
  auto sub = start_tool(with({iotbridge_sub(), "-t", "flood/#", "-q", "1"}, args), out);
  REQUIRE(sync_subscribers(broker, "flood/ready", "ready", {out}, "ready"));
  auto r = run_tool(with({iotbridge_pub(), "-t", "flood/x", "-q", "1", "-l", "--stats"}, args), lines);
  CHECK(r.code == 0);
  CHECK(contains(r.err, "sent 20000, acknowledged 20000, failed 0"));
  // Every line, once, in order.
  CHECK(wait_until([&] { return strip_leading(slurp(out), "ready\n") == lines; }, std::chrono::seconds(60)));
  CHECK(sub->terminate() == 0);
}

// Issue 14: with the broker paused, more than 65536 QoS 0 messages waited
// inside the client; their packet ids repeated, tokens were lost, and the
// publisher delivered everything and then waited forever in finish().
TEST_CASE("iotbridge-pub -l: 300k QoS 0 lines across a 2 s broker pause all arrive and the publisher exits",
          "[cli][pub][flow]") {
  MosquittoServer broker;
  TempDir dir;
  auto args = broker_args(broker);
  constexpr int kLines = 300000;
  std::string lines;
  lines.reserve(kLines * 6);
  for (int i = 0; i < kLines; ++i) lines += "123.5\n";
  spit(dir / "lines", lines);
  auto out = dir / "received";
  auto sub = start_tool(with({find_program("mosquitto_sub"), "-t", "qos0/#"}, args), out);
  REQUIRE(sync_subscribers(broker, "qos0/ready", "ready", {out}, "ready"));
  auto received = [&] {
    auto text = strip_leading(slurp(out), "ready\n");
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  };
  auto pub_out = dir / "pub";
  auto pub = start_tool(with({"/bin/sh", "-c", "f=$1; shift; exec \"$@\" <\"$f\"", "sh", (dir / "lines").string(),
                              iotbridge_pub(), "-t", "qos0/backlog/1", "-l", "--stats"},
                             args),
                        pub_out);
  // Paused once the stream flows: the client's queue then grows past 65536.
  REQUIRE(wait_until([&] { return received() > 0; }));
  ::kill(broker.pid(), SIGSTOP);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the pause itself, not a wait for a condition
  ::kill(broker.pid(), SIGCONT);
  // The bound is a hang detector: the run takes a few seconds.
  bool exited = wait_until([&] { return !pub->alive(); }, std::chrono::seconds(60));
  INFO("publisher stderr: " << slurp(pub_out.string() + ".err") << "\nreceived " << received());
  REQUIRE(exited);
  CHECK(pub->terminate() == 0);
  CHECK(contains(slurp(pub_out.string() + ".err"), "sent 300000, written 300000, failed 0"));
  CHECK(wait_until([&] { return received() == kLines; }, std::chrono::seconds(60)));
  CHECK(sub->terminate() == 0);
}

TEST_CASE("iotbridge-pub -l --rate paces the lines and still delivers every one", "[cli][pub][flow]") {
  MosquittoServer broker;
  TempDir dir;
  auto args = broker_args(broker);
  constexpr int kLines = 30;
  std::string lines;
  for (int i = 0; i < kLines; ++i) lines += "line " + std::to_string(i) + "\n";
  auto out = dir / "received";
  auto sub = start_tool(with({iotbridge_sub(), "-t", "paced/#", "-q", "2"}, args), out);
  REQUIRE(sync_subscribers(broker, "paced/ready", "ready", {out}, "ready"));
  auto r = run_tool(with({iotbridge_pub(), "-t", "paced/x", "-q", "2", "-l", "--rate", "200", "--stats"}, args), lines);
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.err, "sent 30, acknowledged 30, failed 0"));
  // A lower bound only: line 30 goes out no earlier than 29 / 200 s after the first.
  auto at = r.err.find(" in ");
  REQUIRE(at != std::string::npos);
  CHECK(std::stod(r.err.substr(at + 4)) >= 0.14);
  CHECK(wait_until([&] { return strip_leading(slurp(out), "ready\n") == lines; }));
  CHECK(sub->terminate() == 0);
}

TEST_CASE("iotbridge-pub/-sub credentials: -P, --password-file, IOTBRIDGE_PASSWORD, -L URL", "[cli][auth]") {
  MosquittoServer::Options o;
  o.users = {{"alice", "s3cret"}};
  o.acl = "user alice\ntopic readwrite ok/#\n";
  MosquittoServer broker(o);
  TempDir dir;
  auto args = broker_args(broker);
  auto port = std::to_string(broker.port());

  spit(dir / "pw", "s3cret\n");
  ::chmod((dir / "pw").c_str(), 0600);
  auto from_file = run_tool(
      with({iotbridge_pub(), "-t", "ok/a", "-m", "x", "-u", "alice", "--password-file", (dir / "pw").string()}, args));
  CHECK(from_file.code == 0);
  CHECK(from_file.err.empty());

  // A password file others can read works, with a warning.
  spit(dir / "open-pw", "s3cret");
  ::chmod((dir / "open-pw").c_str(), 0644);
  auto open_file = run_tool(with(
      {iotbridge_pub(), "-t", "ok/a", "-m", "x", "-u", "alice", "--password-file", (dir / "open-pw").string()}, args));
  CHECK(open_file.code == 0);
  CHECK(contains(open_file.err, "readable by other users"));

  auto from_env = run_tool(with({iotbridge_pub(), "-t", "ok/a", "-m", "x", "-u", "alice"}, args), "",
                           {"IOTBRIDGE_PASSWORD=s3cret"});
  CHECK(from_env.code == 0);
  auto wrong_env =
      run_tool(with({iotbridge_pub(), "-t", "ok/a", "-m", "x", "-u", "alice"}, args), "", {"IOTBRIDGE_PASSWORD=wrong"});
  CHECK(wrong_env.code == 5);
  CHECK(contains(wrong_env.err, "not authorised"));

  auto url =
      run_tool({iotbridge_pub(), "-L", "mqtt://alice:s3cret@127.0.0.1:" + port + "/ok/url", "-m", "x", "-q", "1"});
  CHECK(url.code == 0);
  auto sub_url = run_tool({iotbridge_sub(), "-L", "mqtt://alice:s3cret@127.0.0.1:" + port + "/ok/url", "-E"});
  CHECK(sub_url.code == 0);

  auto wrong = run_tool(with({iotbridge_sub(), "-t", "ok/#", "-u", "alice", "-P", "nope", "-W", "5"}, args));
  CHECK(wrong.code == 5);
  auto wrong5 =
      run_tool(with({iotbridge_sub(), "-t", "ok/#", "-u", "alice", "-P", "nope", "-V", "5", "-W", "5"}, args));
  CHECK(wrong5.code == 135);
  auto anonymous = run_tool(with({iotbridge_pub(), "-t", "ok/a", "-m", "x"}, args));
  CHECK(anonymous.code == 5);
  CHECK(run_tool(with({"mosquitto_pub", "-t", "ok/a", "-m", "x"}, args)).code == anonymous.code);

  // A password typed with -P is blanked in the process's argument list (ps, /proc/PID/cmdline).
  auto shown_out = dir / "shown";
  auto shown = start_tool(with({iotbridge_sub(), "-t", "ok/#", "-u", "alice", "-P", "s3cret", "-v"}, args), shown_out);
  REQUIRE(wait_until([&] {
    run_tool(with({iotbridge_pub(), "-t", "ok/ping", "-m", "p", "-u", "alice", "-P", "s3cret"}, args));
    return contains(slurp(shown_out), "ok/ping p");
  }));
  std::string cmdline = slurp("/proc/" + std::to_string(shown->pid()) + "/cmdline");
  CHECK(contains(cmdline, std::string("-P\0******\0", 10)));
  CHECK_FALSE(contains(cmdline, "s3cret"));
  shown->terminate();

  // MQTT 5 tells the publisher about an ACL denial: exit 1 with the reason.
  auto denied = run_tool(
      with({iotbridge_pub(), "-t", "forbidden", "-m", "x", "-q", "1", "-V", "5", "-u", "alice", "-P", "s3cret"}, args));
  CHECK(denied.code == 1);
  CHECK(contains(denied.err, "not authorised"));
}

TEST_CASE("iotbridge-pub/-sub over TLS: --cafile, a wrong CA, --insecure warns", "[cli][tls]") {
  MosquittoServer::Options o;
  o.tls = true;
  MosquittoServer broker(o);
  auto tls = std::vector<std::string>{"-h", "127.0.0.1", "-p", std::to_string(broker.tls_port())};
  auto good = run_tool(
      with({iotbridge_pub(), "-t", "tls/a", "-m", "x", "-q", "1", "--cafile", broker.ca_file().string()}, tls));
  CHECK(good.code == 0);
  CHECK(good.err.empty());
  auto retained = run_tool(
      with({iotbridge_pub(), "-t", "tls/r", "-m", "secret", "-r", "--cafile", broker.ca_file().string()}, tls));
  REQUIRE(retained.code == 0);
  auto sub = run_tool(with({iotbridge_sub(), "-t", "tls/r", "-C", "1", "-W", "5", "--cafile", broker.ca_file().string(),
                            "--tls-version", "tlsv1.2"},
                           tls));
  CHECK(sub.code == 0);
  CHECK(sub.out == "secret\n");

  auto bad_ca =
      run_tool(with({iotbridge_pub(), "-t", "tls/a", "-m", "x", "--cafile", broker.other_ca_file().string()}, tls));
  CHECK(bad_ca.code == 1);
  CHECK(contains(bad_ca.err, "Error: "));
  CHECK(std::count(bad_ca.err.begin(), bad_ca.err.end(), '\n') == 1);

  auto insecure = run_tool(
      with({iotbridge_pub(), "-t", "tls/a", "-m", "x", "--cafile", broker.ca_file().string(), "--insecure"}, tls));
  CHECK(insecure.code == 0);
  CHECK(contains(insecure.err, "Warning: --insecure"));

  // Plain MQTT to the TLS port fails with one sentence.
  auto plain = run_tool(with({iotbridge_pub(), "-t", "tls/a", "-m", "x"}, tls));
  CHECK(plain.code != 0);
}

TEST_CASE("iotbridge-pub/-sub over TLS with a client certificate (--cert --key) and --capath", "[cli][tls]") {
  MosquittoServer::Options o;
  o.tls = true;
  o.require_client_certificate = true;
  MosquittoServer broker(o);
  TempDir dir;
  // A CA folder as OpenSSL looks it up: certificates under their subject hash.
  fs::create_directories(dir / "cas");
  fs::copy_file(broker.ca_file(), dir / "cas" / "ca.crt");
  REQUIRE(run_command({"openssl", "rehash", (dir / "cas").string()}) == 0);
  auto tls = std::vector<std::string>{"-h", "127.0.0.1", "-p", std::to_string(broker.tls_port())};
  auto cert = std::vector<std::string>{"--cert", broker.client_cert().string(), "--key", broker.client_key().string()};

  auto no_cert = run_tool(
      with({iotbridge_pub(), "-t", "tls/c", "-m", "x", "-q", "1", "--cafile", broker.ca_file().string()}, tls));
  INFO(no_cert.err);
  CHECK(no_cert.code == 1);
  CHECK(no_cert.err.rfind("Error: ", 0) == 0);
  CHECK(std::count(no_cert.err.begin(), no_cert.err.end(), '\n') == 1);

  auto retained = run_tool(with(with({iotbridge_pub(), "-t", "tls/c", "-m", "with a certificate", "-r", "-q", "1",
                                      "--capath", (dir / "cas").string()},
                                     tls),
                                cert));
  INFO(retained.err);
  CHECK(retained.code == 0);
  auto sub = run_tool(with(
      with({iotbridge_sub(), "-t", "tls/c", "-C", "1", "-W", "10", "--cafile", broker.ca_file().string()}, tls), cert));
  INFO(sub.err);
  CHECK(sub.code == 0);
  CHECK(sub.out == "with a certificate\n");
}

TEST_CASE("iotbridge-pub: its will (--will-topic --will-payload --will-qos --will-retain) when it vanishes",
          "[cli][pub][will]") {
  MosquittoServer broker;
  TempDir dir;
  auto args = broker_args(broker);
  auto watcher_out = dir / "watcher";
  auto watcher = start_tool(with({"mosquitto_sub", "-t", "sim/#", "-t", "status/#", "-v"}, args), watcher_out);
  REQUIRE(sync_subscribers(broker, "status/sync", "s", {watcher_out}, "status/sync s"));
  // A simulation runs until interrupted; it is connected once its first reading arrives.
  auto device =
      start_tool(with({iotbridge_pub(), "-t", "sim/device", "--simulate", "--rate", "20", "-q", "1", "--will-topic",
                       "status/device", "--will-payload", "offline", "--will-qos", "1", "--will-retain"},
                      args),
                 dir / "device");
  REQUIRE(wait_until([&] { return contains(slurp(watcher_out), "sim/device "); }));
  device->kill_hard();  // no DISCONNECT: the broker publishes the will
  REQUIRE(wait_until([&] { return contains(slurp(watcher_out), "status/device offline\n"); }));
  watcher->terminate();
  // Retained: a later subscriber is told too.
  auto later = run_tool(with({"mosquitto_sub", "-t", "status/device", "-C", "1", "-W", "5", "-v"}, args));
  CHECK(later.code == 0);
  CHECK(later.out == "status/device offline\n");
}

TEST_CASE("iotbridge-pub -D sets MQTT 5 properties that both subscribers print alike", "[cli][pub][mqtt5]") {
  MosquittoServer broker;
  TempDir dir;
  auto args = broker_args(broker);
  const std::string format = "%C|%R|%D|%E|%F|%P|%p";
  auto theirs_out = dir / "theirs";
  auto ours_out = dir / "ours";
  auto theirs =
      start_tool(with({find_program("mosquitto_sub"), "-V", "5", "-t", "d/#", "-F", format}, args), theirs_out);
  auto ours = start_tool(with({iotbridge_sub(), "-V", "5", "-t", "d/#", "-F", format}, args), ours_out);
  REQUIRE(sync_subscribers(broker, "d/sync", "s", {theirs_out, ours_out}, "|s\n"));
  auto r = run_tool(with({iotbridge_pub(),
                          "-t",
                          "d/x",
                          "-m",
                          "hi",
                          "-q",
                          "1",
                          "-D",
                          "publish",
                          "content-type",
                          "text/plain",
                          "-D",
                          "publish",
                          "user-property",
                          "k",
                          "v",
                          "-D",
                          "publish",
                          "response-topic",
                          "reply/here",
                          "-D",
                          "publish",
                          "correlation-data",
                          "c-42",
                          "-D",
                          "publish",
                          "message-expiry-interval",
                          "60",
                          "-D",
                          "publish",
                          "payload-format-indicator",
                          "1",
                          "-D",
                          "publish",
                          "user-property",
                          "k2",
                          "v 2"},
                         args));
  INFO(r.err);
  REQUIRE(r.code == 0);
  const std::string expected = "text/plain|reply/here|c-42|60|1|k:v k2:v 2|hi\n";
  REQUIRE(wait_until([&] { return contains(slurp(theirs_out), expected) && contains(slurp(ours_out), expected); }));
  theirs->terminate();
  ours->terminate();
  CHECK(strip_leading(slurp(ours_out), "||||||s\n") == strip_leading(slurp(theirs_out), "||||||s\n"));

  auto bad = run_tool(with({iotbridge_pub(), "-t", "d/x", "-m", "hi", "-D", "connect", "receive-maximum", "5"}, args));
  CHECK(bad.code == 1);
  CHECK(contains(bad.err, "only PUBLISH properties"));
  auto v311 = run_tool(
      with({iotbridge_pub(), "-t", "d/x", "-m", "hi", "-V", "311", "-D", "publish", "content-type", "x"}, args));
  CHECK(v311.code == 1);
  CHECK(contains(v311.err, "needs MQTT 5"));
}

TEST_CASE("iotbridge-pub --simulate sends readings around a base value on every topic", "[cli][pub][simulate]") {
  MosquittoServer broker;
  TempDir dir;
  auto args = broker_args(broker);
  auto out = dir / "readings";
  auto sub = start_tool(with({iotbridge_sub(), "-t", "sim/#", "-v", "-q", "1"}, args), out);
  REQUIRE(sync_subscribers(broker, "sim/sync", "s", {out}, "sim/sync s"));
  auto r = run_tool(with({iotbridge_pub(), "-t", "sim/a/temp", "-t", "sim/b/temp", "--simulate", "--count", "5",
                          "--rate", "100", "--base", "20", "--noise", "1", "-q", "1", "--stats"},
                         args));
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.err, "sent 10, acknowledged 10, failed 0"));
  REQUIRE(wait_until([&] {
    auto text = strip_leading(slurp(out), "sim/sync s\n");
    return std::count(text.begin(), text.end(), '\n') >= 10;
  }));
  sub->terminate();
  std::istringstream lines(strip_leading(slurp(out), "sim/sync s\n"));
  std::string topic, value;
  int a = 0, b = 0;
  while (lines >> topic >> value) {
    double v = std::stod(value);
    CHECK(v >= 19.0);
    CHECK(v <= 21.0);
    CHECK(value.size() == 5);  // "20.37": two decimals
    a += topic == "sim/a/temp";
    b += topic == "sim/b/temp";
  }
  CHECK(a == 5);
  CHECK(b == 5);
}
