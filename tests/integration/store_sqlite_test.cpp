// What only the embedded backend has to prove: indexes on field paths are
// really used (EXPLAIN QUERY PLAN), unsupported operators fail by name, the
// file is shared safely by threads and processes, and the MongoDB backend's
// documents read back in PyMongo with their types.
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "iotbridge/store/open.hpp"
#include "servers.hpp"
#include "store/backends.hpp"

using namespace iotbridge;
using namespace iotbridge::store;
using iotbridge::test::TempDir;

namespace {
Document J(const std::string& json) { return Document::from_json(json); }

void insert_readings(Collection& c, int n) {
  std::vector<Document> docs;
  for (int i = 0; i < n; ++i)
    docs.push_back(Document()
                       .append("topic", "iot/dev" + std::to_string(i % 10) + "/temp")
                       .append("value", 20.0 + i % 7)
                       .append("reg_date", DateTime{1700000000000 + i}));
  c.insert_many(std::move(docs));
}
}  // namespace

TEST_CASE("sqlite store: an index on {topic, reg_date} serves filter and sort", "[store][sqlite]") {
  auto store = open_store("sqlite::memory:");
  auto c = store->collection("iot_service", "sensors");
  insert_readings(*c, 500);
  FindOptions o;
  o.sort = J(R"({"reg_date": -1})");
  o.limit = 10;
  Document filter = J(R"({"topic": "iot/dev3/temp"})");

  std::string before = detail::sqlite_explain(*c, filter, o);
  INFO(before);
  CHECK_THAT(before, Catch::Contains("SCAN"));
  CHECK_THAT(before, Catch::Contains("TEMP B-TREE"));  // sorts every match

  IndexSpec spec;
  spec.keys = {{"topic", 1}, {"reg_date", -1}};
  c->create_index(spec);
  std::string after = detail::sqlite_explain(*c, filter, o);
  INFO(after);
  CHECK_THAT(after, Catch::Contains("USING INDEX") && Catch::Contains("topic_1_reg_date_-1"));
  CHECK_THAT(after, !Catch::Contains("TEMP B-TREE"));  // the index gives the order

  // Ranges use it too.
  std::string range = detail::sqlite_explain(
      *c, J(R"({"topic": "iot/dev3/temp", "reg_date": {"$gt": {"$date": {"$numberLong": "1700000000100"}}}})"), o);
  INFO(range);
  CHECK_THAT(range, Catch::Contains("USING INDEX") && Catch::Contains("<expr>=? AND <expr>>?"));

  auto docs = c->find(filter, o)->to_vector();
  REQUIRE(docs.size() == 10);
  CHECK(docs[0].get_datetime("reg_date")->millis == 1700000000493);
  CHECK(docs[9].get_datetime("reg_date")->millis == 1700000000403);
}

TEST_CASE("sqlite store: fields that hold arrays are left to the evaluator", "[store][sqlite]") {
  auto store = open_store("sqlite::memory:");
  auto c = store->collection("db", "c");
  IndexSpec spec;
  spec.keys = {{"tags", 1}};
  c->create_index(spec);
  c->insert_many({J(R"({"n": 1, "tags": "solo"})"), J(R"({"n": 2, "tags": ["a", "solo"]})"),
                  J(R"({"n": 3, "tags": [3, 1, 2]})"), J(R"({"n": 4, "tags": 0})")});
  CHECK(c->count_documents(J(R"({"tags": "solo"})")) == 2);
  FindOptions o;
  o.sort = J(R"({"tags": 1, "n": 1})");
  o.projection = J(R"({"_id": 0, "n": 1})");
  std::vector<std::int64_t> order;
  for (auto& d : c->find(J("{}"), o)->to_vector()) order.push_back(*d.get_int64("n"));
  // MongoDB sorts an array by its smallest element: [3,1,2] as 1, ["a","solo"] as "a".
  CHECK(order == std::vector<std::int64_t>{4, 3, 2, 1});
}

TEST_CASE("sqlite store: unsupported operators fail naming them", "[store][sqlite]") {
  auto store = open_store("sqlite::memory:");
  auto c = store->collection("db", "c");
  c->insert_one(J(R"({"a": "x"})"));
  CHECK_THROWS_WITH(c->find(J(R"({"a": {"$regex": "^x"}})")), Catch::Contains("$regex"));
  CHECK_THROWS_WITH(c->count_documents(J(R"({"$where": "1"})")), Catch::Contains("$where"));
  CHECK_THROWS_WITH(c->count_documents(J(R"({"a": {"$not": {"$size": 1}}})")), Catch::Contains("$size"));
  CHECK_THROWS_WITH(c->update_many(J("{}"), J(R"({"$push": {"a": 1}})")), Catch::Contains("$push"));
  FindOptions o;
  o.projection = J(R"({"a": {"$slice": 1}})");
  CHECK_THROWS_WITH(c->find(J("{}"), o), Catch::Contains("$slice"));
  CHECK_THROWS_WITH(c->update_one(J("{}"), J(R"({"a": 1})")), Catch::Contains("replace_one"));
}

