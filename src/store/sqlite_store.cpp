// The embedded backend. One SQLite file holds every database and collection:
//   _iotbridge_collections(db, name, capped, size, max, array_keys)
//   _iotbridge_indexes(db, coll, name, keys, uniq)
//   "db.coll"(seq INTEGER PRIMARY KEY, id UNIQUE, doc BLOB)
// Documents are stored as BSON (full type fidelity). Filters and sorts are
// translated into SQL on bson_get(doc, 'path'), a deterministic function this
// backend registers, so expression indexes on the same calls serve them; the
// translation is a superset, and when it is not exact the in-process evaluator
// (query.cpp) makes the decision on every candidate row. Paths whose top-level field ever held
// an array (array_keys) are left to the evaluator, because one SQL value cannot
// stand for "any element".
//
// Concurrency: one connection per store, serialized by a mutex (each cursor
// step takes it too, so a cursor may be read while other threads write); WAL
// and busy_timeout let other processes read and write the same file.
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <set>
#include <sstream>
#include <string_view>

#include "iotbridge/error.hpp"
#include "iotbridge/store/store.hpp"
#include "store/aggregate.hpp"
#include "store/backends.hpp"
#include "store/bson_util.hpp"
#include "store/query.hpp"
#include "store/sqlite_aggregate.hpp"
#include "store/sqlite_keys.hpp"
#include "store/tail_wait.hpp"
#include "store/vector_cursor.hpp"

namespace iotbridge::store::detail {

// ---- keys ----------------------------------------------------------------------

namespace {
void put_be(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
std::string raw_array(const Array& a) {
  Document d;
  for (std::size_t i = 0; i < a.size(); ++i) d.append(std::to_string(i), a[i]);
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

// Bytes whose memcmp order is the order of the strings (shorter prefix first):
// 0x00 is escaped as 0x00 0xFF, the end is 0x00 0x00.
void put_terminated(std::string& out, std::string_view s) {
  for (char c : s) {
    out += c;
    if (c == '\0') out += '\xff';
  }
  out.append(2, '\0');
}

// A double's bits, flipped so that memcmp order is numeric order.
void put_double(std::string& out, double d) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &d, sizeof bits);
  bits = (bits & 0x8000000000000000ULL) ? ~bits : bits | 0x8000000000000000ULL;
  put_be(out, bits, 8);
}

void put_ordered(std::string& out, const Value& v);

// An element list (document fields, or array elements under their index)
// compared as MongoDB does: per element the type class, then the field name,
// then the value; a list that is a prefix of another sorts first (end = 0x00,
// below every type tag).
void put_elements(std::string& out, const std::vector<std::pair<std::string, Value>>& fields) {
  for (const auto& [key, value] : fields) {
    out += static_cast<char>(type_rank(value.type()) + 1);
    put_terminated(out, key);
    put_ordered(out, value);
  }
  out += '\0';
}

// The value of a document field, encoded so that memcmp order is compare()'s
// order, for sorting by (and indexing) whole sub-documents: numbers by value
// across int32/int64/double (NaN lowest, -0 = 0, int64 exact beyond 2^53).
void put_ordered(std::string& out, const Value& v) {
  switch (v.type()) {
    case Type::null: break;
    case Type::int32:
    case Type::int64:
    case Type::double_: {
      double d = v.as_double();
      if (std::isnan(d)) {
        out += '\0';
        break;
      }
      out += '\1';
      put_double(out, d == 0 ? 0.0 : d);
      // Integers that one double stands for (beyond 2^53) differ by this rest.
      std::int64_t rest = 0;
      if (!v.is<double>())
        rest = static_cast<std::int64_t>(static_cast<long double>(v.as_int64()) - static_cast<long double>(d));
      put_be(out, static_cast<std::uint64_t>(rest) ^ 0x8000000000000000ULL, 8);
      break;
    }
    case Type::string: put_terminated(out, v.as_string()); break;
    case Type::document: put_elements(out, v.as_document().fields()); break;
    case Type::array: {
      std::vector<std::pair<std::string, Value>> items;
      for (std::size_t i = 0; i < v.as_array().size(); ++i) items.emplace_back(std::to_string(i), v.as_array()[i]);
      put_elements(out, items);
      break;
    }
    case Type::binary: {
      const auto& b = v.as_binary();
      put_be(out, b.data.size(), 4);
      out += static_cast<char>(b.subtype);
      out.append(b.data.begin(), b.data.end());
      break;
    }
    case Type::object_id: {
      auto id = v.as_object_id();
      out.append(reinterpret_cast<const char*>(id.bytes.data()), 12);
      break;
    }
    case Type::boolean: out += static_cast<char>(v.as_bool() ? 1 : 0); break;
    case Type::datetime:
      put_be(out, static_cast<std::uint64_t>(v.as_datetime().millis) ^ 0x8000000000000000ULL, 8);
      break;
    case Type::timestamp:
      put_be(out, v.as_timestamp().seconds, 4);
      put_be(out, v.as_timestamp().increment, 4);
      break;
    case Type::other: {
      const auto& o = std::get<OtherBson>(v.variant());
      put_terminated(out, std::string_view(reinterpret_cast<const char*>(o.bytes.data()), o.bytes.size()));
      break;
    }
  }
}
}  // namespace

SqlKey sql_key(const Value& v) {
  SqlKey k;
  auto blob = [&](int rank) {
    k.kind = SqlKey::blob;
    k.bytes.assign(1, static_cast<char>(rank));
  };
  switch (v.type()) {
    case Type::null: break;
    case Type::int32:
    case Type::int64:
      k.kind = SqlKey::integer;
      k.i = v.as_int64();
      break;
    case Type::double_:
      k.kind = SqlKey::real;
      k.d = v.as_double();
      break;
    case Type::string:
      k.kind = SqlKey::text;
      k.bytes = v.as_string();
      break;
    case Type::document:
      blob(4);
      put_elements(k.bytes, v.as_document().fields());
      break;
    case Type::array:
      blob(5);
      k.bytes += raw_array(v.as_array());
      break;
    case Type::binary: {
      const auto& b = v.as_binary();
      blob(6);
      put_be(k.bytes, b.data.size(), 4);
      k.bytes += static_cast<char>(b.subtype);
      k.bytes.append(b.data.begin(), b.data.end());
      break;
    }
    case Type::object_id: {
      blob(7);
      auto id = v.as_object_id();
      k.bytes.append(reinterpret_cast<const char*>(id.bytes.data()), 12);
      break;
    }
    case Type::boolean:
      blob(8);
      k.bytes += static_cast<char>(v.as_bool() ? 1 : 0);
      break;
    case Type::datetime:
      blob(9);
      put_be(k.bytes, static_cast<std::uint64_t>(v.as_datetime().millis) ^ 0x8000000000000000ULL, 8);
      break;
    case Type::timestamp:
      blob(10);
      put_be(k.bytes, v.as_timestamp().seconds, 4);
      put_be(k.bytes, v.as_timestamp().increment, 4);
      break;
    case Type::other: {
      const auto& o = std::get<OtherBson>(v.variant());
      blob(o.bson_type == BSON_TYPE_MINKEY ? 0 : (o.bson_type == BSON_TYPE_MAXKEY ? 127 : 11));
      k.bytes.append(o.bytes.begin(), o.bytes.end());
      break;
    }
  }
  return k;
}

namespace {

// ---- SQLite plumbing -----------------------------------------------------------------

struct DbCloser {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

std::string quote_ident(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}
std::string quote_literal(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

void bind_key(sqlite3_stmt* st, int idx, const SqlKey& k) {
  switch (k.kind) {
    case SqlKey::null: sqlite3_bind_null(st, idx); break;
    case SqlKey::integer: sqlite3_bind_int64(st, idx, k.i); break;
    case SqlKey::real: sqlite3_bind_double(st, idx, k.d); break;
    case SqlKey::text:
      sqlite3_bind_text(st, idx, k.bytes.data(), static_cast<int>(k.bytes.size()), SQLITE_TRANSIENT);
      break;
    case SqlKey::blob:
      sqlite3_bind_blob(st, idx, k.bytes.data(), static_cast<int>(k.bytes.size()), SQLITE_TRANSIENT);
      break;
  }
}

// bson_get(doc, path): the SQL key of the value at a dotted path (NULL when absent).
void bson_get_fn(sqlite3_context* ctx, int, sqlite3_value** argv) {
  const void* data = sqlite3_value_blob(argv[0]);
  int len = sqlite3_value_bytes(argv[0]);
  const unsigned char* path = sqlite3_value_text(argv[1]);
  if (!data || !path || len < 5) {
    sqlite3_result_null(ctx);
    return;
  }
  bson_t b;
  bson_iter_t it, found;
  if (!bson_init_static(&b, static_cast<const uint8_t*>(data), static_cast<size_t>(len)) || !bson_iter_init(&it, &b) ||
      !bson_iter_find_descendant(&it, reinterpret_cast<const char*>(path), &found)) {
    sqlite3_result_null(ctx);
    return;
  }
  try {
    switch (bson_iter_type(&found)) {
      case BSON_TYPE_INT32: sqlite3_result_int64(ctx, bson_iter_int32(&found)); return;
      case BSON_TYPE_INT64: sqlite3_result_int64(ctx, bson_iter_int64(&found)); return;
      case BSON_TYPE_DOUBLE: {
        // SQLite stores a NaN as NULL, which would make NaN look missing. It
        // sorts below every number (MongoDB's order), so it becomes -Infinity;
        // SqlFilter leaves NaN and -Infinity operands to the evaluator.
        double d = bson_iter_double(&found);
        sqlite3_result_double(ctx, std::isnan(d) ? -std::numeric_limits<double>::infinity() : d);
        return;
      }
      case BSON_TYPE_UTF8: {
        uint32_t n = 0;
        const char* s = bson_iter_utf8(&found, &n);
        sqlite3_result_text(ctx, s, static_cast<int>(n), SQLITE_TRANSIENT);
        return;
      }
      case BSON_TYPE_NULL:
      case BSON_TYPE_UNDEFINED: sqlite3_result_null(ctx); return;
      default: break;
    }
    SqlKey k = sql_key(value_from_iter(&found));
    sqlite3_result_blob(ctx, k.bytes.data(), static_cast<int>(k.bytes.size()), SQLITE_TRANSIENT);
  } catch (const std::exception& e) {
    sqlite3_result_error(ctx, e.what(), -1);  // never throw into SQLite
  }
}

// ---- the store state -----------------------------------------------------------------

struct State {
  std::unique_ptr<sqlite3, DbCloser> db;
  std::recursive_mutex mu;
  std::string description;

  sqlite3* handle() { return db.get(); }

  [[noreturn]] void fail_sql(const std::string& what) {
    int code = sqlite3_extended_errcode(handle());
    fail(what + ": " + sqlite3_errmsg(handle()) + " (" + description + ")", code);
  }

  StmtPtr prepare(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(handle(), sql.c_str(), static_cast<int>(sql.size()), &st, nullptr) != SQLITE_OK)
      fail_sql("SQL prepare failed for [" + sql + "]");
    return StmtPtr(st);
  }

  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(handle(), sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      fail("SQLite failed [" + sql + "]: " + msg + " (" + description + ")", sqlite3_extended_errcode(handle()));
    }
  }

