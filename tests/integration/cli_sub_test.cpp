// iotbridge-sub against a real Mosquitto: its output compared byte for byte
// with mosquitto_sub's for the same stream, and its mosquitto_sub flags
// (-T -R -C -W -E -U -N -c, --retained-only, --remove-retained, -F, --json).
#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_helpers.hpp"
#include "iotbridge/mqtt/format.hpp"

using namespace iotbridge::test;

namespace {

// Publishes a stream with every kind of payload, each with mosquitto_pub.
void publish_mixed_stream(const MosquittoServer& broker, const TempDir& dir) {
  auto args = broker_args(broker);
  auto pub = [&](std::vector<std::string> extra, const std::string& input = "") {
    auto r = run_tool(with(with({"mosquitto_pub"}, args), extra), input);
    REQUIRE(r.code == 0);
  };
  spit(dir / "binary", std::string("\x00\x01\xff\xfe bin\n\x7f", 10));
  spit(dir / "big", std::string(100000, 'x') + "end");
  pub({"-t", "cmp/a", "-m", "hello"});
  pub({"-t", "cmp/b", "-n", "-q", "1"});
  pub({"-t", "cmp/c", "-m", "line1\nline2", "-q", "2"});
  pub({"-t", "cmp/d", "-f", (dir / "binary").string()});
  pub({"-t", "cmp/e/deep", "-m", "h\u00e9llo \u00fc \u6e29\u5ea6", "-q", "1"});
  pub({"-t", "cmp/f", "-f", (dir / "big").string()});
  pub({"-t", "cmp/with space", "-m", "x y"});
  pub({"-t", "cmp/json", "-m", R"({"temperature":27.0,"humidity":57})"});
  std::string lines;
  for (int i = 0; i < 500; ++i) lines += "reading " + std::to_string(i) + (i % 7 == 0 ? "\r" : "") + "\n";
  pub({"-t", "cmp/lines", "-l", "-q", "1"}, lines);
}

}  // namespace

TEST_CASE("iotbridge-sub prints exactly what mosquitto_sub prints (default, -v, -N, -F)", "[cli][sub][interop]") {
  MosquittoServer broker;
  TempDir dir;
  // Format fields that do not depend on the receive time or on the message id.
  const std::string format = "%t|%p|%q|%r|%l|%x|%X|%5.2t|%-10p|%010l|%-6l|@@|%%|\\t";
  struct Mode {
    std::string name;
    std::vector<std::string> flags;
  };
  const std::vector<Mode> modes = {
      {"default", {}}, {"verbose", {"-v"}}, {"no-eol", {"-N"}}, {"format", {"-F", format}}};

  std::vector<std::unique_ptr<iotbridge::test::Process>> processes;
  std::vector<fs::path> outputs;
  for (const auto& mode : modes) {
    for (const std::string tool : {"mosquitto_sub", "iotbridge-sub"}) {
      std::string program = tool == "mosquitto_sub" ? find_program("mosquitto_sub") : iotbridge_sub();
      fs::path out = dir / (tool + "-" + mode.name);
      processes.push_back(
          start_tool(with(with({program, "-t", "cmp/#", "-q", "2"}, broker_args(broker)), mode.flags), out));
      outputs.push_back(out);
    }
  }
  REQUIRE(sync_subscribers(broker, "cmp/sync", "sync", outputs, "sync"));
  publish_mixed_stream(broker, dir);
  // The end marker goes at QoS 1 like the lines before it: Mosquitto sends a
  // QoS 0 message at once even while a subscriber's QoS 1/2 window is full, so
  // a QoS 0 marker could overtake the last queued lines (seen under load).
  REQUIRE(run_command({"mosquitto_pub", "-h", broker.host(), "-p", std::to_string(broker.port()), "-t", "cmp/end", "-m",
                       "end-of-stream", "-q", "1"}) == 0);
  REQUIRE(wait_until([&] {
    for (const auto& f : outputs)
      if (!contains(slurp(f), "end-of-stream")) return false;
    return true;
  }));
  for (auto& p : processes) p->terminate();

  for (std::size_t i = 0; i < modes.size(); ++i) {
    const auto& mode = modes[i];
    iotbridge::mqtt::Message sync;
    sync.topic = "cmp/sync";
    sync.payload = "sync";
    iotbridge::mqtt::OutputOptions o;
    o.style = mode.name == "verbose"  ? iotbridge::mqtt::OutputStyle::verbose
              : mode.name == "format" ? iotbridge::mqtt::OutputStyle::custom
                                      : iotbridge::mqtt::OutputStyle::payload;
    o.format = format;
    o.end_of_line = mode.name != "no-eol";
    std::string sync_text = iotbridge::mqtt::MessageFormatter(o).format(sync, {});
    std::string theirs = strip_leading(slurp(outputs[2 * i]), sync_text);
    std::string ours = strip_leading(slurp(outputs[2 * i + 1]), sync_text);
    INFO("mode " << mode.name);
    CHECK(theirs.size() > 100000);
    CHECK(ours.size() == theirs.size());
    CHECK(ours == theirs);
    CHECK(slurp(outputs[2 * i + 1].string() + ".err").empty());
  }
}

