// Quarantine documents: a refused reading, raw, with why.
#include "iotbridge/record/quarantine.hpp"

#include <array>

#include "iotbridge/error.hpp"

namespace iotbridge::record {

namespace {

constexpr std::array<std::pair<QuarantineReason, std::string_view>, 5> kReasons{{
    {QuarantineReason::too_large, "too_large"},
    {QuarantineReason::validator, "validator"},
    {QuarantineReason::unique_index, "unique_index"},
    {QuarantineReason::unmapped, "unmapped"},
    {QuarantineReason::refused, "refused"},
}};

[[noreturn]] void not_quarantine(std::string_view field) {
  throw Error(ErrorCategory::store, "not a quarantine document: its '" + std::string(field) +
                                        "' is missing or of the wrong type (is this a quarantine collection?)");
}

}  // namespace

std::string_view to_string(QuarantineReason reason) noexcept {
  for (const auto& [r, word] : kReasons)
    if (r == reason) return word;
  return "refused";
}

std::optional<QuarantineReason> parse_quarantine_reason(std::string_view word) noexcept {
  for (const auto& [r, w] : kReasons)
    if (w == word) return r;
  return std::nullopt;
}

QuarantineReason classify_refusal(int code, std::string_view message) noexcept {
  if (code == 121) return QuarantineReason::validator;  // DocumentValidationFailure
  if (code == 11000) return QuarantineReason::unique_index;
  if (code == 10334 || message.find("too large") != std::string_view::npos ||
      message.find("BSONObjectTooLarge") != std::string_view::npos)
    return QuarantineReason::too_large;
  return QuarantineReason::refused;
}

std::string quarantine_collection(const Route& route) {
  return route.quarantine.empty() ? route.collection + "_quarantine" : route.quarantine;
}

store::Document to_document(const QuarantinedReading& q) {
  store::Binary payload;
  payload.data.assign(q.reading.payload.begin(), q.reading.payload.end());
  store::Document doc;
  doc.append("_id", q.reading.id)
      .append("topic", q.reading.topic)
      .append("payload", std::move(payload))
      .append("qos", q.reading.qos)
      .append("retain", q.reading.retain)
      .append("reg_date", q.reading.received)
      .append("route", q.route)
      .append("reason", to_string(q.reason))
      .append("message", q.message)
      .append("code", q.code)
      .append("quarantined_at", q.quarantined_at);
  return doc;
}

QuarantinedReading quarantined_reading_from_document(const store::Document& doc) {
  QuarantinedReading q;
  auto id = doc.get_object_id("_id");
  if (!id) not_quarantine("_id");
  q.reading.id = *id;
  auto topic = doc.get_string("topic");
  if (!topic) not_quarantine("topic");
  q.reading.topic = std::move(*topic);
  auto payload = doc.get("payload");
  if (!payload || !payload->is<store::Binary>()) not_quarantine("payload");
  const auto& bytes = payload->as_binary().data;
  q.reading.payload.assign(bytes.begin(), bytes.end());
  auto received = doc.get_datetime("reg_date");
  if (!received) not_quarantine("reg_date");
  q.reading.received = *received;
  q.reading.qos = static_cast<int>(doc.get_int64("qos").value_or(0));
  q.reading.retain = doc.get_bool("retain").value_or(false);
  q.route = doc.get_string("route").value_or("");
  q.reason = parse_quarantine_reason(doc.get_string("reason").value_or("")).value_or(QuarantineReason::refused);
  q.message = doc.get_string("message").value_or("");
  q.code = static_cast<int>(doc.get_int64("code").value_or(0));
  q.quarantined_at = doc.get_datetime("quarantined_at").value_or(store::DateTime{});
  return q;
}

}  // namespace iotbridge::record
