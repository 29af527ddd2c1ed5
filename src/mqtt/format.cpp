// Message output formatting. The -F parser follows mosquitto_sub's scanning
// order (flags, width, precision, conversion) so that format strings written
// for it print the same here; JSON is printed in cJSON's layout because that is
// what mosquitto_sub's %j / %J / --pretty print.
#include "iotbridge/mqtt/format.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <utility>

#include "iotbridge/error.hpp"
#include "json_string.hpp"

namespace iotbridge::mqtt {

namespace {

using Clock = std::chrono::system_clock;

// Widths and precisions past this are clamped: a format string must not be
// able to make one message allocate gigabytes.
constexpr int kMaxWidth = 65535;
// cJSON's nesting limit, so that what mosquitto_sub accepts as JSON we accept too.
constexpr int kMaxJsonDepth = 1000;

// ---------------------------------------------------------------- JSON ----

struct Json {
  enum class Kind { null, boolean, number, string, array, object };
  Kind kind = Kind::null;
  bool boolean = false;
  double number = 0;
  std::string text;               // string value (raw bytes)
  std::vector<Json> items;        // array items or object values
  std::vector<std::string> keys;  // object keys, parallel to items

  static Json make_number(double v) {
    Json j;
    j.kind = Kind::number;
    j.number = v;
    return j;
  }
  static Json make_string(std::string v) {
    Json j;
    j.kind = Kind::string;
    j.text = std::move(v);
    return j;
  }
  static Json make_object() {
    Json j;
    j.kind = Kind::object;
    return j;
  }
  static Json make_array() {
    Json j;
    j.kind = Kind::array;
    return j;
  }
  void add(std::string key, Json value) {
    keys.push_back(std::move(key));
    items.push_back(std::move(value));
  }
};

void append_quoted(std::string& out, std::string_view text) { iotbridge::detail::append_json_string(out, text); }

// cJSON prints 15 significant digits when they give the number back, else 17.
void append_number(std::string& out, double v) {
  if (std::isnan(v) || std::isinf(v)) {
    out += "null";
    return;
  }
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%1.15g", v);
  double back = std::strtod(buf, nullptr);
  if (back != v) n = std::snprintf(buf, sizeof buf, "%1.17g", v);
  out.append(buf, static_cast<std::size_t>(n));
}

void append_json(std::string& out, const Json& j, bool pretty, int depth) {
  switch (j.kind) {
    case Json::Kind::null: out += "null"; return;
    case Json::Kind::boolean: out += j.boolean ? "true" : "false"; return;
    case Json::Kind::number: append_number(out, j.number); return;
    case Json::Kind::string: append_quoted(out, j.text); return;
    case Json::Kind::array:
      out.push_back('[');
      for (std::size_t i = 0; i < j.items.size(); ++i) {
        append_json(out, j.items[i], pretty, depth + 1);
        if (i + 1 < j.items.size()) out += pretty ? ", " : ",";
      }
      out.push_back(']');
      return;
    case Json::Kind::object:
      out.push_back('{');
      if (pretty) out.push_back('\n');
      for (std::size_t i = 0; i < j.items.size(); ++i) {
        if (pretty) out.append(static_cast<std::size_t>(depth + 1), '\t');
        append_quoted(out, j.keys[i]);
        out.push_back(':');
        if (pretty) out.push_back('\t');
        append_json(out, j.items[i], pretty, depth + 1);
        if (i + 1 < j.items.size()) out.push_back(',');
        if (pretty) out.push_back('\n');
      }
      if (pretty) out.append(static_cast<std::size_t>(depth), '\t');
      out.push_back('}');
      return;
  }
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// A strict RFC 8259 parser (raw control bytes inside strings are tolerated,
// as cJSON tolerates them). Recursive, bounded by kMaxJsonDepth.
class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : s_(text) {}

  std::optional<Json> parse_document() {
    Json value;
    skip_ws();
    if (!parse_value(value, 0)) return std::nullopt;
    skip_ws();
    if (pos_ != s_.size()) return std::nullopt;
    return value;
  }

 private:
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  bool parse_value(Json& out, int depth) {
    if (depth > kMaxJsonDepth || pos_ >= s_.size()) return false;
    char c = s_[pos_];
    if (c == '{') return parse_object(out, depth + 1);
    if (c == '[') return parse_array(out, depth + 1);
    if (c == '"') {
      out.kind = Json::Kind::string;
      return parse_string(out.text);
    }
    if (c == 't' && literal("true")) {
      out.kind = Json::Kind::boolean;
      out.boolean = true;
      return true;
    }
    if (c == 'f' && literal("false")) {
      out.kind = Json::Kind::boolean;
      return true;
    }
    if (c == 'n' && literal("null")) {
      out.kind = Json::Kind::null;
      return true;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(out);
    return false;
  }
  bool digits() {
    std::size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    return pos_ > start;
  }
  bool parse_number(Json& out) {
    std::size_t start = pos_;
    if (s_[pos_] == '-') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '0') {
      ++pos_;
    } else if (!digits()) {
      return false;
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (!digits()) return false;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digits()) return false;
    }
    // strtod needs a terminated string; numbers are short.
    std::string token(s_.substr(start, pos_ - start));
    out.kind = Json::Kind::number;
    out.number = std::strtod(token.c_str(), nullptr);
    return true;
  }
  bool hex4(std::uint32_t& v) {
    if (s_.size() - pos_ < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else
        return false;
    }
    return true;
  }
  bool parse_string(std::string& out) {
    ++pos_;  // opening quote
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return true;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) return false;
      char e = s_[pos_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // a lone low surrogate
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t low = 0;
            if (s_.substr(pos_, 2) != "\\u") return false;
            pos_ += 2;
            if (!hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: return false;
      }
    }
    return false;
  }
  bool parse_array(Json& out, int depth) {
    out.kind = Json::Kind::array;
    ++pos_;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return true;
    }
    while (true) {
      Json item;
      skip_ws();
      if (!parse_value(item, depth)) return false;
      out.items.push_back(std::move(item));
      skip_ws();
      if (pos_ >= s_.size()) return false;
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return false;
    }
  }
  bool parse_object(Json& out, int depth) {
    out.kind = Json::Kind::object;
    ++pos_;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    while (true) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') return false;
      std::string key;
      if (!parse_string(key)) return false;
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') return false;
      ++pos_;
      skip_ws();
      Json value;
      if (!parse_value(value, depth)) return false;
      out.add(std::move(key), std::move(value));
      skip_ws();
      if (pos_ >= s_.size()) return false;
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        return true;
      }
      return false;
    }
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