// The line of `text` that starts with `prefix` (empty when none).
std::string line_starting(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) return line;
  return {};
}

// Issue 14: -F dropped unknown codes silently, and -d printed "mid: 0".
TEST_CASE("iotbridge-sub -F refuses what mosquitto_sub refuses and -d prints the SUBSCRIBE's mid",
          "[cli][sub][interop]") {
  MosquittoServer broker;
  auto args = broker_args(broker);
  for (std::string format : {"%Z %p", "%y", "%", "%-5", "%.2", "x@", "\\z", "%p\\"}) {
    auto theirs = run_tool(with({"mosquitto_sub", "-t", "f/x", "-F", format, "-E"}, args));
    auto ours = run_tool(with({iotbridge_sub(), "-t", "f/x", "-F", format, "-E"}, args));
    INFO("-F " << format << "\nmosquitto_sub: " << theirs.err << "\niotbridge-sub: " << ours.err);
    CHECK(theirs.code == 1);
    CHECK(ours.code == theirs.code);
    auto sentence = line_starting(theirs.err, "Error: ");
    CHECK_FALSE(sentence.empty());
    CHECK(line_starting(ours.err, "Error: ") == sentence);
  }
  CHECK(run_tool(with({iotbridge_sub(), "-t", "f/x", "-F", "%A%S%I %U %-5.2p@H\\e", "-E"}, args)).code == 0);

  // mosquitto_sub -d prints to stdout, iotbridge-sub to stderr.
  auto theirs = run_tool(with({"mosquitto_sub", "-d", "-t", "f/x", "-t", "f/y", "-q", "1", "-E"}, args));
  auto ours = run_tool(with({iotbridge_sub(), "-d", "-t", "f/x", "-t", "f/y", "-q", "1", "-E"}, args));
  auto expected = line_starting(theirs.out, "Subscribed (mid: ");
  CHECK(expected == "Subscribed (mid: 1): 1, 1");
  CHECK(line_starting(ours.err, "Subscribed (mid: ") == expected);
}

