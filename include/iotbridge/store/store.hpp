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

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "iotbridge/error.hpp"
#include "iotbridge/store/document.hpp"

namespace iotbridge::store {

struct CollectionOptions {
  bool capped = false;
  std::int64_t size_bytes = 0;     ///< capped: maximum total size in bytes (required when capped)
  std::int64_t max_documents = 0;  ///< capped: maximum number of documents; 0 = no count limit
};

/// An index on one or more field paths; direction 1 (ascending) or -1.
struct IndexSpec {
  std::vector<std::pair<std::string, int>> keys;
  bool unique = false;  ///< default: not unique
  std::string name;     ///< default: MongoDB's "path_1_path2_-1"
};

struct IndexInfo {
  std::string name;
  std::vector<std::pair<std::string, int>> keys;
  bool unique = false;
};

struct FindOptions {
  std::optional<Document> projection;  ///< {"a": 1, "_id": 0} or {"b": 0}; default: whole documents
  Document sort;                       ///< {"value": -1, "reg_date": 1}; default: natural order
  std::int64_t skip = 0;               ///< default 0
  std::int64_t limit = 0;              ///< 0 = no limit
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

  // ---- indexes ----
  /// Returns the index name. Creating an existing identical index is a no-op.
  virtual std::string create_index(const IndexSpec& spec) = 0;
  /// "_id_" first, then by name.
  virtual std::vector<IndexInfo> list_indexes() = 0;
  virtual void drop_index(const std::string& name) = 0;

 protected:
  Collection() = default;
};

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
