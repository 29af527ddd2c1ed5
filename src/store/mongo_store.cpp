// The MongoDB backend: a libmongoc client pool shared by every Collection
// handle; each operation leases a client for its duration (a cursor keeps its
// lease until destroyed), so the store is thread-safe.
#include <mongoc/mongoc.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <mutex>

#include "iotbridge/error.hpp"
#include "iotbridge/store/open.hpp"
#include "iotbridge/store/store.hpp"
#include "store/backends.hpp"
#include "store/bson_util.hpp"
#include "store/query.hpp"

// bson_t is declared 128-byte aligned; containers of it (or of pointers to it)
// merely lose that attribute on the template argument, which is harmless here.
#pragma GCC diagnostic ignored "-Wignored-attributes"

namespace iotbridge::store::detail {
namespace {

// Set while this thread parses a URI: libmongoc logs why it refuses one
// ("Port could not be parsed"), and the Error thrown says it already.
thread_local bool parsing_uri = false;

void init_mongoc_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    mongoc_init();
    // libmongoc logs to stderr by default (URI parse errors we report
    // ourselves, FerretDB's missing endSessions, monitor chatter); a library
    // must not write to the application's stderr, so keep only the error and
    // critical levels (libmongoc's two most severe).
    mongoc_log_set_handler(
        [](mongoc_log_level_t level, const char* domain, const char* message, void*) {
          // Redacted like every message of ours, in case one quotes a URI.
          if (level > MONGOC_LOG_LEVEL_CRITICAL || parsing_uri) return;
          try {
            std::fprintf(stderr, "libmongoc %s: %s\n", domain, redact_uri(message ? message : "").c_str());
          } catch (...) {  // never throw into libmongoc
          }
        },
        nullptr);
    // mongoc_cleanup() is left to process exit: other threads or static
    // objects may still hold clients while atexit handlers run.
  });
}

struct UriDeleter {
  void operator()(mongoc_uri_t* u) const noexcept { mongoc_uri_destroy(u); }
};
struct PoolDeleter {
  void operator()(mongoc_client_pool_t* p) const noexcept { mongoc_client_pool_destroy(p); }
};

struct Pool {
  std::unique_ptr<mongoc_uri_t, UriDeleter> uri;
  std::unique_ptr<mongoc_client_pool_t, PoolDeleter> pool;
  std::string description;  // redacted URI
  std::string hosts;
  int selection_timeout_ms = kDefaultServerSelectionTimeoutMs;

  [[noreturn]] void fail_op(const std::string& what, const bson_error_t& err) {
    if (err.domain == MONGOC_ERROR_SERVER_SELECTION || (err.domain == MONGOC_ERROR_STREAM)) {
      char secs[32];
      std::snprintf(secs, sizeof secs, "%.1f", selection_timeout_ms / 1000.0);
      fail(what + " failed: no MongoDB server reachable at " + hosts + " within " + secs +
               " s (serverSelectionTimeoutMS); is the server running and the address right? [" +
               redact_uri(err.message) + "] (" + description + ")",
           static_cast<int>(err.code));
    }
    fail(what + " failed: " + redact_uri(err.message) + " (" + description + ")", static_cast<int>(err.code));
  }
};