  // Steps a statement that returns no rows.
  void run(sqlite3_stmt* st, const std::string& what) {
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) fail_sql(what);
  }
};

// Rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(State& s) : s_(s) {
    if (sqlite3_get_autocommit(s_.handle())) {
      s_.exec("BEGIN IMMEDIATE");
      active_ = true;
    }
  }
  ~Transaction() {
    if (active_) sqlite3_exec(s_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    if (active_) s_.exec("COMMIT");
    active_ = false;
  }

 private:
  State& s_;
  bool active_ = false;
};

std::string table_name(const std::string& db, const std::string& coll) { return quote_ident(db + "." + coll); }

std::string column_expr(const std::string& path) {
  if (path == "_id") return "id";
  if (path == "$natural") return "seq";  // sort {"$natural": -1}: newest first
  return "bson_get(doc, " + quote_literal(path) + ")";
}

struct Meta {
  bool exists = false;
  bool capped = false;
  std::int64_t size = 0, max = 0;
  std::set<std::string> array_keys;
};

std::string top_key(const std::string& path) { return path.substr(0, path.find('.')); }

bool holds_array(bson_iter_t* it) {
  if (BSON_ITER_HOLDS_ARRAY(it)) return true;
  if (!BSON_ITER_HOLDS_DOCUMENT(it)) return false;
  bson_iter_t child;
  if (!bson_iter_recurse(it, &child)) return false;
  while (bson_iter_next(&child))
    if (holds_array(&child)) return true;
  return false;
}

// Top-level fields of doc that hold an array somewhere, not yet in `known`.
void collect_array_keys(const Document& doc, const std::set<std::string>& known, std::set<std::string>& out) {
  bson_t b = view(doc);
  bson_iter_t it;
  if (!bson_iter_init(&it, &b)) return;
  while (bson_iter_next(&it)) {
    if (!BSON_ITER_HOLDS_ARRAY(&it) && !BSON_ITER_HOLDS_DOCUMENT(&it)) continue;
    if (holds_array(&it)) {
      std::string key(bson_iter_key(&it), bson_iter_key_len(&it));
      if (!known.count(key)) out.insert(key);
    }
  }
}

// ---- filter translation ----------------------------------------------------------------

class SqlFilter {
 public:
  SqlFilter(const Document& filter, const Meta& meta) : meta_(meta) { where_ = doc_terms(filter); }
  const std::string& where() const { return where_; }
  // True when the SQL condition is the whole filter, so rows need no re-check.
  bool exact() const { return exact_; }
  void bind(sqlite3_stmt* st, int first = 1) const {
    for (std::size_t i = 0; i < params_.size(); ++i) bind_key(st, first + static_cast<int>(i), params_[i]);
  }

 private:
  std::string param(const Value& v) {
    params_.push_back(sql_key(v));
    return "?";
  }

