// iotbridge-db's `quarantine` verb: list, count, replay and drop the readings
// a route kept aside because the store refused them (iotbridge/record/
// quarantine.hpp holds the logic; this file parses and prints). iotbridge-db
// calls add_quarantine_commands once; each sub-verb runs when CLI11 parses it
// and ends the parse with CLI::RuntimeError(exit code) (0 success, 1 failure
// or readings refused again, 2 usage), having printed its summary or error.
// Thread-safety: call from main, before parsing.
#pragma once

#include "db_target.hpp"

namespace CLI {
class App;
}

namespace iotbridge::cli {

/// Registers `quarantine list | count | replay | drop` on `app`; `flags`
/// (--store, --db, --collection) must outlive the parse.
void add_quarantine_commands(CLI::App& app, const DbFlags& flags);

}  // namespace iotbridge::cli