// A client leased from the pool for one operation.
class Lease {
 public:
  explicit Lease(std::shared_ptr<Pool> pool)
      : pool_(std::move(pool)), client_(mongoc_client_pool_pop(pool_->pool.get())) {}
  ~Lease() {
    if (client_) mongoc_client_pool_push(pool_->pool.get(), client_);
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  mongoc_client_t* get() const { return client_; }

 private:
  std::shared_ptr<Pool> pool_;
  mongoc_client_t* client_;
};

struct CollDeleter {
  void operator()(mongoc_collection_t* c) const noexcept { mongoc_collection_destroy(c); }
};
using CollPtr = std::unique_ptr<mongoc_collection_t, CollDeleter>;
struct DbDeleter {
  void operator()(mongoc_database_t* d) const noexcept { mongoc_database_destroy(d); }
};
using DbPtr = std::unique_ptr<mongoc_database_t, DbDeleter>;
struct CursorDeleter {
  void operator()(mongoc_cursor_t* c) const noexcept { mongoc_cursor_destroy(c); }
};
using CursorPtr = std::unique_ptr<mongoc_cursor_t, CursorDeleter>;

void free_strv(char** v) { bson_strfreev(v); }

std::int64_t reply_int(const bson_t* reply, const char* key) {
  bson_iter_t it;
  if (bson_iter_init_find(&it, reply, key) && (BSON_ITER_HOLDS_NUMBER(&it))) return bson_iter_as_int64(&it);
  return 0;
}

// Whether a duplicate-key write error is about _id: MongoDB names the key
// (keyPattern {_id: 1}, "index: _id_"); FerretDB 1.x gives neither, and its
// only enforced unique index in the recorder's collections is _id.
bool duplicate_of_id(const bson_t* write_error, const std::string& msg) {
  bson_iter_t it;
  if (bson_iter_init_find(&it, write_error, "keyPattern") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
    bson_iter_t k;
    return bson_iter_recurse(&it, &k) && bson_iter_next(&k) && std::string(bson_iter_key(&k)) == "_id" &&
           !bson_iter_next(&k);
  }
  if (msg.find("index: ") != std::string::npos) return msg.find("index: _id_") != std::string::npos;
  return true;
}

class MongoCursor final : public Cursor {
 public:
  MongoCursor(std::unique_ptr<Lease> lease, CollPtr coll, CursorPtr cursor, std::shared_ptr<Pool> pool,
              const char* what = "find")
      : cursor_(std::move(cursor)),
        coll_(std::move(coll)),
        lease_(std::move(lease)),
        pool_(std::move(pool)),
        what_(what) {}

  std::optional<Document> next() override {
    if (!cursor_) return std::nullopt;
    const bson_t* doc = nullptr;
    if (mongoc_cursor_next(cursor_.get(), &doc)) return to_document(doc);
    bson_error_t err;
    if (mongoc_cursor_error(cursor_.get(), &err)) pool_->fail_op(what_, err);
    cursor_.reset();
    coll_.reset();
    lease_.reset();
    return std::nullopt;
  }

 private:
  // Destruction order: cursor, collection, then the client goes back to the pool.
  CursorPtr cursor_;
  CollPtr coll_;
  std::unique_ptr<Lease> lease_;
  std::shared_ptr<Pool> pool_;
  const char* what_;
};

class MongoCollection final : public Collection {
 public:
  MongoCollection(std::shared_ptr<Pool> pool, std::string db, std::string name)
      : pool_(std::move(pool)), db_(std::move(db)), name_(std::move(name)) {}

  const std::string& database_name() const override { return db_; }
  const std::string& name() const override { return name_; }

  Value insert_one(Document doc) override {
    doc = query::with_id(std::move(doc));
    Lease lease(pool_);
    CollPtr coll = get(lease);
    bson_t b = view(doc);
    bson_error_t err;
    ScopedBson reply;
    if (!mongoc_collection_insert_one(coll.get(), &b, nullptr, reply.get(), &err)) {
      if (err.code == 11000) throw BulkWriteError(std::string(err.message), 11000, 0, 0);
      pool_->fail_op("insert_one into " + db_ + "." + name_, err);
    }
    return doc.at("_id");
  }

