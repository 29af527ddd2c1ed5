// Document/Value (building, dotted paths, Extended JSON, MongoDB ordering),
// the in-process query engine, and open_store's URI handling.
#include <catch2/catch.hpp>
#include <chrono>

#include "iotbridge/store/open.hpp"
#include "servers.hpp"
#include "store/query.hpp"

using namespace iotbridge;
using namespace iotbridge::store;

namespace {
Document J(const std::string& json) { return Document::from_json(json); }
}  // namespace

TEST_CASE("document: fluent building and dotted paths", "[store][document]") {
  Document d;
  d.append("name", Document().append("firstName", "Karoid").append("lastName", "Jeong"))
      .append("numbers", Array{101, 32, Document().append("x", 1.5)})
      .append("n", 7)
      .append("big", 5000000000LL)
      .append("ok", true)
      .append("nothing", nullptr);
  CHECK(d.get_string("name.firstName") == "Karoid");
  CHECK(d.get_int64("numbers.1") == 32);
  CHECK(d.get_double("numbers.2.x") == 1.5);
  CHECK(d.get("n")->type() == Type::int32);
  CHECK(d.get("big")->type() == Type::int64);
  CHECK(d.get_bool("ok") == true);
  CHECK(d.get("nothing")->is_null());
  CHECK_FALSE(d.has("numbers.3"));
  CHECK_FALSE(d.get_string("n"));  // wrong type: nullopt
  CHECK_THROWS_WITH(d.at("missing.path"), Catch::Contains("missing.path"));
  CHECK_THROWS_WITH(d.at("n").as_string(), Catch::Contains("int32"));
  CHECK(d.keys() == std::vector<std::string>{"name", "numbers", "n", "big", "ok", "nothing"});

  d.set("n", 8).set("added", "x");
  CHECK(d.get_int64("n") == 8);
  CHECK(d.keys().back() == "added");
  CHECK(d.keys()[2] == "n");  // set keeps the position
  CHECK(d.remove("added"));
  CHECK_FALSE(d.remove("added"));

  Document copy = d;
  CHECK(copy == d);
  Document moved = std::move(copy);
  CHECK(moved == d);
  CHECK(copy.empty());  // NOLINT: a moved-from Document is empty and usable
}

TEST_CASE("document: Extended JSON in and out, relaxed and canonical", "[store][document]") {
  auto d = J(R"({"v": 24.1, "i": 3, "l": {"$numberLong": "42"}, "d": {"$date": "2020-05-11T06:00:25.123Z"},
                 "o": {"$oid": "5eb8e9f95284dfa9e50224e3"}, "b": {"$binary": {"base64": "AQI=", "subType": "00"}},
                 "t": {"$timestamp": {"t": 5, "i": 1}}, "s": "a\"b\n", "e": {}, "a": []})");
  CHECK(
      d.to_json() ==
      R"({ "v" : 24.1, "i" : 3, "l" : 42, "d" : { "$date" : "2020-05-11T06:00:25.123Z" }, )"
      R"("o" : { "$oid" : "5eb8e9f95284dfa9e50224e3" }, "b" : { "$binary" : { "base64" : "AQI=", "subType" : "00" } }, )"
      R"("t" : { "$timestamp" : { "t" : 5, "i" : 1 } }, "s" : "a\"b\n", "e" : {  }, "a" : [  ] })");
  std::string canonical = d.to_json(JsonMode::canonical);
  CHECK_THAT(canonical, Catch::Contains(R"("v" : { "$numberDouble" : "24.1" })"));
  CHECK_THAT(canonical, Catch::Contains(R"("i" : { "$numberInt" : "3" })"));
  CHECK_THAT(canonical, Catch::Contains(R"("d" : { "$date" : { "$numberLong" : "1589176825123" } })"));
  // Both forms parse back to the same bytes.
  CHECK(J(canonical) == d);
  CHECK(J(d.to_json()).get("l")->type() == Type::int32);  // relaxed loses int64-ness of small numbers, as specified
  CHECK(J(R"({"x": 40.0})").to_json() == R"({ "x" : 40.0 })");
  CHECK(Value(0.1).to_json() == "0.1");
  CHECK(Value(DateTime{0}).to_json() == R"({ "$date" : "1970-01-01T00:00:00Z" })");
  CHECK_THAT(J(R"({"a": {"b": [1, 2]}})").to_pretty_json(), Catch::Contains("\n    \"b\": [\n      1,"));
}

