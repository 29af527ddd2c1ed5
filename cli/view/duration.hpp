// Durations as people type them on the command line and in the page's range
// selector: "90s", "15m", "1h", "2d", "1w" (one number, one unit).
// Thread-safety: plain functions. Throws: parse_duration throws
// iotbridge::Error (config) naming the text and the accepted forms.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace iotbridge::view {

/// "1h" -> 3600000 ms. Units: s, m, h, d, w. The number is a positive integer.
std::chrono::milliseconds parse_duration(std::string_view text, std::string_view what = "--since");

/// 3600000 ms -> "1h"; the largest unit that divides the duration exactly.
std::string format_duration(std::chrono::milliseconds duration);

}  // namespace iotbridge::view
