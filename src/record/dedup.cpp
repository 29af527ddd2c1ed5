// Dedup keys and the deterministic _id derived from them.
#include "iotbridge/record/dedup.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>

#include "iotbridge/error.hpp"
#include "sha256.hpp"

namespace iotbridge::record {

namespace {

constexpr std::string_view kUserProperty = "user_property:";

void add_field(detail::Sha256& hash, std::string_view bytes) {
  std::uint64_t n = bytes.size();
  char prefix[8];
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  hash.update(std::string_view(prefix, 8));
  hash.update(bytes);
}

}  // namespace

DedupKey::DedupKey(std::string_view spec) : spec_(spec) {
  if (spec.empty()) return;
  if (spec == "payload") {
    source_ = Source::payload;
  } else if (spec.substr(0, kUserProperty.size()) == kUserProperty) {
    property_ = std::string(spec.substr(kUserProperty.size()));
    if (property_.empty())
      throw Error(ErrorCategory::config,
                  "dedup_key 'user_property:' names no property; write user_property:NAME (an MQTT 5 user property)");
    source_ = Source::user_property;
  } else if (spec.front() == '/') {
    try {
      pointer_ = JsonPointer(spec);
    } catch (const Error& e) {
      throw Error(ErrorCategory::config, std::string("dedup_key: ") + e.what());
    }
    source_ = Source::json_pointer;
  } else {
    throw Error(ErrorCategory::config,
                fmt::format("dedup_key '{}' is not a key: write a JSON Pointer into the payload (\"/seq\"), "
                            "\"user_property:NAME\" (MQTT 5) or \"payload\"",
                            spec));
  }
}

std::optional<std::string> DedupKey::from_message(std::string_view payload, const mqtt::Properties& properties) const {
  if (source_ == Source::payload) return std::string(payload);
  if (source_ == Source::user_property) {
    for (const auto& [name, value] : properties.user_properties)
      if (name == property_) return value;
  }
  return std::nullopt;
}

std::optional<std::string> DedupKey::from_value(const store::Value& decoded) const {
  if (source_ != Source::json_pointer) return std::nullopt;
  auto at = pointer_.resolve(decoded);
  if (!at || at->is_null()) return std::nullopt;
  // A type letter first, so that the string "7" and the number 7 differ.
  if (const auto* s = at->get_if<std::string>()) return "s" + *s;
  if (at->is_number()) {
    if (at->type() != store::Type::double_) return fmt::format("n{}", at->as_int64());
    double d = at->as_double();
    // An integral double is the same number as the integer (JSON has one number type).
    if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 9.0e15)
      return fmt::format("n{}", static_cast<std::int64_t>(d));
    return fmt::format("n{}", d);
  }
  return "j" + at->to_json(store::JsonMode::canonical);
}

store::ObjectId dedup_id(std::string_view route, std::string_view topic, std::string_view key) {
  detail::Sha256 hash;
  add_field(hash, "iotbridge dedup v1");
  add_field(hash, route);
  add_field(hash, topic);
  add_field(hash, key);
  auto digest = hash.finish();
  store::ObjectId id;
  for (std::size_t i = 0; i < id.bytes.size(); ++i) id.bytes[i] = digest[i];
  return id;
}

}  // namespace iotbridge::record
