// Message output formatting: expected strings are what mosquitto_sub 2.0.11
// printed for the same message (captured against a live broker), except
// where format.hpp lists a deliberate difference.
#include "iotbridge/mqtt/format.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <string>

using namespace iotbridge::mqtt;
using namespace std::string_literals;

namespace {

// 2026-11-21T21:06:23.213699123Z
const auto kWhen =
    std::chrono::system_clock::time_point(std::chrono::seconds(1795295183)) + std::chrono::nanoseconds(213699123);

void use_utc() {
  ::setenv("TZ", "UTC", 1);
  ::tzset();
}

Message msg(std::string topic, std::string payload, int qos = 0, bool retain = false, int mid = 0) {
  Message m;
  m.topic = std::move(topic);
  m.payload = std::move(payload);
  m.qos = qos;
  m.retain = retain;
  m.mid = mid;
  return m;
}

std::string custom(const std::string& format, const Message& m, bool pretty = false) {
  OutputOptions o;
  o.style = OutputStyle::custom;
  o.format = format;
  o.end_of_line = false;
  o.pretty = pretty;
  return MessageFormatter(o).format(m, kWhen);
}

}  // namespace

TEST_CASE("format: payload-only output is mosquitto_sub's default", "[format]") {
  MessageFormatter f;
  CHECK(f.format(msg("a/1", "hello"), kWhen) == "hello\n");
  CHECK(f.format(msg("a/1", "a\tb\"\x01\xff"), kWhen) == "a\tb\"\x01\xff\n");
  CHECK(f.format(msg("a/1", "x\0y"s), kWhen) == "x\0y\n"s);
  // An empty payload prints nothing at all, not even the newline.
  CHECK(f.format(msg("a/2", ""), kWhen).empty());
  CHECK_FALSE(f.uses_time());

  MessageFormatter no_eol(OutputOptions{OutputStyle::payload, "", false, false});
  CHECK(no_eol.format(msg("a/1", "hello"), kWhen) == "hello");
}

TEST_CASE("format: verbose output is mosquitto_sub -v", "[format]") {
  MessageFormatter f(OutputOptions{OutputStyle::verbose, "", true, false});
  CHECK(f.format(msg("a/1", "hello"), kWhen) == "a/1 hello\n");
  CHECK(f.format(msg("a/2", ""), kWhen) == "a/2 (null)\n");
  CHECK(f.format(msg("a b/c", "h\u00e9llo \u00fc"), kWhen) == "a b/c h\u00e9llo \u00fc\n");
  MessageFormatter no_eol(OutputOptions{OutputStyle::verbose, "", false, false});
  CHECK(no_eol.format(msg("a/1", "hello"), kWhen) == "a/1 hello");
  CHECK(no_eol.format(msg("a/2", ""), kWhen).empty());
}

TEST_CASE("format -F message fields, flags, widths and precisions", "[format]") {
  struct Case {
    const char* format;
    const char* expected;
  };
  const Message m = msg("a/1", "hello", 1, true, 7);
  const Case cases[] = {
      {"%t", "a/1"},
      {"%p", "hello"},
      {"%q %r %m %l", "1 1 7 5"},
      {"%x", "68656c6c6f"},
      {"%X", "68656C6C6F"},
      {"%5.2t|", "   a/|"},
      {"%-5t|", "a/1  |"},
      {"%.1t|", "a|"},
      {"%-5l|", "5    |"},
      {"%05l|", "00005|"},
      {"%-05l|", "5    |"},
      {"%3m|", "  7|"},
      {"%10p|", "     hello|"},
      {"%-10p|", "hello     |"},
      {"%010p|", "00000hello|"},
      {"%3p|", "hel|"},  // a width is also the most printed
      {"%6x|", "68656c|"},
      {"%12x|", "  68656c6c6f|"},
      {"%-12X|", "68656C6C6F  |"},
      {"%-p|", "hello|"},
      {"%%|@@|\\\\", "%|@|\\"},
      {"\\t\\n\\r\\a\\v\\e", "\t\n\r\a\v\033"},
      {"%A|%5S|%05E|%C|%3C|%R|%P|%D", "|     |00000||   |||"},
      {"%q", "1"},
  };
  for (const auto& c : cases) {
    INFO("format: " << c.format);
    CHECK(custom(c.format, m) == c.expected);
  }
  CHECK(custom("\\0", m) == "\0"s);
  CHECK(custom("%t\\0%p", m) == "a/1\0hello"s);
}