TEST_CASE("sqlite store: one writer and several readers across threads", "[store][sqlite]") {
  TempDir dir;
  auto store = open_store("sqlite:" + (dir / "s.db").string());
  auto c = store->collection("iot_service", "sensors");
  constexpr int kBatches = 50, kBatch = 40;
  std::atomic<bool> done{false};
  std::atomic<int> reader_errors{0};
  std::atomic<std::int64_t> reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r)
    readers.emplace_back([&] {
      std::int64_t last = 0;
      while (!done.load()) {
        try {
          std::int64_t n = c->count_documents(J(R"({"value": {"$gte": 0}})"));
          if (n < last || n % kBatch != 0) ++reader_errors;  // batches are atomic and only grow
          last = n;
          ++reads;
        } catch (...) {
          ++reader_errors;
        }
      }
    });
  for (int b = 0; b < kBatches; ++b) insert_readings(*c, kBatch);
  done = true;
  for (auto& t : readers) t.join();
  CHECK(reader_errors == 0);
  CHECK(reads > 0);
  CHECK(c->count_documents() == kBatches * kBatch);
}

TEST_CASE("sqlite store: two processes share one file", "[store][sqlite]") {
  TempDir dir;
  std::string uri = "sqlite:" + (dir / "shared.db").string();
  auto store = open_store(uri);
  auto c = store->collection("iot_service", "sensors");
  insert_readings(*c, 100);
  // The CLI is another process writing to and reading the same file.
  std::string cli = IOTBRIDGE_BINARY_DIR "/cli/iotbridge-db";
  if (::access(cli.c_str(), X_OK) != 0) FAIL("iotbridge-db not built at " << cli);
  std::string out;
  REQUIRE(iotbridge::test::run_command(
              {cli, "--store", uri, "insert", "iot_service", "sensors", R"({"topic": "from/cli", "value": 1.5})"},
              &out) == 0);
  CHECK(c->count_documents(J(R"({"topic": "from/cli"})")) == 1);
  out.clear();
  REQUIRE(iotbridge::test::run_command({cli, "--store", uri, "count", "iot_service", "sensors"}, &out) == 0);
  CHECK(out == "101\n");

  // Concurrent writers in two processes: WAL and the busy timeout serialize them.
  int cli_status = -1;
  std::thread other([&] {
    cli_status = iotbridge::test::run_command(
        {"/bin/sh", "-c",
         "for i in 1 2 3 4 5 6 7 8 9 10; do \"$0\" --store \"$1\" insert iot_service sensors "
         "'{\"topic\": \"from/cli\"}' >/dev/null || exit 1; done",
         cli, uri});
  });
  for (int b = 0; b < 20; ++b) insert_readings(*c, 40);
  other.join();
  CHECK(cli_status == 0);
  CHECK(c->count_documents() == 101 + 20 * 40 + 10);
  CHECK(c->count_documents(J(R"({"topic": "from/cli"})")) == 11);
}

TEST_CASE("sqlite store: a capped collection limited by size keeps the newest documents within it", "[store][sqlite]") {
  // (The conformance suite caps by document count on every backend; FerretDB
  // trims in a background pass, so the size limit is checked here.)
  auto store = open_store("sqlite::memory:");
  CollectionOptions o;
  o.capped = true;
  o.size_bytes = 10000;
  store->create_collection("db", "log", o);
  auto c = store->collection("db", "log");
  std::int64_t doc_size = 0;
  for (int i = 0; i < 1000; ++i) {
    Document d = Document().append("_id", i).append("pad", std::string(80, 'x'));
    doc_size = static_cast<std::int64_t>(d.size());
    if (i % 2)
      c->insert_one(std::move(d));
    else
      c->insert_many({std::move(d)});
  }
  auto stats = store->collection_stats("db", "log");
  CHECK(stats.capped);
  CHECK(stats.max_size_bytes == 10000);
  CHECK(stats.size_bytes <= 10000);
  CHECK(stats.count == 10000 / doc_size);  // as many as fit, no fewer
  auto all = c->find(J("{}"))->to_vector();
  REQUIRE(static_cast<std::int64_t>(all.size()) == stats.count);
  CHECK(all.back().get_int64("_id") == 999);
  CHECK(all.front().get_int64("_id") == 1000 - stats.count);
}

TEST_CASE("sqlite store: a file store is in WAL mode", "[store][sqlite]") {
  TempDir dir;
  auto path = dir / "wal.db";
  auto store = open_store("sqlite:" + path.string());
  store->collection("db", "c")->insert_one(J(R"({"x": 1})"));
  // WAL is a property of the file: a second, plain connection sees it.
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, sqlite3_close_v2);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st, nullptr) == SQLITE_OK);
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(st, sqlite3_finalize);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) == "wal");
}

