// The readings iotbridge-db plot and serve show, read from any DocumentStore
// through its public API (find with a filter, a sort and a projection): time
// series of one numeric field grouped by another (value by topic), each
// topic's last reading, the newest readings.
// Thread-safety: plain functions; safe to call from several threads on one
// Collection (the store is thread-safe). Throws: iotbridge::Error from the
// store, and Error (config) when a range holds no readings or no reading has
// the field asked for, with a message that says what was found instead.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "iotbridge/store/store.hpp"

namespace iotbridge::view {

struct SeriesQuery {
  store::Document filter;                ///< the user's filter, ANDed with the time range
  std::string field = "value";           ///< the numeric field drawn on the y axis
  std::string by = "topic";              ///< one series per distinct value of this field; empty: one series
  std::string time_field = "reg_date";   ///< the recorder's receive time (a BSON datetime)
  std::optional<store::DateTime> since;  ///< inclusive; default: from the first reading
  std::optional<store::DateTime> until;  ///< exclusive; default: up to the newest reading
};

struct Point {
  std::int64_t millis = 0;  ///< time, ms since the Unix epoch (UTC)
  double value = 0;
};

struct Series {
  std::string name;           ///< the `by` field's value (a topic)
  std::vector<Point> points;  ///< in time order
};

struct SeriesResult {
  std::vector<Series> series;  ///< sorted by name
  std::int64_t readings = 0;   ///< points drawn, over all series
  std::int64_t skipped = 0;    ///< readings in range whose field is missing or not a number
};

/// Reads the readings in range, oldest first. Throws Error (config) when the
/// range holds no reading (naming the newest reading's time, if any), or when
/// none of the readings in range has a numeric `field` (naming the fields seen).
/// With `allow_empty`, an empty range returns an empty result instead.
SeriesResult query_series(store::Collection& collection, const SeriesQuery& query, bool allow_empty = false);

/// One topic's newest reading.
struct TopicSummary {
  std::string topic;
  std::optional<store::Value> last_value;
  std::optional<store::DateTime> last_time;
};

/// Every distinct string value of `shape.by` (at most `max_topics`, in order)
/// with its newest reading by `shape.time_field` (its `shape.field`). Two
/// ordered lookups per topic, so that a large collection with an index on
/// {by: 1, time_field: -1} is not scanned (no count per topic: on SQLite a
/// count reads every matching row). The shape's filter and range are not used.
std::vector<TopicSummary> topic_summaries(store::Collection& collection, const SeriesQuery& shape,
                                          std::size_t max_topics = 200);

/// The newest `limit` documents by `time_field`, newest first.
std::vector<store::Document> newest_readings(store::Collection& collection, std::int64_t limit,
                                             const std::string& time_field = "reg_date");

/// "2026-12-05T16:00:00.000Z".
std::string iso_time(std::int64_t millis);

}  // namespace iotbridge::view
