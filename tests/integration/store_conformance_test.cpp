// One conformance suite for every DocumentStore backend: each test case runs
// against a SQLite file, SQLite in memory, and the MongoDB-compatible server
// of the test fixture (FerretDB 1.24, or IOTBRIDGE_TEST_MONGO_URI), and
// asserts the same expected results for all three.
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <thread>

#include "iotbridge/store/open.hpp"
#include "servers.hpp"

using namespace iotbridge;
using namespace iotbridge::store;
using iotbridge::test::TempDir;

namespace {

struct Backend {
  std::string kind;
  std::unique_ptr<TempDir> dir;
  std::unique_ptr<DocumentStore> store;
  std::string db;

  explicit Backend(const std::string& k) : kind(k) {
    if (kind == "sqlite-file") {
      dir = std::make_unique<TempDir>("iotbridge-store");
      store = open_store("sqlite:" + (dir->path() / "store.db").string());
      db = "testDB";
    } else if (kind == "sqlite-memory") {
      store = open_store("sqlite::memory:");
      db = "testDB";
    } else {
      store = open_store(iotbridge::test::test_mongo_uri());
      db = iotbridge::test::unique_db_name("iotb_conf");
    }
  }
  ~Backend() {
    if (kind == "mongodb") {
      try {
        store->drop_database(db);
      } catch (...) {
      }
    }
  }
  bool mongo() const { return kind == "mongodb"; }
  std::shared_ptr<Collection> coll(const std::string& name) { return store->collection(db, name); }
};

// Every test case body starts with this: one run per backend.
#define FOR_EACH_BACKEND(var)                                                                              \
  const std::string backend_kind = GENERATE(as<std::string>{}, "sqlite-file", "sqlite-memory", "mongodb"); \
  if (backend_kind == "mongodb") IOTBRIDGE_REQUIRE_MONGO();                                                \
  INFO("backend: " << backend_kind);                                                                       \
  Backend var(backend_kind)

Document J(const std::string& json) { return Document::from_json(json); }

std::vector<std::string> jsons(Cursor& cursor) {
  std::vector<std::string> out;
  while (auto d = cursor.next()) out.push_back(d->to_json());
  return out;
}

std::vector<std::string> find_json(Collection& c, const std::string& filter, FindOptions o = {}) {
  auto cursor = c.find(J(filter), o);
  return jsons(*cursor);
}

FindOptions proj(const std::string& p) {
  FindOptions o;
  o.projection = J(p);
  return o;
}

void insert_container_box(Collection& c) {
  std::vector<Document> docs = {J(R"({"name": "bear", "weight": 60, "category": "animal"})"),
                                J(R"({"name": "bear", "weight": 10, "category": "animal"})"),
                                J(R"({"name": "cat", "weight": 2, "category": "animal"})"),
                                J(R"({"name": "phone", "weight": 1, "category": "electronic"})")};
  auto r = c.insert_many(std::move(docs));
  REQUIRE(r.inserted_count == 4);
  REQUIRE(r.inserted_ids.size() == 4);
}

}  // namespace

TEST_CASE("store: containerBox find, projection, updateMany, deleteMany", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto c = b.coll("containerBox");
  insert_container_box(*c);

  CHECK(c->count_documents() == 4);
  CHECK(find_json(*c, R"({"category": "animal", "name": "bear"})", proj(R"({"_id": 0})")) ==
        std::vector<std::string>{R"({ "name" : "bear", "weight" : 60, "category" : "animal" })",
                                 R"({ "name" : "bear", "weight" : 10, "category" : "animal" })"});

  // {weight: 1} keeps _id; {category: 0, name: 0} gives the same documents.
  auto incl = c->find(J(R"({"category": "animal", "name": "bear"})"), proj(R"({"weight": 1})"))->to_vector();
  auto excl =
      c->find(J(R"({"category": "animal", "name": "bear"})"), proj(R"({"category": 0, "name": 0})"))->to_vector();
  REQUIRE(incl.size() == 2);
  CHECK(incl == excl);
  CHECK(incl[0].keys() == std::vector<std::string>{"_id", "weight"});
  CHECK(incl[0].get("_id")->is<ObjectId>());

  CHECK(find_json(*c, R"({"category": "animal", "name": "bear"})", proj(R"({"_id": 0, "weight": 1})")) ==
        std::vector<std::string>{R"({ "weight" : 60 })", R"({ "weight" : 10 })"});
  CHECK(find_json(*c, "{}", proj(R"({"name": true, "weight": true, "_id": false})")).size() == 4);

  auto up = c->update_many(J(R"({"name": "bear"})"), J(R"({"$set": {"name": "teddy bear", "category": "tody"}})"));
  CHECK(up.matched == 2);
  CHECK(up.modified == 2);
  CHECK(find_json(*c, "{}", proj(R"({"_id": false})")) ==
        std::vector<std::string>{R"({ "name" : "teddy bear", "weight" : 60, "category" : "tody" })",
                                 R"({ "name" : "teddy bear", "weight" : 10, "category" : "tody" })",
                                 R"({ "name" : "cat", "weight" : 2, "category" : "animal" })",
                                 R"({ "name" : "phone", "weight" : 1, "category" : "electronic" })"});

  CHECK(c->delete_many(J(R"({"category": "animal"})")) == 1);
  CHECK(c->count_documents() == 3);
  CHECK(c->delete_many(J("{}")) == 3);
  CHECK(c->count_documents() == 0);
}

