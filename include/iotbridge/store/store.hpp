/// @file
/// DocumentStore and Collection: the one interface over MongoDB (libmongoc)
/// and the embedded SQLite store, with the everyday operations of the mongo
/// shell: databases and collections, indexes, inserts, updates, deletes, and
/// queries with MongoDB's filter, projection and sort semantics.
///
/// Thread-safety: a DocumentStore and the Collection handles it returns are
/// safe to use from several threads at once (MongoDB: each call takes a client
/// from the pool; SQLite: one connection per store, each call and each cursor
/// step serialized by a mutex; other processes share the file through WAL mode
/// and a 5 s busy timeout). A Collection keeps its store's connections alive, so it may
/// outlive the DocumentStore object. A Cursor belongs to one thread.
///
/// Errors: every failure throws iotbridge::Error (category store, the backend's
/// code); a filter, update or option a backend does not implement throws an
/// Error naming it, never ignored. Messages never contain credentials.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "iotbridge/error.hpp"
#include "iotbridge/store/document.hpp"

namespace iotbridge::store {

/// A MongoDB 5+ time-series collection: documents bucketed by time (and by
/// the meta field) on the server. Servers without them (FerretDB 1.x, the
/// SQLite store) refuse to create one with an Error naming the option.
struct TimeseriesOptions {
  std::string time_field = "reg_date";  ///< default "reg_date": a BSON datetime in every document
  std::string meta_field = "topic";     ///< default "topic": what identifies a series; "" for none
  std::string granularity = "seconds";  ///< "seconds" (default), "minutes" or "hours": how often a series reports
};

struct CollectionOptions {
  bool capped = false;
  std::int64_t size_bytes = 0;                  ///< capped: maximum total size in bytes (required when capped)
  std::int64_t max_documents = 0;               ///< capped: maximum number of documents; 0 = no count limit
  std::optional<TimeseriesOptions> timeseries;  ///< default none: an ordinary collection
  /// Time-series only: documents older than this many seconds (by time_field)
  /// are removed by the server. 0 (default): kept forever.
  std::int64_t expire_after_seconds = 0;
};

/// An index on one or more field paths; direction 1 (ascending) or -1.
struct IndexSpec {
  std::vector<std::pair<std::string, int>> keys;
  bool unique = false;  ///< default: not unique
  std::string name;     ///< default: MongoDB's "path_1_path2_-1"
  /// > 0: a TTL index (one field, holding dates): a document whose date is
  /// more than this many seconds old expires. MongoDB's server removes it
  /// (about once a minute); the SQLite store and servers without a TTL
  /// monitor remove it when Collection::delete_expired() is called.
  /// Default 0: an ordinary index.
  std::int64_t expire_after_seconds = 0;
};

struct IndexInfo {
  std::string name;
  std::vector<std::pair<std::string, int>> keys;
  bool unique = false;
  std::int64_t expire_after_seconds = 0;  ///< > 0: a TTL index (see IndexSpec)
};

struct FindOptions {
  std::optional<Document> projection;  ///< {"a": 1, "_id": 0} or {"b": 0}; default: whole documents
  Document sort;                       ///< {"value": -1, "reg_date": 1}; default: natural order
  std::int64_t skip = 0;               ///< default 0
  std::int64_t limit = 0;              ///< 0 = no limit
};

struct TailOptions {
  /// The newest this many matches are delivered first, oldest of them first
  /// (like tail -n); 0 for none.
  std::int64_t last = 10;
  /// Then keep delivering new matches as they are stored, until stopped.
  bool follow = false;
  /// How often polling looks for new documents (SQLite; MongoDB without a
  /// change stream). One indexed range query per poll, so a short interval
  /// is cheap; it bounds how late a new document shows.
  std::chrono::milliseconds poll_interval{200};
};

struct InsertManyOptions {
  /// Ordered (the default): stop at the first failure, like MongoDB.
  bool ordered = true;
  /// Retry safety: a document whose _id is already stored counts as inserted
  /// (skipped, not an error). The recorder sets it so a batch retried after a
  /// partial failure or a lost reply stores each reading exactly once.
  bool ignore_duplicate_ids = false;
};

struct InsertManyResult {
  std::vector<Value> inserted_ids;  ///< in input order, including skipped duplicates
  std::int64_t inserted_count = 0;  ///< written by this call
  std::int64_t duplicates_skipped = 0;
};

struct UpdateOptions {
  bool upsert = false;  ///< default: do not insert when nothing matches
};

struct UpdateResult {
  std::int64_t matched = 0;
  std::int64_t modified = 0;
  std::optional<Value> upserted_id;
};

/// insert_many failed on one document (ordered: documents before it were
/// written, those after it were not), like MongoDB's BulkWriteError.
class BulkWriteError : public Error {
 public:
  BulkWriteError(const std::string& message, int code, std::size_t index, std::int64_t inserted_count)
      : Error(ErrorCategory::store, message, code), index_(index), inserted_count_(inserted_count) {}
  std::size_t index() const noexcept { return index_; }                     // the failing document
  std::int64_t inserted_count() const noexcept { return inserted_count_; }  // written before it
  bool duplicate_key() const noexcept { return code() == 11000; }

