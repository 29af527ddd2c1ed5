// Topic and filter validation and matching: a table of corner cases, each
// also checked against libmosquitto's own functions on the same input.
#include "iotbridge/topic.hpp"

#include <mosquitto.h>

#include <catch2/catch.hpp>
#include <string>

#include "iotbridge/error.hpp"

using namespace iotbridge;

namespace {

struct MatchCase {
  const char* filter;
  const char* topic;
  bool matches;
};

// filter, topic, expected. Sources: MQTT 3.1.1 section 4.7, Mosquitto's and
// paho.mqtt.cpp's matcher tests, and the tutorials' home/... hierarchy.
const MatchCase kMatchCases[] = {
    {"foo/bar", "foo/bar", true},
    {"foo/bar", "foo/baz", false},
    {"foo/bar", "foo", false},
    {"foo", "foo/bar", false},
    {"foo/+", "foo/bar", true},
    {"foo/+", "foo/bar/baz", false},
    {"foo/+/baz", "foo/bar/baz", true},
    {"foo/+/+/baz", "foo/bar/bar/baz", true},
    {"foo/+/#", "foo/bar/baz", true},
    {"foo/+/#", "foo/bar", true},
    {"foo/#", "foo", true},
    {"foo/#", "foo/", true},
    {"foo/#", "foo/bar/baz", true},
    {"foo/#", "foobar", false},
    {"#", "foo/bar/baz", true},
    {"#", "/foo/bar", true},
    {"#", "/", true},
    {"/#", "/foo/bar", true},
    {"/#", "foo/bar", false},
    {"+", "foo", true},
    {"+", "/foo", false},
    {"+/+", "/foo", true},
    {"+/+", "/", true},
    {"+", "/", false},
    {"/+", "/", true},
    {"/+", "/foo", true},
    {"+/", "foo/", true},
    {"+/foo", "/foo", true},
    {"foo//bar", "foo//bar", true},
    {"foo/+/bar", "foo//bar", true},
    {"foo//bar", "foo/bar", false},
    {"foo/bar/", "foo/bar/", true},
    {"foo/bar/", "foo/bar", false},
    {"foo/bar", "foo/bar/", false},
    {"foo/+", "foo/", true},
    {"+/+/+", "a/b/c", true},
    {"+/+/+", "a/b", false},
    {"+/+/+", "a/b/c/d", false},
    {"a/b/c/#", "a/b/c", true},
    {"a/b/c/#", "a/b", false},
    {"#", "$SYS/broker/uptime", false},
    {"+/broker/uptime", "$SYS/broker/uptime", false},
    {"$SYS/#", "$SYS/broker/uptime", true},
    {"$SYS/+/uptime", "$SYS/broker/uptime", true},
    {"$SYS", "$SYS", true},
    {"$SYS/#", "$SYS", true},
    {"foo/#", "foo/$bar", true},
    {"foo/+", "foo/$bar", true},
    {"home/living_room/+", "home/living_room/temperature", true},
    {"home/living_room/+", "home/kitchen/temperature", false},
    {"home/+/light", "home/kitchen/light", true},
    {"home/+/light", "home/kitchen/lamp", false},
    {"home/+/light", "home/kitchen/light/1", false},
    {"Home/+", "home/x", false},
    {"caf\xC3\xA9/+", "caf\xC3\xA9/menu", true},
    {"caf\xC3\xA9/+", "cafe/menu", false},
    {"a/b", "a/b/c", false},
    {"a/+/c", "a/b/d", false},
    {"+/#", "foo", true},
    {"foo/+/#", "foo", false},
    {"+/+/#", "foo", false},
    {"#", "$SYS", false},
    {"+", "$SYS", false},
    {"+/#", "$SYS/broker", false},
    {"$SYS/+", "$SYS", false},
    {"$share/g/foo", "foo", false},
    {"$share/g/foo", "$share/g/foo", true},
    {"#", "foo/$SYS", true},
};

struct ValidityCase {
  std::string text;
  bool valid_topic;
  bool valid_filter;
};

const ValidityCase kValidityCases[] = {
    {"a", true, true},
    {"a/b/c", true, true},
    {"/", true, true},
    {"//", true, true},
    {"a//b", true, true},
    {"/a", true, true},
    {"a/", true, true},
    {"$SYS/broker", true, true},
    {" spaces ok ", true, true},
    {"+", false, true},
    {"#", false, true},
    {"a/+", false, true},
    {"+/a", false, true},
    {"a/+/b", false, true},
    {"a/#", false, true},
    {"+/+/#", false, true},
    {"a+", false, false},
    {"+a", false, false},
    {"a/b+/c", false, false},
    {"a#", false, false},
    {"#/a", false, false},
    {"a/#/b", false, false},
    {"a/##", false, false},
    {"##", false, false},
    {"++", false, false},
    {"a/+b", false, false},
    {std::string("a\0b", 3), false, false},
    {"\xC3\xA9", true, true},
    {"\xE2\x82\xAC/\xF0\x9F\x98\x80", true, true},
    {"\xC3", false, false},              // truncated
    {"\xC0\xAF", false, false},          // overlong '/'
    {"\xE0\x80\xAF", false, false},      // overlong
    {"\xED\xA0\x80", false, false},      // surrogate
    {"\xF4\x90\x80\x80", false, false},  // > U+10FFFF
    {"\xFF", false, false},
    {"\x80", false, false},          // lone continuation
    {"a\x01", false, false},         // control character
    {"\x7F", false, false},          // DEL
    {"\xEF\xBF\xBF", false, false},  // U+FFFF non-character
    {"\xEF\xB7\x90", false, false},  // U+FDD0 non-character
    {"", false, false},
    {std::string(65535, 'a'), true, true},
    {std::string(65536, 'a'), false, false},
};

}  // namespace