TEST_CASE("store: every BSON type round-trips", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto c = b.coll("types");
  auto id = ObjectId::generate();
  Document doc;
  doc.append("_id", id)
      .append("d", 24.5)
      .append("i32", 7)
      .append("i64", 9007199254740993LL)
      .append("s", "héllo")
      .append("t", true)
      .append("n", nullptr)
      .append("doc", Document().append("x", 1).append("y", Document().append("z", "deep")))
      .append("arr", Array{1, "two", 3.5, Document().append("k", false)})
      .append("bin", Binary{{0, 1, 2, 255}, 0})
      .append("oid", ObjectId::from_hex("5eb8e9f95284dfa9e50224e3"))
      .append("date", DateTime{1589176825123})
      .append("ts", Document().append("ts", Timestamp{1589176825, 3}));
  CHECK(c->insert_one(doc) == Value(id));
  auto back = c->find_one(J("{}"));
  REQUIRE(back);
  CHECK(back->to_json(JsonMode::canonical) == doc.to_json(JsonMode::canonical));
  CHECK(*back == doc);
  CHECK(back->get("i64")->is<std::int64_t>());
  CHECK(back->get("i32")->is<std::int32_t>());
  CHECK(back->get_datetime("date")->millis == 1589176825123);
  CHECK(back->get("ts.ts")->as_timestamp() == Timestamp{1589176825, 3});
  CHECK(back->get_string("doc.y.z") == "deep");
  CHECK(back->get("arr.3.k")->as_bool() == false);

  // Typed equality finds each value.
  CHECK(c->count_documents(J(R"({"i64": {"$numberLong": "9007199254740993"}})")) == 1);
  CHECK(c->count_documents(J(R"({"date": {"$date": {"$numberLong": "1589176825123"}}})")) == 1);
  CHECK(c->count_documents(J(R"({"oid": {"$oid": "5eb8e9f95284dfa9e50224e3"}})")) == 1);
  CHECK(c->count_documents(J(R"({"t": true})")) == 1);
  CHECK(c->count_documents(J(R"({"n": null})")) == 1);
  CHECK(c->count_documents(J(R"({"missing": null})")) == 1);
  CHECK(c->count_documents(J(R"({"i32": 7.0})")) == 1);  // numbers compare across types
}

TEST_CASE("store: dotted paths on nested documents and arrays", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto a = b.coll("A");
  a->insert_one(J(R"({"name": {"firstName": "Karoid", "lastName": "Jeong"}})"));
  a->insert_one(J(R"({"name": {"firstName": "Mina", "lastName": "Kim"}})"));
  CHECK(find_json(*a, R"({"name.firstName": "Karoid"})", proj(R"({"_id": 0, "name.lastName": 1})")) ==
        std::vector<std::string>{R"({ "name" : { "lastName" : "Jeong" } })"});

  auto bb = b.coll("B");
  bb->insert_many({J(R"({"n": 1, "numbers": [101, 32, 21, 11]})"), J(R"({"n": 2, "numbers": [64, 94, 15]})"),
                   J(R"({"n": 3, "numbers": [52, 68, 75]})")});
  FindOptions only_n = proj(R"({"_id": 0, "n": 1})");
  CHECK(find_json(*bb, R"({"numbers": 32})", only_n) == std::vector<std::string>{R"({ "n" : 1 })"});
  CHECK(find_json(*bb, R"({"numbers.0": 64})", only_n) == std::vector<std::string>{R"({ "n" : 2 })"});
  CHECK(find_json(*bb, R"({"numbers.1": {"$gt": 60}})", only_n) ==
        std::vector<std::string>{R"({ "n" : 2 })", R"({ "n" : 3 })"});
  CHECK(find_json(*bb, R"({"numbers": {"$gt": 100}})", only_n) == std::vector<std::string>{R"({ "n" : 1 })"});
  CHECK(find_json(*bb, R"({"numbers": [64, 94, 15]})", only_n) == std::vector<std::string>{R"({ "n" : 2 })"});
  CHECK(find_json(*bb, R"({"numbers": {"$in": [15, 11]}})", only_n) ==
        std::vector<std::string>{R"({ "n" : 1 })", R"({ "n" : 2 })"});

  auto orders = b.coll("orders");
  orders->insert_many({J(R"({"n": 1, "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 5}]})"),
                       J(R"({"n": 2, "items": [{"sku": "c", "qty": 2}]})")});
  CHECK(find_json(*orders, R"({"items.sku": "b"})", only_n) == std::vector<std::string>{R"({ "n" : 1 })"});
  CHECK(find_json(*orders, R"({"items.qty": {"$gte": 2}})", only_n) ==
        std::vector<std::string>{R"({ "n" : 1 })", R"({ "n" : 2 })"});
  CHECK(find_json(*orders, R"({"items.0.sku": "c"})", only_n) == std::vector<std::string>{R"({ "n" : 2 })"});
}

namespace {
void insert_readings(Collection& c) {
  std::vector<Document> docs;
  const char* topics[] = {"iot/home/temp", "iot/home/hum", "iot/office/temp"};
  double values[] = {24.5, 40.0, 23.9, 24.1, 55.5, 24.2, 21.0, 62.0};
  for (int i = 0; i < 8; ++i)
    docs.push_back(Document()
                       .append("topic", topics[i % 3])
                       .append("value", values[i])
                       .append("reg_date", DateTime{1700000000000 + i * 1000}));
  c.insert_many(std::move(docs));
}
}  // namespace

