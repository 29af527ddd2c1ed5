// Private bridge between the public Document/Value types and libbson, shared by
// the backends. Not installed.
#pragma once

#include <bson/bson.h>

#include <memory>
#include <string>
#include <string_view>

#include "iotbridge/error.hpp"
#include "iotbridge/store/document.hpp"

namespace iotbridge::store::detail {

// A read-only bson_t over a Document's bytes (no copy; valid while doc lives).
inline bson_t view(const Document& doc) {
  bson_t b;
  bson_init_static(&b, doc.data(), doc.size());
  return b;
}

inline Document to_document(const bson_t* b) { return Document::from_bson(bson_get_data(b), b->len); }

// RAII for a stack bson_t (bson_t is over-aligned, so no unique_ptr<bson_t>).
struct ScopedBson {
  bson_t b = BSON_INITIALIZER;
  ScopedBson() = default;
  ~ScopedBson() { bson_destroy(&b); }
  ScopedBson(const ScopedBson&) = delete;
  ScopedBson& operator=(const ScopedBson&) = delete;
  bson_t* get() { return &b; }
};

// The Value an iterator points at.
Value value_from_iter(const bson_iter_t* iter);
// Appends value under key.
void append_value(bson_t* dest, std::string_view key, const Value& value);

// MongoDB's type class rank used for cross-type comparison (null=1, numbers=2,
// string=3, object=4, array=5, binary=6, oid=7, bool=8, date=9, timestamp=10,
// regex=11; minKey=0, maxKey=127).
int type_rank(bson_type_t t);
int type_rank(Type t);

[[noreturn]] inline void fail(const std::string& message, int code = 0) {
  throw Error(ErrorCategory::store, message, code);
}

}  // namespace iotbridge::store::detail
