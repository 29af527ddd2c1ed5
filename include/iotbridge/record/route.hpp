/// @file
/// Route: one stream a recorder stores. Which topics (filters), where to
/// (database.collection), how a payload is read (a decoder by name, see
/// decoder.hpp) and what the document holds (DocumentOptions, and fields
/// picked from a JSON payload by JSON Pointer).
///
///   Route r;
///   r.name = "climate";
///   r.filters = {"iot/+/climate"};
///   r.collection = "climate";
///   r.decoder = "json";
///   r.fields = {{"temperature", "/t"}, {"battery", "/bat"}};
///   r.keep_payload = false;  // {_id, topic, temperature, battery, reg_date}
///
/// A message whose topic matches several routes is stored by each of them.
/// Route and JsonPointer are plain values: copy them, read them from any
/// thread. validate_routes() and JsonPointer's constructor throw Error
/// (config); resolving never throws.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "iotbridge/record/payload.hpp"
#include "iotbridge/store/document.hpp"
#include "iotbridge/store/store.hpp"

namespace iotbridge::record {

/// An RFC 6901 JSON Pointer: "" is the whole value, "/a/0/b" member "a", its
/// element 0, its member "b"; "~1" stands for '/' and "~0" for '~' in a name.
class JsonPointer {
 public:
  JsonPointer() = default;  ///< "": the whole value
  /// Throws Error (config) when `pointer` is neither empty nor starts with
  /// '/', or has a '~' not followed by '0' or '1'.
  explicit JsonPointer(std::string_view pointer);

  const std::string& text() const noexcept { return text_; }
  /// The unescaped reference tokens, in order.
  const std::vector<std::string>& tokens() const noexcept { return tokens_; }
  /// The value it points at in `root`, or nullopt when a member or an
  /// element is missing (an array index must be digits without a leading 0).
  std::optional<store::Value> resolve(const store::Value& root) const;

 private:
  std::string text_;
  std::vector<std::string> tokens_;
};

struct Route {
  /// Unique among a recorder's routes; the `route` label of its metrics and
  /// the name its readings carry through the journal and the spool (a
  /// reading left by an earlier run goes to the route of that name).
  std::string name = "default";
  /// Topics to record; at least one. "$share/{group}/{filter}" splits the
  /// stream among the recorders of a group.
  std::vector<std::string> filters;
  std::string database = "iot_service";  ///< default "iot_service"
  std::string collection = "sensors";    ///< default "sensors"
  /// A decoder registered under this name (decoder.hpp): "auto" (default),
  /// "number", "json", "text", "binary", or one of your own.
  std::string decoder = "auto";
  /// qos/retain fields, topic-fields pattern, timestamp from the payload,
  /// and the decode options the built-in decoders follow.
  DocumentOptions document;
  /// Top-level fields picked from a JSON object payload, field name ->
  /// JSON Pointer ({"temperature", "/t"}). A payload that lacks one is
  /// stored without that field and counted (iotbridge_readings_unmapped_total).
  std::vector<std::pair<std::string, std::string>> fields;
  /// With `fields`: also store the whole payload under "value" (default
  /// true). False keeps only the mapped fields (payloads that are not JSON
  /// objects still keep their value: nothing would be left of them).
  bool keep_payload = true;

  // ---- what is kept (docs/recorder.md, "Policies"); the names are the
  // ---- [[route]] keys of iotbridge-recorder's configuration file ----

  /// Where readings the store refuses go (quarantine.hpp). Default "":
  /// "<collection>_quarantine" in the route's database.
  std::string quarantine;
  /// A reading that lacks a mapped field: stored without it (default), or
  /// quarantined (reason "unmapped").
  enum class OnUnmapped { store, quarantine };
  OnUnmapped on_unmapped = OnUnmapped::store;
  /// A document larger than this (BSON bytes) is quarantined (reason
  /// "too_large") instead of inserted. 0 (default): the recorder's
  /// RecorderOptions::max_document_bytes.
  std::size_t max_document_bytes = 0;
  /// Documents older than this, by reg_date (or the route's payload
  /// timestamp field when it stores one), are removed. 0 (default): kept
  /// forever. MongoDB: a TTL index; SQLite and servers without TTL indexes:
  /// the recorder deletes them in small batches.
  std::chrono::seconds expire_after{0};
  /// Creates the collection as a MongoDB 5+ time-series collection (default
  /// none). A server that cannot is reported at start, naming this option.
  std::optional<store::TimeseriesOptions> timeseries;
  /// Change-only recording (change_filter.hpp): numbers are stored when they
  /// moved at least this far from the last stored value. Default none.
  std::optional<double> deadband;
  /// Change-only recording of any value: stored when it differs from the
  /// last stored one. Default false.
  bool on_change = false;
  /// With deadband or on_change: store anyway when nothing was stored for a
  /// topic for this long, so a flat sensor shows it is alive. 0: never.
  std::chrono::milliseconds heartbeat{0};
  /// The reading's _id derived from a key (dedup.hpp): "/seq" (JSON
  /// Pointer), "user_property:NAME" (MQTT 5) or "payload". Default "":
  /// generated _ids.
  std::string dedup_key;
};

/// "store" or "quarantine".
std::string_view to_string(Route::OnUnmapped policy) noexcept;
/// The reverse; throws Error (config) naming both words.
Route::OnUnmapped parse_on_unmapped(std::string_view word);

/// Checks what a recorder checks at construction, each failure an Error
/// (config) naming the route and the field: no route, a route without a name
/// or a filter, an invalid filter, two routes of one name, an empty database
/// or collection, an unknown decoder, a field name that is not a safe
/// top-level key or is mapped twice, an invalid JSON Pointer, a topic-fields
/// pattern whose levels cannot fit one of the route's filters; and of the
/// policies: a negative or non-finite deadband, a heartbeat without deadband
/// or on_change, a dedup key of no known form, a quarantine collection equal
/// to the route's collection, time-series fields that are empty or a
/// granularity other than seconds, minutes, hours.
void validate_routes(const std::vector<Route>& routes);

/// True when some topic can match both `filter` and the topic-fields
/// `pattern` (both in their level syntax; "$share/g/" is taken off the filter).
bool pattern_fits_filter(const TopicPattern& pattern, std::string_view filter);

}  // namespace iotbridge::record