TEST_CASE("iotbridge-sub: -C, -T, -R, --retained-only, --remove-retained", "[cli][sub]") {
  MosquittoServer broker;
  TempDir dir;
  auto args = broker_args(broker);
  auto mpub = [&](std::vector<std::string> extra) {
    REQUIRE(run_tool(with(with({"mosquitto_pub"}, args), extra)).code == 0);
  };
  mpub({"-t", "home/a", "-m", "old-a", "-r"});
  mpub({"-t", "home/b", "-m", "old-b", "-r"});
  mpub({"-t", "home/skip/c", "-m", "old-c", "-r"});

  SECTION("--retained-only prints the retained messages and stops at the first fresh one") {
    auto out = dir / "retained-only";
    auto sub =
        start_tool(with({iotbridge_sub(), "-t", "home/#", "-v", "--retained-only", "-T", "home/skip/#"}, args), out);
    REQUIRE(
        wait_until([&] { return contains(slurp(out), "home/a old-a\n") && contains(slurp(out), "home/b old-b\n"); }));
    mpub({"-t", "home/a", "-m", "fresh"});
    REQUIRE(wait_until([&] { return !sub->alive(); }));
    CHECK(sub->terminate() == 0);
    std::string text = slurp(out);
    CHECK(contains(text, "home/a old-a\n"));
    CHECK_FALSE(contains(text, "old-c"));
    CHECK_FALSE(contains(text, "fresh"));
  }

  SECTION("-R skips retained messages") {
    // A fresh message waits in a persistent session; the retained ones come on SUBSCRIBE.
    REQUIRE(run_tool(with({iotbridge_sub(), "-t", "home/#", "-q", "1", "-c", "-i", "r-session", "-E"}, args)).code ==
            0);
    mpub({"-t", "home/a", "-m", "fresh", "-q", "1"});
    auto r = run_tool(
        with({iotbridge_sub(), "-t", "home/#", "-q", "1", "-c", "-i", "r-session", "-R", "-v", "-W", "2"}, args));
    CHECK(r.code == 27);
    CHECK(r.out == "home/a fresh\n");
  }

  SECTION("--remove-retained clears what it sees, except what -T filters out") {
    auto r = run_tool(
        with({iotbridge_sub(), "-t", "home/#", "--remove-retained", "--retained-only", "-T", "home/skip/#", "-W", "3"},
             args));
    // Its own clearing message comes back fresh, which ends --retained-only (as with mosquitto_sub).
    CHECK(r.code == 0);
    CHECK(contains(r.out, "old-a\n"));
    CHECK(contains(r.out, "old-b\n"));
    CHECK_FALSE(contains(r.out, "old-c"));
    auto after = run_tool(with({"mosquitto_sub", "-t", "home/#", "-v", "--retained-only", "-W", "2"}, args));
    CHECK(after.out == "home/skip/c old-c\n");
  }
}

TEST_CASE("iotbridge-sub: -W times out with 27, -E exits after subscribing, -c keeps a session", "[cli][sub]") {
  MosquittoServer broker;
  TempDir dir;
  auto args = broker_args(broker);

  auto timed_out = run_tool(with({iotbridge_sub(), "-t", "nothing/here", "-W", "1"}, args));
  CHECK(timed_out.code == 27);
  CHECK(timed_out.err == "Timed out\n");
  CHECK(run_tool(with({iotbridge_sub(), "-t", "nothing/here", "-W", "1", "--quiet"}, args)).err.empty());

  // A persistent session made with -E collects QoS 1 messages while we are away.
  auto made = run_tool(with({iotbridge_sub(), "-t", "session/#", "-q", "1", "-c", "-i", "cli-session", "-E"}, args));
  REQUIRE(made.code == 0);
  CHECK(made.out.empty());
  for (int i = 0; i < 5; ++i)
    REQUIRE(run_tool(with({iotbridge_pub(), "-t", "session/x", "-q", "1", "-m", "m" + std::to_string(i)}, args)).code ==
            0);
  auto got = run_tool(
      with({iotbridge_sub(), "-t", "session/#", "-q", "1", "-c", "-i", "cli-session", "-C", "5", "-W", "10"}, args));
  CHECK(got.code == 0);
  CHECK(got.out == "m0\nm1\nm2\nm3\nm4\n");

  // MQTT 5: -x keeps the session for that many seconds.
  REQUIRE(run_tool(with({iotbridge_sub(), "-V", "5", "-x", "600", "-i", "cli-v5", "-t", "v5/#", "-q", "1", "-E"}, args))
              .code == 0);
  REQUIRE(run_tool(with({iotbridge_pub(), "-t", "v5/x", "-q", "1", "-m", "kept for v5"}, args)).code == 0);
  auto v5 = run_tool(with(
      {iotbridge_sub(), "-V", "5", "-x", "600", "-i", "cli-v5", "-t", "v5/#", "-q", "1", "-C", "1", "-W", "10"}, args));
  CHECK(v5.code == 0);
  CHECK(v5.out == "kept for v5\n");

  // -U drops the session's subscription: nothing more is queued for it.
  REQUIRE(run_tool(with({iotbridge_sub(), "-U", "session/#", "-c", "-i", "cli-session", "-E"}, args)).code == 0);
  REQUIRE(run_tool(with({iotbridge_pub(), "-t", "session/x", "-q", "1", "-m", "late"}, args)).code == 0);
  auto none =
      run_tool(with({iotbridge_sub(), "-t", "other/topic", "-q", "1", "-c", "-i", "cli-session", "-W", "1"}, args));
  CHECK(none.code == 27);
  CHECK(none.out.empty());
}