TEST_CASE("topic_matches follows the MQTT rules on the corner-case table", "[topic]") {
  for (const auto& c : kMatchCases) {
    INFO("filter '" << c.filter << "' topic '" << c.topic << "'");
    CHECK(topic_matches(c.filter, c.topic) == c.matches);
  }
  CHECK(std::size(kMatchCases) >= 60);
  CHECK(std::size(kValidityCases) >= 40);
}

TEST_CASE("topic_matches agrees with mosquitto_topic_matches_sub on the table", "[topic][mosquitto]") {
  for (const auto& c : kMatchCases) {
    INFO("filter '" << c.filter << "' topic '" << c.topic << "'");
    bool mosq = false;
    REQUIRE(mosquitto_topic_matches_sub(c.filter, c.topic, &mosq) == MOSQ_ERR_SUCCESS);
    CHECK(topic_matches(c.filter, c.topic) == mosq);
  }
}

TEST_CASE("topic and filter validation follows the MQTT rules on the table", "[topic]") {
  for (const auto& c : kValidityCases) {
    INFO("text '" << c.text.substr(0, 40) << "' (" << c.text.size() << " bytes)");
    CHECK(!topic_problem(c.text).has_value() == c.valid_topic);
    CHECK(!filter_problem(c.text).has_value() == c.valid_filter);
  }
}

TEST_CASE("validation agrees with libmosquitto's checks on the table", "[topic][mosquitto]") {
  for (const auto& c : kValidityCases) {
    INFO("text '" << c.text.substr(0, 40) << "' (" << c.text.size() << " bytes)");
    // libmosquitto splits the check: UTF-8 separately from wildcard placement,
    // and it reads C strings, so an embedded NUL ends the text early.
    bool has_nul = c.text.find('\0') != std::string::npos;
    bool utf8_ok =
        !has_nul && mosquitto_validate_utf8(c.text.data(), static_cast<int>(c.text.size())) == MOSQ_ERR_SUCCESS;
    bool pub_ok = c.text.size() <= 65535 && mosquitto_pub_topic_check(c.text.c_str()) == MOSQ_ERR_SUCCESS;
    bool sub_ok = c.text.size() <= 65535 && mosquitto_sub_topic_check(c.text.c_str()) == MOSQ_ERR_SUCCESS;
    // libmosquitto accepts an empty string in these checks; MQTT does not
    // (the broker refuses it on the wire), and neither do we.
    bool non_empty = !c.text.empty();
    CHECK((utf8_ok && pub_ok && non_empty) == c.valid_topic);
    CHECK((utf8_ok && sub_ok && non_empty) == c.valid_filter);
  }
}

TEST_CASE("validate_topic and validate_filter throw a topic Error that says what is wrong", "[topic]") {
  try {
    validate_topic("sensors/+/temp");
    FAIL("no exception");
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::topic);
    CHECK(std::string(e.what()).find("wildcard") != std::string::npos);
  }
  CHECK_THROWS_WITH(validate_filter("a/b#"), Catch::Contains("'#' must be the whole last level"));
  CHECK_THROWS_WITH(validate_filter("a/b+/c"), Catch::Contains("'+' must stand alone"));
  CHECK_THROWS_WITH(validate_topic(""), Catch::Contains("empty"));
  CHECK_THROWS_WITH(validate_topic("bad\xFF"), Catch::Contains("UTF-8"));
  CHECK_NOTHROW(validate_filter("home/+/light"));
  CHECK_NOTHROW(validate_topic("home/kitchen/light"));
}

TEST_CASE("parse_shared splits $share/group/filter and rejects malformed ones", "[topic][share]") {
  CHECK_FALSE(parse_shared("iot/#").has_value());
  CHECK_FALSE(parse_shared("$SYS/#").has_value());
  CHECK_FALSE(parse_shared("$shared/x/y").has_value());

  auto s = parse_shared("$share/recorders/iot/#");
  REQUIRE(s.has_value());
  CHECK(s->group == "recorders");
  CHECK(s->filter == "iot/#");

  auto t = parse_shared("$share/g/+");
  REQUIRE(t.has_value());
  CHECK(t->filter == "+");

  CHECK_THROWS_WITH(parse_shared("$share//iot/#"), Catch::Contains("empty group"));
  CHECK_THROWS_WITH(parse_shared("$share/g+/iot/#"), Catch::Contains("wildcard in its group"));
  CHECK_THROWS_WITH(parse_shared("$share/#/iot"), Catch::Contains("wildcard in its group"));
  CHECK_THROWS_WITH(parse_shared("$share/group"), Catch::Contains("no filter"));
  CHECK_THROWS_WITH(parse_shared("$share/group/"), Catch::Contains("empty filter"));
  CHECK_THROWS_WITH(parse_shared("$share/group/a#"), Catch::Contains("'#'"));

  CHECK_FALSE(filter_problem("$share/recorders/iot/#").has_value());
  CHECK(filter_problem("$share//iot/#").has_value());
  CHECK(topic_problem("$share/g/iot").has_value() == false);  // a plain topic name, oddly but legally
}