TEST_CASE("format -F refuses what mosquitto_sub refuses, in its words", "[format]") {
  struct Case {
    std::string format, problem;
  };
  const std::vector<Case> cases = {
      {"%Z %p", "Invalid format specifier 'Z'."},  {"%k", "Invalid format specifier 'k'."},
      {"%-5.2y", "Invalid format specifier 'y'."}, {"x%", "Incomplete format specifier."},
      {"%5", "Incomplete format specifier."},      {"%-", "Incomplete format specifier."},
      {"%0", "Incomplete format specifier."},      {"%.2", "Incomplete format specifier."},
      {"%t@", "Incomplete format specifier."},     {"\\q", "Invalid escape specifier 'q'."},
      {"%p\\", "Incomplete escape specifier."},
  };
  for (const auto& c : cases) {
    INFO("format: " << c.format);
    CHECK(format_problem(c.format) == c.problem);
    CHECK_THROWS_WITH(MessageFormatter(OutputOptions{OutputStyle::custom, c.format, true, false}),
                      Catch::Contains(c.problem));
  }
  for (std::string ok : {"%t %p", "%-05l|%10.3p", "%%|@@|@Z|\\e", "%A%S%C%D%E%F%I%l%m%P%q%R%r%j%J%U%x%X", ""})
    CHECK_FALSE(format_problem(ok));
}

TEST_CASE("format -F end of line and -N", "[format]") {
  OutputOptions o{OutputStyle::custom, "%t", true, false};
  CHECK(MessageFormatter(o).format(msg("a", "b"), kWhen) == "a\n");
  o.end_of_line = false;
  CHECK(MessageFormatter(o).format(msg("a", "b"), kWhen) == "a");
  // Unlike the default style, -F prints a line for an empty payload.
  o.end_of_line = true;
  o.format = "[%p]";
  CHECK(MessageFormatter(o).format(msg("a", ""), kWhen) == "[]\n");
}

TEST_CASE("format -F MQTT 5 properties", "[format]") {
  Message m = msg("a", "b");
  m.properties.content_type = "text/plain";
  m.properties.response_topic = "reply/here";
  m.properties.correlation_data = "corr";
  m.properties.message_expiry_interval = 42;
  m.properties.payload_format_utf8 = true;
  m.properties.user_properties = {{"k1", "v1"}, {"k1", "v2"}, {"name", "x y"}};
  CHECK(custom("%C|%12C|%-12C|%.4C|%R|%D|%E|%05E|%F|%P", m) ==
        "text/plain|  text/plain|text/plain  |text|reply/here|corr|42|00042|1|k1:v1 k1:v2 name:x y");
}

TEST_CASE("format -F time fields use the receive time", "[format]") {
  use_utc();
  const Message m = msg("a", "b");
  CHECK(custom("%I", m) == "2026-11-21T21:06:23+0000");
  CHECK(custom("%U", m) == "1795295183.213699123");
  CHECK(custom("@Y-@m-@dT@H:@M:@S@z", m) == "2026-11-21T21:06:23+0000");
  CHECK(custom("@s.@N", m) == "1795295183.213699123");
  CHECK(custom("%26I|", m) == "  2026-11-21T21:06:23+0000|");
  CHECK(custom("%.10I", m) == "2026-11-21");
  OutputOptions o{OutputStyle::custom, "%I", true, false};
  CHECK(MessageFormatter(o).uses_time());
  o.format = "%t %p";
  CHECK_FALSE(MessageFormatter(o).uses_time());
}

