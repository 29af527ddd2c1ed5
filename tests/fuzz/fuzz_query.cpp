// Filter documents -> the SQLite backend's query translation, cross-checked
// against the in-process evaluator (store/query.hpp) on the same documents.
//
// The embedded backend turns a filter into SQL on bson_get(doc, path) and, only
// when that translation is not exact, re-checks each row with query::matches.
// A translation that is wrong where it claims to be exact, or narrower than
// the filter, returns other documents than the evaluator selects. Two
// collections of fixed documents (one where only "tags" holds arrays, so most
// paths are translated to SQL, with an index on "value"; one with arrays in
// "value" too) are queried with the fuzzed filter (JSON). Checks:
//  - a filter that query::validate_filter refuses makes find throw Error;
//  - otherwise find and count_documents return exactly the documents for which
//    query::matches is true, and sorting by "value" gives query's order;
//  - nothing throws anything but Error.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "iotbridge/error.hpp"
#include "iotbridge/store/document.hpp"
#include "iotbridge/store/open.hpp"
#include "iotbridge/store/store.hpp"
#include "store/query.hpp"

using namespace iotbridge;
using namespace iotbridge::store;

namespace {

const char* const kScalarDocs[] = {
    R"({"_id": 1, "value": 24.5, "topic": "iot/a", "n": {"$numberInt": "3"}})",
    R"({"_id": 2, "value": {"$numberLong": "25"}, "topic": "iot/b", "nested": {"x": 1, "y": "s"}})",
    R"({"_id": 3, "value": "25", "topic": "iot/c", "tags": ["a", "b", 3]})",
    R"({"_id": 4, "value": null, "nested": {"x": null}})",
    R"({"_id": 5, "tags": []})",
    R"({"_id": 6, "value": true, "tags": ["b", {"k": 1}]})",
    R"({"_id": 7, "value": {"$date": {"$numberLong": "1700000000000"}}, "n": 3.0})",
    R"({"_id": 8, "value": {"x": 1}, "tags": "a"})",
    R"({"_id": 9, "value": -0.0, "nested": {"x": 2}})",
    R"({"_id": 10, "value": {"$numberDouble": "NaN"}})",
    R"({"_id": 11, "value": "", "topic": ""})",
    R"({"_id": 12, "value": {"$oid": "65a1b2c3d4e5f60718293a4b"}})",
    R"({"_id": 13, "value": {"$binary": {"base64": "AQI=", "subType": "00"}}})",
    R"({"_id": 14, "value": 1e300, "n": {"$numberLong": "9007199254740993"}})",
    R"({"_id": 15, "value": {"$numberLong": "9007199254740993"}, "n": 9007199254740992.0})",
    R"({"_id": 16, "value": {"$numberInt": "-5"}, "nested": {"x": {"$numberLong": "2"}, "y": false}})",
    R"({"_id": 17, "value": false, "topic": "iot/a/b"})",
    R"({"_id": 18, "value": {"$numberDouble": "-Infinity"}})",
    R"({"_id": "s", "value": {"x": 1, "y": 2}})",
    R"({"_id": {"$oid": "65a1b2c3d4e5f60718293a4c"}, "value": "Zz"})",
};
const char* const kArrayDocs[] = {
    R"({"_id": 101, "value": [1, 2, 3]})", R"({"_id": 102, "value": [[1, 2], 3]})",
    R"({"_id": 103, "value": 2})",         R"({"_id": 104, "value": []})",
    R"({"_id": 105, "value": [null]})",    R"({"_id": 106, "value": [{"x": 1}, {"x": 2}], "nested": [{"x": 3}]})",
    R"({"_id": 107, "value": ["a", 25]})", R"({"_id": 108})",
};

[[noreturn]] void fail(const std::string& what, const Document& filter) {
  std::fprintf(stderr, "fuzz_query: %s\n  filter: %s\n", what.c_str(), filter.to_json(JsonMode::canonical).c_str());
  std::abort();
}

// Reads a cursor to the end (a range-for over *find() would destroy the cursor
// before the loop runs).
std::vector<Document> all(Cursor& cursor) {
  std::vector<Document> out;
  while (auto d = cursor.next()) out.push_back(std::move(*d));
  return out;
}

struct Fixture {
  std::unique_ptr<DocumentStore> store = open_store("sqlite::memory:");
  std::shared_ptr<Collection> scalars = store->collection("fuzz", "scalars");
  std::shared_ptr<Collection> arrays = store->collection("fuzz", "arrays");
  std::vector<Document> scalar_docs, array_docs;  // as stored

  Fixture() {
    for (const char* json : kScalarDocs) scalars->insert_one(Document::from_json(json));
    for (const char* json : kArrayDocs) arrays->insert_one(Document::from_json(json));
    scalars->create_index(IndexSpec{{{"value", 1}}, false, ""});
    scalars->create_index(IndexSpec{{{"nested.x", -1}, {"topic", 1}}, false, ""});
    scalar_docs = all(*scalars->find(Document()));
    array_docs = all(*arrays->find(Document()));
  }
};

std::string id_of(const Document& d) { return d.at("_id").to_json(JsonMode::canonical); }

void check(Collection& coll, const std::vector<Document>& docs, const Document& filter) {
  bool valid = true;
  try {
    query::validate_filter(filter);
  } catch (const Error&) {
    valid = false;
  }
  if (!valid) {
    try {
      (void)all(*coll.find(filter));
    } catch (const Error&) {
      return;
    }
    fail("find accepts a filter that validate_filter refuses", filter);
  }
  std::set<std::string> expected;
  try {
    for (const auto& d : docs)
      if (query::matches(d, filter)) expected.insert(id_of(d));
  } catch (const Error&) {
    // The evaluator refuses this filter on some document (e.g. a bad $regex):
    // find may refuse it too, but must not crash.
    try {
      (void)all(*coll.find(filter));
    } catch (const Error&) {
    }
    return;
  }
  std::set<std::string> found;
  std::vector<Document> sorted;
  try {
    for (auto& d : all(*coll.find(filter))) {
      if (!found.insert(id_of(d)).second) fail("find returned " + id_of(d) + " twice", filter);
    }
    FindOptions by_value;
    by_value.sort = Document().append("value", 1).append("_id", 1);
    sorted = all(*coll.find(filter, by_value));
    if (auto n = coll.count_documents(filter); n != static_cast<std::int64_t>(expected.size()))
      fail("count_documents says " + std::to_string(n) + ", the evaluator " + std::to_string(expected.size()), filter);
  } catch (const Error& e) {
    fail(std::string("find throws on a filter the evaluator accepts: ") + e.what(), filter);
  }
  if (found != expected) {
    std::string detail = "find and the evaluator disagree; find:";
    for (auto& id : found) detail += " " + id;
    detail += "; evaluator:";
    for (auto& id : expected) detail += " " + id;
    fail(detail, filter);
  }
  if (sorted.size() != found.size()) fail("sorted find returns another number of documents", filter);
  for (std::size_t i = 1; i < sorted.size(); ++i)
    if (query::compare_for_sort(sorted[i - 1], sorted[i], Document().append("value", 1).append("_id", 1)) > 0)
      fail("sorted find is out of order at " + id_of(sorted[i]), filter);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture fixture;
  Document filter;
  try {
    filter = Document::from_json(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const Error&) {
    return 0;
  }
  check(*fixture.scalars, fixture.scalar_docs, filter);
  check(*fixture.arrays, fixture.array_docs, filter);
  return 0;
}
