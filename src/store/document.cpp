#include "iotbridge/store/document.hpp"

#include <bson/bson.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>

#include "iotbridge/error.hpp"
#include "json_string.hpp"
#include "store/bson_util.hpp"
#include "store/json_diagnose.hpp"

namespace iotbridge::store {

using detail::append_value;
using detail::value_from_iter;

std::string_view to_string(Type type) noexcept {
  switch (type) {
    case Type::null: return "null";
    case Type::double_: return "double";
    case Type::int32: return "int32";
    case Type::int64: return "int64";
    case Type::string: return "string";
    case Type::document: return "document";
    case Type::array: return "array";
    case Type::binary: return "binary";
    case Type::object_id: return "objectId";
    case Type::boolean: return "bool";
    case Type::datetime: return "date";
    case Type::timestamp: return "timestamp";
    case Type::other: return "other";
  }
  return "other";
}

// ---- ObjectId / DateTime -------------------------------------------------

ObjectId ObjectId::generate() {
  bson_oid_t oid;
  bson_oid_init(&oid, nullptr);
  ObjectId id;
  std::memcpy(id.bytes.data(), oid.bytes, 12);
  return id;
}

ObjectId ObjectId::from_hex(std::string_view hex) {
  std::string s(hex);
  if (!bson_oid_is_valid(s.c_str(), s.size()) || s.size() != 24)
    throw Error(ErrorCategory::config, "not an ObjectId (24 hex digits expected): '" + s + "'");
  bson_oid_t oid;
  bson_oid_init_from_string(&oid, s.c_str());
  ObjectId id;
  std::memcpy(id.bytes.data(), oid.bytes, 12);
  return id;
}

std::string ObjectId::to_hex() const {
  bson_oid_t oid;
  std::memcpy(oid.bytes, bytes.data(), 12);
  char buf[25];
  bson_oid_to_string(&oid, buf);
  return buf;
}

std::chrono::system_clock::time_point ObjectId::time() const {
  std::uint32_t secs = (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
                       (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
  return std::chrono::system_clock::time_point(std::chrono::seconds(secs));
}

DateTime DateTime::now() { return from(std::chrono::system_clock::now()); }

DateTime DateTime::from(std::chrono::system_clock::time_point tp) {
  return DateTime{std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count()};
}

std::chrono::system_clock::time_point DateTime::time_point() const {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::milliseconds(millis)));
}

// ---- Document ---------------------------------------------------------------

struct Document::Impl {
  bson_t b;
  Impl() { bson_init(&b); }
  ~Impl() { bson_destroy(&b); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
};

Document::Document() : impl_(std::make_unique<Impl>()) {}
Document::~Document() = default;
Document::Document(const Document& other) : impl_(std::make_unique<Impl>()) {
  bson_destroy(&impl_->b);
  bson_copy_to(&other.impl_->b, &impl_->b);
}
// A moved-from Document is left empty and valid (never null).
Document::Document(Document&& other) noexcept : impl_(std::move(other.impl_)) {
  try {
    other.impl_ = std::make_unique<Impl>();
  } catch (...) {
  }
}
Document& Document::operator=(const Document& other) {
  if (this != &other) {
    Document copy(other);
    std::swap(impl_, copy.impl_);
  }
  return *this;
}
Document& Document::operator=(Document&& other) noexcept {
  std::swap(impl_, other.impl_);
  return *this;
}

Document Document::from_json(std::string_view json) {
  auto first = json.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && json[first] != '{')
    throw Error(ErrorCategory::config, "invalid JSON: a JSON object {...} expected at position " +
                                           std::to_string(first) + ", found '" + std::string(1, json[first]) + "'");
  Document d;
  bson_error_t err;
  bson_destroy(&d.impl_->b);
  if (!bson_init_from_json(&d.impl_->b, json.data(), static_cast<ssize_t>(json.size()), &err)) {
    bson_init(&d.impl_->b);
    if (json.find_first_not_of(" \t\r\n") == std::string_view::npos)
      throw Error(ErrorCategory::config, "invalid JSON: empty input, a JSON object expected",
                  static_cast<int>(err.code));
    // libbson's reason names its parser's states ("SPECIAL_EXPECTED"); say
    // what is wrong in words when the text is not JSON at all.
    if (auto why = detail::diagnose_json(json))
      throw Error(ErrorCategory::config, "invalid JSON " + *why, static_cast<int>(err.code));
    throw Error(ErrorCategory::config, "invalid JSON: " + std::string(err.message), static_cast<int>(err.code));
  }
  return d;
}

Document Document::from_bson(const std::uint8_t* data, std::size_t size) {
  bson_t view;
  if (!bson_init_static(&view, data, size) || !bson_validate(&view, BSON_VALIDATE_NONE, nullptr))
    throw Error(ErrorCategory::config, "invalid BSON document (" + std::to_string(size) + " bytes)");
  Document d;
  bson_destroy(&d.impl_->b);
  bson_copy_to(&view, &d.impl_->b);
  return d;
}

namespace {

// Extended JSON writer in libbson's layout ({ "k" : v }), but with doubles in
// their shortest round-trip form (libbson prints 24.1 as 24.100000000000001421).
void write_value(std::string& out, const Value& v, JsonMode mode);

void write_string(std::string& out, std::string_view s) { iotbridge::detail::append_json_string(out, s); }

std::string format_double(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string base64(const std::vector<std::uint8_t>& data) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    std::uint32_t n = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) | data[i + 2];
    for (int k = 3; k >= 0; --k) out += kAlphabet[(n >> (6 * k)) & 63];
  }
  if (i + 1 == data.size()) {
    std::uint32_t n = std::uint32_t{data[i]} << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == data.size()) {
    std::uint32_t n = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string iso_date(std::int64_t millis) {
  std::time_t secs = static_cast<std::time_t>(millis / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string s = buf;
  if (millis % 1000) {
    std::snprintf(buf, sizeof buf, ".%03d", static_cast<int>(millis % 1000));
    s += buf;
  }
  return s + "Z";
}

void write_document(std::string& out, const Document& d, JsonMode mode) {
  auto fields = d.fields();
  if (fields.empty()) {
    out += "{  }";
    return;
  }
  out += "{ ";
  bool first = true;
  for (const auto& [k, v] : fields) {
    if (!first) out += ", ";
    first = false;
    write_string(out, k);
    out += " : ";
    write_value(out, v, mode);
  }
  out += " }";
}

void write_value(std::string& out, const Value& v, JsonMode mode) {
  bool canonical = mode == JsonMode::canonical;
  switch (v.type()) {
    case Type::null: out += "null"; return;
    case Type::boolean: out += v.as_bool() ? "true" : "false"; return;
    case Type::string: write_string(out, v.as_string()); return;
    case Type::int32:
      if (canonical)
        out += "{ \"$numberInt\" : \"" + std::to_string(v.as_int64()) + "\" }";
      else
        out += std::to_string(v.as_int64());
      return;
    case Type::int64:
      if (canonical)
        out += "{ \"$numberLong\" : \"" + std::to_string(v.as_int64()) + "\" }";
      else
        out += std::to_string(v.as_int64());
      return;
    case Type::double_: {
      double d = v.as_double();
      if (canonical || !std::isfinite(d))
        out += "{ \"$numberDouble\" : \"" + format_double(d) + "\" }";
      else
        out += format_double(d);
      return;
    }
    case Type::document: write_document(out, v.as_document(), mode); return;
    case Type::array: {
      const auto& a = v.as_array();
      if (a.empty()) {
        out += "[  ]";
        return;
      }
      out += "[ ";
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (i) out += ", ";
        write_value(out, a[i], mode);
      }
      out += " ]";
      return;
    }
    case Type::binary: {
      const auto& b = v.as_binary();
      char sub[8];
      std::snprintf(sub, sizeof sub, "%02x", b.subtype);
      out += "{ \"$binary\" : { \"base64\" : \"" + base64(b.data) + "\", \"subType\" : \"" + sub + "\" } }";
      return;
    }
    case Type::object_id: out += "{ \"$oid\" : \"" + v.as_object_id().to_hex() + "\" }"; return;
    case Type::datetime: {
      std::int64_t ms = v.as_datetime().millis;
      if (!canonical && ms >= 0 && ms < 253402300800000LL)
        out += "{ \"$date\" : \"" + iso_date(ms) + "\" }";
      else
        out += "{ \"$date\" : { \"$numberLong\" : \"" + std::to_string(ms) + "\" } }";
      return;
    }
    case Type::timestamp:
      out += "{ \"$timestamp\" : { \"t\" : " + std::to_string(v.as_timestamp().seconds) +
             ", \"i\" : " + std::to_string(v.as_timestamp().increment) + " } }";
      return;
    case Type::other: {
      // Types iotbridge does not model: libbson writes them.
      const auto& o = std::get<OtherBson>(v.variant());
      bson_t holder;
      bson_init_static(&holder, o.bytes.data(), o.bytes.size());
      size_t len = 0;
      char* s =
          canonical ? bson_as_canonical_extended_json(&holder, &len) : bson_as_relaxed_extended_json(&holder, &len);
      std::string text = s ? std::string(s, len) : "null";
      bson_free(s);
      auto colon = text.find(" : ");
      out += colon == std::string::npos ? "null" : text.substr(colon + 3, text.size() - colon - 5);
      return;
    }
  }
}

}  // namespace

std::string Document::to_json(JsonMode mode) const {
  std::string out;
  write_document(out, *this, mode);
  return out;
}

std::string Document::to_pretty_json() const {
  // Re-indent libbson's compact output; strings are copied verbatim.
  std::string in = to_json(JsonMode::relaxed), out;
  int depth = 0;
  bool in_string = false;
  auto newline = [&] {
    out += '\n';
    out.append(static_cast<size_t>(depth) * 2, ' ');
  };
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < in.size())
        out += in[++i];
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        out += c;
        break;
      case '{':
      case '[': {
        char close = c == '{' ? '}' : ']';
        size_t j = in.find_first_not_of(' ', i + 1);
        if (j != std::string::npos && in[j] == close) {
          out += c;
          out += close;
          i = j;
          break;
        }
        out += c;
        ++depth;
        newline();
        break;
      }
      case '}':
      case ']':
        --depth;
        newline();
        out += c;
        break;
      case ',':
        out += c;
        newline();
        break;
      case ' ': break;
      case ':': out += ": "; break;
      default: out += c;
    }
  }
  return out;
}

