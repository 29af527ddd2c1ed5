/// @file
/// Durations as people write them in options and configuration files:
/// "500ms", "2s", "15m", "1h", "30d", "1w", and sums of them ("1h30m").
/// One parser for every option that takes a time span (a route's
/// expire_after and heartbeat, the service's intervals), so that each
/// accepts the same words and reports the same errors.
///
/// Pure functions; safe from any thread. parse_duration throws Error (config).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace iotbridge {

/// Parses one or more "<whole number><unit>" parts, units ms, s, m, h, d, w
/// ("1h30m" is 90 minutes). Spaces around the text are allowed, not inside.
/// @param text  e.g. "30d", "15m", "2s", "500ms"
/// @param what  the option's name, put in front of every error ("heartbeat")
/// @throws Error (config) for an empty text, a number without a unit ("30":
///         write 30s), an unknown unit, a sign or a fraction ("1.5h": write
///         1h30m), or a total that does not fit in 64-bit milliseconds
std::chrono::milliseconds parse_duration(std::string_view text, std::string_view what = "duration");

/// The shortest text parse_duration reads back to `d`: "0s", "500ms", "2s",
/// "1h30m", "30d". Negative durations get a leading '-' (never parsed back).
std::string format_duration(std::chrono::milliseconds d);

}  // namespace iotbridge