  std::string doc_terms(const Document& filter) {
    std::vector<std::string> terms;
    for (const auto& [key, value] : filter.fields()) {
      if (!key.empty() && key[0] == '$') {
        const auto& list = value.as_array().values();
        if (key == "$and") {
          for (const auto& c : list) terms.push_back(doc_terms(c.as_document()));
        } else if (key == "$or") {
          std::vector<std::string> alts;
          for (const auto& c : list) alts.push_back(doc_terms(c.as_document()));
          // One unconstrained alternative makes the whole $or unconstrained.
          bool open = std::find(alts.begin(), alts.end(), std::string("1")) != alts.end();
          terms.push_back(open ? "1" : "(" + join(alts, " OR ") + ")");
        }
        if (key == "$nor") exact_ = false;  // the evaluator decides
        continue;
      }
      if (meta_.array_keys.count(top_key(key))) {
        exact_ = false;
        continue;
      }
      std::string expr = column_expr(key);
      auto ops = value.get_if<Document>();
      bool is_ops = ops && !ops->empty() && ops->keys()[0][0] == '$';
      if (!is_ops) {
        terms.push_back(eq_term(expr, value));
        continue;
      }
      for (const auto& [op, arg] : ops->fields()) {
        if (op == "$eq")
          terms.push_back(eq_term(expr, arg));
        else if (op == "$gt" || op == "$gte" || op == "$lt" || op == "$lte")
          terms.push_back(cmp_term(expr, op, arg));
        else if (op == "$in")
          terms.push_back(in_term(expr, arg));
        else
          exact_ = false;
      }
    }
    if (std::find(terms.begin(), terms.end(), std::string("1")) != terms.end()) exact_ = false;
    terms.erase(std::remove(terms.begin(), terms.end(), std::string("1")), terms.end());
    return terms.empty() ? "1" : join(terms, " AND ");
  }

  // NaN and -Infinity share one SQL key (see bson_get_fn), so a term on
  // either is left to the evaluator.
  static bool scalar(const Value& v) {
    if (auto d = v.get_if<double>(); d && (std::isnan(*d) || *d == -std::numeric_limits<double>::infinity()))
      return false;
    return !v.is<Document>() && !v.is<Array>() && v.type() != Type::other;
  }

  std::string eq_term(const std::string& expr, const Value& v) {
    if (v.is_null()) return expr + " IS NULL";
    if (!scalar(v)) return "1";
    return expr + " = " + param(v);
  }

  std::string in_term(const std::string& expr, const Value& arg) {
    if (!arg.is<Array>() || arg.as_array().empty()) return "1";
    std::vector<std::string> ps;
    for (const auto& v : arg.as_array().values()) {
      if (v.is_null() || !scalar(v)) return "1";
      ps.push_back(param(v));
    }
    return expr + " IN (" + join(ps, ", ") + ")";
  }

  // A range within the value's own type class (MongoDB's type bracketing), so
  // that an index scan stays inside it.
  std::string cmp_term(const std::string& expr, const std::string& op, const Value& v) {
    if (v.is_null() || !scalar(v)) return "1";
    std::string sqlop = op == "$gt" ? ">" : op == "$gte" ? ">=" : op == "$lt" ? "<" : "<=";
    std::string term = expr + " " + sqlop + " " + param(v);
    bool upper = op == "$gt" || op == "$gte";
    if (v.is_number()) {
      return upper ? "(" + term + " AND " + expr + " < '')" : term;
    }
    if (v.is<std::string>()) {
      return "(" + term + " AND " + expr + (upper ? " < x''" : " >= ''") + ")";
    }
    int rank = static_cast<unsigned char>(sql_key(v).bytes[0]);
    char hex[8];
    std::snprintf(hex, sizeof hex, "%02x", upper ? rank + 1 : rank);
    return "(" + term + " AND " + expr + (upper ? " < x'" : " >= x'") + hex + "')";
  }

  static std::string join(const std::vector<std::string>& parts, const std::string& sep) {
    std::string out;
    for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
    return out;
  }

  const Meta& meta_;
  bool exact_ = true;
  std::string where_;
  std::vector<SqlKey> params_;
};

// ---- collection ------------------------------------------------------------------------

class SqliteCollection;

class SqliteCursor final : public Cursor {
 public:
  SqliteCursor(std::shared_ptr<State> state, StmtPtr stmt, Document filter, FindOptions options, bool sort_in_memory)
      : state_(std::move(state)), stmt_(std::move(stmt)), filter_(std::move(filter)), options_(std::move(options)) {
    check_filter_ = !filter_.empty();
    if (sort_in_memory) {
      // Sorting on a field that holds arrays needs MongoDB's min/max-element
      // rule, which no SQL key expresses: sort the matches here.
      while (auto d = step_match()) sorted_.push_back(std::move(*d));
      std::stable_sort(sorted_.begin(), sorted_.end(), [&](const Document& a, const Document& b) {
        return query::compare_for_sort(a, b, options_.sort) < 0;
      });
      in_memory_ = true;
    }
  }
  ~SqliteCursor() override {
    std::lock_guard lock(state_->mu);
    stmt_.reset();
  }

  std::optional<Document> next() override {
    if (options_.limit > 0 && returned_ >= options_.limit) return std::nullopt;
    while (true) {
      std::optional<Document> d;
      if (in_memory_) {
        if (pos_ >= sorted_.size()) return std::nullopt;
        d = std::move(sorted_[pos_++]);
      } else {
        d = step_match();
        if (!d) return std::nullopt;
      }
      if (skipped_ < options_.skip) {
        ++skipped_;
        continue;
      }
      ++returned_;
      if (options_.projection && !options_.projection->empty()) return query::project(*d, *options_.projection);
      return d;
    }
  }

 private:
  std::optional<Document> step_match() {
    while (true) {
      std::optional<Document> d;
      {
        std::lock_guard lock(state_->mu);
        if (!stmt_) return std::nullopt;
        int rc = sqlite3_step(stmt_.get());
        if (rc == SQLITE_DONE) {
          stmt_.reset();
          return std::nullopt;
        }
        if (rc != SQLITE_ROW) state_->fail_sql("reading query results failed");
        const void* data = sqlite3_column_blob(stmt_.get(), 0);
        int len = sqlite3_column_bytes(stmt_.get(), 0);
        d = Document::from_bson(static_cast<const std::uint8_t*>(data), static_cast<std::size_t>(len));
      }
      if (!check_filter_ || query::matches(*d, filter_)) return d;
    }
  }

  std::shared_ptr<State> state_;
  StmtPtr stmt_;
  Document filter_;
  FindOptions options_;
  bool check_filter_ = true;
  bool in_memory_ = false;
  std::vector<Document> sorted_;
  std::size_t pos_ = 0;
  std::int64_t skipped_ = 0, returned_ = 0;
};