TEST_CASE("store: $gt with projection, sorted by value ascending and descending", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto c = b.coll("sensors");
  insert_readings(*c);
  FindOptions o = proj(R"({"_id": 0, "topic": 1, "value": 1})");
  o.sort = J(R"({"value": 1})");
  CHECK(find_json(*c, R"({"value": {"$gt": 24.1}})", o) ==
        std::vector<std::string>{
            R"({ "topic" : "iot/office/temp", "value" : 24.2 })", R"({ "topic" : "iot/home/temp", "value" : 24.5 })",
            R"({ "topic" : "iot/home/hum", "value" : 40.0 })", R"({ "topic" : "iot/home/hum", "value" : 55.5 })",
            R"({ "topic" : "iot/home/hum", "value" : 62.0 })"});
  o.sort = J(R"({"value": -1})");
  o.limit = 2;
  CHECK(find_json(*c, R"({"value": {"$gt": 24.1}})", o) ==
        std::vector<std::string>{R"({ "topic" : "iot/home/hum", "value" : 62.0 })",
                                 R"({ "topic" : "iot/home/hum", "value" : 55.5 })"});
  o.skip = 1;
  CHECK(find_json(*c, R"({"value": {"$gt": 24.1}})", o) ==
        std::vector<std::string>{R"({ "topic" : "iot/home/hum", "value" : 55.5 })",
                                 R"({ "topic" : "iot/home/hum", "value" : 40.0 })"});
}

TEST_CASE("store: filter operators", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto c = b.coll("sensors");
  insert_readings(*c);
  c->insert_one(J(R"({"topic": "iot/x", "flag": true})"));
  struct Row {
    const char* filter;
    std::int64_t count;
  };
  const Row rows[] = {
      {R"({"topic": "iot/home/temp"})", 3},
      {R"({"topic": {"$eq": "iot/home/hum"}})", 3},
      {R"({"topic": {"$ne": "iot/home/hum"}})", 6},
      {R"({"value": {"$gte": 24.2}})", 5},
      {R"({"value": {"$lt": 24.1}})", 2},
      {R"({"value": {"$lte": 24.1}})", 3},
      {R"({"value": {"$gt": 24, "$lt": 25}})", 3},
      {R"({"value": {"$gt": 10}})", 8},
      {R"({"value": {"$gt": "a"}})", 0},  // type bracketing: strings never compare with numbers
      {R"({"topic": {"$in": ["iot/home/temp", "iot/office/temp"]}})", 5},
      {R"({"topic": {"$nin": ["iot/home/temp", "iot/office/temp"]}})", 4},
      {R"({"value": {"$exists": false}})", 1},
      {R"({"value": {"$exists": true}})", 8},
      {R"({"flag": {"$exists": true}})", 1},
      {R"({"$and": [{"topic": "iot/home/hum"}, {"value": {"$gt": 50}}]})", 2},
      {R"({"$or": [{"topic": "iot/office/temp"}, {"value": {"$gt": 60}}]})", 3},
      {R"({"$nor": [{"topic": "iot/home/hum"}, {"flag": true}]})", 5},
      {R"({"value": {"$not": {"$gt": 24.1}}})", 4},  // $not also matches the document without value
      {R"({"reg_date": {"$gte": {"$date": {"$numberLong": "1700000005000"}}}})", 3},
      {R"({"reg_date": {"$lt": {"$date": {"$numberLong": "1700000001000"}}}})", 1},
      {R"({"topic": "iot/home/temp", "reg_date": {"$gt": {"$date": {"$numberLong": "1700000000000"}}}})", 2},
  };
  for (const auto& row : rows) {
    INFO(row.filter);
    CHECK(c->count_documents(J(row.filter)) == row.count);
    CHECK(static_cast<std::int64_t>(c->find(J(row.filter))->to_vector().size()) == row.count);
  }
}

TEST_CASE("store: sort on several keys and MongoDB's order of mixed types", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto c = b.coll("mixed");
  std::vector<Document> docs = {
      J(R"({"n": 1, "v": "abc"})"),
      J(R"({"n": 2, "v": 5})"),
      J(R"({"n": 3, "v": {"$date": {"$numberLong": "1000"}}})"),
      J(R"({"n": 4, "v": null})"),
      J(R"({"n": 5, "v": true})"),
      J(R"({"n": 6, "v": {"$oid": "5eb8e9f95284dfa9e50224e3"}})"),
      J(R"({"n": 7, "v": 2.5})"),
      J(R"({"n": 8, "v": {"a": 1}})"),
      J(R"({"n": 9, "v": {"$binary": {"base64": "AQI=", "subType": "00"}}})"),
      J(R"({"n": 10, "v": {"$numberLong": "3"}})"),
      J(R"({"n": 11, "v": "ab"})"),
      J(R"({"n": 12, "v": false})"),
  };
  c->insert_many(std::move(docs));
  auto order = [&](const std::string& sort) {
    FindOptions o = proj(R"({"_id": 0, "n": 1})");
    o.sort = J(sort);
    std::vector<std::int64_t> out;
    for (auto& d : c->find(J("{}"), o)->to_vector()) out.push_back(*d.get_int64("n"));
    return out;
  };
  // null < numbers < string < object < binary < ObjectId < bool < date
  CHECK(order(R"({"v": 1})") == std::vector<std::int64_t>{4, 7, 10, 2, 11, 1, 8, 9, 6, 12, 5, 3});
  CHECK(order(R"({"v": -1})") == std::vector<std::int64_t>{3, 5, 12, 6, 9, 8, 1, 11, 2, 10, 7, 4});

  auto r = b.coll("readings");
  insert_readings(*r);
  FindOptions o = proj(R"({"_id": 0, "topic": 1, "value": 1})");
  o.sort = J(R"({"topic": 1, "value": -1})");
  CHECK(find_json(*r, "{}", o) == std::vector<std::string>{
                                      R"({ "topic" : "iot/home/hum", "value" : 62.0 })",
                                      R"({ "topic" : "iot/home/hum", "value" : 55.5 })",
                                      R"({ "topic" : "iot/home/hum", "value" : 40.0 })",
                                      R"({ "topic" : "iot/home/temp", "value" : 24.5 })",
                                      R"({ "topic" : "iot/home/temp", "value" : 24.1 })",
                                      R"({ "topic" : "iot/home/temp", "value" : 21.0 })",
                                      R"({ "topic" : "iot/office/temp", "value" : 24.2 })",
                                      R"({ "topic" : "iot/office/temp", "value" : 23.9 })",
                                  });
}