  InsertManyResult insert_many(std::vector<Document> docs, const InsertManyOptions& options) override {
    InsertManyResult result;
    if (docs.empty()) return result;
    // Heap copies keep libbson's alignment assumptions (no bson_t by value in a vector).
    std::vector<bson_t*> owned;
    struct Free {
      std::vector<bson_t*>& v;
      ~Free() {
        for (auto* b : v) bson_destroy(b);
      }
    } free_all{owned};
    std::vector<const bson_t*> ptrs;
    owned.reserve(docs.size());
    for (auto& d : docs) {
      d = query::with_id(std::move(d));
      result.inserted_ids.push_back(d.at("_id"));
      owned.push_back(bson_new_from_data(d.data(), d.size()));
      ptrs.push_back(owned.back());
    }
    // Retry-safe mode writes unordered so that one already-stored _id does not
    // stop the rest of the batch; its duplicate-key errors are then expected.
    bool ordered = options.ordered && !options.ignore_duplicate_ids;
    ScopedBson opts;
    BSON_APPEND_BOOL(opts.get(), "ordered", ordered);
    Lease lease(pool_);
    CollPtr coll = get(lease);
    bson_error_t err;
    ScopedBson reply;
    bool ok = mongoc_collection_insert_many(coll.get(), ptrs.data(), ptrs.size(), opts.get(), reply.get(), &err);
    result.inserted_count = reply_int(reply.get(), "insertedCount");
    if (ok) return result;
    // writeErrors: [{index, code, errmsg}]
    bson_iter_t it, arr;
    std::optional<BulkWriteError> first;
    std::int64_t ignored = 0;
    bool other_errors = false;
    if (bson_iter_init_find(&it, reply.get(), "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &arr)) {
      while (bson_iter_next(&arr)) {
        bson_t e;
        uint32_t len;
        const uint8_t* data;
        bson_iter_document(&arr, &len, &data);
        bson_init_static(&e, data, len);
        std::int64_t index = reply_int(&e, "index");
        int code = static_cast<int>(reply_int(&e, "code"));
        std::string msg;
        bson_iter_t m;
        if (bson_iter_init_find(&m, &e, "errmsg") && BSON_ITER_HOLDS_UTF8(&m)) msg = bson_iter_utf8(&m, nullptr);
        if (options.ignore_duplicate_ids && code == 11000 && duplicate_of_id(&e, msg)) {
          ++ignored;
          continue;
        }
        other_errors = true;
        if (!first)
          first.emplace(msg + " (document " + std::to_string(index) + " of the batch)", code,
                        static_cast<std::size_t>(index), result.inserted_count);
      }
    }
    result.duplicates_skipped = ignored;
    if (first) throw *first;
    if (!other_errors && ignored > 0) return result;
    pool_->fail_op("insert_many into " + db_ + "." + name_, err);
  }

  UpdateResult replace_one(const Document& filter, Document replacement, const UpdateOptions& options) override {
    query::require_replacement(replacement);
    return write_update(filter, replacement, options, 'r');
  }
  UpdateResult update_one(const Document& filter, const Document& update, const UpdateOptions& options) override {
    check_update(update);
    return write_update(filter, update, options, '1');
  }
  UpdateResult update_many(const Document& filter, const Document& update, const UpdateOptions& options) override {
    check_update(update);
    return write_update(filter, update, options, 'm');
  }

  std::int64_t delete_one(const Document& filter) override { return write_delete(filter, false); }
  std::int64_t delete_many(const Document& filter) override { return write_delete(filter, true); }

  std::unique_ptr<Cursor> find(const Document& filter, const FindOptions& options) override {
    if (options.skip < 0 || options.limit < 0) fail("skip and limit must not be negative");
    ScopedBson opts;
    if (options.projection && !options.projection->empty()) {
      bson_t p = view(*options.projection);
      BSON_APPEND_DOCUMENT(opts.get(), "projection", &p);
    }
    if (!options.sort.empty()) {
      query::validate_sort(options.sort);
      bson_t s = view(options.sort);
      BSON_APPEND_DOCUMENT(opts.get(), "sort", &s);
    }
    if (options.skip) BSON_APPEND_INT64(opts.get(), "skip", options.skip);
    if (options.limit) BSON_APPEND_INT64(opts.get(), "limit", options.limit);
    auto lease = std::make_unique<Lease>(pool_);
    CollPtr coll = get(*lease);
    bson_t f = view(filter);
    CursorPtr cursor(mongoc_collection_find_with_opts(coll.get(), &f, opts.get(), nullptr));
    return std::make_unique<MongoCursor>(std::move(lease), std::move(coll), std::move(cursor), pool_);
  }

  std::unique_ptr<Cursor> aggregate(const std::vector<Document>& pipeline) override {
    // Passed through: the server implements (and judges) every stage.
    Document wrapped;
    Array stages;
    for (const auto& stage : pipeline) stages.push_back(stage);
    wrapped.append("pipeline", stages);
    auto lease = std::make_unique<Lease>(pool_);
    CollPtr coll = get(*lease);
    bson_t p = view(wrapped);
    CursorPtr cursor(mongoc_collection_aggregate(coll.get(), MONGOC_QUERY_NONE, &p, nullptr, nullptr));
    return std::make_unique<MongoCursor>(std::move(lease), std::move(coll), std::move(cursor), pool_, "aggregate");
  }

  void tail(const Document& filter, const TailOptions& options, const std::function<void(const Document&)>& on_document,
            std::stop_token stop) override {
    if (!options.follow) return Collection::tail(filter, options, on_document, stop);
    // A change stream needs a replica set; opened before the newest
    // documents are read, so that nothing stored meanwhile is missed.
    Document match = Document().append("operationType", "insert");
    for (const auto& [key, value] : prefixed(filter, "fullDocument.").fields()) match.append(key, value);
    Array stages{Document().append("$match", match)};
    Document pipeline = Document().append("pipeline", stages);
    ScopedBson opts;
    BSON_APPEND_INT64(opts.get(), "maxAwaitTimeMS", options.poll_interval.count());
    Lease lease(pool_);
    CollPtr coll = get(lease);
    bson_t p = view(pipeline);
    std::unique_ptr<mongoc_change_stream_t, void (*)(mongoc_change_stream_t*)> stream(
        mongoc_collection_watch(coll.get(), &p, opts.get()), mongoc_change_stream_destroy);
    bson_error_t err;
    const bson_t* reply = nullptr;
    if (mongoc_change_stream_error_document(stream.get(), &err, &reply)) {
      stream.reset();
      return Collection::tail(filter, options, on_document, stop);  // no change streams: poll by _id
    }
    // The newest documents first (not following), then the stream; an
    // insert the stream and the newest both saw is delivered once.
    std::vector<Value> seen;
    TailOptions newest = options;
    newest.follow = false;
    Collection::tail(
        filter, newest,
        [&](const Document& d) {
          if (auto id = d.get("_id")) seen.push_back(*id);
          on_document(d);
        },
        stop);
    const bson_t* event = nullptr;
    while (!stop.stop_requested()) {
      if (mongoc_change_stream_next(stream.get(), &event)) {
        Document e = to_document(event);
        auto doc = e.get_document("fullDocument");
        if (!doc) continue;
        auto id = doc->get("_id");
        if (id && std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return compare(s, *id) == 0; })) continue;
        on_document(*doc);
        continue;
      }
      if (mongoc_change_stream_error_document(stream.get(), &err, &reply)) pool_->fail_op("tail (change stream)", err);
      seen.clear();  // past the first await, no event can repeat the newest
    }
  }

