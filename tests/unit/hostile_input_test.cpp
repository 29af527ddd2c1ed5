// Hostile input to the pure parts, in process: the largest topics MQTT
// allows, topics and filters that MQTT forbids (invalid UTF-8, U+0000, one
// byte too long), filters of 10k and 32k levels (no recursion may run out of
// stack), payloads nested 100000 deep, NUL bytes, and JSON keys with '$' and
// '.'. Each is either accepted and handled, or refused with a clear Error.
#include <catch2/catch.hpp>
#include <string>

#include "iotbridge/error.hpp"
#include "iotbridge/record/payload.hpp"
#include "iotbridge/store/document.hpp"
#include "iotbridge/topic.hpp"
#include "iotbridge/topic_tree.hpp"

using namespace iotbridge;
using record::PayloadKind;

namespace {

// "a/a/.../a" with `levels` levels.
std::string levels_of(const std::string& level, std::size_t levels) {
  std::string out;
  out.reserve(levels * (level.size() + 1));
  for (std::size_t i = 0; i < levels; ++i) {
    if (i) out += '/';
    out += level;
  }
  return out;
}

}  // namespace

TEST_CASE("hostile: a topic of exactly 65535 bytes is valid, one byte more is refused clearly", "[hostile][topic]") {
  std::string max(kMaxTopicLength, 't');
  CHECK_NOTHROW(validate_topic(max));
  CHECK_NOTHROW(validate_filter(max));
  CHECK(topic_matches(max, max));
  CHECK(topic_matches("#", max));
  std::string over(kMaxTopicLength + 1, 't');
  CHECK_THROWS_WITH(validate_topic(over), Catch::Contains("65535"));
  CHECK_THROWS_WITH(validate_filter(over), Catch::Contains("65535"));
  // Multi-byte characters count in bytes: 21845 three-byte characters = 65535 bytes.
  std::string euro;
  for (int i = 0; i < 21845; ++i) euro += "\xE2\x82\xAC";
  CHECK_NOTHROW(validate_topic(euro));
  CHECK_THROWS_AS(validate_topic(euro + "x"), Error);
}

TEST_CASE("hostile: invalid UTF-8 and U+0000 in topics and filters are refused", "[hostile][topic]") {
  for (std::string bad : {std::string("a/\xFF"), std::string("a/\xC0\xAF"), std::string("\xED\xA0\x80"),
                          std::string("a/b\0c", 5), std::string("\0", 1), std::string("a/\xE2\x82")}) {
    INFO("topic bytes: " << bad.size());
    try {
      validate_topic(bad);
      FAIL("accepted an invalid topic");
    } catch (const Error& e) {
      CHECK(e.category() == ErrorCategory::topic);
      CHECK(std::string(e.what()).size() > 10);  // says what is wrong
    }
    CHECK_THROWS_AS(validate_filter(bad), Error);
  }
}

TEST_CASE("hostile: filters and topics of 10k and 32k levels neither overflow the stack nor misbehave",
          "[hostile][topic][topic_tree]") {
  for (std::size_t levels : {10000u, 32768u}) {  // 32768 levels of one byte: the most 65535 bytes can hold
    INFO("levels " << levels);
    std::string topic = levels_of("a", levels);
    std::string plus = levels_of("+", levels);
    std::string plus_hash = levels_of("+", levels - 1) + "/#";
    REQUIRE(topic.size() <= kMaxTopicLength);
    CHECK_NOTHROW(validate_topic(topic));
    CHECK_NOTHROW(validate_filter(plus));
    CHECK_NOTHROW(validate_filter(plus_hash));
    CHECK(topic_matches(plus, topic));
    CHECK(topic_matches(plus_hash, topic));
    CHECK(topic_matches("#", topic));
    CHECK_FALSE(topic_matches(plus, topic + "/a"));
    CHECK_FALSE(topic_matches(levels_of("+", levels - 1), topic));

    TopicTree<int> tree;
    CHECK(tree.insert(topic, 1));
    CHECK(tree.insert(plus, 2));
    CHECK(tree.insert(plus_hash, 3));
    CHECK(tree.insert("#", 4));
    int sum = 0;
    tree.match(topic, [&](int& v) { sum += v; });
    CHECK(sum == 1 + 2 + 3 + 4);
    CHECK(tree.matches_any(topic));
    CHECK(tree.remove(topic));
    CHECK(tree.remove(plus));
    // The tree is destroyed with a 32k-deep branch left in it.
  }
  // A filter of 10k levels with '#' anywhere but last is refused clearly.
  std::string bad = levels_of("a", 5000) + "/#/" + levels_of("a", 5000);
  CHECK_THROWS_AS(validate_filter(bad), Error);
}

TEST_CASE("hostile: payloads nested 100000 deep fall back to text (counted), no stack overflow", "[hostile][payload]") {
  for (const std::string& deep :
       {std::string(100000, '['), std::string(100000, '[') + std::string(100000, ']'),
        levels_of("{\"a\":", 1) + std::string(50000, '[') + std::string(50000, ']') + "}", std::string(100000, '{')}) {
    auto d = record::decode_payload(deep);
    CHECK(d.kind == PayloadKind::text);
    CHECK(d.value.as_string() == deep);
  }
  // The documents too: JSON nested past the limit is refused with an Error, not a crash.
  std::string doc = "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  CHECK_THROWS_AS(store::Document::from_json(doc), Error);
  // At the limit a payload is still JSON.
  std::string ok = std::string(32, '[') + std::string(32, ']');
  CHECK(record::decode_payload(ok).kind == PayloadKind::json);
  CHECK(record::decode_payload(std::string(33, '[') + std::string(33, ']')).kind == PayloadKind::text);
}

TEST_CASE("hostile: NUL bytes and invalid UTF-8 in payloads are stored as binary, byte for byte",
          "[hostile][payload]") {
  for (std::string p : {std::string("\0", 1), std::string("12\0", 3), std::string("{\"a\":\"b\0\"}", 10),
                        std::string("\xFF\xFE"), std::string("ok\xC3")}) {
    auto d = record::decode_payload(p);
    CHECK(d.kind == PayloadKind::binary);
    const auto& bin = d.value.as_binary();
    CHECK(std::string(reinterpret_cast<const char*>(bin.data.data()), bin.data.size()) == p);
  }
}

TEST_CASE("hostile: JSON keys with '$' or '.' are stored as text, never as fields", "[hostile][payload]") {
  for (std::string p : {R"j({"$where": "sleep(1000)"})j", R"j({"a.b": 1})j", R"j({"ok": {"$gt": 1}})j",
                        R"j([{"x": {"y.z": 2}}])j", R"j({"": 1})j", R"j({"$set": {"x": 1}})j"}) {
    INFO(p);
    auto d = record::decode_payload(p);
    CHECK(d.kind == PayloadKind::text);
    CHECK(d.value.as_string() == p);
  }
  // Extended JSON that libbson understands is a type, not a key.
  auto date = record::decode_payload(R"({"t": {"$date": "2024-01-02T03:04:05Z"}})");
  CHECK(date.kind == PayloadKind::json);
  // A reading built from such a payload is one document whose value is a string.
  record::Reading r;
  r.id = store::ObjectId::generate();
  r.received = store::DateTime::now();
  r.topic = "iot/x";
  r.payload = R"({"$where": "1"})";
  auto doc = record::build_document(r);
  CHECK(doc.get_string("value") == std::optional<std::string>(R"({"$where": "1"})"));
}
