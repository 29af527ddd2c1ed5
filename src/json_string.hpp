// JSON string quoting shared by everything in src/ that writes JSON text by
// hand (Extended JSON, mosquitto_sub-style output, recorder stats). Private to
// the library. Pure function; safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace iotbridge::detail {

// Appends `text` to `out` as a quoted JSON string: '"' and '\' escaped, the
// usual short escapes for \b \f \n \r \t, \u00XX for other control bytes.
// Other bytes are copied as they are (UTF-8 passes through).
void append_json_string(std::string& out, std::string_view text);

}  // namespace iotbridge::detail