const std::uint8_t* Document::data() const noexcept { return bson_get_data(&impl_->b); }
std::size_t Document::size() const noexcept { return impl_->b.len; }

Document& Document::append(std::string_view key, const Value& value) {
  append_value(&impl_->b, key, value);
  return *this;
}

Document& Document::set(std::string_view key, const Value& value) {
  bson_iter_t probe;
  if (!bson_iter_init(&probe, &impl_->b) || !bson_iter_find_w_len(&probe, key.data(), static_cast<int>(key.size())))
    return append(key, value);
  bson_t fresh = BSON_INITIALIZER;
  bson_iter_t it;
  bson_iter_init(&it, &impl_->b);
  bool done = false;
  while (bson_iter_next(&it)) {
    std::string_view k(bson_iter_key(&it), bson_iter_key_len(&it));
    if (k == key && !done) {
      append_value(&fresh, key, value);
      done = true;
    } else if (k != key) {
      bson_append_iter(&fresh, bson_iter_key(&it), static_cast<int>(bson_iter_key_len(&it)), &it);
    }
  }
  if (!done) append_value(&fresh, key, value);
  bson_destroy(&impl_->b);
  bson_init(&impl_->b);
  bson_concat(&impl_->b, &fresh);
  bson_destroy(&fresh);
  return *this;
}

