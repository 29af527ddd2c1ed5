// The SQLite backend's translation of an aggregation pipeline's head into one
// SQL query: leading $match stages become the WHERE clause (by the backend's
// filter translation), the $group that follows them becomes GROUP BY on
// bson_get / bson_date_trunc, with SQL aggregates (count, sum, avg) and the
// bson_pick aggregate ($min $max $first $last, in MongoDB's order and with
// full BSON types). The stages after the $group run in process. Private to
// the library; pure functions, plus the SQL functions registered per
// connection.
#pragma once

#include <sqlite3.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "iotbridge/store/document.hpp"

namespace iotbridge::store::detail {

// Registers bson_date_trunc(doc, path, unit, bin_size, start_of_week) and the
// aggregate bson_pick(mode, seq, doc, path) on a connection. Returns an SQLite
// result code.
int register_aggregate_functions(sqlite3* db);

struct GroupQuery {
  Document filter;         // the leading $match stages, combined
  std::string select;      // the SELECT list, on the columns seq and doc
  std::string group_by;    // " GROUP BY ..." or empty (one group of everything)
  std::size_t next_stage;  // the first stage left to run in process
  // The output document of one result row (the statement's columns as select lists them).
  Document row(sqlite3_stmt* st) const;
  // False for the one row an ungrouped query returns on no input (MongoDB returns none).
  bool has_input(sqlite3_stmt* st) const;

  struct Column {
    std::string name;  // output field ("_id", "avg", or "_id.<key>")
    enum Kind { sql_value, picked, date, count } kind;
  };
  std::vector<Column> columns;
  std::optional<Value> constant_id;  // _id: null or another constant
};

// The SQL form of pipeline's head, or nullopt when it has none: no $group
// right after the leading $match stages, or a key, accumulator or path (one
// whose top-level field held an array: `array_keys`) it cannot express.
// The caller still checks that the filter translates exactly.
std::optional<GroupQuery> plan_group(const std::vector<Document>& pipeline, const std::set<std::string>& array_keys);

}  // namespace iotbridge::store::detail