TEST_CASE("store: sort by a whole sub-document compares field by field, as MongoDB does", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto c = b.coll("subdocs");
  // MongoDB compares two documents element by element: the type class of the
  // values, then the field name, then the value (numbers by value across
  // int32/int64/double); a document that is a prefix of another sorts first.
  c->insert_many({J(R"({"n": 1, "a": {"x": 256}})"), J(R"({"n": 2, "a": {"x": 1}})"), J(R"({"n": 3, "a": {"y": "b"}})"),
                  J(R"({"n": 4, "a": {"x": 2.5}})"), J(R"({"n": 5, "a": {"y": "ab"}})"),
                  J(R"({"n": 6, "a": {"x": 1, "z": 0}})"), J(R"({"n": 7, "a": {"w": 3}})"),
                  J(R"({"n": 8, "a": {"x": {"$numberLong": "-4"}}})"), J(R"({"n": 9, "a": {"x": 1.0}})")});
  auto order = [&](const std::string& sort) {
    FindOptions o = proj(R"({"_id": 0, "n": 1})");
    o.sort = J(sort);
    std::vector<std::int64_t> out;
    for (auto& d : c->find(J("{}"), o)->to_vector()) out.push_back(*d.get_int64("n"));
    return out;
  };
  // {w: 3} < {x: -4} < {x: 1} = {x: 1.0} (insertion order) < {x: 1, z: 0} < {x: 2.5} < {x: 256} < {y: "ab"} < {y: "b"}
  CHECK(order(R"({"a": 1, "n": 1})") == std::vector<std::int64_t>{7, 8, 2, 9, 6, 4, 1, 5, 3});
  CHECK(order(R"({"a": -1, "n": 1})") == std::vector<std::int64_t>{3, 5, 1, 4, 6, 2, 9, 8, 7});
  // Equality on a sub-document compares numbers by value too.
  CHECK(c->count_documents(J(R"({"a": {"x": 1}})")) == 2);
  CHECK(c->count_documents(J(R"({"a": {"$gt": {"x": 2}}})")) == 4);
}

TEST_CASE("store: update_one, update_many, replace_one with upsert", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto c = b.coll("users");
  c->insert_many({J(R"({"_id": 1, "username": "Karoid", "visits": 1, "tmp": "x"})"),
                  J(R"({"_id": 2, "username": "Mina", "visits": 5})")});

  auto r = c->update_one(J(R"({"username": "Karoid"})"),
                         J(R"({"$inc": {"visits": 2}, "$unset": {"tmp": ""}, "$set": {"profile.city": "Seoul"}})"));
  CHECK(r.matched == 1);
  CHECK(r.modified == 1);
  CHECK(!r.upserted_id);
  CHECK(c->find_one(J(R"({"_id": 1})"))->to_json() ==
        R"({ "_id" : 1, "username" : "Karoid", "visits" : 3, "profile" : { "city" : "Seoul" } })");

  r = c->update_one(J(R"({"_id": 2})"), J(R"({"$set": {"visits": 5}})"));
  CHECK(r.matched == 1);
  CHECK(r.modified == 0);  // same value: matched, not modified

  r = c->update_many(J(R"({"visits": {"$gte": 3}})"), J(R"({"$inc": {"visits": 0.5}})"));
  CHECK(r.matched == 2);
  CHECK(r.modified == 2);
  CHECK(c->find_one(J(R"({"_id": 2})"))->get("visits")->as_double() == 5.5);

  r = c->update_one(J(R"({"username": "Nobody"})"), J(R"({"$set": {"visits": 1}})"));
  CHECK(r.matched == 0);
  CHECK(!r.upserted_id);
  r = c->update_one(J(R"({"username": "Nobody"})"), J(R"({"$set": {"visits": 1}})"), UpdateOptions{true});
  CHECK(r.matched == 0);
  REQUIRE(r.upserted_id);
  CHECK(r.upserted_id->is<ObjectId>());
  auto up = c->find_one(J(R"({"username": "Nobody"})"), proj(R"({"_id": 0})"));
  REQUIRE(up);
  CHECK(up->to_json() == R"({ "username" : "Nobody", "visits" : 1 })");
  r = c->update_many(J(R"({"username": "Many", "visits": {"$gt": 100}})"), J(R"({"$inc": {"visits": 2}})"),
                     UpdateOptions{true});
  CHECK(r.matched == 0);
  CHECK(r.modified == 0);
  REQUIRE(r.upserted_id);
  // The upsert takes the filter's equality fields, not its ranges, then applies the update.
  CHECK(c->find_one(J(R"({"username": "Many"})"), proj(R"({"_id": 0})"))->to_json() ==
        R"({ "username" : "Many", "visits" : 2 })");

  r = c->replace_one(J(R"({"_id": 1})"), J(R"({"username": "Karoid", "level": 9})"));
  CHECK(r.matched == 1);
  CHECK(r.modified == 1);
  CHECK(c->find_one(J(R"({"_id": 1})"))->to_json() == R"({ "_id" : 1, "username" : "Karoid", "level" : 9 })");
  r = c->replace_one(J(R"({"_id": 7})"), J(R"({"username": "Seven"})"), UpdateOptions{true});
  REQUIRE(r.upserted_id);
  CHECK(*r.upserted_id == Value(7));
  CHECK(c->count_documents() == 5);
}

