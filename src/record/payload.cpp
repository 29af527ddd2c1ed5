#include "iotbridge/record/payload.hpp"

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <set>

#include "document_envelope.hpp"
#include "iotbridge/error.hpp"

namespace iotbridge::record {

using store::Document;
using store::Value;

std::string_view to_string(PayloadKind kind) noexcept {
  switch (kind) {
    case PayloadKind::null: return "null";
    case PayloadKind::number: return "number";
    case PayloadKind::json: return "json";
    case PayloadKind::text: return "text";
    case PayloadKind::binary: return "binary";
  }
  return "unknown";
}

namespace {

bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Checks that `text` is one JSON value whose brackets balance, nests at most
// `max_depth` levels, and has nothing after it. libbson's parser does the
// real validation; this guards its recursion and keeps the "{"v": ...}"
// wrapping below from being escaped by a payload like `1}, {"x": 2`.
bool json_shape_ok(std::string_view text, std::size_t max_depth) noexcept {
  std::size_t depth = 0;
  bool in_string = false;
  bool closed_top = false;  // a top-level container or string has ended
  const bool container = text.front() == '{' || text.front() == '[';
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (closed_top) return false;  // trailing content (text is trimmed)
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
        if (!container) closed_top = true;
      }
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '{':
      case '[':
        if (++depth > max_depth) return false;
        break;
      case '}':
      case ']':
        if (depth == 0) return false;
        if (--depth == 0) closed_top = true;
        break;
      default: break;
    }
  }
  return !in_string && depth == 0;
}

bool key_unsafe(std::string_view key) noexcept {
  return key.empty() || key.front() == '$' || key.find('.') != std::string_view::npos ||
         key.find('\0') != std::string_view::npos;
}

bool value_has_unsafe_keys(const Value& value) {
  if (const auto* doc = value.get_if<Document>()) {
    for (const auto& [key, child] : doc->fields()) {
      if (key_unsafe(key) || value_has_unsafe_keys(child)) return true;
    }
  } else if (const auto* arr = value.get_if<store::Array>()) {
    for (const auto& child : arr->values())
      if (value_has_unsafe_keys(child)) return true;
  }
  return false;
}

std::optional<Value> parse_json_value(std::string_view payload, const DecodeOptions& options) {
  std::string_view text = trim(payload);
  if (text.empty()) return std::nullopt;
  const char first = text.front();
  const bool literal = text == "true" || text == "false" || text == "null";
  if (first != '{' && first != '[' && first != '"' && !literal) return std::nullopt;
  if (!literal && !json_shape_ok(text, options.max_json_depth)) return std::nullopt;
  std::string wrapped;
  wrapped.reserve(text.size() + 8);
  wrapped.append("{\"v\":").append(text).append("}");
  try {
    Document doc = Document::from_json(wrapped);
    auto fields = doc.fields();
    if (fields.size() != 1 || fields[0].first != "v") return std::nullopt;
    Value value = std::move(fields[0].second);
    if (options.reject_unsafe_keys && value_has_unsafe_keys(value)) return std::nullopt;
    return value;
  } catch (const Error&) {
    return std::nullopt;
  }
}

}  // namespace

