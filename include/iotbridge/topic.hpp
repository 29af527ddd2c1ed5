/// @file
/// MQTT topic names and subscription filters: validation by the MQTT 3.1.1 /
/// 5.0 rules (as Mosquitto applies them), wildcard matching, and shared
/// subscription parsing. Pure functions; safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace iotbridge {

/// The longest topic or filter MQTT can carry (a two-byte length prefix).
inline constexpr std::size_t kMaxTopicLength = 65535;

/// Why `text` is not valid UTF-8 for MQTT (malformed sequences, surrogates,
/// overlong forms, U+0000, control characters, non-characters), or nullopt.
std::optional<std::string> utf8_problem(std::string_view text);

/// Why `topic` cannot be published to (empty, too long, bad UTF-8, a wildcard),
/// or nullopt when it is a valid topic name. Empty levels ("a//b") are legal.
std::optional<std::string> topic_problem(std::string_view topic);

/// Why `filter` cannot be subscribed to, or nullopt. `+` must be a whole level,
/// `#` the whole last level. A `$share/{group}/{filter}` is checked as such.
std::optional<std::string> filter_problem(std::string_view filter);

/// Throw iotbridge::Error (category topic) with the problem in words.
void validate_topic(std::string_view topic);
void validate_filter(std::string_view filter);

/// True when a message published to `topic` is delivered to a subscription on
/// `filter`. `+` matches exactly one level (an empty one too); `#` matches the
/// parent level and everything below it; a filter that starts with a wildcard
/// never matches a topic that starts with `$`. Both arguments are assumed valid
/// (a `$share/...` filter must be unwrapped with parse_shared first).
bool topic_matches(std::string_view filter, std::string_view topic) noexcept;

/// A shared subscription `$share/{group}/{filter}`.
struct SharedSubscription {
  std::string group;
  std::string filter;
};

/// nullopt when `filter` is not a shared subscription; the group and the inner
/// filter when it is; throws Error (topic) when it starts with `$share/` but is
/// malformed (empty group, wildcard in the group, missing or invalid filter).
std::optional<SharedSubscription> parse_shared(std::string_view filter);

}  // namespace iotbridge
