// Payload decoding, topic patterns, timestamps, the document contract and the
// reading encoding used by the journal and the spool: tables of corner cases.
#include <catch2/catch.hpp>
#include <string>

#include "iotbridge/error.hpp"
#include "iotbridge/record/payload.hpp"

using namespace iotbridge;
using namespace iotbridge::record;
using store::Document;
using store::Value;

TEST_CASE("parse_number accepts the numbers people publish and nothing else", "[record][payload]") {
  struct Row {
    const char* text;
    std::optional<double> expected;
  };
  const Row rows[] = {
      {"24.5", 24.5},  {"-3", -3.0},  {"+7", 7.0},    {".5", 0.5}, {"5.", 5.0},   {"1e3", 1000.0}, {"2.5E-1", 0.25},
      {" 42\n", 42.0}, {"0", 0.0},    {"-0.0", -0.0}, {"", {}},    {" ", {}},     {"abc", {}},     {"1.2.3", {}},
      {"0x1A", {}},    {"inf", {}},   {"nan", {}},    {"1e", {}},  {"1e999", {}}, {"--1", {}},     {"+-1", {}},
      {"1 2", {}},     {"24.5C", {}}, {".", {}},      {"-", {}},   {"e5", {}},    {"1,5", {}},     {"\"1\"", {}},
  };
  for (const auto& row : rows) {
    INFO("text: '" << row.text << "'");
    CHECK(parse_number(row.text) == row.expected);
  }
}

TEST_CASE("is_valid_utf8 rejects malformed sequences", "[record][payload]") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain ascii\twith\ncontrols"));
  CHECK(is_valid_utf8("온도 24.5℃ 温度 🌡"));
  CHECK_FALSE(is_valid_utf8("\xff"));
  CHECK_FALSE(is_valid_utf8("\xc3"));              // truncated
  CHECK_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
  CHECK_FALSE(is_valid_utf8("\xe0\x80\xaf"));      // overlong
  CHECK_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  CHECK_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  CHECK_FALSE(is_valid_utf8("ok\x80"));
}