 private:
  std::size_t index_;
  std::int64_t inserted_count_;
};

/// Streams the results of a find; documents are fetched as they are read.
/// Use: `while (auto doc = cursor->next()) { ... }`, or iterate the result of
/// find() directly: `for (const Document& doc : coll->find(filter))` (the
/// begin/end overloads below keep the cursor alive for the whole loop). Do not
/// write `for (... : *coll->find(filter))`: the temporary unique_ptr dies before
/// the loop body runs (C++20 range-for rules), leaving a dangling cursor.
class Cursor {
 public:
  virtual ~Cursor() = default;
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;

  /// The next document; nullopt at the end. Throws Error on failure.
  virtual std::optional<Document> next() = 0;

  /// Reads what is left into a vector (for small results).
  std::vector<Document> to_vector();

  class iterator {
   public:
    using value_type = Document;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(Cursor* c) : cursor_(c) { ++*this; }
    Document& operator*() { return *current_; }
    Document* operator->() { return &*current_; }
    iterator& operator++() {
      current_ = cursor_->next();
      if (!current_) cursor_ = nullptr;
      return *this;
    }
    bool operator==(const iterator& o) const { return cursor_ == o.cursor_; }

   private:
    Cursor* cursor_ = nullptr;
    std::optional<Document> current_;
  };
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }

 protected:
  Cursor() = default;
};

/// Lets `for (const Document& d : coll->find(filter))` iterate a cursor held
/// by the temporary unique_ptr, which range-for keeps alive for the whole loop.
inline Cursor::iterator begin(const std::unique_ptr<Cursor>& cursor) { return cursor->begin(); }
inline Cursor::iterator end(const std::unique_ptr<Cursor>& cursor) { return cursor->end(); }

/// A pipeline written as a JSON array of stages, '[{"$match": {...}}, ...]'.
/// Throws Error (config) with the position and a hint when it does not parse.
std::vector<Document> pipeline_from_json(std::string_view json);

class Collection {
 public:
  virtual ~Collection() = default;
  Collection(const Collection&) = delete;
  Collection& operator=(const Collection&) = delete;

  virtual const std::string& database_name() const = 0;
  virtual const std::string& name() const = 0;

  // ---- writes ----
  /// Adds an ObjectId _id when the document has none; returns the _id.
  virtual Value insert_one(Document doc) = 0;
  /// Inserts in order in one batch (one transaction / one bulk write). Throws
  /// BulkWriteError naming the failing document.
  virtual InsertManyResult insert_many(std::vector<Document> docs, const InsertManyOptions& options = {}) = 0;
  /// Replaces the first match with `replacement`, keeping its _id.
  virtual UpdateResult replace_one(const Document& filter, Document replacement, const UpdateOptions& options = {}) = 0;
  /// update: {"$set": {...}, "$unset": {...}, "$inc": {...}}.
  virtual UpdateResult update_one(const Document& filter, const Document& update,
                                  const UpdateOptions& options = {}) = 0;
  virtual UpdateResult update_many(const Document& filter, const Document& update,
                                   const UpdateOptions& options = {}) = 0;
  virtual std::int64_t delete_one(const Document& filter) = 0;
  virtual std::int64_t delete_many(const Document& filter) = 0;