bool Document::remove(std::string_view key) {
  bson_t fresh = BSON_INITIALIZER;
  bson_iter_t it;
  bson_iter_init(&it, &impl_->b);
  bool found = false;
  while (bson_iter_next(&it)) {
    std::string_view k(bson_iter_key(&it), bson_iter_key_len(&it));
    if (k == key) {
      found = true;
      continue;
    }
    bson_append_iter(&fresh, bson_iter_key(&it), static_cast<int>(bson_iter_key_len(&it)), &it);
  }
  bson_destroy(&impl_->b);
  bson_init(&impl_->b);
  bson_concat(&impl_->b, &fresh);
  bson_destroy(&fresh);
  return found;
}

bool Document::empty() const noexcept { return bson_empty(&impl_->b); }
std::size_t Document::count() const { return bson_count_keys(&impl_->b); }

std::vector<std::string> Document::keys() const {
  std::vector<std::string> out;
  bson_iter_t it;
  bson_iter_init(&it, &impl_->b);
  while (bson_iter_next(&it)) out.emplace_back(bson_iter_key(&it), bson_iter_key_len(&it));
  return out;
}

std::vector<std::pair<std::string, Value>> Document::fields() const {
  std::vector<std::pair<std::string, Value>> out;
  bson_iter_t it;
  bson_iter_init(&it, &impl_->b);
  while (bson_iter_next(&it))
    out.emplace_back(std::string(bson_iter_key(&it), bson_iter_key_len(&it)), value_from_iter(&it));
  return out;
}