TEST_CASE("format -F %j prints the message as JSON with an escaped payload", "[format]") {
  use_utc();
  CHECK(
      custom("%j", msg("a/1", "hello")) ==
      R"({"tst":"2026-11-21T21:06:23.213699Z+0000","topic":"a/1","qos":0,"retain":0,"payloadlen":5,"payload":"hello"})");
  CHECK(custom("%j", msg("a/2", "")) ==
        R"({"tst":"2026-11-21T21:06:23.213699Z+0000","topic":"a/2","qos":0,"retain":0,"payloadlen":0,"payload":null})");
  // QoS > 0 adds the message id; control characters are escaped as cJSON does.
  CHECK(
      custom("%j", msg("a/4", "a\tb\"\x01\\", 1, true, 9)) ==
      R"({"tst":"2026-11-21T21:06:23.213699Z+0000","topic":"a/4","qos":1,"retain":1,"payloadlen":6,"mid":9,"payload":"a\tb\"\u0001\\"})");
  // UTF-8 stays as it is.
  CHECK(custom("%j", msg("a/5", "h\u00e9llo")) ==
        "{\"tst\":\"2026-11-21T21:06:23.213699Z+0000\",\"topic\":\"a/5\",\"qos\":0,\"retain\":0,\"payloadlen\":6,"
        "\"payload\":\"h\u00e9llo\"}");
  // Not UTF-8 (or a NUL inside): an array of byte values, so that the line stays valid JSON.
  CHECK(
      custom("%j", msg("b", "\xff\x00"s)) ==
      R"({"tst":"2026-11-21T21:06:23.213699Z+0000","topic":"b","qos":0,"retain":0,"payloadlen":2,"payload":[255,0]})");
}

TEST_CASE("format -F %J embeds a JSON payload, printed as cJSON prints it", "[format]") {
  use_utc();
  const Message m = msg("p/1", R"({"a":[1,2.5,{"b":null}],"c":"x\u00e9","d":27.0,"e":1e3, "f":true})");
  CHECK(custom("%J", m) ==
        "{\"tst\":\"2026-11-21T21:06:23.213699Z+0000\",\"topic\":\"p/1\",\"qos\":0,\"retain\":0,\"payloadlen\":65,"
        "\"payload\":{\"a\":[1,2.5,{\"b\":null}],\"c\":\"x\u00e9\",\"d\":27,\"e\":1000,\"f\":true}}");
  // Captured from mosquitto_sub -F %J --pretty.
  CHECK(custom("%J", m, true) ==
        "{\n\t\"tst\":\t\"2026-11-21T21:06:23.213699Z+0000\",\n\t\"topic\":\t\"p/1\",\n\t\"qos\":\t0,\n"
        "\t\"retain\":\t0,\n\t\"payloadlen\":\t65,\n\t\"payload\":\t{\n\t\t\"a\":\t[1, 2.5, {\n\t\t\t\t\"b\":\tnull\n"
        "\t\t\t}],\n\t\t\"c\":\t\"x\u00e9\",\n\t\t\"d\":\t27,\n\t\t\"e\":\t1000,\n\t\t\"f\":\ttrue\n\t}\n}");

  OutputOptions o{OutputStyle::custom, "<%J>", true, false};
  MessageFormatter f(o);
  std::string out, problem;
  CHECK_FALSE(f.append(out, msg("a/1", "hello"), kWhen, &problem));
  CHECK(out == "<>\n");
  CHECK(problem == "Error: Message payload is not valid JSON on topic a/1.");
}