TEST_CASE("sqlite store: a database file is reopened with its indexes and types", "[store][sqlite]") {
  TempDir dir;
  std::string uri = "sqlite:" + (dir / "re.db").string();
  {
    auto store = open_store(uri);
    auto c = store->collection("db", "c");
    IndexSpec spec;
    spec.keys = {{"k", 1}};
    spec.unique = true;
    c->create_index(spec);
    c->insert_one(Document().append("k", 1).append("big", 1LL << 40).append("when", DateTime{42}));
  }
  auto store = open_store(uri);
  auto c = store->collection("db", "c");
  auto d = c->find_one(J("{}"));
  REQUIRE(d);
  CHECK(d->get("big")->is<std::int64_t>());
  CHECK(d->get("when")->is<DateTime>());
  CHECK(c->list_indexes().size() == 2);
  CHECK_THROWS_AS(c->insert_one(Document().append("k", 1)), Error);
}

TEST_CASE("mongo store: PyMongo reads what the mongo backend wrote", "[store][mongo]") {
  IOTBRIDGE_REQUIRE_MONGO();
  std::string uri = iotbridge::test::test_mongo_uri();
  std::string db = iotbridge::test::unique_db_name("iotb_pymongo");
  auto store = open_store(uri);
  auto c = store->collection(db, "sensors");
  c->insert_one(Document()
                    .append("_id", ObjectId::generate())
                    .append("topic", "iot/home/temp")
                    .append("value", 24.5)
                    .append("reg_date", DateTime::now()));
  std::string script =
      "import sys\n"
      "from pymongo import MongoClient\n"
      "c = MongoClient(sys.argv[1], serverSelectionTimeoutMS=5000)[sys.argv[2]]['sensors']\n"
      "for d in c.find({'value': {'$gt': 24.1}}, {'_id': 0, 'topic': 1, 'value': 1, 'reg_date': 1}).sort('value'):\n"
      "    print(d['topic'], type(d['value']).__name__, d['value'], type(d['reg_date']).__name__)\n";
  std::string out;
  int rc = iotbridge::test::run_command({"/usr/bin/python3", "-c", script, uri, db}, &out);
  store->drop_database(db);
  REQUIRE(rc == 0);
  CHECK(out == "iot/home/temp float 24.5 datetime\n");
}

TEST_CASE("store: the result of find() iterates directly in a range-for, cursor kept alive", "[store][sqlite]") {
  auto store = open_store("sqlite::memory:");
  auto c = store->collection("iot_service", "sensors");
  insert_readings(*c, 25);
  int seen = 0;
  double sum = 0;
  for (const Document& d : c->find(J(R"({"topic": "iot/dev3/temp"})"))) {
    ++seen;
    sum += *d.get_double("value");
  }
  CHECK(seen == 3);  // i = 3, 13, 23
  CHECK(sum == Approx(20.0 + 3 + 20.0 + 6 + 20.0 + 2));
}