  // ---- reads ----
  virtual std::unique_ptr<Cursor> find(const Document& filter, const FindOptions& options = {}) = 0;
  std::optional<Document> find_one(const Document& filter, const FindOptions& options = {});
  virtual std::int64_t count_documents(const Document& filter = {}) = 0;
  /// The distinct values of a dotted path among the matches, as MongoDB's
  /// distinct: an array contributes each element; sorted in MongoDB's order,
  /// numbers that compare equal (1, 1.0) count once. Reads every match.
  std::vector<Value> distinct(const std::string& path, const Document& filter = {});
  /// Runs a MongoDB aggregation pipeline and streams its results. MongoDB:
  /// passed to the server as it is. SQLite: leading $match stages and a
  /// $group (by a field, an object of fields, $dateTrunc or null; $sum $avg
  /// $min $max $count $first $last) run as one SQL query with GROUP BY, the
  /// stages after it in process; other pipelines run in process on the
  /// documents the leading $match selects. Implemented in process: $match
  /// $project $group $sort $limit $skip $unwind $count $bucket $addFields $set,
  /// the expression operators $dateTrunc (UTC) $year $month $dayOfMonth $hour
  /// $minute $second $dayOfWeek $add $subtract $multiply $divide $concat
  /// $ifNull $toDate $literal; anything else throws Error naming it. This
  /// default runs every stage in process over find() (for other backends).
  virtual std::unique_ptr<Cursor> aggregate(const std::vector<Document>& pipeline);
  /// The newest matches, then (options.follow) each new match as it is
  /// stored, in insertion order, until `stop` is requested: `on_document`
  /// runs on the calling thread, which this call blocks. SQLite: polls by
  /// insertion order. MongoDB: a change stream where the server has one (a
  /// replica set), else polling by _id (ObjectIds grow with time). This
  /// default polls by _id. Throws Error when the store fails; what
  /// on_document throws propagates.
  virtual void tail(const Document& filter, const TailOptions& options,
                    const std::function<void(const Document&)>& on_document, std::stop_token stop);

  // ---- indexes ----
  /// Returns the index name. Creating an existing identical index is a no-op.
  virtual std::string create_index(const IndexSpec& spec) = 0;
  /// "_id_" first, then by name.
  virtual std::vector<IndexInfo> list_indexes() = 0;
  virtual void drop_index(const std::string& name) = 0;

  // ---- retention ----
  /// Removes up to `limit` documents that a TTL index of the collection says
  /// have expired (its field a date older than expire_after_seconds before
  /// now), in one short delete, and returns how many: call it in a loop of
  /// small batches so that inserts never wait long. The SQLite store expires
  /// documents this way (the recorder calls it on a timer); on MongoDB the
  /// server does it by itself, and this is the same rule for servers that
  /// keep TTL indexes without removing anything (FerretDB 1.x).
  virtual std::int64_t delete_expired(std::int64_t limit);

 protected:
  Collection() = default;
};

/// Deletes up to `limit` documents of `collection` whose `field` is a date
/// before `cutoff` (one find of their _ids, one delete) and returns how many:
/// the rule of a TTL index, in a batch small enough not to hold up inserts.
/// Throws Error as find and delete_many do.
std::int64_t delete_dated_before(Collection& collection, const std::string& field, DateTime cutoff, std::int64_t limit);

/// What a store reports about a collection (iotbridge-db stats).
struct CollectionStats {
  std::int64_t count = 0;
  std::int64_t size_bytes = 0;  ///< total BSON size of the documents (SQLite) / server's "size"
  bool capped = false;
  std::int64_t max_size_bytes = 0;
  std::int64_t max_documents = 0;
  std::int64_t index_count = 0;
};

class DocumentStore {
 public:
  virtual ~DocumentStore() = default;
  DocumentStore(const DocumentStore&) = delete;
  DocumentStore& operator=(const DocumentStore&) = delete;

  /// "mongodb" or "sqlite".
  virtual std::string backend() const = 0;
  /// The URI with credentials redacted.
  virtual std::string description() const = 0;

  /// Checks that the store answers (MongoDB: a ping); throws Error otherwise.
  virtual void ping() = 0;

  virtual std::vector<std::string> list_databases() = 0;
  virtual std::vector<std::string> list_collections(const std::string& db) = 0;
  /// Throws Error when the collection exists already.
  virtual void create_collection(const std::string& db, const std::string& name,
                                 const CollectionOptions& options = {}) = 0;
  /// False when there was no such collection.
  virtual bool drop_collection(const std::string& db, const std::string& name) = 0;
  virtual void drop_database(const std::string& db) = 0;
  virtual CollectionStats collection_stats(const std::string& db, const std::string& name) = 0;

  /// A handle; the collection is created by its first insert (like MongoDB).
  virtual std::shared_ptr<Collection> collection(const std::string& db, const std::string& name) = 0;

 protected:
  DocumentStore() = default;
};

}  // namespace iotbridge::store