TEST_CASE("decode_payload follows the document contract", "[record][payload]") {
  SECTION("numbers become doubles") {
    auto d = decode_payload("24.5");
    CHECK(d.kind == PayloadKind::number);
    CHECK(d.value == Value(24.5));
    CHECK(decode_payload("17").value == Value(17.0));  // always a double, like float(payload)
  }
  SECTION("empty is null") {
    auto d = decode_payload("");
    CHECK(d.kind == PayloadKind::null);
    CHECK(d.value.is_null());
  }
  SECTION("JSON objects, arrays and literals") {
    auto obj = decode_payload(R"({"temp": 21.5, "unit": "C", "ok": true})");
    REQUIRE(obj.kind == PayloadKind::json);
    REQUIRE(obj.value.type() == store::Type::document);
    CHECK(obj.value.as_document().get_double("temp") == 21.5);
    CHECK(obj.value.as_document().get_string("unit") == "C");

    auto arr = decode_payload("[1, 2.5, \"x\"]");
    REQUIRE(arr.kind == PayloadKind::json);
    REQUIRE(arr.value.type() == store::Type::array);
    CHECK(arr.value.as_array().size() == 3);

    CHECK(decode_payload("true").value == Value(true));
    CHECK(decode_payload("false").kind == PayloadKind::json);
    auto jnull = decode_payload("null");
    CHECK(jnull.kind == PayloadKind::json);
    CHECK(jnull.value.is_null());
    auto str = decode_payload("\"on\"");
    CHECK(str.kind == PayloadKind::json);
    CHECK(str.value == Value("on"));
  }
  SECTION("text falls back, never thrown away") {
    struct Row {
      std::string payload;
    };
    const Row rows[] = {
        {"hello"},       {"24.5C"}, {"{not json"}, {"[1, 2"},     {"{}{}"},          {"[1]}, {\"x\": [2]"},
        {"\"a\" \"b\""}, {" "},     {"TRUE"},      {"온도 높음"}, {"1}, {\"v\": 2"}, {"line1\nline2"}};
    for (const auto& row : rows) {
      INFO("payload: " << row.payload);
      auto d = decode_payload(row.payload);
      CHECK(d.kind == PayloadKind::text);
      CHECK(d.value == Value(row.payload));
    }
  }
  SECTION("binary for invalid UTF-8 and NUL bytes") {
    const std::string rows[] = {std::string("\x00\x01\x02", 3), "\xff\xfe", std::string("a\0b", 3),
                                std::string("{\"a\":\"\0\"}", 9)};
    for (const auto& payload : rows) {
      auto d = decode_payload(payload);
      CHECK(d.kind == PayloadKind::binary);
      REQUIRE(d.value.type() == store::Type::binary);
      CHECK(d.value.as_binary().data == std::vector<std::uint8_t>(payload.begin(), payload.end()));
    }
  }
  SECTION("deep nesting is stored as text, not parsed") {
    std::string deep(1000, '[');
    deep += std::string(1000, ']');
    CHECK(decode_payload(deep).kind == PayloadKind::text);
    std::string ok(10, '[');
    ok += std::string(10, ']');
    CHECK(decode_payload(ok).kind == PayloadKind::json);
    DecodeOptions shallow;
    shallow.max_json_depth = 5;
    CHECK(decode_payload(ok, shallow).kind == PayloadKind::text);
  }
  SECTION("unsafe keys are stored as text") {
    CHECK(decode_payload(R"({"$set": {"a": 1}})").kind == PayloadKind::text);
    CHECK(decode_payload(R"({"a.b": 1})").kind == PayloadKind::text);
    CHECK(decode_payload(R"({"a": [{"$where": "x"}]})").kind == PayloadKind::text);
    CHECK(decode_payload(R"({"": 1})").kind == PayloadKind::text);
    DecodeOptions lax;
    lax.reject_unsafe_keys = false;
    CHECK(decode_payload(R"({"a.b": 1})", lax).kind == PayloadKind::json);
  }
  SECTION("options turn the parsers off") {
    DecodeOptions opts;
    opts.numbers = false;
    opts.json = false;
    CHECK(decode_payload("24.5", opts).value == Value("24.5"));
    CHECK(decode_payload("{\"a\":1}", opts).kind == PayloadKind::text);
  }
}

TEST_CASE("TopicPattern captures levels", "[record][payload]") {
  TopicPattern p("iot/{home}/{device}/{sensor}");
  auto m = p.match("iot/h1/boiler/temp");
  REQUIRE(m);
  REQUIRE(m->size() == 3);
  CHECK((*m)[0] == std::pair<std::string, std::string>{"home", "h1"});
  CHECK((*m)[2] == std::pair<std::string, std::string>{"sensor", "temp"});
  CHECK_FALSE(p.match("iot/h1/boiler"));
  CHECK_FALSE(p.match("iot/h1/boiler/temp/extra"));
  CHECK_FALSE(p.match("other/h1/boiler/temp"));
  auto empty_level = p.match("iot//boiler/temp");
  REQUIRE(empty_level);
  CHECK((*empty_level)[0].second.empty());

  TopicPattern rest("site/+/{room}/#");
  CHECK(rest.match("site/a/kitchen"));
  CHECK(rest.match("site/a/kitchen/x/y"));
  CHECK((*rest.match("site/a/kitchen/x"))[0].second == "kitchen");
  CHECK_FALSE(rest.match("site/a"));

  CHECK_FALSE(TopicPattern().match("a"));
  for (const char* bad : {"iot/{}", "iot/{a}/{a}", "#/x", "iot/x{a}", "{_id}", "{value}", "{a.b}", "{$x}", "a+/b"}) {
    INFO(bad);
    CHECK_THROWS_AS(TopicPattern(bad), Error);
  }
}