TEST_CASE("sqlite store: hourly averages over 1M readings run as one SQL GROUP BY", "[store][sqlite][aggregate]") {
  // In memory: the test is about the SQL, not the disk (a file makes it I/O-bound on a busy machine).
  auto store = open_store("sqlite::memory:");
  auto c = store->collection("iot_service", "sensors");
  // 1M readings, one every 360 ms over 100 hours from 2026-03-01T00:00Z;
  // value = the reading's minute of the hour.
  const std::int64_t kStart = 1772323200000LL, kReadings = 1'000'000, kStep = 360;
  std::vector<double> sums(100);
  for (std::int64_t batch = 0; batch < kReadings; batch += 50'000) {
    std::vector<Document> docs;
    docs.reserve(50'000);
    for (std::int64_t i = batch; i < batch + 50'000; ++i) {
      std::int64_t t = kStart + i * kStep;
      sums[static_cast<std::size_t>((t - kStart) / 3'600'000)] += static_cast<double>(t / 60'000 % 60);
      docs.push_back(Document()
                         .append("topic", i % 2 ? "iot/home1/kitchen/temperature" : "iot/home1/hall/temperature")
                         .append("value", static_cast<int>(t / 60'000 % 60))
                         .append("reg_date", DateTime{t}));
    }
    REQUIRE(c->insert_many(std::move(docs)).inserted_count == 50'000);
  }
  const auto pipeline = pipeline_from_json(R"([
      {"$group": {"_id": {"$dateTrunc": {"date": "$reg_date", "unit": "hour"}},
                  "avg": {"$avg": "$value"}, "n": {"$sum": 1}, "last": {"$max": "$reg_date"}}},
      {"$sort": {"_id": 1}}])");

  // The head of the pipeline is one SQL query; SQLite groups (a temp B-tree),
  // so no reading becomes a Document in C++.
  std::string plan = detail::sqlite_explain_aggregate(*c, pipeline);
  INFO(plan);
  CHECK_THAT(plan, Catch::StartsWith("SQL: SELECT bson_date_trunc(doc, 'reg_date', 'hour', 1, 0), avg(") &&
                       Catch::Contains("GROUP BY bson_date_trunc(doc, 'reg_date', 'hour', 1, 0)") &&
                       Catch::Contains("PLAN: SCAN") && Catch::Contains("TEMP B-TREE FOR GROUP BY"));

  auto hours = c->aggregate(pipeline)->to_vector();
  REQUIRE(hours.size() == 100);
  std::int64_t total = 0;
  for (std::size_t h = 0; h < hours.size(); ++h) {
    INFO("hour " << h << ": " << hours[h].to_json());
    CHECK(hours[h].at("_id") == Value(DateTime{kStart + static_cast<std::int64_t>(h) * 3'600'000}));
    CHECK(hours[h].at("n") == Value(10'000));
    CHECK(hours[h].get_double("avg") == Approx(sums[h] / 10'000));
    CHECK(hours[h].at("last") == Value(DateTime{kStart + static_cast<std::int64_t>(h + 1) * 3'600'000 - kStep}));
    total += *hours[h].get_int64("n");
  }
  CHECK(total == kReadings);

  // With a $match the SQL has a WHERE, and an index on topic serves it.
  c->create_index(IndexSpec{{{"topic", 1}}, false, ""});
  auto kitchen = pipeline_from_json(R"([{"$match": {"topic": "iot/home1/kitchen/temperature"}},
      {"$group": {"_id": {"$dateTrunc": {"date": "$reg_date", "unit": "day"}}, "n": {"$sum": 1}}}])");
  std::string indexed = detail::sqlite_explain_aggregate(*c, kitchen);
  INFO(indexed);
  CHECK_THAT(indexed, Catch::Contains("WHERE bson_get(doc, 'topic') = ?") && Catch::Contains("USING INDEX"));
  std::int64_t kitchen_total = 0;
  for (const auto& day : c->aggregate(kitchen)) kitchen_total += *day.get_int64("n");
  CHECK(kitchen_total == kReadings / 2);
}

TEST_CASE("sqlite store: a $group in SQL and the same $group in process agree", "[store][sqlite][aggregate]") {
  auto store = open_store("sqlite::memory:");
  auto c = store->collection("iot_service", "sensors");
  std::vector<Document> docs;
  for (int i = 0; i < 500; ++i) {
    Document d;
    d.append("topic", "iot/t" + std::to_string(i % 7));
    if (i % 11) d.append("value", i % 3 ? Value(i * 0.5) : Value(i));
    if (i % 13 == 0) d.set("value", "text");
    d.append("reg_date", DateTime{1772323200000LL + i * 97'000LL});
    if (i % 17 == 0) d.append("room", i % 2 ? Value("kitchen") : Value(nullptr));
    docs.push_back(std::move(d));
  }
  c->insert_many(std::move(docs));
  const std::string group = R"({"$group": {"_id": {"topic": "$topic", "room": "$room",
      "t": {"$dateTrunc": {"date": "$reg_date", "unit": "minute", "binSize": 15}}},
      "n": {"$sum": 1}, "total": {"$sum": "$value"}, "avg": {"$avg": "$value"}, "low": {"$min": "$value"},
      "high": {"$max": "$value"}, "first": {"$first": "$value"}, "last": {"$last": "$value"}, "c": {"$count": {}}}})";
  const std::string sort = R"({"$sort": {"_id.topic": 1, "_id.room": 1, "_id.t": 1}})";
  auto in_sql = pipeline_from_json("[" + group + ", " + sort + "]");
  // $ne does not translate exactly, so this one runs every stage in process.
  auto in_process = pipeline_from_json(R"([{"$match": {"topic": {"$ne": "none"}}}, )" + group + ", " + sort + "]");
  REQUIRE_THAT(detail::sqlite_explain_aggregate(*c, in_sql), Catch::StartsWith("SQL: "));
  REQUIRE(detail::sqlite_explain_aggregate(*c, in_process) == "in process");
  // Groups whose keys sort equal ({} and {"room": null}) may come in either
  // order: compare the sets.
  auto sorted_json = [&](const std::vector<Document>& pipeline) {
    std::vector<std::string> out;
    for (const auto& d : c->aggregate(pipeline)) out.push_back(d.to_json());
    std::sort(out.begin(), out.end());
    return out;
  };
  auto a = sorted_json(in_sql), b = sorted_json(in_process);
  REQUIRE(a.size() > 7);
  CHECK(a == b);
}