TEST_CASE("store: delete_one and delete_many return counts", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto c = b.coll("containerBox");
  insert_container_box(*c);
  CHECK(c->delete_one(J(R"({"name": "bear"})")) == 1);
  CHECK(c->delete_one(J(R"({"name": "nothing"})")) == 0);
  CHECK(c->find_one(J(R"({"name": "bear"})"))->get_int64("weight") == 10);
  CHECK(c->delete_many(J(R"({"weight": {"$lt": 5}})")) == 2);
  CHECK(c->count_documents() == 1);
}

TEST_CASE("store: insert_many with a duplicate _id reports which document failed", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto c = b.coll("dups");
  std::vector<Document> docs = {J(R"({"_id": 1, "v": "a"})"), J(R"({"_id": 2, "v": "b"})"),
                                J(R"({"_id": 2, "v": "c"})"), J(R"({"_id": 3, "v": "d"})")};
  try {
    c->insert_many(docs);
    FAIL("a duplicate _id must fail");
  } catch (const BulkWriteError& e) {
    CHECK(e.index() == 2);
    CHECK(e.inserted_count() == 2);
    CHECK(e.duplicate_key());
    CHECK_THAT(e.what(), Catch::Contains("E11000"));
  }
  CHECK(c->count_documents() == 2);  // ordered: the documents before the failing one are stored

  // Retrying the same batch in retry-safe mode stores the rest exactly once.
  InsertManyOptions retry;
  retry.ignore_duplicate_ids = true;
  auto r = c->insert_many(docs, retry);
  CHECK(r.inserted_count == 1);
  CHECK(r.duplicates_skipped == 3);
  CHECK(r.inserted_ids.size() == 4);
  CHECK(c->count_documents() == 3);
  CHECK(c->find_one(J(R"({"_id": 2})"))->get_string("v") == "b");

  try {
    c->insert_one(J(R"({"_id": 3})"));
    FAIL("a duplicate _id must fail");
  } catch (const Error& e) {
    CHECK(e.code() == 11000);
  }

  // Unordered: every document but the duplicate is written, the error names the first failure.
  auto u = b.coll("dups_unordered");
  InsertManyOptions unordered;
  unordered.ordered = false;
  try {
    u->insert_many({J(R"({"_id": 1})"), J(R"({"_id": 1})"), J(R"({"_id": 2})")}, unordered);
    FAIL("a duplicate _id must fail");
  } catch (const BulkWriteError& e) {
    CHECK(e.index() == 1);
    CHECK(e.duplicate_key());
    CHECK(e.inserted_count() == 2);
  }
  CHECK(u->count_documents() == 2);
}

TEST_CASE("store: capped collection keeps the newest documents", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  CollectionOptions o;
  o.capped = true;
  o.size_bytes = 1 << 20;
  o.max_documents = 100;
  b.store->create_collection(b.db, "log", o);
  auto c = b.coll("log");
  for (int i = 0; i < 1000; ++i) c->insert_one(Document().append("i", i));
  auto stats = b.store->collection_stats(b.db, "log");
  CHECK(stats.capped);
  CHECK(stats.max_documents == 100);
  if (b.mongo() && std::getenv("IOTBRIDGE_TEST_MONGO_URI") == nullptr) {
    // FerretDB 1.x differs from MongoDB here: it removes the oldest documents
    // of a capped collection in a background cleanup pass (every minute by
    // default, --capped-cleanup-interval), not on insert, so right after the
    // inserts all 1000 may still be there. What holds at once: nothing newer
    // is lost, and natural order is insertion order.
    FindOptions newest;
    newest.sort = J(R"({"$natural": -1})");
    newest.limit = 100;
    auto last = c->find(J("{}"), newest)->to_vector();
    REQUIRE(last.size() == 100);
    CHECK(last.front().get_int64("i") == 999);
    CHECK(last.back().get_int64("i") == 900);
    return;
  }
  CHECK(c->count_documents() == 100);
  auto all = c->find(J("{}"))->to_vector();  // natural order: oldest first
  REQUIRE(all.size() == 100);
  CHECK(all.front().get_int64("i") == 900);
  CHECK(all.back().get_int64("i") == 999);
  CHECK(b.store->collection_stats(b.db, "log").count == 100);
}