TEST_CASE("format --json prints one object per line, text or base64", "[format]") {
  MessageFormatter f(OutputOptions{OutputStyle::json, "", true, false});
  CHECK(f.uses_time());
  CHECK(f.format(msg("a/1", "24.5", 1, true, 3), kWhen) ==
        R"({"topic":"a/1","payload":"24.5","qos":1,"retain":true,"received_at":"2026-11-21T21:06:23.213699Z"})"
        "\n");
  CHECK(f.format(msg("a/2", ""), kWhen) ==
        R"({"topic":"a/2","payload":"","qos":0,"retain":false,"received_at":"2026-11-21T21:06:23.213699Z"})"
        "\n");
  CHECK(f.format(msg("bin", "\x00\xff\x10"s), kWhen) ==
        R"({"topic":"bin","payload_base64":"AP8Q","qos":0,"retain":false,"received_at":"2026-11-21T21:06:23.213699Z"})"
        "\n");
  Message with_props = msg("p", "x");
  with_props.properties.user_properties = {{"k", "v"}};
  CHECK(
      f.format(with_props, kWhen) ==
      R"({"topic":"p","payload":"x","qos":0,"retain":false,"received_at":"2026-11-21T21:06:23.213699Z","properties":{"user-properties":{"k":"v"}}})"
      "\n");
  MessageFormatter pretty(OutputOptions{OutputStyle::json, "", true, true});
  CHECK(pretty.format(msg("a", "b"), kWhen) ==
        "{\n\t\"topic\":\t\"a\",\n\t\"payload\":\t\"b\",\n\t\"qos\":\t0,\n\t\"retain\":\tfalse,\n"
        "\t\"received_at\":\t\"2026-11-21T21:06:23.213699Z\"\n}\n");
}

TEST_CASE("format: reformat_json accepts JSON and only JSON", "[format][json]") {
  struct Case {
    const char* in;
    const char* out;  // nullptr: rejected
  };
  const Case cases[] = {
      {"1", "1"},
      {" 1 ", "1"},
      {"-0.5e2", "-50"},
      {"0.1", "0.1"},
      {"1e400", "null"},  // not representable: cJSON prints null
      {"123456789012345678", "1.2345678901234568e+17"},
      {"\"a\\/b\\u0041\\ud83d\\ude00\"", "\"a/bA\xf0\x9f\x98\x80\""},
      {"[]", "[]"},
      {"{}", "{}"},
      {"[ 1 , [ ] , { } ]", "[1,[],{}]"},
      {"{\"a\":1,\"a\":2}", "{\"a\":1,\"a\":2}"},
      {"true", "true"},
      {"null", "null"},
      {"", nullptr},
      {"hello", nullptr},
      {"01", nullptr},
      {"1.", nullptr},
      {".5", nullptr},
      {"+1", nullptr},
      {"[1,]", nullptr},
      {"{\"a\"}", nullptr},
      {"{a:1}", nullptr},
      {"\"abc", nullptr},
      {"\"\\x\"", nullptr},
      {"\"\\ud83d\"", nullptr},
      {"\"\\ude00\"", nullptr},
      {"1 2", nullptr},
      {"tru", nullptr},
  };
  for (const auto& c : cases) {
    INFO("input: " << c.in);
    auto r = reformat_json(c.in);
    if (c.out) {
      REQUIRE(r.has_value());
      CHECK(*r == c.out);
    } else {
      CHECK_FALSE(r.has_value());
    }
  }
  // Deep nesting is refused, not a stack overflow.
  CHECK(reformat_json(std::string(1000, '[') + std::string(1000, ']')).has_value());
  CHECK_FALSE(reformat_json(std::string(100000, '[') + std::string(100000, ']')).has_value());
  CHECK(reformat_json("{\"a\":[]}", true) == "{\n\t\"a\":\t[]\n}");
  CHECK(reformat_json("{}", true) == "{\n}");
}

TEST_CASE("format: json_quote escapes as cJSON does", "[format][json]") {
  CHECK(json_quote("") == "\"\"");
  CHECK(json_quote("a\"b\\c") == R"("a\"b\\c")");
  CHECK(json_quote("\b\f\n\r\t\x01\x1f\x7f") == "\"\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\"");
  CHECK(json_quote("\u00e9") == "\"\u00e9\"");
}

TEST_CASE("format: base64 and ISO 8601 helpers", "[format]") {
  // RFC 4648 section 10.
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("foob") == "Zm9vYg==");
  CHECK(base64_encode("fooba") == "Zm9vYmE=");
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK(base64_encode("\xff\xfe\xfd") == "//79");
  CHECK(iso8601_utc(kWhen) == "2026-11-21T21:06:23.213699Z");
  CHECK(iso8601_utc(std::chrono::system_clock::time_point{}) == "1970-01-01T00:00:00.000000Z");
}