TEST_CASE("iotbridge-sub: --json lines, -F %J with --pretty", "[cli][sub][json]") {
  MosquittoServer broker;
  TempDir dir;
  auto args = broker_args(broker);
  auto out = dir / "json";
  auto sub = start_tool(with({iotbridge_sub(), "-t", "j/#", "--json", "-q", "1"}, args), out);
  REQUIRE(sync_subscribers(broker, "j/sync", "s", {out}, "\"j/sync\""));
  spit(dir / "bin", std::string("\x00\xff\x10", 3));
  REQUIRE(run_tool(with({iotbridge_pub(), "-t", "j/text", "-m", "24.5", "-q", "1"}, args)).code == 0);
  REQUIRE(run_tool(with({iotbridge_pub(), "-t", "j/bin", "-f", (dir / "bin").string()}, args)).code == 0);
  REQUIRE(run_tool(with({iotbridge_pub(), "-t", "j/quote", "-m", "say \"hi\"\n"}, args)).code == 0);
  REQUIRE(wait_until([&] { return contains(slurp(out), "j/quote"); }));
  CHECK(sub->terminate() == 0);
  std::string text = slurp(out);
  CHECK(contains(text, R"({"topic":"j/text","payload":"24.5","qos":1,"retain":false,"received_at":")"));
  CHECK(contains(text, R"({"topic":"j/bin","payload_base64":"AP8Q","qos":0,"retain":false,"received_at":")"));
  CHECK(contains(text, R"("payload":"say \"hi\"\n")"));
  // One object per line, every one parseable by Python's json module.
  std::string check = "import json,sys\nfor l in open(sys.argv[1]): json.loads(l)\nprint('ok')";
  spit(dir / "check.py", check);
  std::string py;
  CHECK(run_command({"/usr/bin/python3", (dir / "check.py").string(), out.string()}, &py) == 0);
  CHECK(py == "ok\n");

  // -F %J --pretty: the payload embedded as JSON, tab-indented.
  REQUIRE(run_tool(with({"mosquitto_pub", "-t", "j/r", "-m", R"({"t":27.0})", "-r"}, args)).code == 0);
  auto pretty = run_tool(with({iotbridge_sub(), "-t", "j/r", "-F", "%J", "--pretty", "-C", "1"}, args));
  CHECK(pretty.code == 0);
  CHECK(contains(pretty.out, "\t\"retain\":\t1,\n\t\"payloadlen\":\t10,\n\t\"payload\":\t{\n\t\t\"t\":\t27\n\t}\n}\n"));
  auto not_json = run_tool(with({"mosquitto_pub", "-t", "j/r", "-m", "plain", "-r"}, args));
  REQUIRE(not_json.code == 0);
  auto bad = run_tool(with({iotbridge_sub(), "-t", "j/r", "-F", "%J", "-C", "1"}, args));
  CHECK(bad.code == 0);
  CHECK(bad.err == "Error: Message payload is not valid JSON on topic j/r.\n");
}

TEST_CASE("iotbridge-sub: a will is published when it vanishes", "[cli][sub][will]") {
  MosquittoServer broker;
  TempDir dir;
  auto args = broker_args(broker);
  auto watcher_out = dir / "watcher";
  auto watcher = start_tool(with({iotbridge_sub(), "-t", "status/#", "-v"}, args), watcher_out);
  REQUIRE(sync_subscribers(broker, "status/sync", "s", {watcher_out}, "status/sync s"));
  auto victim_out = dir / "victim";
  auto victim = start_tool(with({iotbridge_sub(), "-t", "status/sync", "-k", "5", "--will-topic", "status/victim",
                                 "--will-payload", "gone", "--will-qos", "1"},
                                args),
                           victim_out);
  REQUIRE(sync_subscribers(broker, "status/sync", "s", {victim_out}, "s"));
  victim->kill_hard();  // no DISCONNECT: the broker publishes the will
  REQUIRE(wait_until([&] { return contains(slurp(watcher_out), "status/victim gone\n"); }));
  watcher->terminate();
}