TEST_CASE("store: databases, collections, create and drop", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  CHECK_NOTHROW(b.store->ping());
  CHECK(b.store->backend() == (b.mongo() ? "mongodb" : "sqlite"));
  CHECK(b.store->list_collections(b.db).empty());
  b.store->create_collection(b.db, "one");
  b.coll("two")->insert_one(J(R"({"x": 1})"));  // created by its first insert
  CHECK(b.store->list_collections(b.db) == std::vector<std::string>{"one", "two"});
  auto dbs = b.store->list_databases();
  CHECK(std::find(dbs.begin(), dbs.end(), b.db) != dbs.end());
  CHECK_THROWS_WITH(b.store->create_collection(b.db, "one"), Catch::Contains("already exists"));
  CHECK(b.store->drop_collection(b.db, "one"));
  CHECK_FALSE(b.store->drop_collection(b.db, "one"));
  CHECK(b.store->list_collections(b.db) == std::vector<std::string>{"two"});
  b.store->drop_database(b.db);
  CHECK(b.store->list_collections(b.db).empty());
  dbs = b.store->list_databases();
  CHECK(std::find(dbs.begin(), dbs.end(), b.db) == dbs.end());
  CHECK_THROWS_AS(b.store->collection(b.db, "bad$name"), Error);
}

TEST_CASE("store: indexes are created, listed, enforced and dropped", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto c = b.coll("sensors");
  insert_readings(*c);
  IndexSpec by_topic;
  by_topic.keys = {{"topic", 1}, {"reg_date", -1}};
  CHECK(c->create_index(by_topic) == "topic_1_reg_date_-1");
  IndexSpec unique{{{"serial", 1}}, true, "serial_unique"};
  CHECK(c->create_index(unique) == "serial_unique");
  auto list = c->list_indexes();
  REQUIRE(list.size() == 3);
  // FerretDB lists indexes by name, MongoDB in creation order: every backend
  // returns _id_ first, then by name.
  CHECK(list[0].name == "_id_");
  CHECK(list[1].name == "serial_unique");
  CHECK(list[1].unique);
  CHECK(list[2].name == "topic_1_reg_date_-1");
  CHECK(list[2].keys == std::vector<std::pair<std::string, int>>{{"topic", 1}, {"reg_date", -1}});
  CHECK_FALSE(list[2].unique);

  c->insert_one(J(R"({"serial": "A1"})"));
  CHECK_THROWS_AS(c->insert_one(J(R"({"serial": "A1"})")), Error);
  // Queries give the same answers with the index.
  FindOptions o = proj(R"({"_id": 0, "value": 1})");
  o.sort = J(R"({"reg_date": -1})");
  CHECK(find_json(*c, R"({"topic": "iot/home/temp"})", o) ==
        std::vector<std::string>{R"({ "value" : 21.0 })", R"({ "value" : 24.1 })", R"({ "value" : 24.5 })"});
  c->drop_index("serial_unique");
  CHECK(c->list_indexes().size() == 2);
  c->insert_one(J(R"({"serial": "A1"})"));
}

TEST_CASE("store: the cursor streams large results", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto c = b.coll("many");
  std::vector<Document> docs;
  for (int i = 0; i < 3000; ++i) docs.push_back(Document().append("i", i).append("pad", std::string(100, 'x')));
  CHECK(c->insert_many(std::move(docs)).inserted_count == 3000);
  FindOptions o;
  o.sort = J(R"({"i": -1})");
  auto cursor = c->find(J(R"({"i": {"$gte": 1000}})"), o);
  std::int64_t expect = 2999, n = 0;
  for (auto& d : *cursor) {
    CHECK(d.get_int64("i") == expect--);
    ++n;
  }
  CHECK(n == 2000);
}