  std::int64_t count_documents(const Document& filter) override {
    Lease lease(pool_);
    CollPtr coll = get(lease);
    bson_t f = view(filter);
    bson_error_t err;
    std::int64_t n = mongoc_collection_count_documents(coll.get(), &f, nullptr, nullptr, nullptr, &err);
    if (n < 0) pool_->fail_op("count_documents on " + db_ + "." + name_, err);
    return n;
  }

  std::string create_index(const IndexSpec& spec) override {
    if (spec.keys.empty()) fail("an index needs at least one field path");
    std::string name = spec.name.empty() ? default_index_name(spec.keys) : spec.name;
    ScopedBson cmd;
    BSON_APPEND_UTF8(cmd.get(), "createIndexes", name_.c_str());
    bson_t indexes, index, keys;
    BSON_APPEND_ARRAY_BEGIN(cmd.get(), "indexes", &indexes);
    BSON_APPEND_DOCUMENT_BEGIN(&indexes, "0", &index);
    BSON_APPEND_DOCUMENT_BEGIN(&index, "key", &keys);
    for (const auto& [path, dir] : spec.keys) BSON_APPEND_INT32(&keys, path.c_str(), dir);
    bson_append_document_end(&index, &keys);
    BSON_APPEND_UTF8(&index, "name", name.c_str());
    if (spec.unique) BSON_APPEND_BOOL(&index, "unique", true);
    if (spec.expire_after_seconds > 0) {
      if (spec.keys.size() != 1) fail("a TTL index (expire_after_seconds) has exactly one field, a date");
      BSON_APPEND_INT64(&index, "expireAfterSeconds", spec.expire_after_seconds);
    }
    bson_append_document_end(&indexes, &index);
    bson_append_array_end(cmd.get(), &indexes);
    Lease lease(pool_);
    CollPtr coll = get(lease);
    bson_error_t err;
    ScopedBson reply;
    if (!mongoc_collection_write_command_with_opts(coll.get(), cmd.get(), nullptr, reply.get(), &err))
      pool_->fail_op("create_index " + name + " on " + db_ + "." + name_, err);
    return name;
  }

