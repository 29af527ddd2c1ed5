/// @file
/// Retention: a route's expire_after and timeseries applied to its store.
///
///   MongoDB   a TTL index {<time field>: 1} with expireAfterSeconds, made
///             at start if missing; the server removes expired documents.
///   FerretDB  refuses TTL indexes (1.x): a plain index on the time field,
///   1.x       and the recorder removes expired documents itself, in small
///             batches on a timer (said once, at start).
///   SQLite    the store's own expiry: a TTL index recorded with the
///             collection, documents removed in small batches (each one
///             short transaction, so inserts never wait long).
///
/// An index on the time field that disagrees (another TTL, or none) is
/// reported and left as it is, never replaced: someone made it on purpose.
/// The time field is reg_date, or the route's payload timestamp (its
/// timestamp_key) when the route stores one; a document without a date
/// there never expires, as with MongoDB's TTL indexes.
///
/// Thread-safety: a Retention is used by one thread at a time (the recorder's
/// expiry timer). Throws: setup() throws Error (store) when the store fails
/// and Error (config) naming `timeseries` when the server cannot create a
/// time-series collection; expire_some() throws what the store throws.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "iotbridge/record/route.hpp"
#include "iotbridge/store/store.hpp"

namespace iotbridge::record {

/// The field a route's documents expire by: reg_date, or its timestamp key.
std::string expiry_field(const Route& route);

/// Creates the route's collection as a time-series collection when the
/// route asks for one and it does not exist yet (with expireAfterSeconds when
/// expire_after is set). Throws Error (config) naming the route and
/// `timeseries` when the server cannot (FerretDB 1.x, MongoDB before 5.0,
/// the SQLite store).
void prepare_timeseries(store::DocumentStore& store, const Route& route);

class Retention {
 public:
  enum class Mode {
    none,      ///< no expire_after
    server,    ///< the server's TTL monitor removes expired documents
    recorder,  ///< expire_some() removes them (SQLite; servers that refuse TTL indexes)
    conflict,  ///< an index on the field disagrees: kept, nothing is expired by us
  };

  /// Applies `route.expire_after` to `collection` (see the file comment);
  /// idempotent. message() says what was found and done, for the log.
  static Retention setup(store::DocumentStore& store, std::shared_ptr<store::Collection> collection,
                         const Route& route);

  Mode mode() const noexcept { return mode_; }
  const std::string& message() const noexcept { return message_; }
  const std::string& field() const noexcept { return field_; }
  std::chrono::seconds expire_after() const noexcept { return expire_after_; }

  /// Mode::recorder: removes up to `limit` documents older than
  /// expire_after by the field, in one short delete; returns how many.
  /// Other modes: 0.
  std::int64_t expire_some(std::int64_t limit);

 private:
  Mode mode_ = Mode::none;
  std::string message_;
  std::string field_;
  std::chrono::seconds expire_after_{0};
  std::shared_ptr<store::Collection> collection_;
};

std::string_view to_string(Retention::Mode mode) noexcept;

}  // namespace iotbridge::record