// ------------------------------------------------------------ -F pieces ----

struct Piece {
  enum class Kind { literal, field, time };
  Kind kind = Kind::literal;
  std::string text;     // literal bytes
  char conversion = 0;  // field: the % letter; time: the @ letter
  bool left = false;    // '-' flag
  char pad = ' ';       // '0' flag
  int width = 0;
  int precision = -1;
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

void add_literal(std::vector<Piece>& pieces, char c) {
  if (pieces.empty() || pieces.back().kind != Piece::Kind::literal) pieces.push_back(Piece{});
  pieces.back().text.push_back(c);
}

// The scan mirrors mosquitto_sub's: `%`, optional `-`, optional `0`, digits,
// optional `.digits`, then the conversion. format_problem() has refused
// unknown and cut-off sequences before this runs.
std::vector<Piece> parse_format(std::string_view f) {
  std::vector<Piece> pieces;
  const std::size_t len = f.size();
  for (std::size_t i = 0; i < len; ++i) {
    char c = f[i];
    if (c == '%') {
      if (i + 1 >= len) continue;
      ++i;
      Piece p;
      p.kind = Piece::Kind::field;
      if (f[i] == '-') {
        p.left = true;
        if (i + 1 < len) ++i;
      }
      if (f[i] == '0') {
        p.pad = '0';
        if (i + 1 < len) ++i;
      }
      while (i + 1 < len && is_digit(f[i])) {
        p.width = std::min(kMaxWidth, p.width * 10 + (f[i] - '0'));
        ++i;
      }
      if (f[i] == '.' && i + 1 < len) {
        ++i;
        p.precision = 0;
        while (i + 1 < len && is_digit(f[i])) {
          p.precision = std::min(kMaxWidth, p.precision * 10 + (f[i] - '0'));
          ++i;
        }
      }
      p.conversion = f[i];
      if (p.conversion == '%') {
        add_literal(pieces, '%');
      } else {
        pieces.push_back(std::move(p));
      }
    } else if (c == '@') {
      if (i + 1 >= len) continue;
      ++i;
      if (f[i] == '@') {
        add_literal(pieces, '@');
      } else {
        Piece p;
        p.kind = Piece::Kind::time;
        p.conversion = f[i];
        pieces.push_back(std::move(p));
      }
    } else if (c == '\\') {
      if (i + 1 >= len) continue;
      ++i;
      switch (f[i]) {
        case '\\': add_literal(pieces, '\\'); break;
        case '0': add_literal(pieces, '\0'); break;
        case 'a': add_literal(pieces, '\a'); break;
        case 'e': add_literal(pieces, '\033'); break;
        case 'n': add_literal(pieces, '\n'); break;
        case 'r': add_literal(pieces, '\r'); break;
        case 't': add_literal(pieces, '\t'); break;
        case 'v': add_literal(pieces, '\v'); break;
        default: break;  // unknown escape: nothing, as mosquitto_sub
      }
    } else {
      add_literal(pieces, c);
    }
  }
  return pieces;
}

}  // namespace