TEST_CASE("store: one store shared by several threads at once", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  // MongoDB: each call leases a client from the pool; SQLite: one connection
  // serialized by a mutex, cursor steps included. Writers and readers run
  // together; every write lands once and every read sees whole documents.
  constexpr int kThreads = 4, kDocs = 40;
  auto shared = b.coll("threads");
  shared->insert_one(J(R"({"seed": true})"));  // the collection exists before the threads start
  std::vector<std::thread> threads;
  std::vector<std::string> errors(kThreads);
  std::vector<std::int64_t> seen(kThreads, 0);
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      try {
        auto c = b.store->collection(b.db, "threads");  // a handle per thread, and the shared one
        for (int i = 0; i < kDocs; ++i) {
          (i % 2 ? *c : *shared).insert_one(Document().append("t", t).append("i", i));
          auto cursor = c->find(Document().append("t", t), FindOptions{});
          std::int64_t n = 0;
          while (auto d = cursor->next()) {
            if (d->get_int64("t") != t) errors[t] = "a document of another thread: " + d->to_json();
            ++n;
          }
          seen[t] = n;
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    INFO("thread " << t);
    CHECK(errors[t].empty());
    CHECK(seen[t] == kDocs);  // its last find ran after its last insert
    CHECK(shared->count_documents(Document().append("t", t)) == kDocs);
  }
  CHECK(shared->count_documents() == kThreads * kDocs + 1);
}

// ---- aggregation ----------------------------------------------------------------------

namespace {

// FerretDB 1.x implements part of the aggregation pipeline. A case it lacks is
// run on the SQLite backends, and on the MongoDB-compatible server only when
// that is a real mongod (IOTBRIDGE_TEST_MONGO_URI); on FerretDB it prints why
// it is left out, never silently.
bool ferretdb_lacks(const Backend& b, const std::string& what) {
  if (!b.mongo() || std::getenv("IOTBRIDGE_TEST_MONGO_URI")) return false;
  WARN("skipped on FerretDB 1.x (it does not implement " << what << "); checked on SQLite file and memory");
  std::printf("NOTE: skipped on FerretDB 1.x: %s is not implemented there\n", what.c_str());
  return true;
}

std::vector<std::string> agg(Collection& c, const std::string& pipeline) {
  auto cursor = c.aggregate(pipeline_from_json(pipeline));
  return jsons(*cursor);
}

DateTime at(int hour, int minute) {
  // 2026-03-01T<hour>:<minute>:00Z
  return DateTime{1772323200000LL + (hour * 60LL + minute) * 60'000};
}

void insert_timed_readings(Collection& c) {
  std::vector<Document> docs;
  auto reading = [&](const char* topic, const Value& value, DateTime when) {
    docs.push_back(Document().append("topic", topic).append("value", value).append("reg_date", when));
  };
  reading("iot/a", 20, at(10, 5));
  reading("iot/b", 30, at(10, 20));
  reading("iot/a", 21.5, at(10, 40));
  reading("iot/a", 23, at(11, 10));
  reading("iot/b", 31, at(12, 0));
  docs.push_back(Document().append("topic", "iot/c").append("value", "offline").append("reg_date", at(12, 30)));
  REQUIRE(c.insert_many(std::move(docs)).inserted_count == 6);
}

}  // namespace

TEST_CASE("store: aggregate $match, $group by a field with every accumulator, $sort", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto c = b.coll("readings");
  insert_timed_readings(*c);
  // FerretDB 1.x computes only the first accumulator of a $group: one each here.
  CHECK(agg(*c, R"([{"$match": {"topic": {"$in": ["iot/a", "iot/b"]}}},
                    {"$group": {"_id": "$topic", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}])") ==
        std::vector<std::string>{R"({ "_id" : "iot/a", "n" : 3 })", R"({ "_id" : "iot/b", "n" : 2 })"});
  CHECK(agg(*c, R"([{"$group": {"_id": "$topic", "total": {"$sum": "$value"}}}, {"$sort": {"_id": 1}}])") ==
        std::vector<std::string>{R"({ "_id" : "iot/a", "total" : 64.5 })", R"({ "_id" : "iot/b", "total" : 61 })",
                                 R"({ "_id" : "iot/c", "total" : 0 })"});
  CHECK(agg(*c, R"([{"$group": {"_id": null, "m": {"$count": {}}}}])") ==
        std::vector<std::string>{R"({ "_id" : null, "m" : 6 })"});
  // An object key; $sum skips what is not a number.
  CHECK(agg(*c, R"([{"$group": {"_id": {"t": "$topic"}, "total": {"$sum": "$value"}}}, {"$sort": {"_id.t": -1}}])") ==
        std::vector<std::string>{R"({ "_id" : { "t" : "iot/c" }, "total" : 0 })",
                                 R"({ "_id" : { "t" : "iot/b" }, "total" : 61 })",
                                 R"({ "_id" : { "t" : "iot/a" }, "total" : 64.5 })"});
  // Nothing matches: no group at all.
  CHECK(agg(*c, R"([{"$match": {"topic": "nope"}}, {"$group": {"_id": null, "n": {"$sum": 1}}}])").empty());
  if (ferretdb_lacks(b, "$avg, $min, $max, $first and $last in $group, nor a second accumulator")) return;
  CHECK(agg(*c, R"([{"$group": {"_id": "$topic", "n": {"$sum": 1}, "total": {"$sum": "$value"}}},
                    {"$sort": {"_id": 1}}])")
            .at(0) == R"({ "_id" : "iot/a", "n" : 3, "total" : 64.5 })");
  CHECK(agg(*c, R"([{"$match": {"topic": {"$in": ["iot/a", "iot/b"]}}},
                    {"$group": {"_id": "$topic", "avg": {"$avg": "$value"}, "low": {"$min": "$value"},
                                "high": {"$max": "$value"}}},
                    {"$sort": {"_id": 1}}])") ==
        std::vector<std::string>{R"({ "_id" : "iot/a", "avg" : 21.5, "low" : 20, "high" : 23 })",
                                 R"({ "_id" : "iot/b", "avg" : 30.5, "low" : 30, "high" : 31 })"});
  // $avg skips what is not a number; $min/$max order across types as MongoDB does.
  CHECK(agg(*c, R"([{"$group": {"_id": null, "avg": {"$avg": "$value"}, "high": {"$max": "$value"},
                                "low": {"$min": "$reg_date"}}}])") ==
        std::vector<std::string>{R"({ "_id" : null, "avg" : 25.1, "high" : "offline", )"
                                 R"("low" : { "$date" : "2026-03-01T10:05:00Z" } })"});
  CHECK(agg(*c, R"([{"$group": {"_id": "$topic", "first": {"$first": "$value"}, "last": {"$last": "$value"}}},
                    {"$sort": {"_id": -1}}])") ==
        std::vector<std::string>{R"({ "_id" : "iot/c", "first" : "offline", "last" : "offline" })",
                                 R"({ "_id" : "iot/b", "first" : 30, "last" : 31 })",
                                 R"({ "_id" : "iot/a", "first" : 20, "last" : 23 })"});
}

