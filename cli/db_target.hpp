// Where iotbridge-db's verbs work: the store URI, database and collection
// given by --store, --db and --collection, else by the environment, else the
// recorder's defaults. Shared by every file that registers iotbridge-db verbs
// (the shell verbs in iotbridge-db.cpp, and others added with one call there).
// Header-only; single-threaded use from main().
#pragma once

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace iotbridge::cli {

inline constexpr const char* kDefaultDatabase = "iot_service";
inline constexpr const char* kDefaultCollection = "sensors";

struct DbFlags {
  std::string store_uri;   // --store
  std::string database;    // --db
  std::string collection;  // --collection
};

// A variable's value, or `fallback` when it is unset or empty.
inline std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

// The flags with every gap filled: $IOTBRIDGE_STORE, $IOTBRIDGE_DB,
// $IOTBRIDGE_COLLECTION, then iot_service / sensors. Throws
// std::invalid_argument (a usage error) when no store is named anywhere.
inline DbFlags resolve(const DbFlags& given) {
  DbFlags out;
  out.store_uri = given.store_uri.empty() ? env_or("IOTBRIDGE_STORE", "") : given.store_uri;
  if (out.store_uri.empty())
    throw std::invalid_argument(
        "no store given: pass --store URI or set IOTBRIDGE_STORE (e.g. sqlite:iot.db, mongodb://localhost:27017/)");
  out.database = given.database.empty() ? env_or("IOTBRIDGE_DB", kDefaultDatabase) : given.database;
  out.collection = given.collection.empty() ? env_or("IOTBRIDGE_COLLECTION", kDefaultCollection) : given.collection;
  return out;
}

}  // namespace iotbridge::cli
