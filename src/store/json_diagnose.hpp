// Why a JSON text does not parse, in words a person can act on: the position
// of the first problem and a hint for the mistakes people make when they type
// the mongo shell's syntax into a command line (unquoted keys, single quotes,
// trailing commas, ObjectId(...)). Private to the library. Pure; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace iotbridge::store::detail {

// "at position 1: keys need double quotes: {"value": ...}", or nullopt when
// the text is syntactically valid JSON (then the caller keeps the parser's
// own reason, e.g. for a malformed {"$oid": ...}).
std::optional<std::string> diagnose_json(std::string_view text);

}  // namespace iotbridge::store::detail