  std::vector<IndexInfo> list_indexes() override {
    Lease lease(pool_);
    CollPtr coll = get(lease);
    CursorPtr cursor(mongoc_collection_find_indexes_with_opts(coll.get(), nullptr));
    std::vector<IndexInfo> out;
    const bson_t* doc;
    while (mongoc_cursor_next(cursor.get(), &doc)) {
      Document d = to_document(doc);
      IndexInfo info;
      info.name = d.get_string("name").value_or("");
      if (auto k = d.get_document("key"))
        for (const auto& [path, dir] : k->fields())
          info.keys.emplace_back(path, dir.is_number() && dir.as_double() < 0 ? -1 : 1);
      info.unique = d.get_bool("unique").value_or(false) || info.name == "_id_";
      info.expire_after_seconds = d.get_int64("expireAfterSeconds").value_or(0);
      out.push_back(std::move(info));
    }
    bson_error_t err;
    if (mongoc_cursor_error(cursor.get(), &err)) {
      if (err.code == 26) return {};  // NamespaceNotFound: no collection, no indexes
      pool_->fail_op("list_indexes on " + db_ + "." + name_, err);
    }
    // _id_ first, then by name: MongoDB lists in creation order, FerretDB by
    // name; one order for every backend.
    std::sort(out.begin(), out.end(), [](const IndexInfo& a, const IndexInfo& b) {
      return std::make_pair(a.name != "_id_", a.name) < std::make_pair(b.name != "_id_", b.name);
    });
    return out;
  }

  void drop_index(const std::string& name) override {
    Lease lease(pool_);
    CollPtr coll = get(lease);
    bson_error_t err;
    if (!mongoc_collection_drop_index_with_opts(coll.get(), name.c_str(), nullptr, &err))
      pool_->fail_op("drop_index " + name + " on " + db_ + "." + name_, err);
  }

 private:
  // The filter with `prefix` before every field path ($and/$or/$nor recursed),
  // for matching inside change events.
  static Document prefixed(const Document& filter, const std::string& prefix) {
    Document out;
    for (const auto& [key, value] : filter.fields()) {
      if (!key.empty() && key[0] == '$' && value.is<Array>()) {
        Array items;
        for (const auto& item : value.as_array().values())
          items.push_back(item.is<Document>() ? Value(prefixed(item.as_document(), prefix)) : item);
        out.append(key, items);
      } else if (!key.empty() && key[0] == '$') {
        out.append(key, value);
      } else {
        out.append(prefix + key, value);
      }
    }
    return out;
  }

