/// @file
/// Document and Value: a BSON document as a C++ value type, for building the
/// readings the recorder stores and reading back what a query returns.
///
/// - Build fluently: Document().append("topic", "iot/a").append("value", 24.5)
///   .append("pos", Document().append("x", 1)).append("tags", Array{"a", 1}).
/// - Read by dotted path: get("name.firstName"), get("numbers.0").
/// - Convert to and from MongoDB Extended JSON (relaxed or canonical); invalid
///   JSON is refused with an Error (category config) that gives the position
///   and the reason.
/// - Types: double, int32, int64, string, bool, null, document, array, binary,
///   ObjectId (generated on the client), UTC datetime, timestamp. Other BSON
///   types read from a server (regex, decimal128, min/max key...) keep their
///   bytes and come back as Type::other.
///
/// Thread-safety: a Document is a plain value (copy, move, compare); const
/// member functions may be called from several threads at once, any mutation
/// needs exclusive access, like std::string.
#pragma once

#include <array>
#include <chrono>
#include <compare>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace iotbridge::store {

class Value;

/// BSON type of a Value, in MongoDB's cross-type sort order where it matters
/// (see compare()).
enum class Type {
  null,
  double_,
  int32,
  int64,
  string,
  document,
  array,
  binary,
  object_id,
  boolean,
  datetime,
  timestamp,
  other,  ///< a BSON type iotbridge does not model (regex, decimal128, minKey...)
};

/// "null", "double", "int32", "int64", "string", "document", "array", "binary",
/// "objectId", "bool", "date", "timestamp", "other".
std::string_view to_string(Type type) noexcept;

struct Null {
  friend bool operator==(Null, Null) noexcept { return true; }
};

/// 12-byte MongoDB ObjectId, generated on the client (libbson's generator:
/// timestamp, per-process random, counter).
struct ObjectId {
  std::array<std::uint8_t, 12> bytes{};

  static ObjectId generate();
  /// 24 hex digits; throws Error (config) otherwise.
  static ObjectId from_hex(std::string_view hex);
  std::string to_hex() const;
  /// The creation time embedded in the id (second resolution).
  std::chrono::system_clock::time_point time() const;

  friend bool operator==(const ObjectId&, const ObjectId&) = default;
  friend auto operator<=>(const ObjectId&, const ObjectId&) = default;
};

/// BSON UTC datetime: milliseconds since the Unix epoch.
struct DateTime {
  std::int64_t millis = 0;

  static DateTime now();
  static DateTime from(std::chrono::system_clock::time_point tp);
  std::chrono::system_clock::time_point time_point() const;

  friend bool operator==(const DateTime&, const DateTime&) = default;
  friend auto operator<=>(const DateTime&, const DateTime&) = default;
};

/// BSON timestamp (MongoDB internal replication clock): seconds + ordinal.
struct Timestamp {
  std::uint32_t seconds = 0;
  std::uint32_t increment = 0;

  friend bool operator==(const Timestamp&, const Timestamp&) = default;
  friend auto operator<=>(const Timestamp&, const Timestamp&) = default;
};

/// BSON binary data with its subtype (0 = generic).
struct Binary {
  std::vector<std::uint8_t> data;
  std::uint8_t subtype = 0;

  friend bool operator==(const Binary&, const Binary&) = default;
};

enum class JsonMode {
  relaxed,    ///< numbers as JSON numbers, dates as {"$date": "ISO-8601"}
  canonical,  ///< every type explicit: {"$numberDouble": "24.5"} ...
};

/// A BSON document (ordered keys). Backed by libbson; the bytes are available
/// for storage via data()/size().
class Document {
 public:
  Document();
  ~Document();
  Document(const Document& other);
  Document(Document&& other) noexcept;
  Document& operator=(const Document& other);
  Document& operator=(Document&& other) noexcept;

  /// Parses MongoDB Extended JSON (relaxed or canonical). The text must be one
  /// JSON object. Throws Error (config) with the position and reason.
  static Document from_json(std::string_view json);
  /// Copies BSON bytes; throws Error (config) when they are not a valid document.
  static Document from_bson(const std::uint8_t* data, std::size_t size);

  std::string to_json(JsonMode mode = JsonMode::relaxed) const;
  /// Indented relaxed JSON for people (iotbridge-db find --pretty).
  std::string to_pretty_json() const;

  /// Raw BSON bytes (valid until the next mutation).
  const std::uint8_t* data() const noexcept;
  std::size_t size() const noexcept;

  // ---- building ----
  /// Appends key/value (no check for an existing key, like BSON itself).
  Document& append(std::string_view key, const Value& value);
  /// Replaces the top-level key if present (keeping its position), else appends.
  Document& set(std::string_view key, const Value& value);
  /// Removes a top-level key; false if it was absent.
  bool remove(std::string_view key);

  // ---- reading ----
  bool empty() const noexcept;
  std::size_t count() const;  ///< top-level keys
  std::vector<std::string> keys() const;
  /// Top-level fields in order.
  std::vector<std::pair<std::string, Value>> fields() const;

