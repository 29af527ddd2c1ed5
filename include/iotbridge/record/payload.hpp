/// @file
/// The rules that turn one MQTT message into one stored document.
///
///  - decode_payload: bytes -> store::Value. A number ("24.5", " -3e2 ") becomes
///    a double; a JSON object, array, string, true/false/null becomes that JSON
///    value; any other valid UTF-8 text is stored as a string; anything else
///    (invalid UTF-8, NUL bytes) as binary; an empty payload as null. It never
///    throws and never discards a reading: what is not a number or JSON falls
///    back to text or binary and says so (PayloadKind), so callers can count it.
///  - TopicPattern: "iot/{home}/{device}/{sensor}" names topic levels, which are
///    copied into the document as fields.
///  - build_document: a Reading (what the recorder accepted: _id, receive time,
///    topic, payload, qos, retain) -> the document of the document contract:
///    `{_id, topic, value, reg_date[, qos, retain, <topic fields>, <timestamp>]}`
///    (docs/document-contract.md).
///
/// Pure functions and immutable values; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "iotbridge/store/document.hpp"

namespace iotbridge::record {

/// What decode_payload made of a payload.
enum class PayloadKind {
  null,    ///< empty payload
  number,  ///< a decimal number, stored as a double
  json,    ///< a JSON object, array, string, true, false or null
  text,    ///< fallback: valid UTF-8 that is neither a number nor JSON
  binary,  ///< fallback: invalid UTF-8 or NUL bytes, stored as BSON binary (subtype 0)
};

/// "null", "number", "json", "text", "binary".
std::string_view to_string(PayloadKind kind) noexcept;

struct DecodeOptions {
  bool numbers = true;  ///< default true: "24.5" -> 24.5 (false: kept as text)
  bool json = true;     ///< default true: JSON payloads -> JSON values (false: kept as text)
  /// JSON nested deeper than this is stored as text: MongoDB refuses documents
  /// nested beyond 100 levels, and a hostile payload must not exhaust the stack.
  std::size_t max_json_depth = 32;  ///< default 32
  /// JSON objects whose keys (at any depth) start with '$', contain '.' or
  /// NUL, or are empty are stored as text: servers refuse or misread such keys,
  /// and one refused document would block its whole batch. Extended JSON
  /// wrappers that libbson understands ({"$date": ...}, {"$oid": ...}) are
  /// turned into their BSON types first and are fine.
  bool reject_unsafe_keys = true;  ///< default true
};

struct DecodedPayload {
  store::Value value;
  PayloadKind kind = PayloadKind::null;
};

/// Never throws (except std::bad_alloc).
DecodedPayload decode_payload(std::string_view payload, const DecodeOptions& options = {});

/// True when `bytes` is well-formed UTF-8 (no overlong forms, no surrogates, at
/// most U+10FFFF). Control characters and NUL are allowed here.
bool is_valid_utf8(std::string_view bytes) noexcept;

/// Parses a decimal number the way people write sensor values: optional sign,
/// digits with an optional fraction, optional exponent, surrounding ASCII
/// whitespace allowed ("24.5", "-3", ".5", "1e3", " 7\n"). No hex, inf, nan,
/// or overflow to infinity. nullopt otherwise.
std::optional<double> parse_number(std::string_view text) noexcept;

/// A topic pattern: levels separated by '/', each either a literal (must
/// match), "{name}" (captures the level as field `name`), "+" (any level, not
/// captured) or a final "#" (any remaining levels, possibly none).
/// Example: "iot/{home}/{device}/{sensor}" on "iot/h1/boiler/temp" gives
/// home=h1, device=boiler, sensor=temp.
class TopicPattern {
 public:
  TopicPattern() = default;  ///< empty: matches nothing, captures nothing
  /// Throws Error (config) naming the problem: empty "{}" name, a name used
  /// twice, a name that is not a safe field name ("_id", "topic", "value",
  /// "reg_date", "qos", "retain", or with '$' / '.'), '#' not last, braces
  /// inside a level.
  explicit TopicPattern(std::string_view pattern);

  bool empty() const noexcept { return levels_.empty(); }
  const std::string& pattern() const noexcept { return pattern_; }
  /// The captured (name, level) pairs in pattern order, or nullopt when the
  /// topic does not fit the pattern.
  std::optional<std::vector<std::pair<std::string, std::string>>> match(std::string_view topic) const;

 private:
  struct Level {
    enum class Kind { literal, capture, any, rest } kind = Kind::literal;
    std::string text;  ///< the literal, or the capture's field name
  };
  std::string pattern_;
  std::vector<Level> levels_;
};

/// Reads a timestamp from a decoded value: a BSON datetime ({"$date": ...}),
/// a number of seconds since the Unix epoch (or milliseconds when it is above
/// 1e11, i.e. after 1973 in milliseconds, which is year 5138 in seconds), or an
/// ISO-8601 / RFC 3339 string ("2024-05-01T12:00:00Z", "...T12:00:00.250+02:00",
/// "2024-05-01 12:00:00" taken as UTC). nullopt when it is none of these.
std::optional<store::DateTime> parse_timestamp(const store::Value& value) noexcept;

/// One accepted MQTT message, as the recorder keeps it (in memory, in the
/// write-ahead journal and in the spool) until it is stored. The _id and the
/// receive time are fixed when the message is accepted, so every replay and
/// retry stores the same document, which insert_many(ignore_duplicate_ids)
/// then stores once.
struct Reading {
  store::ObjectId id;
  store::DateTime received;  ///< reg_date
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retain = false;
  /// The name of the route it was accepted for (route.hpp); "" for the first
  /// route (and in records written before routes existed).
  std::string route;
};

struct DocumentOptions {
  DecodeOptions decode;
  bool include_qos = false;     ///< default false: add "qos" (int32)
  bool include_retain = false;  ///< default false: add "retain" (bool)
  /// Default empty: no fields from the topic. Topics that do not fit the
  /// pattern are stored without them.
  TopicPattern topic_fields;
  /// Dotted path of a timestamp inside a JSON object payload ("ts",
  /// "meta.time"); default empty: none. When present and readable (see
  /// parse_timestamp) it is stored as a datetime under timestamp_key; the
  /// payload's value is stored unchanged either way.
  std::string timestamp_field;
  std::string timestamp_key = "ts";  ///< default "ts"
};

/// What build_document did, for the recorder's counters.
struct BuildInfo {
  PayloadKind kind = PayloadKind::null;
  bool topic_matched = false;    ///< topic_fields set and the topic fit
  bool timestamp_found = false;  ///< timestamp_field set and readable
};

store::Document build_document(const Reading& reading, const DocumentOptions& options = {}, BuildInfo* info = nullptr);

/// Binary encoding of Readings for the journal and the spool (versioned,
/// little-endian, self-delimiting; version 1 without a route name, version 2
/// with one; implemented with the spool, src/record/spool.cpp). decode_reading throws Error (io) on
/// malformed or truncated input, never reads out of bounds.
std::string encode_reading(const Reading& reading);
void encode_reading(const Reading& reading, std::string& out);  ///< appends
Reading decode_reading(std::string_view bytes);
/// Decodes one reading from the front of `bytes` and advances it past it.
Reading decode_reading_prefix(std::string_view& bytes);

}  // namespace iotbridge::record