  CollPtr get(const Lease& lease) {
    return CollPtr(mongoc_client_get_collection(lease.get(), db_.c_str(), name_.c_str()));
  }

  void check_update(const Document& update) { query::require_update_operators(update); }

  UpdateResult write_update(const Document& filter, const Document& update, const UpdateOptions& options, char kind) {
    ScopedBson opts;
    if (options.upsert) BSON_APPEND_BOOL(opts.get(), "upsert", true);
    Lease lease(pool_);
    CollPtr coll = get(lease);
    bson_t f = view(filter), u = view(update);
    bson_error_t err;
    ScopedBson reply;
    bool ok = kind == 'r'   ? mongoc_collection_replace_one(coll.get(), &f, &u, opts.get(), reply.get(), &err)
              : kind == '1' ? mongoc_collection_update_one(coll.get(), &f, &u, opts.get(), reply.get(), &err)
                            : mongoc_collection_update_many(coll.get(), &f, &u, opts.get(), reply.get(), &err);
    if (!ok) pool_->fail_op("update of " + db_ + "." + name_, err);
    UpdateResult r;
    r.matched = reply_int(reply.get(), "matchedCount");
    r.modified = reply_int(reply.get(), "modifiedCount");
    bson_iter_t it;
    if (bson_iter_init_find(&it, reply.get(), "upsertedId")) r.upserted_id = value_from_iter(&it);
    return r;
  }

  std::int64_t write_delete(const Document& filter, bool many) {
    Lease lease(pool_);
    CollPtr coll = get(lease);
    bson_t f = view(filter);
    bson_error_t err;
    ScopedBson reply;
    bool ok = many ? mongoc_collection_delete_many(coll.get(), &f, nullptr, reply.get(), &err)
                   : mongoc_collection_delete_one(coll.get(), &f, nullptr, reply.get(), &err);
    if (!ok) pool_->fail_op("delete from " + db_ + "." + name_, err);
    return reply_int(reply.get(), "deletedCount");
  }

  std::shared_ptr<Pool> pool_;
  std::string db_, name_;
};

class MongoStore final : public DocumentStore {
 public:
  explicit MongoStore(std::shared_ptr<Pool> pool) : pool_(std::move(pool)) {}

  std::string backend() const override { return "mongodb"; }
  std::string description() const override { return pool_->description; }

  void ping() override {
    Lease lease(pool_);
    ScopedBson cmd;
    BSON_APPEND_INT32(cmd.get(), "ping", 1);
    bson_error_t err;
    if (!mongoc_client_command_simple(lease.get(), "admin", cmd.get(), nullptr, nullptr, &err))
      pool_->fail_op("ping", err);
  }

  std::vector<std::string> list_databases() override {
    Lease lease(pool_);
    bson_error_t err;
    char** names = mongoc_client_get_database_names_with_opts(lease.get(), nullptr, &err);
    if (!names) pool_->fail_op("list_databases", err);
    std::vector<std::string> out;
    for (char** n = names; *n; ++n) {
      std::string s = *n;
      // The server's own databases are not the user's data (the SQLite store has none).
      if (s != "admin" && s != "config" && s != "local") out.push_back(s);
    }
    free_strv(names);
    std::sort(out.begin(), out.end());
    return out;
  }

  std::vector<std::string> list_collections(const std::string& db) override {
    Lease lease(pool_);
    DbPtr d(mongoc_client_get_database(lease.get(), db.c_str()));
    bson_error_t err;
    char** names = mongoc_database_get_collection_names_with_opts(d.get(), nullptr, &err);
    if (!names) pool_->fail_op("list_collections of " + db, err);
    std::vector<std::string> out;
    for (char** n = names; *n; ++n)
      if (std::string(*n).rfind("system.", 0) != 0) out.emplace_back(*n);
    free_strv(names);
    std::sort(out.begin(), out.end());
    return out;
  }

