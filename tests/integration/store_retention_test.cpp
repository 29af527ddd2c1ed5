// Retention against real stores (SQLite files and the MongoDB-compatible
// server of the fixture): TTL indexes made idempotently, a conflicting index
// reported and kept, the recorder's batched expiry where the server has none
// (FerretDB 1.x refuses TTL indexes), time-series collections refused with an
// error that names the option.
#include <catch2/catch.hpp>

#include "iotbridge/record/retention.hpp"
#include "iotbridge/store/open.hpp"
#include "servers.hpp"

using namespace iotbridge;
using namespace iotbridge::store;
using iotbridge::record::Retention;
using iotbridge::record::Route;

namespace {

struct RetentionBackend {
  std::unique_ptr<test::TempDir> dir;
  std::unique_ptr<DocumentStore> store;
  std::string db;
  bool mongo = false;

  explicit RetentionBackend(const std::string& kind) {
    mongo = kind == "mongodb";
    if (mongo) {
      store = open_store(test::test_mongo_uri());
      db = test::unique_db_name("iotb_ret");
    } else {
      dir = std::make_unique<test::TempDir>("iotbridge-retention");
      store = open_store("sqlite:" + (dir->path() / "store.db").string());
      db = "iot_service";
    }
  }
  ~RetentionBackend() {
    if (!mongo) return;
    try {
      store->drop_database(db);
    } catch (...) {
    }
  }
  Route route(std::chrono::seconds expire_after) const {
    Route r;
    r.name = "r";
    r.filters = {"iot/#"};
    r.database = db;
    r.collection = "sensors";
    r.expire_after = expire_after;
    return r;
  }
};

#define FOR_EACH_RETENTION_BACKEND(var)                                                   \
  const std::string backend_kind = GENERATE(as<std::string>{}, "sqlite-file", "mongodb"); \
  if (backend_kind == "mongodb") IOTBRIDGE_REQUIRE_MONGO();                               \
  INFO("backend: " << backend_kind);                                                      \
  RetentionBackend var(backend_kind)

// `old` documents dated an hour ago, `fresh` ones dated now.
void insert_dated(Collection& c, int old, int fresh) {
  std::vector<Document> docs;
  const DateTime hour_ago{DateTime::now().millis - 3600 * 1000};
  for (int i = 0; i < old; ++i)
    docs.push_back(Document().append("topic", "t").append("n", i).append("reg_date", hour_ago));
  for (int i = 0; i < fresh; ++i)
    docs.push_back(Document().append("topic", "t").append("n", 1000 + i).append("reg_date", DateTime::now()));
  // A document whose field is not a date never expires (as with MongoDB's TTL indexes).
  docs.push_back(Document().append("topic", "t").append("n", -1).append("reg_date", "yesterday"));
  c.insert_many(std::move(docs));
}

}  // namespace

TEST_CASE("retention: a TTL index made at start, idempotently", "[retention]") {
  FOR_EACH_RETENTION_BACKEND(b);
  auto coll = b.store->collection(b.db, "sensors");
  coll->insert_one(Document().append("topic", "t").append("reg_date", DateTime::now()));
  auto first = Retention::setup(*b.store, coll, b.route(std::chrono::seconds(2)));
  INFO(first.message());
  CHECK(first.field() == "reg_date");
  if (b.mongo) {
    // A real MongoDB removes expired documents itself; FerretDB 1.x refuses
    // the index and the recorder does it, saying so.
    CHECK((first.mode() == Retention::Mode::server || first.mode() == Retention::Mode::recorder));
    if (first.mode() == Retention::Mode::recorder) CHECK_THAT(first.message(), Catch::Contains("refuses TTL indexes"));
  } else {
    CHECK(first.mode() == Retention::Mode::recorder);
    auto indexes = coll->list_indexes();
    REQUIRE(indexes.size() == 2);
    CHECK(indexes[1].name == "reg_date_1");
    CHECK(indexes[1].expire_after_seconds == 2);
  }
  // Again (the next start): the same outcome, nothing added.
  auto count = coll->list_indexes().size();
  auto second = Retention::setup(*b.store, coll, b.route(std::chrono::seconds(2)));
  CHECK(second.mode() == first.mode());
  CHECK(coll->list_indexes().size() == count);
}

TEST_CASE("retention: a conflicting index is reported and kept, not replaced", "[retention]") {
  FOR_EACH_RETENTION_BACKEND(b);
  auto coll = b.store->collection(b.db, "sensors");
  coll->insert_one(Document().append("topic", "t").append("reg_date", DateTime::now()));
  IndexSpec existing;
  existing.keys = {{"reg_date", 1}};
  if (!b.mongo) existing.expire_after_seconds = 3600;  // FerretDB 1.x has no TTL index to conflict with
  coll->create_index(existing);
  auto r = Retention::setup(*b.store, coll, b.route(std::chrono::seconds(2)));
  INFO(r.message());
  auto indexes = coll->list_indexes();
  REQUIRE(indexes.size() == 2);  // nothing replaced, nothing added
  CHECK(indexes[1].name == "reg_date_1");
  CHECK(indexes[1].expire_after_seconds == existing.expire_after_seconds);
  if (r.mode() == Retention::Mode::recorder) {
    // FerretDB 1.x: no TTL index can exist, so a plain one is no conflict:
    // it serves the recorder's own deletes.
    REQUIRE(b.mongo);
    CHECK_THAT(r.message(), Catch::Contains("refuses TTL indexes"));
    return;
  }
  CHECK(r.mode() == Retention::Mode::conflict);
  CHECK_THAT(r.message(), Catch::Contains("expire_after 2s is not applied") && Catch::Contains("reg_date_1") &&
                              Catch::Contains("kept as it is"));
  CHECK(r.expire_some(1000) == 0);  // the index's owner decides, not us
}