// mosquitto_sub's check of a -F string (client_shared.c, check_format), with
// its sentences: the same strings are refused, for the same reasons.
std::optional<std::string> format_problem(std::string_view f) {
  static constexpr std::string_view kFields = "%ACDEFIlmPpqRSrtjJUxX";
  static constexpr std::string_view kEscapes = "\\0aenrtv";
  const std::string incomplete = "Incomplete format specifier.";
  const std::size_t len = f.size();
  for (std::size_t i = 0; i < len; ++i) {
    if (f[i] == '%') {
      if (i + 1 >= len) return incomplete;
      if (f[i + 1] == '0' || f[i + 1] == '-') {
        if (++i + 1 >= len) return incomplete;
      }
      while (is_digit(f[i + 1])) {
        if (++i + 1 >= len) return incomplete;
      }
      if (f[i + 1] == '.') {
        if (++i + 1 >= len) return incomplete;
        while (is_digit(f[i + 1])) {
          if (++i + 1 >= len) return incomplete;
        }
      }
      if (kFields.find(f[i + 1]) == std::string_view::npos)
        return "Invalid format specifier '" + std::string(1, f[i + 1]) + "'.";
      ++i;
    } else if (f[i] == '@') {
      if (i + 1 >= len) return incomplete;
      ++i;
    } else if (f[i] == '\\') {
      if (i + 1 >= len) return std::string("Incomplete escape specifier.");
      if (kEscapes.find(f[i + 1]) == std::string_view::npos)
        return "Invalid escape specifier '" + std::string(1, f[i + 1]) + "'.";
      ++i;
    }
  }
  return std::nullopt;
}

namespace {

bool uses_time(const std::vector<Piece>& pieces) {
  for (const auto& p : pieces) {
    if (p.kind == Piece::Kind::time) return true;
    if (p.kind == Piece::Kind::field &&
        (p.conversion == 'I' || p.conversion == 'U' || p.conversion == 'j' || p.conversion == 'J'))
      return true;
  }
  return false;
}

// The receive time, broken down once per message.
struct Moment {
  std::tm local{};
  std::time_t seconds = 0;
  long nanos = 0;
};

Moment moment_of(Clock::time_point t) {
  Moment m;
  auto since = t.time_since_epoch();
  auto secs = std::chrono::floor<std::chrono::seconds>(since);
  m.seconds = static_cast<std::time_t>(secs.count());
  m.nanos = static_cast<long>(std::chrono::duration_cast<std::chrono::nanoseconds>(since - secs).count());
  localtime_r(&m.seconds, &m.local);
  return m;
}

std::string strftime_text(const std::tm& tm, const char* spec) {
  char buf[128];
  std::size_t n = std::strftime(buf, sizeof buf, spec, &tm);
  return std::string(buf, n);
}

void pad_to(std::string& out, std::size_t have, int width, char pad) {
  if (width > 0 && static_cast<std::size_t>(width) > have) out.append(static_cast<std::size_t>(width) - have, pad);
}

// printf's %d with the '-', '0' and width flags.
void append_int(std::string& out, long long value, const Piece& p) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  (void)ec;
  std::string_view digits(buf, static_cast<std::size_t>(end - buf));
  if (p.width == 0) {
    out += digits;
  } else if (p.left) {
    out += digits;
    pad_to(out, digits.size(), p.width, ' ');
  } else if (p.pad == '0') {
    std::string_view sign;
    if (!digits.empty() && digits.front() == '-') {
      sign = digits.substr(0, 1);
      digits.remove_prefix(1);
    }
    out += sign;
    pad_to(out, digits.size() + sign.size(), p.width, '0');
    out += digits;
  } else {
    pad_to(out, digits.size(), p.width, ' ');
    out += digits;
  }
}