bool Document::has(std::string_view path) const { return get(path).has_value(); }

std::optional<Value> Document::get(std::string_view path) const {
  std::string p(path);
  bson_iter_t it, found;
  if (!bson_iter_init(&it, &impl_->b)) return std::nullopt;
  if (p.find('.') == std::string::npos) {
    if (!bson_iter_find_w_len(&it, p.data(), static_cast<int>(p.size()))) return std::nullopt;
    return value_from_iter(&it);
  }
  if (!bson_iter_find_descendant(&it, p.c_str(), &found)) return std::nullopt;
  return value_from_iter(&found);
}

Value Document::at(std::string_view path) const {
  auto v = get(path);
  if (!v) throw Error(ErrorCategory::store, "document has no field '" + std::string(path) + "'");
  return *std::move(v);
}

std::optional<double> Document::get_double(std::string_view path) const {
  auto v = get(path);
  if (!v || !v->is_number()) return std::nullopt;
  return v->as_double();
}
std::optional<std::int64_t> Document::get_int64(std::string_view path) const {
  auto v = get(path);
  if (!v || !v->is_number()) return std::nullopt;
  return v->as_int64();
}
std::optional<std::string> Document::get_string(std::string_view path) const {
  auto v = get(path);
  if (!v || !v->is<std::string>()) return std::nullopt;
  return v->as_string();
}
std::optional<bool> Document::get_bool(std::string_view path) const {
  auto v = get(path);
  if (!v || !v->is<bool>()) return std::nullopt;
  return v->as_bool();
}
std::optional<DateTime> Document::get_datetime(std::string_view path) const {
  auto v = get(path);
  if (!v || !v->is<DateTime>()) return std::nullopt;
  return v->as_datetime();
}
std::optional<ObjectId> Document::get_object_id(std::string_view path) const {
  auto v = get(path);
  if (!v || !v->is<ObjectId>()) return std::nullopt;
  return v->as_object_id();
}
std::optional<Document> Document::get_document(std::string_view path) const {
  auto v = get(path);
  if (!v || !v->is<Document>()) return std::nullopt;
  return v->as_document();
}