TEST_CASE("store: aggregate time buckets with $dateTrunc in the $group key", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto c = b.coll("readings");
  insert_timed_readings(*c);
  if (ferretdb_lacks(b, "$dateTrunc")) return;
  CHECK(agg(*c, R"([{"$match": {"topic": "iot/a"}},
                    {"$group": {"_id": {"$dateTrunc": {"date": "$reg_date", "unit": "hour"}},
                                "avg": {"$avg": "$value"}, "n": {"$sum": 1}}},
                    {"$sort": {"_id": 1}}])") ==
        std::vector<std::string>{R"({ "_id" : { "$date" : "2026-03-01T10:00:00Z" }, "avg" : 20.75, "n" : 2 })",
                                 R"({ "_id" : { "$date" : "2026-03-01T11:00:00Z" }, "avg" : 23.0, "n" : 1 })"});
  // Two-hour bins per topic, an object key.
  CHECK(agg(*c, R"([{"$match": {"topic": {"$in": ["iot/a", "iot/b"]}}},
                    {"$group": {"_id": {"topic": "$topic",
                                        "t": {"$dateTrunc": {"date": "$reg_date", "unit": "hour", "binSize": 2}}},
                                "high": {"$max": "$value"}}},
                    {"$sort": {"_id.topic": 1, "_id.t": 1}}])")
            .size() == 3);
}

TEST_CASE("store: aggregate $bucket by value ranges", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto c = b.coll("readings");
  insert_timed_readings(*c);
  if (ferretdb_lacks(b, "$bucket")) return;
  CHECK(agg(*c, R"([{"$bucket": {"groupBy": "$value", "boundaries": [0, 25, 50], "default": "other",
                                 "output": {"n": {"$sum": 1}, "high": {"$max": "$value"}}}}])") ==
        std::vector<std::string>{R"({ "_id" : 0, "n" : 3, "high" : 23 })", R"({ "_id" : 25, "n" : 2, "high" : 31 })",
                                 R"({ "_id" : "other", "n" : 1, "high" : "offline" })"});
}

TEST_CASE("store: aggregate $project, $unwind, $skip, $limit, $count", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto c = b.coll("boxes");
  REQUIRE(
      c->insert_many({J(R"({"name": "a", "tags": ["x", "y"], "w": 1})"), J(R"({"name": "b", "tags": ["y"], "w": 2})"),
                      J(R"({"name": "c", "tags": [], "w": 3})"), J(R"({"name": "d", "w": 4})")})
          .inserted_count == 4);
  CHECK(agg(*c, R"([{"$unwind": "$tags"}, {"$group": {"_id": "$tags", "n": {"$sum": 1}}}, {"$sort": {"n": -1}}])") ==
        std::vector<std::string>{R"({ "_id" : "y", "n" : 2 })", R"({ "_id" : "x", "n" : 1 })"});
  CHECK(agg(*c, R"([{"$sort": {"w": -1}}, {"$skip": 1}, {"$limit": 2}, {"$project": {"_id": 0, "name": 1}}])") ==
        std::vector<std::string>{R"({ "name" : "c" })", R"({ "name" : "b" })"});
  CHECK(agg(*c, R"([{"$match": {"w": {"$gte": 2}}}, {"$count": "heavy"}])") ==
        std::vector<std::string>{R"({ "heavy" : 3 })"});
  CHECK(agg(*c, R"([{"$match": {"w": {"$gt": 10}}}, {"$count": "none"}])").empty());
  if (!ferretdb_lacks(b, "$unwind keeping the other fields (it drops them)")) {
    CHECK(agg(*c, R"([{"$unwind": "$tags"}, {"$project": {"_id": 0, "name": 1, "tags": 1}},
                      {"$sort": {"tags": 1, "name": 1}}])") ==
          std::vector<std::string>{R"({ "name" : "a", "tags" : "x" })", R"({ "name" : "a", "tags" : "y" })",
                                   R"({ "name" : "b", "tags" : "y" })"});
  }
  if (!ferretdb_lacks(b, "computed fields in $project (it returns \"$name\" as a string)")) {
    CHECK(agg(*c, R"([{"$match": {"name": "b"}}, {"$project": {"_id": 0, "label": {"$concat": ["box ", "$name"]},
                                                               "double": {"$multiply": ["$w", 2]}}}])") ==
          std::vector<std::string>{R"({ "label" : "box b", "double" : 4 })"});
  }
}

TEST_CASE("store: aggregate errors name what is wrong", "[store][conformance]") {
  FOR_EACH_BACKEND(b);
  auto c = b.coll("readings");
  insert_timed_readings(*c);
  CHECK_THROWS_AS(agg(*c, R"([{"$group": {"n": {"$sum": 1}}}])"), Error);  // no _id
  CHECK_THROWS_AS(agg(*c, R"([{"$nosuchstage": {}}])"), Error);
  CHECK_THROWS_WITH(pipeline_from_json(R"([{"$match": {topic: "a"}}])"), Catch::Contains("keys need double quotes"));
  CHECK_THROWS_WITH(pipeline_from_json(R"([{"$limit": 1},])"), Catch::Contains("trailing comma"));
  if (!b.mongo()) {
    CHECK_THROWS_WITH(agg(*c, R"([{"$lookup": {"from": "x"}}])"),
                      Catch::Contains("unsupported pipeline stage $lookup"));
    CHECK_THROWS_WITH(agg(*c, R"([{"$group": {"_id": null, "x": {"$stdDevPop": "$value"}}}])"),
                      Catch::Contains("unsupported accumulator $stdDevPop"));
    CHECK_THROWS_WITH(agg(*c, R"([{"$group": {"_id": {"$dateTrunc": {"date": "$topic", "unit": "hour"}}}}])"),
                      Catch::Contains("$dateTrunc needs a date"));
  }
}
