// The in-process aggregation engine's corner cases: $dateTrunc bins as
// MongoDB counts them (from 2000-01-01, weeks from a chosen weekday, months
// and quarters by the calendar), accumulator result types, expressions.
#include <catch2/catch.hpp>

#include "iotbridge/error.hpp"
#include "store/aggregate.hpp"

using namespace iotbridge;
using namespace iotbridge::store;

namespace {
std::int64_t ms(const char* iso) {
  return Document::from_json(std::string(R"({"t": {"$date": ")") + iso + "\"}}").get_datetime("t")->millis;
}
}  // namespace

TEST_CASE("aggregate: $dateTrunc bins", "[store][aggregate]") {
  struct Row {
    const char* at;
    const char* unit;
    int bin;
    int start_of_week;
    const char* expect;
  };
  const Row rows[] = {
      {"2026-03-14T17:45:31.250Z", "millisecond", 1, 0, "2026-03-14T17:45:31.250Z"},
      {"2026-03-14T17:45:31.250Z", "second", 1, 0, "2026-03-14T17:45:31Z"},
      {"2026-03-14T17:45:31.250Z", "minute", 15, 0, "2026-03-14T17:45:00Z"},
      {"2026-03-14T17:44:59Z", "minute", 15, 0, "2026-03-14T17:30:00Z"},
      {"2026-03-14T17:45:31Z", "hour", 1, 0, "2026-03-14T17:00:00Z"},
      {"2026-03-14T17:45:31Z", "hour", 6, 0, "2026-03-14T12:00:00Z"},
      {"2026-03-14T17:45:31Z", "day", 1, 0, "2026-03-14T00:00:00Z"},
      {"2026-03-14T17:45:31Z", "week", 1, 0, "2026-03-08T00:00:00Z"},  // a Saturday: back to Sunday
      {"2026-03-14T17:45:31Z", "week", 1, 1, "2026-03-09T00:00:00Z"},  // weeks from Monday
      {"2026-03-14T17:45:31Z", "month", 1, 0, "2026-03-01T00:00:00Z"},
      {"2026-03-14T17:45:31Z", "month", 5, 0, "2025-11-01T00:00:00Z"},  // 5-month bins from 2000-01: 310 months
      {"2026-03-14T17:45:31Z", "quarter", 1, 0, "2026-01-01T00:00:00Z"},
      {"2026-08-14T17:45:31Z", "quarter", 1, 0, "2026-07-01T00:00:00Z"},
      {"2026-03-14T17:45:31Z", "year", 1, 0, "2026-01-01T00:00:00Z"},
      {"2026-03-14T17:45:31Z", "year", 10, 0, "2020-01-01T00:00:00Z"},
      {"1969-12-31T23:59:59Z", "day", 1, 0, "1969-12-31T00:00:00Z"},  // before the epoch: floor, not truncation
      {"1999-02-28T10:00:00Z", "month", 1, 0, "1999-02-01T00:00:00Z"},
  };
  for (const auto& r : rows) {
    INFO(r.at << " " << r.unit << " x" << r.bin);
    CHECK(aggregate::date_trunc(ms(r.at), r.unit, r.bin, r.start_of_week) == ms(r.expect));
  }
  CHECK_THROWS_WITH(aggregate::date_trunc(0, "fortnight", 1), Catch::Contains("not one of year"));
  CHECK_THROWS_WITH(aggregate::date_trunc(0, "hour", 0), Catch::Contains("binSize"));
  CHECK(aggregate::weekday_number("Mon") == 1);
  CHECK_THROWS_AS(aggregate::weekday_number("someday"), Error);
}

TEST_CASE("aggregate: accumulator result types follow MongoDB", "[store][aggregate]") {
  auto run = [](const char* op, std::vector<std::optional<Value>> values) {
    aggregate::Accumulator a(op);
    for (const auto& v : values) a.add(v);
    return a.result();
  };
  CHECK(run("$sum", {Value(1), Value(2)}) == Value(3));
  CHECK(run("$sum", {Value(1), Value(2.5)}) == Value(3.5));
  CHECK(run("$sum", {Value(2147483647), Value(1)}) == Value(2147483648LL));
  CHECK(run("$sum", {Value("x"), std::nullopt}) == Value(0));
  CHECK(run("$avg", {Value(1), Value(2)}) == Value(1.5));
  CHECK(run("$avg", {Value("x")}) == Value(nullptr));
  CHECK(run("$min", {Value("b"), Value(nullptr), Value(3), std::nullopt}) == Value(3));
  CHECK(run("$max", {Value("b"), Value(3)}) == Value("b"));
  CHECK(run("$max", {std::nullopt}) == Value(nullptr));
  CHECK(run("$first", {std::nullopt, Value(2)}) == Value(nullptr));
  CHECK(run("$last", {Value(1), Value(2)}) == Value(2));
  CHECK(run("$push", {Value(1), std::nullopt, Value("a")}) == Value(Array{1, "a"}));
  CHECK_THROWS_AS(aggregate::Accumulator("$median"), Error);
}

TEST_CASE("aggregate: expressions", "[store][aggregate]") {
  auto doc = Document::from_json(R"({"a": 2, "b": 2.5, "s": "x", "t": {"$date": "2026-03-14T17:45:31Z"}})");
  auto eval = [&](const char* json) { return aggregate::evaluate(Document::from_json(json).at("e"), doc); };
  CHECK(eval(R"({"e": "$a"})") == Value(2));
  CHECK(!eval(R"({"e": "$missing"})"));
  CHECK(eval(R"({"e": {"$add": ["$a", "$b", 1]}})") == Value(5.5));
  CHECK(eval(R"({"e": {"$multiply": ["$a", 3]}})") == Value(6));
  CHECK(eval(R"({"e": {"$concat": ["$s", "-", "y"]}})") == Value("x-y"));
  CHECK(eval(R"({"e": {"$hour": "$t"}})") == Value(17));
  CHECK(eval(R"({"e": {"$dayOfWeek": "$t"}})") == Value(7));  // a Saturday
  CHECK(eval(R"({"e": {"$year": "$t"}})") == Value(2026));
  CHECK(eval(R"({"e": {"$ifNull": ["$missing", "dflt"]}})") == Value("dflt"));
  CHECK(eval(R"({"e": {"k": "$s", "gone": "$missing"}})") == Value(Document().append("k", "x")));
  CHECK(eval(R"({"e": {"$literal": "$a"}})") == Value("$a"));
  CHECK_THROWS_WITH(eval(R"({"e": {"$regexMatch": {}}})"),
                    Catch::Contains("unsupported expression operator $regexMatch"));
  CHECK_THROWS_WITH(eval(R"({"e": {"$dateTrunc": {"date": "$s", "unit": "hour"}}})"),
                    Catch::Contains("$dateTrunc needs a date"));
}