Meta read_meta(State& s, const std::string& db, const std::string& name) {
  auto st = s.prepare("SELECT capped, size, max, array_keys FROM _iotbridge_collections WHERE db = ? AND name = ?");
  sqlite3_bind_text(st.get(), 1, db.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st.get(), 2, name.c_str(), -1, SQLITE_TRANSIENT);
  Meta m;
  int rc = sqlite3_step(st.get());
  if (rc == SQLITE_ROW) {
    m.exists = true;
    m.capped = sqlite3_column_int(st.get(), 0) != 0;
    m.size = sqlite3_column_int64(st.get(), 1);
    m.max = sqlite3_column_int64(st.get(), 2);
    std::string keys = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 3));
    std::stringstream ss(keys);
    std::string k;
    while (std::getline(ss, k, '\n'))
      if (!k.empty()) m.array_keys.insert(k);
  } else if (rc != SQLITE_DONE) {
    s.fail_sql("reading collection metadata failed");
  }
  return m;
}

void create_table(State& s, const std::string& db, const std::string& name, const CollectionOptions& o) {
  auto st = s.prepare("INSERT INTO _iotbridge_collections(db, name, capped, size, max) VALUES (?, ?, ?, ?, ?)");
  sqlite3_bind_text(st.get(), 1, db.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st.get(), 2, name.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st.get(), 3, o.capped ? 1 : 0);
  sqlite3_bind_int64(st.get(), 4, o.size_bytes);
  sqlite3_bind_int64(st.get(), 5, o.max_documents);
  s.run(st.get(), "creating collection " + db + "." + name);
  s.exec("CREATE TABLE IF NOT EXISTS " + table_name(db, name) +
         " (seq INTEGER PRIMARY KEY, id NOT NULL UNIQUE, doc BLOB NOT NULL)");
  // seq is max(seq)+1 (no AUTOINCREMENT, which costs a sqlite_sequence write
  // per insert): it grows with insertion order, which natural order and capped
  // trimming (oldest = smallest seq) rely on.
}

class SqliteCollection final : public Collection {
 public:
  SqliteCollection(std::shared_ptr<State> state, std::string db, std::string name)
      : state_(std::move(state)), db_(std::move(db)), name_(std::move(name)), table_(table_name(db_, name_)) {}

  const std::string& database_name() const override { return db_; }
  const std::string& name() const override { return name_; }

  Value insert_one(Document doc) override {
    std::vector<Document> one;
    one.push_back(std::move(doc));
    auto r = insert_many(std::move(one), InsertManyOptions{});
    return r.inserted_ids.at(0);
  }

  InsertManyResult insert_many(std::vector<Document> docs, const InsertManyOptions& options) override {
    std::lock_guard lock(state_->mu);
    InsertManyResult result;
    if (docs.empty()) return result;
    Transaction tx(*state_);
    Meta meta = ensure();
    auto st = state_->prepare("INSERT INTO " + table_ + "(id, doc) VALUES (?, ?)" +
                              (options.ignore_duplicate_ids ? " ON CONFLICT(id) DO NOTHING" : ""));
    std::set<std::string> new_array_keys;
    std::optional<BulkWriteError> first_error;
    for (std::size_t i = 0; i < docs.size(); ++i) {
      Document doc = query::with_id(std::move(docs[i]));
      Value id = doc.at("_id");
      result.inserted_ids.push_back(id);
      if (id.is<Array>()) fail("document " + std::to_string(i) + ": _id cannot be an array");
      collect_array_keys(doc, meta.array_keys, new_array_keys);
      sqlite3_reset(st.get());
      bind_key(st.get(), 1, sql_key(id));
      sqlite3_bind_blob(st.get(), 2, doc.data(), static_cast<int>(doc.size()), SQLITE_STATIC);
      int rc = sqlite3_step(st.get());
      if (rc == SQLITE_DONE) {
        if (sqlite3_changes(state_->handle()) == 0)
          ++result.duplicates_skipped;
        else
          ++result.inserted_count;
        continue;
      }
      int ext = sqlite3_extended_errcode(state_->handle());
      if ((ext & 0xff) != SQLITE_CONSTRAINT) state_->fail_sql("inserting into " + db_ + "." + name_);
      std::string msg = sqlite3_errmsg(state_->handle());
      bool dup_id = msg.find(".id") != std::string::npos;
      std::string text = "E11000 duplicate key error collection: " + db_ + "." + name_ +
                         " index: " + (dup_id ? std::string("_id_") : index_from_message(msg)) +
                         " dup key: " + (dup_id ? "{ _id: " + id.to_json() + " }" : msg) + " (document " +
                         std::to_string(i) + " of the batch)";
      if (!first_error) first_error.emplace(text, 11000, i, result.inserted_count);
      if (options.ordered) break;
    }
    st.reset();
    if (!new_array_keys.empty()) add_array_keys(meta, new_array_keys);
    if (meta.capped) trim(meta);
    tx.commit();
    if (first_error) {
      if (!options.ordered)
        throw BulkWriteError(first_error->what(), 11000, first_error->index(), result.inserted_count);
      throw *first_error;
    }
    return result;
  }

  UpdateResult replace_one(const Document& filter, Document replacement, const UpdateOptions& options) override {
    query::require_replacement(replacement);
    return modify(
        filter, false, options.upsert,
        [&](const Document& old) {
          Document out;
          auto id = old.get("_id");
          if (auto rid = replacement.get("_id"); rid && id && compare(*rid, *id) != 0)
            fail("replace_one cannot change _id (from " + id->to_json() + " to " + rid->to_json() + ")");
          if (id) out.append("_id", *id);
          for (const auto& [k, v] : replacement.fields())
            if (k != "_id") out.append(k, v);
          return out;
        },
        [&](const Document& seed) {
          Document out;
          if (auto rid = replacement.get("_id"))
            out.append("_id", *rid);
          else if (auto sid = seed.get("_id"))
            out.append("_id", *sid);
          for (const auto& [k, v] : replacement.fields())
            if (k != "_id") out.append(k, v);
          return out;
        });
  }

  UpdateResult update_one(const Document& filter, const Document& update, const UpdateOptions& options) override {
    return update_impl(filter, update, options, false);
  }
  UpdateResult update_many(const Document& filter, const Document& update, const UpdateOptions& options) override {
    return update_impl(filter, update, options, true);
  }

  std::int64_t delete_one(const Document& filter) override { return delete_impl(filter, false); }
  std::int64_t delete_many(const Document& filter) override { return delete_impl(filter, true); }

  std::unique_ptr<Cursor> find(const Document& filter, const FindOptions& options) override {
    query::validate_filter(filter);
    query::validate_sort(options.sort);
    if (options.projection) query::validate_projection(*options.projection);
    if (options.skip < 0 || options.limit < 0) fail("skip and limit must not be negative");
    std::lock_guard lock(state_->mu);
    Meta meta = read_meta(*state_, db_, name_);
    if (!meta.exists) {
      auto empty = state_->prepare("SELECT NULL WHERE 0");
      return std::make_unique<SqliteCursor>(state_, std::move(empty), filter, options, false);
    }
    bool in_memory = false;
    SqlFilter where(filter, meta);
    auto st = state_->prepare(select_sql(where, options, meta, in_memory));
    where.bind(st.get());
    return std::make_unique<SqliteCursor>(state_, std::move(st), where.exact() ? Document() : filter, options,
                                          in_memory);
  }