bool operator==(const Document& a, const Document& b) noexcept {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

// ---- Array ------------------------------------------------------------------

Array::Array(std::initializer_list<Value> values) : values_(values) {}
Array::Array(std::vector<Value> values) : values_(std::move(values)) {}
Array& Array::push_back(const Value& value) {
  values_.push_back(value);
  return *this;
}
bool operator==(const Array& a, const Array& b) { return a.values_ == b.values_; }

// ---- Value ------------------------------------------------------------------

bool operator==(const Value& a, const Value& b) noexcept {
  const double* x = std::get_if<double>(&a.v_);
  const double* y = std::get_if<double>(&b.v_);
  if (x && y) return *x == *y || (std::isnan(*x) && std::isnan(*y));
  return a.v_ == b.v_;
}

Type Value::type() const noexcept {
  static constexpr Type kTypes[] = {Type::null,     Type::double_,   Type::int32, Type::int64,  Type::string,
                                    Type::boolean,  Type::document,  Type::array, Type::binary, Type::object_id,
                                    Type::datetime, Type::timestamp, Type::other};
  return kTypes[v_.index()];
}

namespace {
[[noreturn]] void type_mismatch(const Value& v, const char* wanted) {
  throw Error(ErrorCategory::store, std::string("value is ") + std::string(to_string(v.type())) + ", not " + wanted);
}
}  // namespace

double Value::as_double() const {
  if (auto p = get_if<double>()) return *p;
  if (auto p = get_if<std::int32_t>()) return *p;
  if (auto p = get_if<std::int64_t>()) return static_cast<double>(*p);
  type_mismatch(*this, "a number");
}
std::int64_t Value::as_int64() const {
  if (auto p = get_if<std::int64_t>()) return *p;
  if (auto p = get_if<std::int32_t>()) return *p;
  if (auto p = get_if<double>()) return static_cast<std::int64_t>(*p);
  type_mismatch(*this, "a number");
}
#define IOTB_AS(Ret, T, name, what)      \
  Ret Value::name() const {              \
    if (auto p = get_if<T>()) return *p; \
    type_mismatch(*this, what);          \
  }
IOTB_AS(const std::string&, std::string, as_string, "a string")
IOTB_AS(bool, bool, as_bool, "a bool")
IOTB_AS(const Document&, Document, as_document, "a document")
IOTB_AS(const Array&, Array, as_array, "an array")
IOTB_AS(const Binary&, Binary, as_binary, "binary")
IOTB_AS(ObjectId, ObjectId, as_object_id, "an ObjectId")
IOTB_AS(DateTime, DateTime, as_datetime, "a date")
IOTB_AS(Timestamp, Timestamp, as_timestamp, "a timestamp")
#undef IOTB_AS

std::string Value::to_json(JsonMode mode) const {
  std::string out;
  write_value(out, *this, mode);
  return out;
}

// ---- comparison ---------------------------------------------------------------

namespace detail {

int type_rank(bson_type_t t) {
  switch (t) {
    case BSON_TYPE_MINKEY: return 0;
    case BSON_TYPE_NULL:
    case BSON_TYPE_UNDEFINED:
    case BSON_TYPE_EOD: return 1;
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DECIMAL128: return 2;
    case BSON_TYPE_UTF8:
    case BSON_TYPE_SYMBOL: return 3;
    case BSON_TYPE_DOCUMENT: return 4;
    case BSON_TYPE_ARRAY: return 5;
    case BSON_TYPE_BINARY: return 6;
    case BSON_TYPE_OID: return 7;
    case BSON_TYPE_BOOL: return 8;
    case BSON_TYPE_DATE_TIME: return 9;
    case BSON_TYPE_TIMESTAMP: return 10;
    case BSON_TYPE_REGEX: return 11;
    case BSON_TYPE_MAXKEY: return 127;
    default: return 12;
  }
}

int type_rank(Type t) {
  switch (t) {
    case Type::null: return 1;
    case Type::double_:
    case Type::int32:
    case Type::int64: return 2;
    case Type::string: return 3;
    case Type::document: return 4;
    case Type::array: return 5;
    case Type::binary: return 6;
    case Type::object_id: return 7;
    case Type::boolean: return 8;
    case Type::datetime: return 9;
    case Type::timestamp: return 10;
    case Type::other: return 12;
  }
  return 12;
}

Value value_from_iter(const bson_iter_t* iter) {
  switch (bson_iter_type(iter)) {
    case BSON_TYPE_DOUBLE: return Value(bson_iter_double(iter));
    case BSON_TYPE_INT32: return Value(static_cast<int>(bson_iter_int32(iter)));
    case BSON_TYPE_INT64: return Value(static_cast<long long>(bson_iter_int64(iter)));
    case BSON_TYPE_UTF8: {
      uint32_t len = 0;
      const char* s = bson_iter_utf8(iter, &len);
      return Value(std::string(s, len));
    }
    case BSON_TYPE_BOOL: return Value(bson_iter_bool(iter));
    case BSON_TYPE_NULL: return Value(nullptr);
    case BSON_TYPE_DOCUMENT: {
      uint32_t len = 0;
      const uint8_t* data = nullptr;
      bson_iter_document(iter, &len, &data);
      return Value(Document::from_bson(data, len));
    }
    case BSON_TYPE_ARRAY: {
      uint32_t len = 0;
      const uint8_t* data = nullptr;
      bson_iter_array(iter, &len, &data);
      bson_t arr;
      bson_init_static(&arr, data, len);
      bson_iter_t child;
      Array out;
      if (bson_iter_init(&child, &arr))
        while (bson_iter_next(&child)) out.push_back(value_from_iter(&child));
      return Value(std::move(out));
    }
    case BSON_TYPE_BINARY: {
      bson_subtype_t sub;
      uint32_t len = 0;
      const uint8_t* data = nullptr;
      bson_iter_binary(iter, &sub, &len, &data);
      Binary b;
      b.subtype = static_cast<std::uint8_t>(sub);
      b.data.assign(data, data + len);
      return Value(std::move(b));
    }
    case BSON_TYPE_OID: {
      ObjectId id;
      std::memcpy(id.bytes.data(), bson_iter_oid(iter)->bytes, 12);
      return Value(id);
    }
    case BSON_TYPE_DATE_TIME: return Value(DateTime{bson_iter_date_time(iter)});
    case BSON_TYPE_TIMESTAMP: {
      uint32_t t = 0, i = 0;
      bson_iter_timestamp(iter, &t, &i);
      return Value(Timestamp{t, i});
    }
    default: {
      bson_t holder = BSON_INITIALIZER;
      bson_append_iter(&holder, "", 0, iter);
      OtherBson o;
      o.bson_type = static_cast<std::uint8_t>(bson_iter_type(iter));
      o.bytes.assign(bson_get_data(&holder), bson_get_data(&holder) + holder.len);
      bson_destroy(&holder);
      return Value(std::move(o));
    }
  }
}

void append_value(bson_t* dest, std::string_view key, const Value& value) {
  const char* k = key.data();
  int kl = static_cast<int>(key.size());
  bool ok = std::visit(
      [&](const auto& v) -> bool {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Null>)
          return bson_append_null(dest, k, kl);
        else if constexpr (std::is_same_v<T, double>)
          return bson_append_double(dest, k, kl, v);
        else if constexpr (std::is_same_v<T, std::int32_t>)
          return bson_append_int32(dest, k, kl, v);
        else if constexpr (std::is_same_v<T, std::int64_t>)
          return bson_append_int64(dest, k, kl, v);
        else if constexpr (std::is_same_v<T, std::string>)
          return bson_append_utf8(dest, k, kl, v.data(), static_cast<int>(v.size()));
        else if constexpr (std::is_same_v<T, bool>)
          return bson_append_bool(dest, k, kl, v);
        else if constexpr (std::is_same_v<T, Document>) {
          bson_t child = view(v);
          return bson_append_document(dest, k, kl, &child);
        } else if constexpr (std::is_same_v<T, Array>) {
          bson_t child;
          if (!bson_append_array_begin(dest, k, kl, &child)) return false;
          for (std::size_t i = 0; i < v.size(); ++i) {
            std::string idx = std::to_string(i);
            append_value(&child, idx, v[i]);
          }
          return bson_append_array_end(dest, &child);
        } else if constexpr (std::is_same_v<T, Binary>)
          return bson_append_binary(dest, k, kl, static_cast<bson_subtype_t>(v.subtype), v.data.data(),
                                    static_cast<uint32_t>(v.data.size()));
        else if constexpr (std::is_same_v<T, ObjectId>) {
          bson_oid_t oid;
          std::memcpy(oid.bytes, v.bytes.data(), 12);
          return bson_append_oid(dest, k, kl, &oid);
        } else if constexpr (std::is_same_v<T, DateTime>)
          return bson_append_date_time(dest, k, kl, v.millis);
        else if constexpr (std::is_same_v<T, Timestamp>)
          return bson_append_timestamp(dest, k, kl, v.seconds, v.increment);
        else {
          bson_t holder;
          if (!bson_init_static(&holder, v.bytes.data(), v.bytes.size())) return false;
          bson_iter_t it;
          if (!bson_iter_init(&it, &holder) || !bson_iter_next(&it)) return false;
          return bson_append_iter(dest, k, kl, &it);
        }
      },
      value.variant());
  if (!ok) throw Error(ErrorCategory::store, "cannot append field '" + std::string(key) + "' (document too large?)");
}

}  // namespace detail

