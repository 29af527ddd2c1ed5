// What this teaches: the document store, step by step, as PyMongo tutorials
// show MongoDB: a capped collection, insert_one and insert_many (and what a
// duplicate _id does), find with a filter, projection and sort, dotted paths
// into nested documents, replace_one with upsert, update_many with $set, and
// deletes. The same code runs on MongoDB and on the embedded SQLite store.
// Run (no server needed for SQLite; a MongoDB on localhost:27017 for the other):
//   build/examples/store_crud --store sqlite:crud.db
//   build/examples/store_crud --store mongodb://localhost:27017
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iotbridge/error.hpp>
#include <iotbridge/store/open.hpp>
#include <string>

using iotbridge::store::Document;
using ll = long long;  // counts are std::int64_t; printf's %lld wants long long

// Filters and documents written as JSON read like the mongo shell / PyMongo dicts.
static Document json(std::string_view text) { return Document::from_json(text); }

static void print_all(iotbridge::store::Cursor& cursor) {
  for (const Document& doc : cursor) std::printf("  %s\n", doc.to_json().c_str());
}

int main(int argc, char** argv) {
  std::string uri = "sqlite:crud.db", db = "iot_examples";
  CLI::App app{"Creates, reads, updates and deletes documents in any store."};
  app.option_defaults()->always_capture_default();
  app.add_option("--store", uri, "mongodb://host:port or sqlite:file.db or sqlite::memory:");
  app.add_option("--database", db, "database to use (its collections readings and events are replaced)");
  CLI11_PARSE(app, argc, argv);

  try {
    auto store = iotbridge::store::open_store(uri);
    store->ping();  // open_store does not connect; ping says at once when the server is not there
    store->drop_collection(db, "readings");  // start from scratch on every run
    store->drop_collection(db, "events");

    // 1. A capped collection keeps only the newest documents (a bounded log).
    iotbridge::store::CollectionOptions capped;
    capped.capped = true;
    capped.size_bytes = 4096;
    capped.max_documents = 3;
    store->create_collection(db, "events", capped);
    auto events = store->collection(db, "events");
    for (int i = 1; i <= 5; ++i) events->insert_one(Document().append("event", i));
    iotbridge::store::FindOptions newest;
    newest.sort = json(R"({"$natural": -1})");  // natural order = insertion order; -1: newest first
    newest.limit = 3;
    newest.projection = json(R"({"_id": 0})");  // everything but the _id
    std::printf("1. capped events (max 3), newest first:\n");
    print_all(*events->find({}, newest));

    // 2. insert_one: an _id (ObjectId) is added when the document has none.
    auto readings = store->collection(db, "readings");  // created by the first insert
    auto id = readings->insert_one(Document().append("topic", "iot/kitchen/temperature").append("value", 21.5));
    std::printf("2. insert_one: _id %s\n", id.to_json().c_str());

    // 3. insert_many, then again with an _id that exists: ordered inserts stop there.
    readings->insert_many({json(R"({"_id": 1, "topic": "iot/kitchen/humidity", "value": 40.0,
                                    "sensor": {"room": "kitchen", "type": "humidity"}})"),
                           json(R"({"_id": 2, "topic": "iot/bedroom/temperature", "value": 19.5,
                                    "sensor": {"room": "bedroom", "type": "temperature"}})")});
    try {
      readings->insert_many({json(R"({"_id": 3, "topic": "iot/hall/temperature", "value": 20.5})"),
                             json(R"({"_id": 1, "topic": "iot/kitchen/humidity", "value": 41.0})")});
    } catch (const iotbridge::store::BulkWriteError& e) {
      std::printf("3. insert_many failed at document %zu (%lld inserted before it, duplicate key: %s):\n  %s\n",
                  e.index(), ll(e.inserted_count()), e.duplicate_key() ? "yes" : "no", e.what());
    }
    std::printf("   readings now: %lld\n", ll(readings->count_documents()));

    // 4. find(filter, projection, sort): PyMongo's
    //    find({"value": {"$gt": 20}}, {"_id": 0, "topic": 1, "value": 1}).sort("value", -1)
    iotbridge::store::FindOptions options;
    options.projection = json(R"({"_id": 0, "topic": 1, "value": 1})");
    options.sort = json(R"({"value": -1})");
    std::printf("4. value > 20, highest first:\n");
    print_all(*readings->find(json(R"({"value": {"$gt": 20}})"), options));

    // 5. Dotted paths reach into nested documents, in filters and in get().
    auto bedroom = readings->find_one(json(R"({"sensor.room": "bedroom"})"));
    std::printf("5. sensor.room = bedroom: %s, its sensor.type is %s\n", bedroom->get_string("topic")->c_str(),
                bedroom->get_string("sensor.type")->c_str());

    // 6. replace_one with upsert: inserted the first time, replaced the second.
    iotbridge::store::UpdateOptions upsert;
    upsert.upsert = true;
    for (double value : {18.0, 18.5}) {
      auto r =
          readings->replace_one(json(R"({"topic": "iot/garage/temperature"})"),
                                Document().append("topic", "iot/garage/temperature").append("value", value), upsert);
      std::printf("6. replace_one upsert value %.1f: matched %lld, modified %lld, upserted %s\n", value, ll(r.matched),
                  ll(r.modified), r.upserted_id ? "yes" : "no");
    }

    // 7. update_many with $set: every reading below 25 gets a new field.
    auto updated = readings->update_many(json(R"({"value": {"$lt": 25}})"), json(R"({"$set": {"checked": true}})"));
    std::printf("7. update_many value < 25, $set checked: matched %lld, modified %lld\n", ll(updated.matched),
                ll(updated.modified));

    // 8. delete_one and delete_many return how many documents went.
    auto one = readings->delete_one(json(R"({"_id": 2})"));
    auto many = readings->delete_many(json(R"({"value": {"$lt": 20}})"));
    std::printf("8. delete_one _id 2: %lld, delete_many value < 20: %lld, left: %lld\n", ll(one), ll(many),
                ll(readings->count_documents()));
    print_all(*readings->find({}, options));
    return 0;
  } catch (const iotbridge::Error& e) {
    std::fprintf(stderr, "store_crud: %s\n", e.what());
    return 1;
  }
}