  // The plan SQLite chooses for find(filter, options): EXPLAIN QUERY PLAN rows.
  std::string explain(const Document& filter, const FindOptions& options) {
    std::lock_guard lock(state_->mu);
    Meta meta = read_meta(*state_, db_, name_);
    if (!meta.exists) return "no such collection";
    bool in_memory = false;
    SqlFilter where(filter, meta);
    auto st = state_->prepare("EXPLAIN QUERY PLAN " + select_sql(where, options, meta, in_memory));
    where.bind(st.get());
    std::string plan;
    while (sqlite3_step(st.get()) == SQLITE_ROW)
      plan += std::string(reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 3))) + "\n";
    return plan;
  }

  std::unique_ptr<Cursor> aggregate(const std::vector<Document>& pipeline) override {
    aggregate::validate(pipeline);
    std::size_t next = 0;
    auto grouped = group_in_sql(pipeline, next);
    if (!grouped) return Collection::aggregate(pipeline);  // every stage in process, over find()
    return std::make_unique<VectorCursor>(aggregate::run(std::move(*grouped), pipeline, next));
  }

  void tail(const Document& filter, const TailOptions& options, const std::function<void(const Document&)>& on_document,
            std::stop_token stop) override {
    query::validate_filter(filter);
    // Insertion order is seq: everything up to the baseline is already there.
    std::int64_t last = max_seq();
    if (options.last > 0 && last > 0) {
      std::vector<Document> newest;
      {
        std::lock_guard lock(state_->mu);
        auto st = state_->prepare("SELECT doc FROM " + table_ + " WHERE seq <= ? ORDER BY seq DESC");
        sqlite3_bind_int64(st.get(), 1, last);
        int rc;
        while (static_cast<std::int64_t>(newest.size()) < options.last && (rc = sqlite3_step(st.get())) == SQLITE_ROW) {
          auto d = row_document(st.get(), 0);
          if (query::matches(d, filter)) newest.push_back(std::move(d));
        }
      }
      for (auto it = newest.rbegin(); it != newest.rend(); ++it) on_document(*it);
    }
    if (!options.follow) return;
    while (wait_for_stop(stop, options.poll_interval)) {
      // One range query on the primary key per poll: cheap however large the table.
      std::vector<Document> fresh;
      {
        std::lock_guard lock(state_->mu);
        if (!read_meta(*state_, db_, name_).exists) continue;  // created by its first insert
        auto st = state_->prepare("SELECT seq, doc FROM " + table_ + " WHERE seq > ? ORDER BY seq");
        sqlite3_bind_int64(st.get(), 1, last);
        int rc;
        while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
          last = sqlite3_column_int64(st.get(), 0);
          auto d = row_document(st.get(), 1);
          if (query::matches(d, filter)) fresh.push_back(std::move(d));
        }
        if (rc != SQLITE_DONE) state_->fail_sql("tail of " + db_ + "." + name_);
      }
      for (const auto& d : fresh) {
        on_document(d);
        if (stop.stop_requested()) return;
      }
    }
  }

  // How aggregate(pipeline) runs: the SQL and SQLite's plan, or "in process".
  std::string explain_aggregate(const std::vector<Document>& pipeline) {
    aggregate::validate(pipeline);
    std::lock_guard lock(state_->mu);
    Meta meta = read_meta(*state_, db_, name_);
    if (!meta.exists) return "no such collection";
    auto plan = plan_group(pipeline, meta.array_keys);
    SqlFilter where(plan ? plan->filter : Document(), meta);
    if (!plan || !where.exact()) return "in process";
    std::string sql = group_sql(*plan, where);
    auto st = state_->prepare("EXPLAIN QUERY PLAN " + sql);
    where.bind(st.get());
    std::string out = "SQL: " + sql + "\n";
    while (sqlite3_step(st.get()) == SQLITE_ROW)
      out += "PLAN: " + std::string(reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 3))) + "\n";
    return out;
  }

  std::int64_t count_documents(const Document& filter) override {
    query::validate_filter(filter);
    if (filter.empty()) {
      std::lock_guard lock(state_->mu);
      if (!read_meta(*state_, db_, name_).exists) return 0;
      auto st = state_->prepare("SELECT count(*) FROM " + table_);
      if (sqlite3_step(st.get()) != SQLITE_ROW) state_->fail_sql("count failed");
      return sqlite3_column_int64(st.get(), 0);
    }
    auto cursor = find(filter, FindOptions{});
    std::int64_t n = 0;
    while (cursor->next()) ++n;
    return n;
  }

  std::string create_index(const IndexSpec& spec) override {
    if (spec.keys.empty()) fail("an index needs at least one field path");
    for (const auto& [path, dir] : spec.keys) {
      if (path.empty() || path[0] == '$') fail("invalid index field path '" + path + "'");
      if (dir != 1 && dir != -1) fail("index direction for '" + path + "' must be 1 or -1");
    }
    if (spec.expire_after_seconds > 0 && spec.keys.size() != 1)
      fail("a TTL index (expire_after_seconds) has exactly one field, a date");
    std::string name = spec.name.empty() ? default_index_name(spec.keys) : spec.name;
    std::string keys_text;
    for (const auto& [path, dir] : spec.keys) keys_text += path + "\t" + std::to_string(dir) + "\n";
    std::lock_guard lock(state_->mu);
    Transaction tx(*state_);
    ensure();
    if (name == "_id_") return name;
    auto existing = state_->prepare("SELECT keys, uniq FROM _iotbridge_indexes WHERE db = ? AND coll = ? AND name = ?");
    bind3(existing.get(), name);
    if (sqlite3_step(existing.get()) == SQLITE_ROW) {
      std::string old = reinterpret_cast<const char*>(sqlite3_column_text(existing.get(), 0));
      if (old != keys_text || (sqlite3_column_int(existing.get(), 1) != 0) != spec.unique ||
          ttl_of(name) != spec.expire_after_seconds)
        fail("an index named '" + name + "' already exists on " + db_ + "." + name_ + " with other keys or options",
             85);
      return name;
    }
    existing.reset();
    std::string cols;
    for (const auto& [path, dir] : spec.keys)
      cols += (cols.empty() ? "" : ", ") + column_expr(path) + (dir < 0 ? " DESC" : "");
    state_->exec(std::string("CREATE ") + (spec.unique ? "UNIQUE " : "") + "INDEX " +
                 quote_ident(db_ + "." + name_ + "$" + name) + " ON " + table_ + " (" + cols + ")");
    auto ins = state_->prepare("INSERT INTO _iotbridge_indexes(db, coll, name, keys, uniq) VALUES (?, ?, ?, ?, ?)");
    bind3(ins.get(), name);
    sqlite3_bind_text(ins.get(), 4, keys_text.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(ins.get(), 5, spec.unique ? 1 : 0);
    state_->run(ins.get(), "recording index " + name);
    if (spec.expire_after_seconds > 0) {
      auto ttl = state_->prepare("INSERT INTO _iotbridge_ttl(db, coll, name, seconds) VALUES (?, ?, ?, ?)");
      bind3(ttl.get(), name);
      sqlite3_bind_int64(ttl.get(), 4, spec.expire_after_seconds);
      state_->run(ttl.get(), "recording the TTL of index " + name);
    }
    tx.commit();
    return name;
  }

  std::vector<IndexInfo> list_indexes() override {
    std::lock_guard lock(state_->mu);
    std::vector<IndexInfo> out;
    if (!read_meta(*state_, db_, name_).exists) return out;
    out.push_back(IndexInfo{"_id_", {{"_id", 1}}, true});
    auto st = state_->prepare(
        "SELECT i.name, i.keys, i.uniq, coalesce(t.seconds, 0) FROM _iotbridge_indexes i LEFT JOIN _iotbridge_ttl t "
        "ON t.db = i.db AND t.coll = i.coll AND t.name = i.name WHERE i.db = ? AND i.coll = ? ORDER BY i.name");
    sqlite3_bind_text(st.get(), 1, db_.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.get(), 2, name_.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st.get()) == SQLITE_ROW) {
      IndexInfo info;
      info.name = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 0));
      std::stringstream ss(reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 1)));
      std::string line;
      while (std::getline(ss, line)) {
        auto tab = line.find('\t');
        if (tab != std::string::npos) info.keys.emplace_back(line.substr(0, tab), std::stoi(line.substr(tab + 1)));
      }
      info.unique = sqlite3_column_int(st.get(), 2) != 0;
      info.expire_after_seconds = sqlite3_column_int64(st.get(), 3);
      out.push_back(std::move(info));
    }
    return out;
  }

  // The TTL of index `name` (0: none). Call with the mutex held.
  std::int64_t ttl_of(const std::string& name) {
    auto st = state_->prepare("SELECT seconds FROM _iotbridge_ttl WHERE db = ? AND coll = ? AND name = ?");
    bind3(st.get(), name);
    return sqlite3_step(st.get()) == SQLITE_ROW ? sqlite3_column_int64(st.get(), 0) : 0;
  }

  void drop_index(const std::string& name) override {
    if (name == "_id_") fail("cannot drop the _id_ index");
    std::lock_guard lock(state_->mu);
    Transaction tx(*state_);
    auto del = state_->prepare("DELETE FROM _iotbridge_indexes WHERE db = ? AND coll = ? AND name = ?");
    bind3(del.get(), name);
    state_->run(del.get(), "dropping index " + name);
    if (sqlite3_changes(state_->handle()) == 0)
      fail("index not found with name [" + name + "] on " + db_ + "." + name_, 27);
    auto ttl = state_->prepare("DELETE FROM _iotbridge_ttl WHERE db = ? AND coll = ? AND name = ?");
    bind3(ttl.get(), name);
    state_->run(ttl.get(), "dropping the TTL of index " + name);
    state_->exec("DROP INDEX IF EXISTS " + quote_ident(db_ + "." + name_ + "$" + name));
    tx.commit();
  }

 private:
  // The newest seq (0: none, or no collection yet).
  std::int64_t max_seq() {
    std::lock_guard lock(state_->mu);
    if (!read_meta(*state_, db_, name_).exists) return 0;
    auto st = state_->prepare("SELECT coalesce(max(seq), 0) FROM " + table_);
    if (sqlite3_step(st.get()) != SQLITE_ROW) state_->fail_sql("tail of " + db_ + "." + name_);
    return sqlite3_column_int64(st.get(), 0);
  }

  static Document row_document(sqlite3_stmt* st, int col) {
    return Document::from_bson(static_cast<const std::uint8_t*>(sqlite3_column_blob(st, col)),
                               static_cast<std::size_t>(sqlite3_column_bytes(st, col)));
  }

  // The result of the pipeline's head ($match stages, $group) run as one SQL
  // query, and in `next` the first stage left; nullopt when SQL cannot say it.
  std::optional<std::vector<Document>> group_in_sql(const std::vector<Document>& pipeline, std::size_t& next) {
    std::lock_guard lock(state_->mu);
    Meta meta = read_meta(*state_, db_, name_);
    if (!meta.exists) return std::vector<Document>{};
    auto plan = plan_group(pipeline, meta.array_keys);
    if (!plan) return std::nullopt;
    SqlFilter where(plan->filter, meta);
    if (!where.exact()) return std::nullopt;
    auto st = state_->prepare(group_sql(*plan, where));
    where.bind(st.get());
    std::vector<Document> grouped;
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW)
      if (!plan->group_by.empty() || plan->has_input(st.get())) grouped.push_back(plan->row(st.get()));
    if (rc != SQLITE_DONE) state_->fail_sql("aggregate on " + db_ + "." + name_);
    next = plan->next_stage;
    return grouped;
  }

  std::string group_sql(const GroupQuery& plan, const SqlFilter& where) const {
    return "SELECT " + plan.select + " FROM " + table_ + " WHERE " + where.where() + plan.group_by;
  }

  std::string select_sql(const SqlFilter& where, const FindOptions& options, const Meta& meta, bool& in_memory) {
    std::string order;
    for (const auto& [path, dir] : options.sort.fields()) {
      if (meta.array_keys.count(top_key(path))) in_memory = true;
      order += column_expr(path) + (dir.as_double() < 0 ? " DESC" : " ASC") + ", ";
    }
    std::string sql = "SELECT doc FROM " + table_ + " WHERE " + where.where();
    if (!in_memory) sql += " ORDER BY " + order + "seq";
    return sql;
  }

  void bind3(sqlite3_stmt* st, const std::string& name) {
    sqlite3_bind_text(st, 1, db_.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, name_.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, name.c_str(), -1, SQLITE_TRANSIENT);
  }

  static std::string index_from_message(const std::string& msg) {
    // "UNIQUE constraint failed: index 'db.coll$name'"
    auto dollar = msg.rfind('$');
    if (dollar == std::string::npos) return "?";
    std::string n = msg.substr(dollar + 1);
    if (!n.empty() && n.back() == '\'') n.pop_back();
    return n;
  }

  // Creates the collection on first use (like MongoDB). Caller holds the lock.
  Meta ensure() {
    Meta meta = read_meta(*state_, db_, name_);
    if (meta.exists) return meta;
    check_database_name(db_);
    check_collection_name(name_);
    create_table(*state_, db_, name_, {});
    meta.exists = true;
    return meta;
  }

  void add_array_keys(Meta& meta, const std::set<std::string>& keys) {
    for (const auto& k : keys) meta.array_keys.insert(k);
    std::string text;
    for (const auto& k : meta.array_keys) text += k + "\n";
    auto st = state_->prepare("UPDATE _iotbridge_collections SET array_keys = ? WHERE db = ? AND name = ?");
    sqlite3_bind_text(st.get(), 1, text.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.get(), 2, db_.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.get(), 3, name_.c_str(), -1, SQLITE_TRANSIENT);
    state_->run(st.get(), "recording array fields");
  }

  // Capped: remove the oldest documents beyond max documents / size bytes.
  void trim(const Meta& meta) {
    if (meta.max > 0)
      state_->exec("DELETE FROM " + table_ + " WHERE seq <= (SELECT seq FROM " + table_ +
                   " ORDER BY seq DESC LIMIT 1 OFFSET " + std::to_string(meta.max) + ")");
    if (meta.size > 0)
      state_->exec("DELETE FROM " + table_ +
                   " WHERE seq <= (SELECT seq FROM (SELECT seq, SUM(length(doc)) OVER "
                   "(ORDER BY seq DESC) AS run FROM " +
                   table_ + ") WHERE run > " + std::to_string(meta.size) + " ORDER BY seq DESC LIMIT 1)");
  }

  struct Row {
    std::int64_t seq;
    Document doc;
  };

  // Rows matching the filter (all, or the first). Caller holds the lock.
  std::vector<Row> matching(const Document& filter, bool many, const Meta& meta) {
    std::vector<Row> rows;
    SqlFilter where(filter, meta);
    auto st = state_->prepare("SELECT seq, doc FROM " + table_ + " WHERE " + where.where() + " ORDER BY seq");
    where.bind(st.get());
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
      auto doc = Document::from_bson(static_cast<const std::uint8_t*>(sqlite3_column_blob(st.get(), 1)),
                                     static_cast<std::size_t>(sqlite3_column_bytes(st.get(), 1)));
      if (!where.exact() && !query::matches(doc, filter)) continue;
      rows.push_back(Row{sqlite3_column_int64(st.get(), 0), std::move(doc)});
      if (!many) break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) state_->fail_sql("query failed");
    return rows;
  }

  template <typename Change, typename Seed>
  UpdateResult modify(const Document& filter, bool many, bool upsert, Change change, Seed seed) {
    query::validate_filter(filter);
    std::lock_guard lock(state_->mu);
    Transaction tx(*state_);
    UpdateResult result;
    Meta meta = read_meta(*state_, db_, name_);
    if (meta.exists) {
      auto rows = matching(filter, many, meta);
      result.matched = static_cast<std::int64_t>(rows.size());
      std::set<std::string> new_array_keys;
      auto st = state_->prepare("UPDATE " + table_ + " SET doc = ? WHERE seq = ?");
      for (auto& row : rows) {
        Document updated = change(row.doc);
        if (updated == row.doc) continue;
        collect_array_keys(updated, meta.array_keys, new_array_keys);
        sqlite3_reset(st.get());
        sqlite3_bind_blob(st.get(), 1, updated.data(), static_cast<int>(updated.size()), SQLITE_TRANSIENT);
        sqlite3_bind_int64(st.get(), 2, row.seq);
        if (sqlite3_step(st.get()) != SQLITE_DONE) {
          if ((sqlite3_extended_errcode(state_->handle()) & 0xff) == SQLITE_CONSTRAINT)
            fail(
                "E11000 duplicate key error collection: " + db_ + "." + name_ + ": " + sqlite3_errmsg(state_->handle()),
                11000);
          state_->fail_sql("updating " + db_ + "." + name_);
        }
        ++result.modified;
      }
      if (!new_array_keys.empty()) add_array_keys(meta, new_array_keys);
    }
    if (result.matched == 0 && upsert) {
      Document doc = query::with_id(seed(query::upsert_seed(filter)));
      result.upserted_id = doc.at("_id");
      insert_one(std::move(doc));  // inside this transaction
      tx.commit();
      return result;
    }
    tx.commit();
    return result;
  }

  UpdateResult update_impl(const Document& filter, const Document& update, const UpdateOptions& options, bool many) {
    query::require_update_operators(update);
    query::validate_update(update);
    return modify(
        filter, many, options.upsert, [&](const Document& old) { return query::apply_update(old, update); },
        [&](const Document& seed) { return query::apply_update(seed, update); });
  }

  std::int64_t delete_impl(const Document& filter, bool many) {
    query::validate_filter(filter);
    std::lock_guard lock(state_->mu);
    Meta meta = read_meta(*state_, db_, name_);
    if (!meta.exists) return 0;
    Transaction tx(*state_);
    std::int64_t n = 0;
    if (filter.empty() && many) {
      state_->exec("DELETE FROM " + table_);
      n = sqlite3_changes(state_->handle());
    } else {
      auto rows = matching(filter, many, meta);
      auto st = state_->prepare("DELETE FROM " + table_ + " WHERE seq = ?");
      for (const auto& row : rows) {
        sqlite3_reset(st.get());
        sqlite3_bind_int64(st.get(), 1, row.seq);
        state_->run(st.get(), "deleting from " + db_ + "." + name_);
        ++n;
      }
    }
    tx.commit();
    return n;
  }

  std::shared_ptr<State> state_;
  std::string db_, name_, table_;
};

