// JSON a person typed, refused in words: the position of the first problem
// and a hint for the mongo shell habits (unquoted keys, single quotes,
// trailing commas, ObjectId(...)) instead of the parser's state names.
#include <catch2/catch.hpp>

#include "iotbridge/error.hpp"
#include "iotbridge/store/document.hpp"

using namespace iotbridge;
using namespace iotbridge::store;

TEST_CASE("document: malformed JSON is explained with the position and a hint", "[store][document]") {
  struct Row {
    const char* json;
    const char* position;
    const char* hint;
  };
  const Row rows[] = {
      {R"({value: {$gt: 1}})", "at position 1", R"(keys need double quotes: {"value": ...})"},
      {R"({"value": {$gt: 1}})", "at position 11", R"(keys need double quotes: {"$gt": ...})"},
      {R"({'value': 1})", "at position 1", R"(keys need double quotes: {"value": ...}, not single quotes)"},
      {R"({"topic": 'iot/a'})", "at position 10", R"(strings need double quotes: "text", not 'text')"},
      {R"({"value": 1,})", "at position 12", "trailing comma before '}'"},
      {R"({"in": [1, 2,]})", "at position 13", "trailing comma before ']'"},
      {R"({"topic": iot})", "at position 10", R"(strings need double quotes: "iot")"},
      {R"({"_id": ObjectId("5f1d7a9e8b3c4a2d1e0f9a8b")})", "at position 8", R"({"$oid": )"},
      {R"({"t": ISODate("2026-01-01")})", "at position 6", R"({"$date": )"},
      {R"({"ok": True})", "at position 7", "true, false and null"},
      {R"({"a": 1 "b": 2})", "at position 8", "a ',' or '}' is expected"},
      {R"({"a" 1})", "at position 5", "a ':' is expected"},
      {R"({"a": {"b": 1})", "at position 0", "a '}' is missing"},
      {R"({"a": "open})", "at position 6", "a '\"' is missing"},
      {R"({"a": 01})", "at position 6", "numbers do not start with 0"},
      {R"({"a": })", "at position 6", "a value is missing before '}'"},
  };
  for (const auto& row : rows) {
    INFO(row.json);
    try {
      Document::from_json(row.json);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.category() == ErrorCategory::config);
      CHECK_THAT(e.what(), Catch::StartsWith("invalid JSON"));
      CHECK_THAT(e.what(), Catch::Contains(row.position));
      CHECK_THAT(e.what(), Catch::Contains(row.hint));
      CHECK_THAT(e.what(), !Catch::Contains("EXPECTED"));
    }
  }
}

TEST_CASE("document: valid JSON that libbson refuses keeps libbson's reason", "[store][document]") {
  CHECK_THROWS_WITH(Document::from_json(R"({"a": {"$date": "yesterday"}})"),
                    Catch::StartsWith("invalid JSON: ") && Catch::Contains("date"));
}
