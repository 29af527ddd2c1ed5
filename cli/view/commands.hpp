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

/// Registers `plot` and `serve` on `app`. `store_uri` is iotbridge-db's
/// --store value (read when the verb runs; $IOTBRIDGE_STORE when empty).
void add_view_commands(CLI::App& app, const std::string& store_uri);

}  // namespace iotbridge::view