  void create_collection(const std::string& db, const std::string& name, const CollectionOptions& o) override {
    check_database_name(db);
    check_collection_name(name);
    if (o.capped && o.size_bytes <= 0) fail("a capped collection needs a size in bytes (size > 0)", 72);
    if (!o.capped && (o.size_bytes || o.max_documents)) fail("size and max apply to capped collections only", 72);
    if (o.expire_after_seconds && !o.timeseries)
      fail("expire_after_seconds at creation is for time-series collections; use a TTL index (IndexSpec)", 72);
    ScopedBson opts;
    if (o.capped) {
      BSON_APPEND_BOOL(opts.get(), "capped", true);
      BSON_APPEND_INT64(opts.get(), "size", o.size_bytes);
      if (o.max_documents > 0) BSON_APPEND_INT64(opts.get(), "max", o.max_documents);
    }
    if (o.timeseries) {
      bson_t ts;
      BSON_APPEND_DOCUMENT_BEGIN(opts.get(), "timeseries", &ts);
      BSON_APPEND_UTF8(&ts, "timeField", o.timeseries->time_field.c_str());
      if (!o.timeseries->meta_field.empty()) BSON_APPEND_UTF8(&ts, "metaField", o.timeseries->meta_field.c_str());
      BSON_APPEND_UTF8(&ts, "granularity", o.timeseries->granularity.c_str());
      bson_append_document_end(opts.get(), &ts);
      if (o.expire_after_seconds > 0) BSON_APPEND_INT64(opts.get(), "expireAfterSeconds", o.expire_after_seconds);
    }
    Lease lease(pool_);
    DbPtr d(mongoc_client_get_database(lease.get(), db.c_str()));
    bson_error_t err;
    mongoc_collection_t* c = mongoc_database_create_collection(d.get(), name.c_str(), opts.get(), &err);
    if (!c) {
      if (err.code == 48) fail("collection " + db + "." + name + " already exists", 48);
      pool_->fail_op("create_collection " + db + "." + name, err);
    }
    mongoc_collection_destroy(c);
  }

  bool drop_collection(const std::string& db, const std::string& name) override {
    auto names = list_collections(db);
    if (std::find(names.begin(), names.end(), name) == names.end()) return false;
    Lease lease(pool_);
    CollPtr c(mongoc_client_get_collection(lease.get(), db.c_str(), name.c_str()));
    bson_error_t err;
    if (!mongoc_collection_drop_with_opts(c.get(), nullptr, &err)) {
      if (err.code == 26) return false;
      pool_->fail_op("drop_collection " + db + "." + name, err);
    }
    return true;
  }

  void drop_database(const std::string& db) override {
    Lease lease(pool_);
    DbPtr d(mongoc_client_get_database(lease.get(), db.c_str()));
    bson_error_t err;
    if (!mongoc_database_drop_with_opts(d.get(), nullptr, &err)) pool_->fail_op("drop_database " + db, err);
  }

  CollectionStats collection_stats(const std::string& db, const std::string& name) override {
    auto names = list_collections(db);
    if (std::find(names.begin(), names.end(), name) == names.end())
      fail("collection " + db + "." + name + " does not exist", 26);
    Lease lease(pool_);
    ScopedBson cmd, reply;
    BSON_APPEND_UTF8(cmd.get(), "collStats", name.c_str());
    bson_error_t err;
    if (!mongoc_client_command_simple(lease.get(), db.c_str(), cmd.get(), nullptr, reply.get(), &err))
      pool_->fail_op("collStats " + db + "." + name, err);
    Document r = to_document(reply.get());
    CollectionStats s;
    s.count = r.get_int64("count").value_or(0);
    s.size_bytes = r.get_int64("size").value_or(0);
    s.capped = r.get_bool("capped").value_or(false);
    s.max_size_bytes = r.get_int64("maxSize").value_or(0);
    s.max_documents = r.get_int64("max").value_or(0);
    s.index_count = r.get_int64("nindexes").value_or(0);
    return s;
  }