// ---- store ------------------------------------------------------------------------------

// What SQLite would only call "unable to open database file", in words:
// the folder is missing, the path is a folder, or (read-only) no file.
void check_sqlite_path(const std::string& path, bool read_only) {
  if (path == ":memory:" || path.rfind("file:", 0) == 0) return;  // SQLite URI forms: SQLite decides
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p(path);
  if (fs::is_directory(p, ec))
    throw Error(
        ErrorCategory::store,
        "'" + path + "' is a folder, not an SQLite file: name a file in it, e.g. sqlite:" + (p / "iot.db").string(),
        SQLITE_CANTOPEN);
  fs::path folder = p.parent_path();
  if (!folder.empty() && !fs::is_directory(folder, ec))
    throw Error(ErrorCategory::store,
                "the folder '" + folder.string() + "' of the SQLite store '" + path + "' does not exist" +
                    (fs::exists(folder, ec) ? " (it is a file)" : "") + ": create it (mkdir -p " + folder.string() +
                    ") or name a file in an existing folder",
                SQLITE_CANTOPEN);
  if (read_only && !fs::exists(p, ec))
    throw Error(ErrorCategory::store,
                "no SQLite store at '" + path +
                    "': the file does not exist, and reading does not create one. Check the path; a store is created "
                    "by the first write (a recorder such as iotbridge-sub --store sqlite:" +
                    path + ", or iotbridge-db --store sqlite:" + path + " insert ...)",
                SQLITE_CANTOPEN);
}