TEST_CASE("document: invalid JSON is refused with position and reason", "[store][document]") {
  struct Row {
    const char* json;
    const char* expect;
  };
  const Row rows[] = {
      {R"({"a": 1,})", "position"},
      {R"({"a": })", "position"},
      {"{\"a\": tru}", "position"},
      {"[1, 2]", ""},
      {"", "empty"},
      {R"({"a": {"$date": "yesterday"}})", "date"},
  };
  for (const auto& row : rows) {
    INFO(row.json);
    try {
      Document::from_json(row.json);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.category() == ErrorCategory::config);
      CHECK_THAT(e.what(), Catch::StartsWith("invalid JSON"));
      CHECK_THAT(e.what(), Catch::Contains(row.expect));
    }
  }
}

TEST_CASE("document: ObjectId, DateTime and MongoDB's order of types", "[store][document]") {
  auto a = ObjectId::generate(), b = ObjectId::generate();
  CHECK(a != b);
  CHECK(ObjectId::from_hex(a.to_hex()) == a);
  CHECK(std::chrono::abs(a.time() - std::chrono::system_clock::now()) < std::chrono::minutes(1));
  CHECK_THROWS_AS(ObjectId::from_hex("xyz"), Error);
  auto now = DateTime::now();
  CHECK(DateTime::from(now.time_point()) == now);

  // null < numbers < string < object < array < binary < ObjectId < bool < date < timestamp
  std::vector<Value> ordered = {nullptr, -1,         2.5,         5000000000LL,   "",
                                "a",     Document(), Array{},     Binary{{1}, 0}, a,
                                false,   true,       DateTime{0}, Timestamp{1, 0}};
  for (std::size_t i = 0; i + 1 < ordered.size(); ++i) {
    INFO(i);
    CHECK(compare(ordered[i], ordered[i + 1]) < 0);
    CHECK(compare(ordered[i + 1], ordered[i]) > 0);
  }
  CHECK(compare(Value(1), Value(1.0)) == 0);
  CHECK(compare(Value(1), Value(1LL)) == 0);
  CHECK(Value(1) != Value(1.0));  // strict equality keeps the type
}

TEST_CASE("query engine: filters, updates and projections on documents", "[store][query]") {
  auto doc = J(R"({"_id": 1, "a": {"b": 2}, "arr": [1, 5, {"k": "v"}], "s": "x"})");
  CHECK(query::matches(doc, J(R"({"a.b": 2})")));
  CHECK(query::matches(doc, J(R"({"arr": 5})")));
  CHECK(query::matches(doc, J(R"({"arr.k": "v"})")));
  CHECK(query::matches(doc, J(R"({"arr": {"$gt": 4}})")));
  CHECK_FALSE(query::matches(doc, J(R"({"arr": {"$gt": 5}})")));
  CHECK(query::matches(doc, J(R"({"zz": {"$exists": false}, "s": {"$in": ["x", "y"]}})")));
  CHECK(query::matches(doc, J(R"({"$or": [{"s": "no"}, {"a.b": {"$lte": 2}}]})")));
  CHECK_THROWS_WITH(query::validate_filter(J(R"({"s": {"$elemMatch": {}}})")), Catch::Contains("$elemMatch"));

  auto updated =
      query::apply_update(doc, J(R"({"$set": {"a.c": 3, "arr.0": 9}, "$inc": {"n": 1}, "$unset": {"s": 1}})"));
  CHECK(updated.to_json() == R"({ "_id" : 1, "a" : { "b" : 2, "c" : 3 }, "arr" : [ 9, 5, { "k" : "v" } ], "n" : 1 })");
  CHECK_THROWS_WITH(query::apply_update(doc, J(R"({"$inc": {"s": 1}})")), Catch::Contains("string"));
  CHECK_THROWS_WITH(query::apply_update(doc, J(R"({"$set": {"_id": 2}})")), Catch::Contains("_id"));

  CHECK(query::project(doc, J(R"({"a.b": 1, "_id": 0})")).to_json() == R"({ "a" : { "b" : 2 } })");
  CHECK(query::project(doc, J(R"({"arr": 0, "a": 0})")).to_json() == R"({ "_id" : 1, "s" : "x" })");
  CHECK_THROWS_WITH(query::project(doc, J(R"({"a": 1, "s": 0})")), Catch::Contains("mix"));
}

