// The iotbridge-db verbs that show readings: `plot` (a chart to PNG or SVG)
// and `serve` (a read-only web page with a JSON API). iotbridge-db calls
// add_view_commands once; each verb runs when CLI11 parses it and ends the
// parse with CLI::RuntimeError(exit code) (0 success, 1 failure, 2 usage),
// having printed its summary or its error.
// Thread-safety: call from main, before parsing.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace iotbridge::view {

/// iotbridge-db's flags that say where the readings are, read when a verb runs.
struct StoreFlags {
  const std::string& store_uri;   ///< --store; empty: $IOTBRIDGE_STORE
  const std::string& db;          ///< --db; empty: $IOTBRIDGE_DB, else iot_service
  const std::string& collection;  ///< --collection; empty: $IOTBRIDGE_COLLECTION, else sensors
};

/// Registers `plot` and `serve` on `app`; `flags` must outlive the parse.
void add_view_commands(CLI::App& app, StoreFlags flags);

}  // namespace iotbridge::view