// printf's %s with the '-' flag, width and precision ('0' does not apply).
void append_str(std::string& out, std::string_view value, const Piece& p) {
  if (p.precision >= 0 && value.size() > static_cast<std::size_t>(p.precision))
    value = value.substr(0, static_cast<std::size_t>(p.precision));
  if (!p.left) pad_to(out, value.size(), p.width, ' ');
  out += value;
  if (p.left) pad_to(out, value.size(), p.width, ' ');
}

void append_blank(std::string& out, int width, char pad) {
  if (width > 0) out.append(static_cast<std::size_t>(width), pad);
}

// %p, %x, %X: a width is also the most that is printed (bytes, or hex digits).
void append_payload(std::string& out, std::string_view payload, int hex, const Piece& p) {
  static constexpr char kLower[] = "0123456789abcdef";
  static constexpr char kUpper[] = "0123456789ABCDEF";
  std::size_t bytes = payload.size();
  std::size_t shown_width = 0;
  if (p.width > 0) {
    auto w = static_cast<std::size_t>(p.width);
    bytes = std::min(bytes, hex ? w / 2 : w);
  }
  shown_width = hex ? bytes * 2 : bytes;
  if (!p.left) pad_to(out, shown_width, p.width, p.pad);
  if (hex == 0) {
    out.append(payload.data(), bytes);
  } else {
    const char* digits = hex == 1 ? kLower : kUpper;
    for (std::size_t i = 0; i < bytes; ++i) {
      auto b = static_cast<unsigned char>(payload[i]);
      out.push_back(digits[b >> 4]);
      out.push_back(digits[b & 0xF]);
    }
  }
  if (p.left) pad_to(out, shown_width, p.width, ' ');
}