class SqliteStore final : public DocumentStore {
 public:
  SqliteStore(const std::string& path, const std::string& description, bool read_only)
      : state_(std::make_shared<State>()) {
    state_->description = description;
    sqlite3* raw = nullptr;
    int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX |
                SQLITE_OPEN_URI;
    int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    state_->db.reset(raw);
    if (rc != SQLITE_OK)
      throw Error(ErrorCategory::store,
                  "cannot open SQLite store '" + path + "': " + (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)), rc);
    sqlite3_extended_result_codes(raw, 1);
    sqlite3_busy_timeout(raw, 5000);
    if (sqlite3_create_function_v2(raw, "bson_get", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, nullptr,
                                   bson_get_fn, nullptr, nullptr, nullptr) != SQLITE_OK)
      state_->fail_sql("registering bson_get");
    if (register_aggregate_functions(raw) != SQLITE_OK) state_->fail_sql("registering the aggregation functions");
    try {
      if (read_only) {
        // Nothing is created: a file without the catalog is not a store.
        auto st = state_->prepare("SELECT count(*) FROM sqlite_master WHERE name = '_iotbridge_collections'");
        if (sqlite3_step(st.get()) != SQLITE_ROW || sqlite3_column_int(st.get(), 0) == 0)
          throw Error(ErrorCategory::store,
                      "'" + path + "' is an SQLite file but not an iotbridge store (no _iotbridge_collections table)");
        return;
      }
      if (path != ":memory:") {
        state_->exec("PRAGMA journal_mode=WAL");
        state_->exec("PRAGMA synchronous=NORMAL");
      }
      state_->exec(
          "CREATE TABLE IF NOT EXISTS _iotbridge_collections (db TEXT NOT NULL, name TEXT NOT NULL, "
          "capped INTEGER NOT NULL DEFAULT 0, size INTEGER NOT NULL DEFAULT 0, max INTEGER NOT NULL DEFAULT 0, "
          "array_keys TEXT NOT NULL DEFAULT '', PRIMARY KEY (db, name));"
          "CREATE TABLE IF NOT EXISTS _iotbridge_indexes (db TEXT NOT NULL, coll TEXT NOT NULL, name TEXT NOT NULL, "
          "keys TEXT NOT NULL, uniq INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (db, coll, name));"
          // TTL indexes: beside _iotbridge_indexes, so that files of earlier versions need no migration.
          "CREATE TABLE IF NOT EXISTS _iotbridge_ttl (db TEXT NOT NULL, coll TEXT NOT NULL, name TEXT NOT NULL, "
          "seconds INTEGER NOT NULL, PRIMARY KEY (db, coll, name));");
    } catch (const Error& e) {
      if ((e.code() & 0xff) == SQLITE_NOTADB)
        throw Error(ErrorCategory::store, "'" + path + "' is not an iotbridge SQLite store (not a database file)",
                    e.code());
      throw;
    }
  }

  std::string backend() const override { return "sqlite"; }
  std::string description() const override { return state_->description; }
  void ping() override {
    std::lock_guard lock(state_->mu);
    state_->exec("SELECT 1");
  }

  std::vector<std::string> list_databases() override {
    return strings("SELECT DISTINCT db FROM _iotbridge_collections ORDER BY db", {});
  }
  std::vector<std::string> list_collections(const std::string& db) override {
    return strings("SELECT name FROM _iotbridge_collections WHERE db = ? ORDER BY name", {db});
  }

  void create_collection(const std::string& db, const std::string& name, const CollectionOptions& o) override {
    check_database_name(db);
    check_collection_name(name);
    if (o.capped && o.size_bytes <= 0) fail("a capped collection needs a size in bytes (size > 0)", 72);
    if (!o.capped && (o.size_bytes || o.max_documents)) fail("size and max apply to capped collections only", 72);
    if (o.timeseries || o.expire_after_seconds)
      fail(
          "the SQLite store has no time-series collections (a MongoDB 5+ feature): remove the timeseries option; "
          "expiry works without it (a TTL index, expire_after)",
          72);
    std::lock_guard lock(state_->mu);
    Transaction tx(*state_);
    if (read_meta(*state_, db, name).exists) fail("collection " + db + "." + name + " already exists", 48);
    create_table(*state_, db, name, o);
    tx.commit();
  }

  bool drop_collection(const std::string& db, const std::string& name) override {
    std::lock_guard lock(state_->mu);
    Transaction tx(*state_);
    if (!read_meta(*state_, db, name).exists) return false;
    state_->exec("DROP TABLE IF EXISTS " + table_name(db, name));
    auto st = state_->prepare("DELETE FROM _iotbridge_collections WHERE db = ? AND name = ?");
    sqlite3_bind_text(st.get(), 1, db.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.get(), 2, name.c_str(), -1, SQLITE_TRANSIENT);
    state_->run(st.get(), "dropping " + db + "." + name);
    auto ix = state_->prepare("DELETE FROM _iotbridge_indexes WHERE db = ? AND coll = ?");
    sqlite3_bind_text(ix.get(), 1, db.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(ix.get(), 2, name.c_str(), -1, SQLITE_TRANSIENT);
    state_->run(ix.get(), "dropping indexes of " + db + "." + name);
    auto ttl = state_->prepare("DELETE FROM _iotbridge_ttl WHERE db = ? AND coll = ?");
    sqlite3_bind_text(ttl.get(), 1, db.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(ttl.get(), 2, name.c_str(), -1, SQLITE_TRANSIENT);
    state_->run(ttl.get(), "dropping the TTLs of " + db + "." + name);
    tx.commit();
    return true;
  }

  void drop_database(const std::string& db) override {
    std::lock_guard lock(state_->mu);
    Transaction tx(*state_);
    for (const auto& name : list_collections(db)) drop_collection(db, name);
    tx.commit();
  }

  CollectionStats collection_stats(const std::string& db, const std::string& name) override {
    std::lock_guard lock(state_->mu);
    Meta meta = read_meta(*state_, db, name);
    if (!meta.exists) fail("collection " + db + "." + name + " does not exist", 26);
    CollectionStats s;
    auto st = state_->prepare("SELECT count(*), coalesce(sum(length(doc)), 0) FROM " + table_name(db, name));
    if (sqlite3_step(st.get()) != SQLITE_ROW) state_->fail_sql("stats failed");
    s.count = sqlite3_column_int64(st.get(), 0);
    s.size_bytes = sqlite3_column_int64(st.get(), 1);
    s.capped = meta.capped;
    s.max_size_bytes = meta.size;
    s.max_documents = meta.max;
    auto ix = state_->prepare("SELECT count(*) FROM _iotbridge_indexes WHERE db = ? AND coll = ?");
    sqlite3_bind_text(ix.get(), 1, db.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(ix.get(), 2, name.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(ix.get()) == SQLITE_ROW) s.index_count = 1 + sqlite3_column_int64(ix.get(), 0);
    return s;
  }

  std::shared_ptr<Collection> collection(const std::string& db, const std::string& name) override {
    check_database_name(db);
    check_collection_name(name);
    return std::make_shared<SqliteCollection>(state_, db, name);
  }

 private:
  std::vector<std::string> strings(const std::string& sql, const std::vector<std::string>& args) {
    std::lock_guard lock(state_->mu);
    auto st = state_->prepare(sql);
    for (std::size_t i = 0; i < args.size(); ++i)
      sqlite3_bind_text(st.get(), static_cast<int>(i + 1), args[i].c_str(), -1, SQLITE_TRANSIENT);
    std::vector<std::string> out;
    while (sqlite3_step(st.get()) == SQLITE_ROW)
      out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 0)));
    return out;
  }

  std::shared_ptr<State> state_;
};

}  // namespace

std::string sqlite_explain(Collection& collection, const Document& filter, const FindOptions& options) {
  auto* c = dynamic_cast<SqliteCollection*>(&collection);
  if (!c) fail("sqlite_explain needs a collection of the SQLite backend");
  return c->explain(filter, options);
}

std::string sqlite_explain_aggregate(Collection& collection, const std::vector<Document>& pipeline) {
  auto* c = dynamic_cast<SqliteCollection*>(&collection);
  if (!c) fail("sqlite_explain_aggregate needs a collection of the SQLite backend");
  return c->explain_aggregate(pipeline);
}

std::unique_ptr<DocumentStore> open_sqlite(const std::string& path, const std::string& description, bool read_only) {
  check_sqlite_path(path, read_only);
  return std::make_unique<SqliteStore>(path, description, read_only);
}

}  // namespace iotbridge::store::detail
