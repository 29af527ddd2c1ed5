#include "duration.hpp"

#include <fmt/core.h>

#include <array>
#include <charconv>
#include <utility>

#include "iotbridge/error.hpp"

namespace iotbridge::view {

namespace {

constexpr std::array<std::pair<char, std::int64_t>, 5> kUnits = {{
    {'w', 7 * 24 * 3600 * 1000LL},
    {'d', 24 * 3600 * 1000LL},
    {'h', 3600 * 1000LL},
    {'m', 60 * 1000LL},
    {'s', 1000LL},
}};

}  // namespace

std::chrono::milliseconds parse_duration(std::string_view text, std::string_view what) {
  auto bad = [&] {
    return Error(ErrorCategory::config,
                 fmt::format("{} '{}' is not a duration: write a whole number and a unit, e.g. 90s, 15m, 1h, 2d, 1w",
                             what, text));
  };
  if (text.size() < 2) throw bad();
  std::int64_t number = 0;
  auto digits = text.substr(0, text.size() - 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
  if (ec != std::errc() || end != digits.data() + digits.size() || number <= 0) throw bad();
  for (const auto& [unit, millis] : kUnits)
    if (text.back() == unit) {
      if (number > (std::int64_t{1} << 52) / millis) throw bad();
      return std::chrono::milliseconds(number * millis);
    }
  throw bad();
}

std::string format_duration(std::chrono::milliseconds duration) {
  auto ms = duration.count();
  for (const auto& [unit, millis] : kUnits)
    if (ms > 0 && ms % millis == 0) return fmt::format("{}{}", ms / millis, unit);
  return fmt::format("{}ms", ms);
}

}  // namespace iotbridge::view