  std::shared_ptr<Collection> collection(const std::string& db, const std::string& name) override {
    check_database_name(db);
    check_collection_name(name);
    return std::make_shared<MongoCollection>(pool_, db, name);
  }

 private:
  std::shared_ptr<Pool> pool_;
};

// libmongoc accepts hosts such as "[bad" or "bad host" and only fails at the
// first operation, after serverSelectionTimeoutMS: refuse them up front.
void check_hosts(const mongoc_uri_t* u, const std::string& shown) {
  for (const mongoc_host_list_t* h = mongoc_uri_get_hosts(u); h; h = h->next) {
    std::string host = h->host;
    bool ok = !host.empty();
    if (h->family == AF_UNIX) continue;  // a socket path (/tmp/mongodb-27017.sock)
    for (char c : host) {
      bool name_char = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
      bool v6_char = h->family == AF_INET6 && (std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '%');
      if (!name_char && !v6_char) ok = false;
    }
    if (!ok)
      throw Error(ErrorCategory::config,
                  "bad MongoDB URI '" + shown + "': '" + host +
                      "' is not a host name, an IPv4 address or an IPv6 address in brackets; write "
                      "mongodb://host:27017/ or mongodb://[::1]:27017/");
  }
}

}  // namespace

std::unique_ptr<DocumentStore> open_mongo(const std::string& uri_text) {
  init_mongoc_once();
  auto pool = std::make_shared<Pool>();
  pool->description = redact_uri(uri_text);
  bson_error_t err;
  parsing_uri = true;
  pool->uri.reset(mongoc_uri_new_with_error(uri_text.c_str(), &err));
  parsing_uri = false;
  if (!pool->uri)
    throw Error(ErrorCategory::config, "bad MongoDB URI '" + pool->description + "': " + redact_uri(err.message),
                static_cast<int>(err.code));
  mongoc_uri_t* u = pool->uri.get();
  check_hosts(u, pool->description);
  if (!mongoc_uri_has_option(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
    mongoc_uri_set_option_as_int32(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, kDefaultServerSelectionTimeoutMs);
  if (!mongoc_uri_has_option(u, MONGOC_URI_CONNECTTIMEOUTMS))
    mongoc_uri_set_option_as_int32(u, MONGOC_URI_CONNECTTIMEOUTMS, kDefaultServerSelectionTimeoutMs);
  pool->selection_timeout_ms =
      mongoc_uri_get_option_as_int32(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, kDefaultServerSelectionTimeoutMs);
  for (const mongoc_host_list_t* h = mongoc_uri_get_hosts(u); h; h = h->next)
    pool->hosts += (pool->hosts.empty() ? "" : ",") + std::string(h->host_and_port);
  if (pool->hosts.empty()) pool->hosts = pool->description;
  bson_error_t pool_err{};
  pool->pool.reset(mongoc_client_pool_new_with_error(u, &pool_err));
  if (!pool->pool) {
    // mongodb+srv: the DNS SRV lookup happens here; its failure is the
    // environment's (name, DNS), not a malformed URI.
    bool srv = mongoc_uri_get_srv_hostname(u) != nullptr;
    throw Error(srv ? ErrorCategory::store : ErrorCategory::config,
                "cannot create a MongoDB client pool for '" + pool->description + "': " + redact_uri(pool_err.message) +
                    (srv ? " (is the cluster name right and is DNS reachable?)" : ""),
                static_cast<int>(pool_err.code));
  }
  mongoc_client_pool_set_error_api(pool->pool.get(), MONGOC_ERROR_API_VERSION_2);
  mongoc_client_pool_set_appname(pool->pool.get(), "iotbridge");
  return std::make_unique<MongoStore>(std::move(pool));
}

}  // namespace iotbridge::store::detail
