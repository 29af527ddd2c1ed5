// Regression tests for what the fuzzers (tests/fuzz) and sanitizers found.
// Each input is also in the fuzz target's seed corpus (tests/fuzz/corpus/).
#include <catch2/catch.hpp>
#include <limits>
#include <set>
#include <string>

#include "iotbridge/record/payload.hpp"
#include "iotbridge/store/document.hpp"
#include "iotbridge/store/open.hpp"
#include "iotbridge/store/store.hpp"
#include "store/query.hpp"

using namespace iotbridge::store;

namespace {
std::set<std::string> ids(Collection& coll, const Document& filter) {
  std::set<std::string> out;
  auto cursor = coll.find(filter);
  while (auto d = cursor->next()) out.insert(d->at("_id").to_json());
  return out;
}
}  // namespace

// fuzz_query: SQLite stores a NaN double as NULL, so bson_get() made a NaN
// field look missing: {"value": null} matched it and {"value": NaN} or
// {"value": {"$lt": 5}} (NaN sorts below every number) did not, while the
// translation claimed to be exact. Corpus: query/nan, query/null, query/nan_lt.
TEST_CASE("SQLite store: NaN fields match as the query evaluator says, not as null", "[store][sqlite][fuzz]") {
  const double inf = std::numeric_limits<double>::infinity();
  for (bool indexed : {false, true}) {
    INFO("index on value: " << indexed);
    auto store = open_store("sqlite::memory:");
    auto coll = store->collection("db", "nan");
    if (indexed) coll->create_index(IndexSpec{{{"value", 1}}, false, ""});
    std::vector<Document> docs = {
        Document().append("_id", 1).append("value", std::numeric_limits<double>::quiet_NaN()),
        Document().append("_id", 2).append("value", nullptr),
        Document().append("_id", 3),
        Document().append("_id", 4).append("value", -inf),
        Document().append("_id", 5).append("value", 3),
    };
    for (const auto& d : docs) coll->insert_one(d);

    struct Case {
      Document filter;
      std::set<std::string> expected;
    };
    const Case cases[] = {
        {Document().append("value", nullptr), {"2", "3"}},
        {Document().append("value", std::numeric_limits<double>::quiet_NaN()), {"1"}},
        {Document().append("value", Document().append("$lt", 5)), {"1", "4", "5"}},
        {Document().append("value", Document().append("$lt", -inf)), {"1"}},
        {Document().append("value", Document().append("$gte", -inf)), {"4", "5"}},
        {Document().append("value", -inf), {"4"}},
        {Document().append("value", Document().append("$in", Array{std::numeric_limits<double>::quiet_NaN(), 3})),
         {"1", "5"}},
        {Document().append("value", Document().append("$gt", std::numeric_limits<double>::quiet_NaN())), {"4", "5"}},
    };
    for (const auto& c : cases) {
      INFO("filter " << c.filter.to_json());
      CHECK(ids(*coll, c.filter) == c.expected);
      std::set<std::string> evaluator;
      for (const auto& d : docs)
        if (query::matches(d, c.filter)) evaluator.insert(d.at("_id").to_json());
      CHECK(evaluator == c.expected);
      CHECK(coll->count_documents(c.filter) == static_cast<std::int64_t>(c.expected.size()));
    }
  }
}

// fuzz_payload: libbson's JSON reader takes NaN (as Python's json module
// writes it), so the payload "[NaN]" is stored as an array holding a NaN; the
// value then compared unequal to its own copy (NaN != NaN), while a document
// holding the same NaN compared equal (Document compares bytes). A NaN now
// equals a NaN in Value's ==, as in MongoDB's matching. Corpus: payload/nan_array.
TEST_CASE("Value equality: a NaN equals a NaN, in arrays as in documents", "[store][document][fuzz]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK(Value(nan) == Value(nan));
  CHECK(Value(Array{nan, 1}) == Value(Array{nan, 1}));
  CHECK(Value(Document().append("t", nan)) == Value(Document().append("t", nan)));
  CHECK_FALSE(Value(nan) == Value(0.0));
  CHECK_FALSE(Value(Array{nan}) == Value(Array{1.0}));
  CHECK(Value(0.0) == Value(-0.0));
  CHECK_FALSE(Value(1) == Value(1.0));

  auto copy_of_parsed = Document::from_json(R"({"a": [NaN, 2]})");
  Value a = copy_of_parsed.at("a");
  Value b = a;
  CHECK(a == b);

  // The payload path the fuzzer took: decoded as JSON, stored unchanged.
  auto decoded = iotbridge::record::decode_payload("[NaN]", {});
  REQUIRE(decoded.kind == iotbridge::record::PayloadKind::json);
  iotbridge::record::Reading reading;
  reading.topic = "iot/t";
  reading.payload = "[NaN]";
  auto doc = iotbridge::record::build_document(reading, {});
  CHECK(doc.at("value") == decoded.value);
  CHECK(doc.at("value").to_json() == R"([ { "$numberDouble" : "NaN" } ])");
}