TEST_CASE("retention: expired documents go in bounded batches, newer ones stay", "[retention]") {
  FOR_EACH_RETENTION_BACKEND(b);
  auto coll = b.store->collection(b.db, "sensors");
  insert_dated(*coll, 25, 5);
  auto r = Retention::setup(*b.store, coll, b.route(std::chrono::seconds(60)));
  if (r.mode() == Retention::Mode::server) {
    // A real mongod's TTL monitor expires documents (once a minute, too slow
    // to wait for here): what is checked is that it got the TTL index and that
    // the recorder leaves the deleting to it.
    INFO(r.message());
    bool ttl = false;
    for (const auto& index : coll->list_indexes())
      if (index.keys == std::vector<std::pair<std::string, int>>{{"reg_date", 1}} && index.expire_after_seconds == 60)
        ttl = true;
    CHECK(ttl);
    CHECK(r.expire_some(1000) == 0);
    return;
  }
  REQUIRE(r.mode() == Retention::Mode::recorder);
  CHECK(r.expire_some(10) == 10);
  CHECK(r.expire_some(10) == 10);
  CHECK(r.expire_some(10) == 5);
  CHECK(r.expire_some(10) == 0);
  CHECK(coll->count_documents() == 6);
  CHECK(coll->count_documents(Document::from_json(R"({"n": {"$gte": 1000}})")) == 5);
  CHECK(coll->count_documents(Document::from_json(R"({"n": -1})")) == 1);
}

TEST_CASE("retention: Collection::delete_expired follows the TTL indexes (SQLite's own expiry)", "[retention]") {
  test::TempDir dir("iotbridge-retention");
  auto store = open_store("sqlite:" + (dir.path() / "store.db").string());
  auto coll = store->collection("iot_service", "sensors");
  insert_dated(*coll, 12, 3);
  CHECK(coll->delete_expired(100) == 0);  // no TTL index: nothing expires
  IndexSpec ttl;
  ttl.keys = {{"reg_date", 1}};
  ttl.expire_after_seconds = 60;
  coll->create_index(ttl);
  CHECK(coll->delete_expired(5) == 5);
  CHECK(coll->delete_expired(100) == 7);
  CHECK(coll->count_documents() == 4);
  // Same keys with another TTL is another index: refused, like MongoDB's IndexOptionsConflict.
  ttl.expire_after_seconds = 30;
  CHECK_THROWS_WITH(coll->create_index(ttl),
                    Catch::Contains("already exists") && Catch::Contains("other keys or options"));
  coll->drop_index("reg_date_1");
  CHECK(coll->list_indexes().size() == 1);
  coll->create_index(ttl);  // the TTL went with the index
  CHECK(coll->list_indexes()[1].expire_after_seconds == 30);
  // A TTL index has one field.
  IndexSpec two;
  two.keys = {{"topic", 1}, {"reg_date", 1}};
  two.expire_after_seconds = 5;
  CHECK_THROWS_WITH(coll->create_index(two), Catch::Contains("exactly one field"));
}

TEST_CASE("retention: a time-series collection, or an error naming the option", "[retention]") {
  FOR_EACH_RETENTION_BACKEND(b);
  Route r = b.route(std::chrono::seconds(0));
  r.collection = "series";
  r.timeseries = TimeseriesOptions{};
  try {
    record::prepare_timeseries(*b.store, r);
    // A MongoDB 5+ server (IOTBRIDGE_TEST_MONGO_URI): the collection exists now.
    auto names = b.store->list_collections(b.db);
    CHECK(std::find(names.begin(), names.end(), "series") != names.end());
    CHECK_NOTHROW(record::prepare_timeseries(*b.store, r));  // idempotent
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::config);
    CHECK_THAT(e.what(), Catch::Contains("route 'r': timeseries:") && Catch::Contains("remove timeseries"));
    auto names = b.store->list_collections(b.db);
    CHECK(std::find(names.begin(), names.end(), "series") == names.end());
  }
}

TEST_CASE("retention: iotbridge-db stats and index show a collection's retention", "[retention][cli]") {
  const std::string cli = IOTBRIDGE_BINARY_DIR "/cli/iotbridge-db";
  RetentionBackend b("sqlite-file");
  auto coll = b.store->collection(b.db, "sensors");
  coll->insert_one(Document().append("topic", "t").append("reg_date", DateTime::now()));
  Route r = b.route(std::chrono::seconds(30 * 86400));
  REQUIRE(Retention::setup(*b.store, coll, r).mode() == Retention::Mode::recorder);
  const std::string uri = "sqlite:" + (b.dir->path() / "store.db").string();
  std::string out;
  REQUIRE(test::run_command({cli, "--store", uri, "stats", b.db, "sensors"}, &out) == 0);
  CHECK_THAT(out, Catch::Contains("\"retention\"") && Catch::Contains("\"field\": \"reg_date\"") &&
                      Catch::Contains("\"expireAfterSeconds\": 2592000") &&
                      Catch::Contains("\"expireAfter\": \"30d\""));
  REQUIRE(test::run_command({cli, "--store", uri, "index", b.db, "sensors"}, &out) == 0);
  CHECK_THAT(out, Catch::Contains("reg_date_1 { \"reg_date\" : 1 } expires after 30d"));
}