TEST_CASE("parse_timestamp reads epochs and ISO-8601", "[record][payload]") {
  CHECK(parse_timestamp(Value(1700000000))->millis == 1700000000000);
  CHECK(parse_timestamp(Value(1700000000.5))->millis == 1700000000500);
  CHECK(parse_timestamp(Value(1700000000123LL))->millis == 1700000000123);  // milliseconds
  CHECK(parse_timestamp(Value("2024-05-01T12:00:00Z"))->millis == 1714564800000);
  CHECK(parse_timestamp(Value("2024-05-01T12:00:00.25Z"))->millis == 1714564800250);
  CHECK(parse_timestamp(Value("2024-05-01T14:00:00+02:00"))->millis == 1714564800000);
  CHECK(parse_timestamp(Value("2024-05-01 12:00:00"))->millis == 1714564800000);
  CHECK(parse_timestamp(Value(store::DateTime{5}))->millis == 5);
  CHECK_FALSE(parse_timestamp(Value("yesterday")));
  CHECK_FALSE(parse_timestamp(Value("2024-02-30T00:00:00Z")));
  CHECK_FALSE(parse_timestamp(Value(-1)));
  CHECK_FALSE(parse_timestamp(Value(true)));
  CHECK_FALSE(parse_timestamp(Value(nullptr)));
}

TEST_CASE("build_document writes the contract's fields", "[record][payload]") {
  Reading r;
  r.id = store::ObjectId::generate();
  r.received = store::DateTime{1714564800000};
  r.topic = "iot/h1/boiler/temp";
  r.payload = R"({"v": 21.5, "ts": "2024-05-01T11:59:59Z"})";
  r.qos = 1;
  r.retain = true;

  BuildInfo info;
  Document plain = build_document(r, {}, &info);
  CHECK(plain.keys() == std::vector<std::string>{"_id", "topic", "value", "reg_date"});
  CHECK(plain.get_object_id("_id") == r.id);
  CHECK(plain.get_string("topic") == r.topic);
  CHECK(plain.get_double("value.v") == 21.5);
  CHECK(plain.get_datetime("reg_date") == r.received);
  CHECK(info.kind == PayloadKind::json);

  DocumentOptions opts;
  opts.include_qos = true;
  opts.include_retain = true;
  opts.topic_fields = TopicPattern("iot/{home}/{device}/{sensor}");
  opts.timestamp_field = "ts";
  Document full = build_document(r, opts, &info);
  CHECK(full.keys() == std::vector<std::string>{"_id", "topic", "value", "reg_date", "qos", "retain", "home", "device",
                                                "sensor", "ts"});
  CHECK(full.at("qos") == Value(1));
  CHECK(full.get_bool("retain") == true);
  CHECK(full.get_string("device") == "boiler");
  CHECK(full.get_datetime("ts")->millis == 1714564799000);
  CHECK(info.topic_matched);
  CHECK(info.timestamp_found);

  r.topic = "elsewhere";
  r.payload = "24.5";
  Document other = build_document(r, opts, &info);
  CHECK_FALSE(other.has("home"));
  CHECK_FALSE(other.has("ts"));
  CHECK(other.at("value") == Value(24.5));
  CHECK_FALSE(info.topic_matched);
  CHECK_FALSE(info.timestamp_found);
}

TEST_CASE("Reading encoding round-trips and refuses damage", "[record][payload]") {
  Reading r;
  r.id = store::ObjectId::generate();
  r.received = store::DateTime{1714564800123};
  r.topic = "iot/a/b";
  r.payload = std::string("bin\0ary\xff", 8);
  r.qos = 2;
  r.retain = true;
  std::string bytes = encode_reading(r);
  Reading back = decode_reading(bytes);
  CHECK(back.id == r.id);
  CHECK(back.received == r.received);
  CHECK(back.topic == r.topic);
  CHECK(back.payload == r.payload);
  CHECK(back.qos == 2);
  CHECK(back.retain);

  // Two in a row, read one at a time.
  std::string two = bytes;
  r.topic = "second";
  encode_reading(r, two);
  std::string_view view = two;
  CHECK(decode_reading_prefix(view).topic == "iot/a/b");
  CHECK(decode_reading_prefix(view).topic == "second");
  CHECK(view.empty());

  // Every truncation fails cleanly.
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    INFO("length " << n);
    CHECK_THROWS_AS(decode_reading(std::string_view(bytes).substr(0, n)), Error);
  }
  CHECK_THROWS_AS(decode_reading(bytes + "x"), Error);
  std::string bad_version = bytes;
  bad_version[0] = 9;
  CHECK_THROWS_AS(decode_reading(bad_version), Error);
}
