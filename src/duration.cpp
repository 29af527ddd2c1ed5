// Durations in words: "30d", "15m", "2s", "500ms", "1h30m".
#include "iotbridge/duration.hpp"

#include <fmt/format.h>

#include <array>
#include <cstdint>
#include <limits>

#include "iotbridge/error.hpp"

namespace iotbridge {

namespace {

struct Unit {
  std::string_view name;
  std::int64_t millis;
};

// Longest names first where one is a prefix of another ("ms" before "m").
constexpr std::array<Unit, 6> kUnits{{{"ms", 1},
                                      {"s", 1000},
                                      {"m", 60 * 1000},
                                      {"h", 60 * 60 * 1000},
                                      {"d", 24 * 60 * 60 * 1000},
                                      {"w", 7 * 24 * 60 * 60 * 1000}}};

[[noreturn]] void fail(std::string_view what, std::string_view text, const std::string& why) {
  throw Error(ErrorCategory::config, fmt::format("{} '{}': {}", what, text, why));
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

}  // namespace

std::chrono::milliseconds parse_duration(std::string_view text, std::string_view what) {
  const std::string_view whole = text;
  text = trim(text);
  if (text.empty()) fail(what, whole, "is empty; write a number and a unit, as in 500ms, 2s, 15m, 1h, 30d");
  if (text.front() == '-' || text.front() == '+')
    fail(what, whole, "takes no sign; write a positive number and a unit, as in 2s");
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  std::int64_t total = 0;
  while (!text.empty()) {
    std::size_t digits = 0;
    while (digits < text.size() && is_digit(text[digits])) ++digits;
    if (digits == 0)
      fail(what, whole, fmt::format("expected a number at '{}'; write e.g. 500ms, 2s, 15m, 1h, 30d", text));
    std::string_view number = text.substr(0, digits);
    text.remove_prefix(digits);
    if (!text.empty() && (text.front() == '.' || text.front() == ','))
      fail(what, whole, "takes whole numbers only; write 1h30m for 1.5h, 1500ms for 1.5s");
    std::size_t letters = 0;
    while (letters < text.size() && is_letter(text[letters])) ++letters;
    std::string_view unit = text.substr(0, letters);
    if (unit.empty()) {
      if (text.empty())
        fail(what, whole,
             fmt::format("has no unit; write {0}ms, {0}s, {0}m, {0}h or {0}d (ms, s, m, h, d, w)", number));
      fail(what, whole, fmt::format("unexpected '{}'; write a number and a unit, as in 30d or 1h30m", text.front()));
    }
    const Unit* found = nullptr;
    for (const Unit& u : kUnits)
      if (u.name == unit) found = &u;
    if (!found) fail(what, whole, fmt::format("unknown unit '{}'; the units are ms, s, m, h, d, w", unit));
    text.remove_prefix(letters);
    std::int64_t n = 0;
    for (char c : number) {
      if (n > (kMax - (c - '0')) / 10) fail(what, whole, "is too long (more than 292 million years)");
      n = n * 10 + (c - '0');
    }
    if (n > kMax / found->millis || total > kMax - n * found->millis)
      fail(what, whole, "is too long (more than 292 million years)");
    total += n * found->millis;
  }
  return std::chrono::milliseconds(total);
}

std::string format_duration(std::chrono::milliseconds d) {
  std::int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  std::uint64_t left = ms < 0 ? 0 - static_cast<std::uint64_t>(ms) : static_cast<std::uint64_t>(ms);
  if (ms < 0) out = "-";
  // Weeks only when the whole duration is weeks: "14d" reads better than "2w" mixed with days.
  for (auto it = kUnits.rbegin(); it != kUnits.rend(); ++it) {
    auto unit = static_cast<std::uint64_t>(it->millis);
    if (it->name == "w" && left % unit != 0) continue;
    if (left >= unit) {
      out += fmt::format("{}{}", left / unit, it->name);
      left %= unit;
    }
  }
  return out;
}

}  // namespace iotbridge