// Well-formed UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF)
// without NUL bytes: such a payload is a JSON string once escaped. Control
// characters and non-characters are fine here, unlike in MQTT topics.
bool printable_as_json_string(std::string_view payload) {
  static constexpr std::uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  std::size_t i = 0;
  while (i < payload.size()) {
    auto c = static_cast<unsigned char>(payload[i]);
    if (c == 0) return false;
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > payload.size()) return false;
    std::uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1Fu) : n == 3 ? (c & 0x0Fu) : (c & 0x07u);
    for (std::size_t k = 1; k < n; ++k) {
      auto cc = static_cast<unsigned char>(payload[i + k]);
      if ((cc >> 6) != 0x2) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    if (cp < kMinForLength[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

Json properties_json(const Properties& props) {
  Json obj = Json::make_object();
  if (props.payload_format_utf8)
    obj.add("payload-format-indicator", Json::make_number(*props.payload_format_utf8 ? 1 : 0));
  if (props.message_expiry_interval)
    obj.add("message-expiry-interval", Json::make_number(static_cast<double>(*props.message_expiry_interval)));
  if (props.content_type) obj.add("content-type", Json::make_string(*props.content_type));
  if (props.response_topic) obj.add("response-topic", Json::make_string(*props.response_topic));
  if (props.correlation_data) obj.add("correlation-data", Json::make_string(*props.correlation_data));
  if (!props.user_properties.empty()) {
    Json users = Json::make_object();
    for (const auto& [k, v] : props.user_properties) users.add(k, Json::make_string(v));
    obj.add("user-properties", std::move(users));
  }
  return obj;
}

// mosquitto_sub's odd but established "tst": local time, microseconds, a 'Z'
// and then the UTC offset ("2020-05-06T22:12:00.000000Z+0100").
std::string tst_text(const Moment& m) {
  char micro[32];
  std::snprintf(micro, sizeof micro, ".%06ld", m.nanos / 1000);
  return strftime_text(m.local, "%Y-%m-%dT%H:%M:%S") + micro + "Z" + strftime_text(m.local, "%z");
}

// %j (escaped payload) and %J (payload embedded as JSON). False when %J's
// payload is not JSON.
bool append_message_json(std::string& out, const Message& message, const Moment& m, bool embed, bool pretty) {
  Json root = Json::make_object();
  root.add("tst", Json::make_string(tst_text(m)));
  root.add("topic", Json::make_string(message.topic));
  root.add("qos", Json::make_number(message.qos));
  root.add("retain", Json::make_number(message.retain ? 1 : 0));
  root.add("payloadlen", Json::make_number(static_cast<double>(message.payload.size())));
  if (message.qos > 0) root.add("mid", Json::make_number(message.mid));
  if (!message.properties.empty()) root.add("properties", properties_json(message.properties));
  if (message.payload.empty()) {
    root.add("payload", Json{});
  } else if (embed) {
    auto parsed = JsonParser(message.payload).parse_document();
    if (!parsed) return false;
    root.add("payload", std::move(*parsed));
  } else if (printable_as_json_string(message.payload)) {
    root.add("payload", Json::make_string(message.payload));
  } else {
    Json bytes = Json::make_array();
    for (char c : message.payload) bytes.items.push_back(Json::make_number(static_cast<unsigned char>(c)));
    root.add("payload", std::move(bytes));
  }
  append_json(out, root, pretty, 0);
  return true;
}

}  // namespace

// ------------------------------------------------------------- public ----

std::string json_quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  append_quoted(out, text);
  return out;
}

std::optional<std::string> reformat_json(std::string_view text, bool pretty, int depth) {
  auto parsed = JsonParser(text).parse_document();
  if (!parsed) return std::nullopt;
  std::string out;
  append_json(out, *parsed, pretty, depth);
  return out;
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    std::uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                      static_cast<unsigned char>(bytes[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::string iso8601_utc(Clock::time_point time) {
  auto since = time.time_since_epoch();
  auto secs = std::chrono::floor<std::chrono::seconds>(since);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(since - secs).count();
  std::time_t t = static_cast<std::time_t>(secs.count());
  std::tm utc{};
  gmtime_r(&t, &utc);
  char micro[32];
  std::snprintf(micro, sizeof micro, ".%06lldZ", static_cast<long long>(micros));
  return strftime_text(utc, "%Y-%m-%dT%H:%M:%S") + micro;
}

struct MessageFormatter::Impl {
  OutputOptions options;
  std::vector<Piece> pieces;
  bool uses_time = false;
};

MessageFormatter::MessageFormatter(OutputOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  if (impl_->options.style == OutputStyle::custom) {
    if (auto problem = format_problem(impl_->options.format))
      throw Error(ErrorCategory::config, "invalid output format '" + impl_->options.format + "': " + *problem);
    impl_->pieces = parse_format(impl_->options.format);
    impl_->uses_time = ::iotbridge::mqtt::uses_time(impl_->pieces);
  } else {
    impl_->uses_time = impl_->options.style == OutputStyle::json;
  }
}

MessageFormatter::~MessageFormatter() = default;
MessageFormatter::MessageFormatter(MessageFormatter&&) noexcept = default;
MessageFormatter& MessageFormatter::operator=(MessageFormatter&&) noexcept = default;

bool MessageFormatter::uses_time() const noexcept { return impl_->uses_time; }
const OutputOptions& MessageFormatter::options() const noexcept { return impl_->options; }

std::string MessageFormatter::format(const Message& message, Clock::time_point received_at) const {
  std::string out;
  append(out, message, received_at);
  return out;
}

bool MessageFormatter::append(std::string& out, const Message& message, Clock::time_point received_at,
                              std::string* problem) const {
  const OutputOptions& o = impl_->options;
  switch (o.style) {
    case OutputStyle::payload:
      // mosquitto_sub prints nothing at all, not even the newline, for an empty payload.
      if (!message.payload.empty()) {
        out += message.payload;
        if (o.end_of_line) out.push_back('\n');
      }
      return true;
    case OutputStyle::verbose:
      if (!message.payload.empty()) {
        out += message.topic;
        out.push_back(' ');
        out += message.payload;
        if (o.end_of_line) out.push_back('\n');
      } else if (o.end_of_line) {
        out += message.topic;
        out += " (null)\n";
      }
      return true;
    case OutputStyle::json: {
      Json root = Json::make_object();
      root.add("topic", Json::make_string(message.topic));
      if (printable_as_json_string(message.payload)) {
        root.add("payload", Json::make_string(message.payload));
      } else {
        root.add("payload_base64", Json::make_string(base64_encode(message.payload)));
      }
      root.add("qos", Json::make_number(message.qos));
      Json retain;
      retain.kind = Json::Kind::boolean;
      retain.boolean = message.retain;
      root.add("retain", std::move(retain));
      root.add("received_at", Json::make_string(iso8601_utc(received_at)));
      if (!message.properties.empty()) root.add("properties", properties_json(message.properties));
      append_json(out, root, o.pretty, 0);
      if (o.end_of_line) out.push_back('\n');
      return true;
    }
    case OutputStyle::custom: break;
  }

  bool ok = true;
  std::optional<Moment> moment;
  auto now = [&]() -> const Moment& {
    if (!moment) moment = moment_of(received_at);
    return *moment;
  };
  const Properties& props = message.properties;
  for (const Piece& p : impl_->pieces) {
    if (p.kind == Piece::Kind::literal) {
      out += p.text;
      continue;
    }
    if (p.kind == Piece::Kind::time) {
      if (p.conversion == 'N') {
        char buf[16];
        int n = std::snprintf(buf, sizeof buf, "%09ld", now().nanos);
        out.append(buf, static_cast<std::size_t>(n));
      } else {
        const char spec[3] = {'%', p.conversion, '\0'};
        out += strftime_text(now().local, spec);
      }
      continue;
    }
    switch (p.conversion) {
      case 'A':
      case 'S': append_blank(out, p.width, p.pad); break;
      case 'C':
        if (props.content_type)
          append_str(out, *props.content_type, p);
        else
          append_blank(out, p.width, ' ');
        break;
      case 'D':
        if (props.correlation_data) out += *props.correlation_data;
        break;
      case 'E':
        if (props.message_expiry_interval)
          append_int(out, *props.message_expiry_interval, p);
        else
          append_blank(out, p.width, p.pad);
        break;
      case 'F':
        if (props.payload_format_utf8)
          append_int(out, *props.payload_format_utf8 ? 1 : 0, p);
        else
          append_blank(out, p.width, p.pad);
        break;
      case 'I': append_str(out, strftime_text(now().local, "%Y-%m-%dT%H:%M:%S%z"), p); break;
      case 'j': append_message_json(out, message, now(), false, o.pretty); break;
      case 'J':
        if (!append_message_json(out, message, now(), true, o.pretty)) {
          ok = false;
          if (problem) *problem = "Error: Message payload is not valid JSON on topic " + message.topic + ".";
        }
        break;
      case 'l': append_int(out, static_cast<long long>(message.payload.size()), p); break;
      case 'm': append_int(out, message.mid, p); break;
      case 'P':
        for (std::size_t i = 0; i < props.user_properties.size(); ++i) {
          if (i > 0) out.push_back(' ');
          out += props.user_properties[i].first;
          out.push_back(':');
          out += props.user_properties[i].second;
        }
        break;
      case 'p': append_payload(out, message.payload, 0, p); break;
      case 'q': out.push_back(static_cast<char>('0' + message.qos)); break;
      case 'R':
        if (props.response_topic) append_str(out, *props.response_topic, p);
        break;
      case 'r': out.push_back(message.retain ? '1' : '0'); break;
      case 't': append_str(out, message.topic, p); break;
      case 'U': {
        char buf[48];
        int n = std::snprintf(buf, sizeof buf, "%lld.%09ld", static_cast<long long>(now().seconds), now().nanos);
        out.append(buf, static_cast<std::size_t>(n));
        break;
      }
      case 'x': append_payload(out, message.payload, 1, p); break;
      case 'X': append_payload(out, message.payload, 2, p); break;
      default: break;  // unknown: nothing, as mosquitto_sub
    }
  }
  if (o.end_of_line) out.push_back('\n');
  return ok;
}

}  // namespace iotbridge::mqtt