  /// Dotted path ("a.b", "arr.0"); nullopt when absent.
  bool has(std::string_view path) const;
  std::optional<Value> get(std::string_view path) const;
  /// Like get(), but throws Error (store) naming the path when absent.
  Value at(std::string_view path) const;

  /// Typed getters: nullopt when absent or of another type. get_double and
  /// get_int64 accept any numeric type (int32, int64, double).
  std::optional<double> get_double(std::string_view path) const;
  std::optional<std::int64_t> get_int64(std::string_view path) const;
  std::optional<std::string> get_string(std::string_view path) const;
  std::optional<bool> get_bool(std::string_view path) const;
  std::optional<DateTime> get_datetime(std::string_view path) const;
  std::optional<ObjectId> get_object_id(std::string_view path) const;
  std::optional<Document> get_document(std::string_view path) const;

  /// Byte-wise equality (same keys, order, types and values).
  friend bool operator==(const Document& a, const Document& b) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A BSON array, built from values: Array{1, 2.5, "x", Document()}.
class Array {
 public:
  Array() = default;
  Array(std::initializer_list<Value> values);
  explicit Array(std::vector<Value> values);

  Array& push_back(const Value& value);
  const std::vector<Value>& values() const noexcept { return values_; }
  std::size_t size() const noexcept;
  bool empty() const noexcept;
  const Value& operator[](std::size_t i) const;

  friend bool operator==(const Array& a, const Array& b);

 private:
  std::vector<Value> values_;
};

/// Raw bytes of a BSON type iotbridge does not model, kept so it round-trips.
struct OtherBson {
  std::uint8_t bson_type = 0;
  std::vector<std::uint8_t> bytes;  ///< a one-field BSON document {"": value} holding it
  friend bool operator==(const OtherBson&, const OtherBson&) = default;
};

/// One BSON value of any supported type.
class Value {
 public:
  using Variant = std::variant<Null, double, std::int32_t, std::int64_t, std::string, bool, Document, Array, Binary,
                               ObjectId, DateTime, Timestamp, OtherBson>;

  Value() : v_(Null{}) {}
  Value(std::nullptr_t) : v_(Null{}) {}
  Value(Null) : v_(Null{}) {}
  Value(double d) : v_(d) {}
  Value(int i) : v_(static_cast<std::int32_t>(i)) {}
  Value(long i) : v_(static_cast<std::int64_t>(i)) {}
  Value(long long i) : v_(static_cast<std::int64_t>(i)) {}
  Value(bool b) : v_(b) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(Document d) : v_(std::move(d)) {}
  Value(Array a) : v_(std::move(a)) {}
  Value(Binary b) : v_(std::move(b)) {}
  Value(ObjectId id) : v_(id) {}
  Value(DateTime t) : v_(t) {}
  Value(Timestamp t) : v_(t) {}
  Value(OtherBson o) : v_(std::move(o)) {}

  Type type() const noexcept;
  const Variant& variant() const noexcept { return v_; }

  bool is_null() const noexcept { return type() == Type::null; }
  bool is_number() const noexcept {
    auto t = type();
    return t == Type::double_ || t == Type::int32 || t == Type::int64;
  }

  template <typename T>
  const T* get_if() const noexcept {
    return std::get_if<T>(&v_);
  }
  template <typename T>
  bool is() const noexcept {
    return std::holds_alternative<T>(v_);
  }

  /// Checked accessors: throw Error (store) naming the actual type on mismatch.
  /// as_double/as_int64 convert between numeric types.
  double as_double() const;
  std::int64_t as_int64() const;
  const std::string& as_string() const;
  bool as_bool() const;
  const Document& as_document() const;
  const Array& as_array() const;
  const Binary& as_binary() const;
  ObjectId as_object_id() const;
  DateTime as_datetime() const;
  Timestamp as_timestamp() const;

  /// The value as Extended JSON (a bare value, not a document).
  std::string to_json(JsonMode mode = JsonMode::relaxed) const;

  /// Strict equality: same type and value (int32 1 != double 1.0). A NaN
  /// equals a NaN, as in MongoDB's matching and in Document's byte-wise
  /// equality, so a value that holds a NaN equals its own copy.
  friend bool operator==(const Value& a, const Value& b) noexcept;

 private:
  Variant v_;
};

/// MongoDB's comparison of two values (for sort and $gt/$lt): first by type
/// class, null < numbers < string < document < array < binary < ObjectId <
/// bool < date < timestamp; numbers compare by value across int32/int64/double;
/// documents and arrays element by element. Returns <0, 0, >0.
int compare(const Value& a, const Value& b);

inline std::size_t Array::size() const noexcept { return values_.size(); }
inline bool Array::empty() const noexcept { return values_.empty(); }
inline const Value& Array::operator[](std::size_t i) const { return values_[i]; }

}  // namespace iotbridge::store
