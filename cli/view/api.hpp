// The JSON answers of `iotbridge-db serve`'s /api/ (and the chart SVG the page
// shows), computed from a collection through series.hpp. Each function is one
// endpoint; server.cpp only routes HTTP requests to them.
// Thread-safety: stateless; safe from the server's worker threads at once.
// Throws: iotbridge::Error; (config) for a bad parameter (the server answers
// 400), anything else from the store (500).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "iotbridge/store/store.hpp"
#include "series.hpp"

namespace iotbridge::view {

struct ApiSource {
  store::DocumentStore* store = nullptr;
  std::shared_ptr<store::Collection> collection;
  SeriesQuery shape;  ///< field, by, time_field (no filter)
};

/// GET /api/topics: [{"topic", "last_value", "last_time", "last_time_ms"}...]
std::string api_topics(const ApiSource& source);

/// GET /api/series?topic=T&since=1h: {"since_ms", "series": [{"name", "points": [[ms, value]...]}...]};
/// every topic without `topic`.
std::string api_series(const ApiSource& source, const std::string& topic, const std::string& since);

/// GET /api/readings?limit=N: the newest readings, newest first:
/// [{"id", "topic", "value", "time", "time_ms"}...]. limit 1..1000, default 20.
std::string api_readings(const ApiSource& source, const std::string& limit);

/// GET /api/stats: {"store", "backend", "ns", "count", "size", "capped", "nindexes"}.
std::string api_stats(const ApiSource& source);

/// GET /api/chart.svg?topic=T&since=1h: the chart of one topic (or all) over
/// the range, from now back; an empty frame that says so when it has no readings.
std::string api_chart_svg(const ApiSource& source, const std::string& topic, const std::string& since,
                          const std::string& width);

}  // namespace iotbridge::view
