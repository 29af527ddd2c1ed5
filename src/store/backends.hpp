// Private factories of the two backends, called by open_store().
#pragma once

#include <memory>
#include <string>

#include "iotbridge/store/store.hpp"

namespace iotbridge::store::detail {

// path: a file name, or ":memory:" for a private in-memory store; read_only:
// SQLITE_OPEN_READONLY, the file exists (open_store checked) and is not changed.
std::unique_ptr<DocumentStore> open_sqlite(const std::string& path, const std::string& description,
                                           bool read_only = false);
// SQLite only: EXPLAIN QUERY PLAN of the SQL find(filter, options) runs, one
// plan row per line (tests and benchmarks prove index use with it).
std::string sqlite_explain(Collection& collection, const Document& filter, const FindOptions& options);
// SQLite only: how aggregate(pipeline) runs: "SQL: <query>" and "PLAN: <row>"
// lines when its head runs as SQL, else "in process".
std::string sqlite_explain_aggregate(Collection& collection, const std::vector<Document>& pipeline);
// uri: a validated mongodb:// or mongodb+srv:// URI.
std::unique_ptr<DocumentStore> open_mongo(const std::string& uri);

// MongoDB's rules for names, shared so both backends refuse the same ones.
void check_database_name(const std::string& db);
void check_collection_name(const std::string& name);
// "topic_1_reg_date_-1"
std::string default_index_name(const std::vector<std::pair<std::string, int>>& keys);

}  // namespace iotbridge::store::detail