namespace {
template <typename T>
int cmp3(const T& a, const T& b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

int compare_numbers(const Value& a, const Value& b) {
  // Exact when both are integers; otherwise as doubles (NaN sorts lowest, as in MongoDB).
  if (!a.is<double>() && !b.is<double>()) return cmp3(a.as_int64(), b.as_int64());
  double x = a.as_double(), y = b.as_double();
  if (std::isnan(x) || std::isnan(y)) return cmp3(std::isnan(x) ? 0 : 1, std::isnan(y) ? 0 : 1);
  return cmp3(x, y);
}
}  // namespace

int compare(const Value& a, const Value& b) {
  int ra = detail::type_rank(a.type()), rb = detail::type_rank(b.type());
  if (ra != rb) return cmp3(ra, rb);
  switch (a.type()) {
    case Type::null: return 0;
    case Type::double_:
    case Type::int32:
    case Type::int64: return compare_numbers(a, b);
    case Type::string: {
      int c = a.as_string().compare(b.as_string());
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    case Type::document: {
      auto fa = a.as_document().fields(), fb = b.as_document().fields();
      for (std::size_t i = 0; i < fa.size() && i < fb.size(); ++i) {
        int r1 = detail::type_rank(fa[i].second.type()), r2 = detail::type_rank(fb[i].second.type());
        if (r1 != r2) return cmp3(r1, r2);
        int c = fa[i].first.compare(fb[i].first);
        if (c) return c < 0 ? -1 : 1;
        if (int v = compare(fa[i].second, fb[i].second)) return v;
      }
      return cmp3(fa.size(), fb.size());
    }
    case Type::array: {
      const auto& x = a.as_array();
      const auto& y = b.as_array();
      for (std::size_t i = 0; i < x.size() && i < y.size(); ++i)
        if (int v = compare(x[i], y[i])) return v;
      return cmp3(x.size(), y.size());
    }
    case Type::binary: {
      const auto& x = a.as_binary();
      const auto& y = b.as_binary();
      if (x.data.size() != y.data.size()) return cmp3(x.data.size(), y.data.size());
      if (x.subtype != y.subtype) return cmp3(x.subtype, y.subtype);
      return cmp3(x.data, y.data);
    }
    case Type::object_id: return cmp3(a.as_object_id(), b.as_object_id());
    case Type::boolean: return cmp3(a.as_bool(), b.as_bool());
    case Type::datetime: return cmp3(a.as_datetime().millis, b.as_datetime().millis);
    case Type::timestamp: return cmp3(a.as_timestamp(), b.as_timestamp());
    case Type::other: {
      const auto& x = std::get<OtherBson>(a.variant());
      const auto& y = std::get<OtherBson>(b.variant());
      return cmp3(x.bytes, y.bytes);
    }
  }
  return 0;
}

}  // namespace iotbridge::store
