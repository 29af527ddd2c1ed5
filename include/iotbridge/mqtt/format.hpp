/// @file
/// How a subscriber prints a received message: the formats people know from
/// mosquitto_sub (payload only, `-v` "topic payload", `-F` format strings with
/// `%` message fields, `@` strftime fields and `\` escapes, `%j`/`%J` JSON with
/// `--pretty`), plus JSON lines (`--json`: one object per message, payload as
/// text or base64). The payload-only and `-v` outputs are byte-identical to
/// mosquitto_sub 2.0's; the few places where `-F` deliberately differs are
/// listed at MessageFormatter.
/// Thread-safety: a MessageFormatter is immutable once built (the format string
/// is parsed once, in the constructor); append() may run on many threads at once.
/// The free functions are pure.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "iotbridge/mqtt/client.hpp"

namespace iotbridge::mqtt {

enum class OutputStyle {
  payload,  ///< the payload, then a newline; an empty payload prints nothing (mosquitto_sub's default)
  verbose,  ///< "topic payload\n"; an empty payload prints "topic (null)\n" (mosquitto_sub -v)
  custom,   ///< OutputOptions::format, as mosquitto_sub -F
  json,     ///< {"topic":..,"payload":"text" | "payload_base64":"..","qos":0,"retain":false,"received_at":"..Z"}
};

struct OutputOptions {
  OutputStyle style = OutputStyle::payload;  ///< default payload only
  std::string format;                        ///< the -F string, for OutputStyle::custom
  bool end_of_line = true;                   ///< default true; false as mosquitto_sub -N
  bool pretty = false;                       ///< default false; JSON over several lines, tab-indented
};

/// Renders messages in one output style. In -F strings:
///   %% %t %p %x %X %l %m %q %r %I %U %j %J, and from MQTT 5 properties
///   %C (content type) %D (correlation data) %E (expiry) %F (payload format)
///   %P (user properties "k:v k:v") %R (response topic); %A and %S (topic
///   alias, subscription id) print only their padding, as no alias or id is
///   passed on by the client. Flags `-` (left align) and `0` (zero pad), a
///   field width and a `.precision` apply as mosquitto_sub applies them.
///   `@X` is strftime's `%X` in local time, `@N` the nanoseconds, `@@` an `@`.
///   `\\ \0 \a \e \n \r \t \v` are escapes. Any other `%` or `\` sequence,
///   or one cut off by the end of the string, is refused (format_problem()).
/// Deliberate differences from mosquitto_sub 2.0.11, each where it prints
/// wrong or invalid output:
///   - %x/%X with a width print min(length, width/2) bytes (mosquitto drops
///     half of a payload shorter than the width);
///   - %-p without a width adds no padding (mosquitto pads with as many
///     blanks as the payload is long);
///   - %j prints a payload that is not valid UTF-8, or holds a NUL byte, as
///     an array of byte values (mosquitto writes raw bytes, making invalid
///     JSON, or cuts the payload at the NUL), as newer Mosquitto does;
///   - widths and precisions are capped at 65535.
class MessageFormatter {
 public:
  /// Throws Error (config) for a custom format that format_problem() refuses.
  explicit MessageFormatter(OutputOptions options = {});
  ~MessageFormatter();
  MessageFormatter(MessageFormatter&&) noexcept;
  MessageFormatter& operator=(MessageFormatter&&) noexcept;

  /// Appends the text for `message`, received at `received_at`, to `out`.
  /// Returns false when a part could not be rendered (only %J, with a payload
  /// that is not JSON): that part is left out, the rest is appended, and
  /// *problem (when given) gets mosquitto_sub's sentence for it.
  bool append(std::string& out, const Message& message, std::chrono::system_clock::time_point received_at,
              std::string* problem = nullptr) const;

  /// append() into a fresh string.
  std::string format(const Message& message, std::chrono::system_clock::time_point received_at) const;

  /// Whether the output shows the receive time (so callers may skip reading the clock).
  bool uses_time() const noexcept;

  const OutputOptions& options() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Why mosquitto_sub would refuse `format` as a -F string, in its words
/// ("Invalid format specifier 'Z'.", "Incomplete format specifier.", "Invalid
/// escape specifier 'z'."); nullopt when it is valid.
std::optional<std::string> format_problem(std::string_view format);

/// `text` as a JSON string literal, quotes included, escaped as cJSON (and so
/// mosquitto_sub) escapes: `\" \\ \b \f \n \r \t`, other bytes below 0x20 as
/// `\u00XX`, every other byte as it is.
std::string json_quote(std::string_view text);

/// `text` parsed as one JSON value (surrounding whitespace allowed) and printed
/// again compactly or, with `pretty`, tab-indented as mosquitto_sub --pretty
/// does; `depth` is the indentation level it starts at. nullopt when `text` is
/// not JSON or nests deeper than 1000 levels.
std::optional<std::string> reformat_json(std::string_view text, bool pretty = false, int depth = 0);

/// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view bytes);

/// "2026-11-21T21:06:23.213699Z": UTC, microseconds.
std::string iso8601_utc(std::chrono::system_clock::time_point time);

}  // namespace iotbridge::mqtt
