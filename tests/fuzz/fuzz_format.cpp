// The CLI's -F format parser and renderer (mqtt/format.hpp MessageFormatter),
// plus the JSON helpers it uses for %j/%J and --pretty.
//
// Input: "FORMAT\nPAYLOAD" (split at the first newline; a newline inside a
// format is written "\n", an escape). The first byte of the format picks the
// output flags (pretty, end_of_line, MQTT 5 properties present). Checks:
// the formatter refuses (Error) exactly the formats format_problem() names, as
// mosquitto_sub refuses them; constructing and rendering never crash and use
// bounded memory (widths are capped); json_quote output is accepted by
// reformat_json; reformat_json is idempotent (compact of compact == compact,
// compact of pretty == compact).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/format.hpp"

using namespace iotbridge::mqtt;

namespace {
[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_format: %s\n  %s\n", what, detail.c_str());
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t flags = data[0];
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  auto nl = input.find('\n');
  std::string_view format = nl == std::string_view::npos ? input : input.substr(0, nl);
  std::string_view payload = nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);

  OutputOptions options;
  options.style = OutputStyle::custom;
  options.format = std::string(format);
  options.pretty = flags & 1;
  options.end_of_line = !(flags & 2);
  const auto refusal = format_problem(format);
  std::optional<MessageFormatter> made;
  try {
    made.emplace(options);
  } catch (const iotbridge::Error& e) {
    if (!refusal) fail("the formatter refused a format format_problem() accepts", e.what());
    return 0;
  }
  if (refusal) fail("the formatter accepted a format format_problem() refuses", *refusal);
  MessageFormatter& formatter = *made;

  Message message;
  message.topic = "iot/home/boiler/temp";
  message.payload = std::string(payload);
  message.qos = flags % 3;
  message.retain = flags & 4;
  message.mid = 42;
  if (flags & 8) {
    message.properties.content_type = "application/json";
    message.properties.response_topic = "iot/reply";
    message.properties.correlation_data = std::string(payload.substr(0, 8));
    message.properties.message_expiry_interval = 3600;
    message.properties.payload_format_utf8 = true;
    message.properties.user_properties = {{"site", "home"}, {"k", std::string(payload.substr(0, 4))}};
  }
  auto when = std::chrono::system_clock::time_point(std::chrono::microseconds(1763758983213699));
  std::string out, problem;
  (void)formatter.append(out, message, when, &problem);
  (void)formatter.uses_time();

  // The built-in styles on the same message.
  for (auto style : {OutputStyle::payload, OutputStyle::verbose, OutputStyle::json}) {
    OutputOptions o = options;
    o.style = style;
    (void)MessageFormatter(o).format(message, when);
  }

  std::string quoted = json_quote(payload);
  if (payload.find('\0') == std::string_view::npos) {
    (void)reformat_json(quoted);  // may refuse invalid UTF-8, must not crash
  }
  if (auto compact = reformat_json(payload)) {
    auto again = reformat_json(*compact);
    if (!again || *again != *compact) fail("reformat_json is not idempotent", *compact);
    auto pretty = reformat_json(payload, true);
    if (!pretty) fail("reformat_json accepts a text compact but not pretty", *compact);
    auto back = reformat_json(*pretty);
    if (!back || *back != *compact) fail("pretty JSON does not compact back to the same text", *pretty);
  }
  (void)base64_encode(payload);
  return 0;
}