bool is_valid_utf8(std::string_view bytes) noexcept {
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t n = bytes.size();
  std::size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    std::uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

std::optional<double> parse_number(std::string_view text) noexcept {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  std::string_view body = text;
  if (body.front() == '+') {
    body.remove_prefix(1);
    if (!body.empty() && body.front() == '-') return std::nullopt;
  }
  // Grammar check first: from_chars alone would accept "inf", "nan", hex-like
  // forms in some modes, and stop early on trailing garbage.
  std::size_t i = body.empty() || body.front() != '-' ? 0 : 1;
  std::size_t int_digits = 0, frac_digits = 0;
  while (i < body.size() && is_digit(body[i])) ++i, ++int_digits;
  if (i < body.size() && body[i] == '.') {
    ++i;
    while (i < body.size() && is_digit(body[i])) ++i, ++frac_digits;
  }
  if (int_digits + frac_digits == 0) return std::nullopt;
  if (i < body.size() && (body[i] == 'e' || body[i] == 'E')) {
    ++i;
    if (i < body.size() && (body[i] == '+' || body[i] == '-')) ++i;
    std::size_t exp_digits = 0;
    while (i < body.size() && is_digit(body[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return std::nullopt;
  }
  if (i != body.size()) return std::nullopt;
  double out = 0;
  auto [ptr, ec] = std::from_chars(body.data(), body.data() + body.size(), out);
  if (ec != std::errc() || ptr != body.data() + body.size() || !std::isfinite(out)) return std::nullopt;
  return out;
}

DecodedPayload decode_payload(std::string_view payload, const DecodeOptions& options) {
  if (payload.empty()) return {Value(nullptr), PayloadKind::null};
  if (options.numbers) {
    if (auto number = parse_number(payload)) return {Value(*number), PayloadKind::number};
  }
  if (payload.find('\0') != std::string_view::npos || !is_valid_utf8(payload)) {
    store::Binary bin;
    bin.data.assign(reinterpret_cast<const std::uint8_t*>(payload.data()),
                    reinterpret_cast<const std::uint8_t*>(payload.data()) + payload.size());
    return {Value(std::move(bin)), PayloadKind::binary};
  }
  if (options.json) {
    if (auto value = parse_json_value(payload, options)) return {std::move(*value), PayloadKind::json};
  }
  return {Value(std::string(payload)), PayloadKind::text};
}

// ---- TopicPattern ----

TopicPattern::TopicPattern(std::string_view pattern) : pattern_(pattern) {
  static const std::set<std::string, std::less<>> kReserved{"_id", "topic", "value", "reg_date", "qos", "retain"};
  if (pattern.empty()) return;
  std::set<std::string, std::less<>> names;
  std::size_t start = 0;
  while (true) {
    std::size_t slash = pattern.find('/', start);
    std::string_view level =
        pattern.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    Level out;
    if (level == "+") {
      out.kind = Level::Kind::any;
    } else if (level == "#") {
      if (slash != std::string_view::npos)
        throw Error(ErrorCategory::config, "topic pattern '" + pattern_ + "': '#' must be the last level");
      out.kind = Level::Kind::rest;
    } else if (level.size() >= 2 && level.front() == '{' && level.back() == '}') {
      std::string name(level.substr(1, level.size() - 2));
      if (name.empty()) throw Error(ErrorCategory::config, "topic pattern '" + pattern_ + "': empty field name {}");
      if (key_unsafe(name) || name.find_first_of("{}+#") != std::string::npos || kReserved.count(name) != 0)
        throw Error(ErrorCategory::config,
                    "topic pattern '" + pattern_ + "': '" + name +
                        "' cannot be a field name (reserved, or contains '$', '.', braces or wildcards)");
      if (!names.insert(name).second)
        throw Error(ErrorCategory::config, "topic pattern '" + pattern_ + "': field '" + name + "' used twice");
      out.kind = Level::Kind::capture;
      out.text = std::move(name);
    } else {
      if (level.find_first_of("{}+#") != std::string_view::npos)
        throw Error(ErrorCategory::config, "topic pattern '" + pattern_ + "': level '" + std::string(level) +
                                               "' mixes text with braces or wildcards; use a whole level "
                                               "like {name}, + or #");
      out.text = std::string(level);
    }
    levels_.push_back(std::move(out));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
}

std::optional<std::vector<std::pair<std::string, std::string>>> TopicPattern::match(std::string_view topic) const {
  if (levels_.empty()) return std::nullopt;
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t start = 0;
  bool topic_done = false;
  for (const auto& level : levels_) {
    if (level.kind == Level::Kind::rest) return out;
    if (topic_done) return std::nullopt;
    std::size_t slash = topic.find('/', start);
    std::string_view part =
        topic.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (slash == std::string_view::npos)
      topic_done = true;
    else
      start = slash + 1;
    switch (level.kind) {
      case Level::Kind::literal:
        if (part != level.text) return std::nullopt;
        break;
      case Level::Kind::capture: out.emplace_back(level.text, std::string(part)); break;
      case Level::Kind::any:
      case Level::Kind::rest: break;
    }
  }
  if (!topic_done) return std::nullopt;
  return out;
}

// ---- timestamps ----

namespace {

bool read_digits(std::string_view s, std::size_t& pos, std::size_t count, int& out) noexcept {
  if (pos + count > s.size()) return false;
  int v = 0;
  for (std::size_t k = 0; k < count; ++k) {
    char c = s[pos + k];
    if (!is_digit(c)) return false;
    v = v * 10 + (c - '0');
  }
  pos += count;
  out = v;
  return true;
}

std::optional<store::DateTime> parse_iso8601(std::string_view s) noexcept {
  s = trim(s);
  std::size_t pos = 0;
  int year, month, day, hour, minute, second;
  if (!read_digits(s, pos, 4, year) || pos >= s.size() || s[pos++] != '-') return std::nullopt;
  if (!read_digits(s, pos, 2, month) || pos >= s.size() || s[pos++] != '-') return std::nullopt;
  if (!read_digits(s, pos, 2, day) || pos >= s.size()) return std::nullopt;
  if (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ') return std::nullopt;
  ++pos;
  if (!read_digits(s, pos, 2, hour) || pos >= s.size() || s[pos++] != ':') return std::nullopt;
  if (!read_digits(s, pos, 2, minute) || pos >= s.size() || s[pos++] != ':') return std::nullopt;
  if (!read_digits(s, pos, 2, second)) return std::nullopt;
  std::int64_t millis = 0;
  if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
    ++pos;
    std::size_t digits = 0;
    std::int64_t frac = 0;
    while (pos < s.size() && is_digit(s[pos])) {
      if (digits < 3) frac = frac * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (std::size_t k = digits; k < 3; ++k) frac *= 10;
    millis = frac;
  }
  std::int64_t offset_minutes = 0;
  if (pos < s.size()) {
    char z = s[pos];
    if (z == 'Z' || z == 'z') {
      ++pos;
    } else if (z == '+' || z == '-') {
      ++pos;
      int oh, om = 0;
      if (!read_digits(s, pos, 2, oh)) return std::nullopt;
      if (pos < s.size() && s[pos] == ':') ++pos;
      if (pos < s.size() && !read_digits(s, pos, 2, om)) return std::nullopt;
      if (oh > 23 || om > 59) return std::nullopt;
      offset_minutes = (oh * 60 + om) * (z == '-' ? -1 : 1);
    }
  }
  if (pos != s.size()) return std::nullopt;
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  using namespace std::chrono;
  year_month_day ymd{std::chrono::year(year), std::chrono::month(static_cast<unsigned>(month)),
                     std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok()) return std::nullopt;
  std::int64_t days = sys_days(ymd).time_since_epoch().count();
  std::int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
  return store::DateTime{secs * 1000 + millis};
}

}  // namespace

std::optional<store::DateTime> parse_timestamp(const Value& value) noexcept {
  try {
    switch (value.type()) {
      case store::Type::datetime: return value.as_datetime();
      case store::Type::double_:
      case store::Type::int32:
      case store::Type::int64: {
        double v = value.as_double();
        if (!std::isfinite(v) || v < 0) return std::nullopt;
        double millis = v > 1e11 ? v : v * 1000.0;
        if (millis > 253402300799999.0) return std::nullopt;  // past year 9999
        return store::DateTime{static_cast<std::int64_t>(std::llround(millis))};
      }
      case store::Type::string: return parse_iso8601(value.as_string());
      default: return std::nullopt;
    }
  } catch (...) {
    return std::nullopt;
  }
}

// ---- documents ----

namespace detail {

Document make_document(const Reading& reading, const store::ObjectId& id, const Value* value,
                       std::vector<std::pair<std::string, Value>>* fields, const DocumentOptions& options,
                       BuildInfo* info) {
  std::optional<store::DateTime> ts;
  const Value* ts_source = value;
  if (!options.timestamp_field.empty() && ts_source) {
    if (const auto* doc = ts_source->get_if<Document>()) {
      if (auto field = doc->get(options.timestamp_field)) ts = parse_timestamp(*field);
    }
  }
  Document out;
  out.append("_id", id).append("topic", reading.topic);
  if (value) out.append("value", *value);
  if (fields)
    for (auto& [name, field] : *fields) out.append(name, field);
  out.append("reg_date", reading.received);
  if (options.include_qos) out.append("qos", reading.qos);
  if (options.include_retain) out.append("retain", reading.retain);
  if (!options.topic_fields.empty()) {
    if (auto topic_fields = options.topic_fields.match(reading.topic)) {
      info->topic_matched = true;
      for (auto& [name, level] : *topic_fields) out.append(name, Value(std::move(level)));
    }
  }
  if (ts) {
    info->timestamp_found = true;
    out.append(options.timestamp_key, *ts);
  }
  return out;
}

}  // namespace detail

Document build_document(const Reading& reading, const DocumentOptions& options, BuildInfo* info) {
  DecodedPayload decoded = decode_payload(reading.payload, options.decode);
  BuildInfo local;
  local.kind = decoded.kind;
  // The timestamp is read from JSON payloads only (a JSON string is a value, not a field holder).
  const Value* value = &decoded.value;
  Document out = detail::make_document(reading, reading.id, value, nullptr, options, &local);
  if (info) *info = local;
  return out;
}

}  // namespace iotbridge::record
