#include "iotbridge/topic.hpp"

#include <fmt/format.h>

#include "iotbridge/error.hpp"

namespace iotbridge {
namespace {

constexpr std::string_view kSharePrefix = "$share/";

// Splits off the first level of `rest` (up to '/'), advancing `rest` past it;
// has_more says whether a '/' followed the level.
void next_level(std::string_view& rest, std::string_view& level, bool& has_more) {
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) {
    level = rest;
    rest = {};
    has_more = false;
  } else {
    level = rest.substr(0, slash);
    rest.remove_prefix(slash + 1);
    has_more = true;
  }
}

std::optional<std::string> common_problem(std::string_view text, std::string_view what) {
  if (text.empty()) return fmt::format("{} is empty; MQTT needs at least one character", what);
  if (text.size() > kMaxTopicLength)
    return fmt::format("{} is {} bytes long; MQTT allows at most {}", what, text.size(), kMaxTopicLength);
  if (auto bad = utf8_problem(text)) return fmt::format("{} is not valid MQTT UTF-8: {}", what, *bad);
  return std::nullopt;
}

// Checks wildcard placement of a plain (not $share) filter.
std::optional<std::string> wildcard_problem(std::string_view filter) {
  for (std::size_t i = 0; i < filter.size(); ++i) {
    char c = filter[i];
    if (c != '+' && c != '#') continue;
    bool starts_level = i == 0 || filter[i - 1] == '/';
    bool ends_level = i + 1 == filter.size() || filter[i + 1] == '/';
    if (c == '+' && !(starts_level && ends_level))
      return fmt::format("filter '{}' has '+' inside a level at byte {}; '+' must stand alone between '/'", filter, i);
    if (c == '#' && !(starts_level && i + 1 == filter.size()))
      return fmt::format("filter '{}' has '#' at byte {}; '#' must be the whole last level", filter, i);
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> utf8_problem(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n;) {
    unsigned char b = s[i];
    std::size_t len;
    char32_t cp;
    if (b < 0x80) {
      len = 1;
      cp = b;
    } else if ((b & 0xE0) == 0xC0) {
      len = 2;
      cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3;
      cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0 && b <= 0xF4) {
      len = 4;
      cp = b & 0x07;
    } else {
      return fmt::format("byte 0x{:02X} at offset {} cannot start a UTF-8 character", b, i);
    }
    if (i + len > n) return fmt::format("truncated UTF-8 character at offset {}", i);
    for (std::size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return fmt::format("malformed UTF-8 character at offset {}", i);
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      return fmt::format("overlong or out-of-range UTF-8 encoding at offset {}", i);
    if (cp >= 0xD800 && cp <= 0xDFFF) return fmt::format("UTF-16 surrogate U+{:04X} at offset {}", +cp, i);
    if (cp == 0) return fmt::format("NUL character at offset {}", i);
    if (cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F)) return fmt::format("control character U+{:04X} at offset {}", +cp, i);
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFF) == 0xFFFE || (cp & 0xFFFF) == 0xFFFF)
      return fmt::format("non-character U+{:04X} at offset {}", +cp, i);
    i += len;
  }
  return std::nullopt;
}

std::optional<std::string> topic_problem(std::string_view topic) {
  if (auto p = common_problem(topic, "topic")) return p;
  auto wildcard = topic.find_first_of("+#");
  if (wildcard != std::string_view::npos)
    return fmt::format("topic '{}' contains the wildcard '{}'; wildcards are only allowed in subscription filters",
                       topic, topic[wildcard]);
  return std::nullopt;
}

std::optional<std::string> filter_problem(std::string_view filter) {
  if (auto p = common_problem(filter, "filter")) return p;
  if (filter.starts_with(kSharePrefix)) {
    try {
      parse_shared(filter);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::nullopt;
  }
  return wildcard_problem(filter);
}

void validate_topic(std::string_view topic) {
  if (auto p = topic_problem(topic)) throw Error(ErrorCategory::topic, *p);
}

void validate_filter(std::string_view filter) {
  if (auto p = filter_problem(filter)) throw Error(ErrorCategory::topic, *p);
}

bool topic_matches(std::string_view filter, std::string_view topic) noexcept {
  if (filter.empty() || topic.empty()) return false;
  if (topic.front() == '$' && (filter.front() == '+' || filter.front() == '#')) return false;
  std::string_view f = filter, t = topic, flevel, tlevel;
  bool f_more = true, t_more = true;
  while (true) {
    next_level(f, flevel, f_more);
    if (flevel == "#") return true;  // matches the parent level and all below
    next_level(t, tlevel, t_more);
    if (flevel != "+" && flevel != tlevel) return false;
    if (!f_more && !t_more) return true;
    if (!t_more) return f_more && f == "#";  // "a/#" matches "a"
    if (!f_more) return false;
  }
}

std::optional<SharedSubscription> parse_shared(std::string_view filter) {
  if (!filter.starts_with(kSharePrefix)) return std::nullopt;
  std::string_view rest = filter.substr(kSharePrefix.size());
  auto slash = rest.find('/');
  if (slash == std::string_view::npos)
    throw Error(ErrorCategory::topic,
                fmt::format("shared subscription '{}' has no filter; write $share/GROUP/FILTER", filter));
  std::string_view group = rest.substr(0, slash);
  std::string_view inner = rest.substr(slash + 1);
  if (group.empty())
    throw Error(ErrorCategory::topic,
                fmt::format("shared subscription '{}' has an empty group name; write $share/GROUP/FILTER", filter));
  if (group.find_first_of("+#") != std::string_view::npos)
    throw Error(ErrorCategory::topic,
                fmt::format("shared subscription '{}' has a wildcard in its group name '{}'", filter, group));
  if (inner.empty())
    throw Error(ErrorCategory::topic,
                fmt::format("shared subscription '{}' has an empty filter; write $share/GROUP/FILTER", filter));
  if (auto p = utf8_problem(filter)) throw Error(ErrorCategory::topic, "filter is not valid MQTT UTF-8: " + *p);
  if (auto p = wildcard_problem(inner)) throw Error(ErrorCategory::topic, *p);
  return SharedSubscription{std::string(group), std::string(inner)};
}

}  // namespace iotbridge