TEST_CASE("open_store: bad URIs say what is wrong, credentials are redacted", "[store][open]") {
  CHECK(redact_uri("mongodb://user:s3cret@db.example:27017/iot?authSource=admin") ==
        "mongodb://user:***@db.example:27017/iot?authSource=admin");
  CHECK(redact_uri("mongodb+srv://u:p@ss@cluster.example/") == "mongodb+srv://u:***@cluster.example/");
  CHECK(redact_uri("mongodb://h/?tlsCertificateKeyFilePassword=abc&x=1") ==
        "mongodb://h/?tlsCertificateKeyFilePassword=***&x=1");
  CHECK(redact_uri("sqlite:data.db") == "sqlite:data.db");
  // A password with a raw '/' (not percent-encoded) is still hidden whole.
  CHECK(redact_uri("mongodb://user:pa/ss@host/") == "mongodb://user:***@host/");
  CHECK(redact_uri("mongodb://user:a/b@host:27017/db?appName=x@y") == "mongodb://user:***@host:27017/db?appName=x@y");
  CHECK(redact_uri("mongodb://host:27017/db?appName=x@y") == "mongodb://host:27017/db?appName=x@y");
  CHECK(redact_uri("mongodb://host/?appName=a:b@c") == "mongodb://host/?appName=a:b@c");

  auto message = [](const std::string& uri) {
    try {
      open_store(uri);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  CHECK_THAT(message(""), Catch::Contains("empty"));
  CHECK_THAT(message("postgres://x"), Catch::Contains("unsupported store URI scheme 'postgres'"));
  CHECK_THAT(message("localhost:27017"), Catch::Contains("scheme"));
  CHECK_THAT(message("sqlite:"), Catch::Contains("names no file"));
  std::string bad = message("mongodb://user:hunter2@/nohost");
  CHECK_THAT(bad, Catch::Contains("bad MongoDB URI"));
  CHECK_THAT(bad, !Catch::Contains("hunter2"));
  std::string slash = message("mongodb://user:hunter/2@host/");
  CHECK_THAT(slash, Catch::Contains("bad MongoDB URI"));
  CHECK_THAT(slash, !Catch::Contains("hunter"));
  CHECK_THAT(message("sqlite:/nonexistent-dir/x/y.db"), Catch::Contains("folder") && Catch::Contains("does not exist"));
}

TEST_CASE("open_store: a mongodb+srv name that does not resolve says so, without the password", "[store][open]") {
  // .invalid never resolves (RFC 6761); libmongoc looks the SRV record up when the pool is created.
  try {
    open_store("mongodb+srv://reader:hunter2@cluster0.example.invalid/");
    FAIL("an unresolvable SRV name was accepted");
  } catch (const Error& e) {
    std::string what = e.what();
    CHECK(e.category() == ErrorCategory::store);  // the environment's failure, not a malformed URI
    CHECK_THAT(what, Catch::Contains("_mongodb._tcp.cluster0.example.invalid"));
    CHECK_THAT(what, Catch::Contains("DNS"));
    CHECK_THAT(what, !Catch::Contains("hunter2"));
  }
}

TEST_CASE("open_store: a MongoDB server that is down is reported in seconds", "[store][open]") {
  int port = iotbridge::test::free_port();  // nothing listens there
  auto store =
      open_store("mongodb://reader:hunter2@127.0.0.1:" + std::to_string(port) + "/?serverSelectionTimeoutMS=300");
  CHECK(store->backend() == "mongodb");
  CHECK(store->description().find("hunter2") == std::string::npos);
  try {
    store->ping();
    FAIL("ping of a closed port succeeded");
  } catch (const Error& e) {
    std::string what = e.what();
    CHECK_THAT(what, Catch::Contains("no MongoDB server reachable at 127.0.0.1:" + std::to_string(port)));
    CHECK_THAT(what, Catch::Contains("within 0.3 s"));
    CHECK_THAT(what, !Catch::Contains("hunter2"));
  }
}

TEST_CASE("open_store: without serverSelectionTimeoutMS a server that is down is reported in 5 s", "[store][open]") {
  int port = iotbridge::test::free_port();  // nothing listens there
  auto store = open_store("mongodb://127.0.0.1:" + std::to_string(port) + "/");
  try {
    store->ping();
    FAIL("ping of a closed port succeeded");
  } catch (const Error& e) {
    // The message names the timeout that was applied: the default, not libmongoc's 30 s.
    CHECK(kDefaultServerSelectionTimeoutMs == 5000);
    CHECK_THAT(e.what(), Catch::Contains("no MongoDB server reachable") && Catch::Contains("within 5.0 s"));
  }
}
