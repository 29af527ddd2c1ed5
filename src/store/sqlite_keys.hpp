// How the SQLite backend turns a BSON value into an SQL value whose SQLite
// ordering is MongoDB's ordering: missing/null -> NULL, numbers -> INTEGER or
// REAL, strings -> TEXT, every other type -> a BLOB starting with its MongoDB
// type rank and an order-preserving encoding. SQLite orders NULL < numbers <
// TEXT < BLOB, so comparisons and ORDER BY on these keys follow MongoDB's
// cross-type order (null < numbers < string < object < array < binary <
// ObjectId < bool < date < timestamp). Used by the bson_get() SQL function (and
// so by expression indexes) and by the parameters bound to translated filters.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "iotbridge/store/document.hpp"

namespace iotbridge::store::detail {

struct SqlKey {
  enum Kind { null, integer, real, text, blob } kind = null;
  std::int64_t i = 0;
  double d = 0;
  std::string bytes;  // text or blob
};

SqlKey sql_key(const Value& v);

}  // namespace iotbridge::store::detail
