/// @file
/// The recorder's counters, declared once. Each row of
/// IOTBRIDGE_RECORDER_METRICS names one counter, gauge or histogram: its
/// field in RecorderStats, its Prometheus name, whether it carries a `route`
/// label, what the status line calls it, and its help text. RecorderStats,
/// RecorderStats::to_json(), RecorderStats::status_line() and
/// to_prometheus() are all generated from that table, so adding a counter is
/// one line here plus the code that counts it.
///
/// Counting rule (per route and in total), at any moment:
///   received + replayed = stored + rejected + pending
/// where a reading is one (route, message) pair: a message that matches two
/// routes is two readings.
///
/// RecorderStats is a plain value (a snapshot): copy it, read it from any
/// thread. The functions here are pure and never throw but std::bad_alloc.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace iotbridge::record {

enum class MetricType { counter, gauge, histogram };

/// "counter", "gauge", "histogram" (the Prometheus TYPE word).
std::string_view to_string(MetricType type) noexcept;

/// Upper bounds (seconds) of the fixed histogram buckets; +Inf is implied.
/// An insert_many call: from a fraction of a millisecond (SQLite, a warm
/// page cache) to seconds (a remote server under load).
inline constexpr std::array<double, 14> kBatchSecondsBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
/// Receive to stored: at least the flush interval (0.1 s by default) in a
/// healthy recorder, minutes while the store is down and the spool holds it.
inline constexpr std::array<double, 15> kReceiveToStoreBuckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                               2.5,   5,    10,    30,   60,  300,  3600};

/// A snapshot of one histogram: counts per bucket (not cumulative; the last
/// one is +Inf), their total and the sum of the observed values.
struct HistogramSnapshot {
  std::vector<double> bounds;         ///< the buckets' upper bounds, +Inf not included
  std::vector<std::uint64_t> counts;  ///< bounds.size() + 1 entries (the last: above every bound)
  std::uint64_t count = 0;
  double sum = 0;
};

// The table. Columns:
//   TYPE    COUNTER (std::uint64_t, only grows), GAUGE (std::uint64_t, now),
//           FLAG (bool gauge, 1 or 0), SECONDS (double gauge),
//           HISTOGRAM (HistogramSnapshot; buckets from the named array)
//   field   the member of RecorderStats (and of RouteStats when per route),
//           also the key in to_json()
//   name    the Prometheus metric name; "" keeps it out of the exposition
//   scope   ROUTE: one value per route (label route="..."), RecorderStats
//           holds their sum; GLOBAL: one value
//   status  what status_line() shows: "label" always, "?label" only when not
//           0, "on|off" words for a FLAG ("|off" only when false, "on|" only
//           when true), "" never
//   help    the Prometheus HELP text, also the field's documentation
//
// Names follow Prometheus conventions (_total for counters, base units) and are
// an interface (dashboards, iotbridge-recorder's /metrics): never rename one.
#define IOTBRIDGE_RECORDER_METRICS(X)                                                                                \
  X(COUNTER, received, "iotbridge_readings_received_total", ROUTE, "recv",                                           \
    "Readings accepted from the broker in this run (one per route a message matched).")                              \
  X(COUNTER, replayed, "iotbridge_readings_replayed_total", ROUTE, "?replayed",                                      \
    "Readings recovered at start from the write-ahead journal and spool of an earlier run.")                         \
  X(COUNTER, stored, "iotbridge_readings_stored_total", ROUTE, "stored",                                             \
    "Readings the store has confirmed (duplicates included).")                                                       \
  X(GAUGE, pending, "iotbridge_readings_pending", ROUTE, "pend",                                                     \
    "Readings accepted and not yet confirmed by the store (memory, journal, spool).")                                \
  X(COUNTER, duplicates, "iotbridge_readings_duplicate_total", ROUTE, "dup",                                         \
    "Of the stored readings: already in the store (a replay of a stored reading).")                                  \
  X(COUNTER, rejected, "iotbridge_readings_rejected_total", ROUTE, "?rejected",                                      \
    "Readings the store refused as a document (or too large for one), skipped and logged.")                          \
  X(COUNTER, unmapped, "iotbridge_readings_unmapped_total", ROUTE, "?unmapped",                                      \
    "Readings stored without a mapped field because the payload lacked its JSON Pointer.")                           \
  X(COUNTER, messages, "iotbridge_messages_received_total", GLOBAL, "",                                              \
    "MQTT messages accepted from the broker in this run (a message may be several readings).")                       \
  X(COUNTER, unrouted, "iotbridge_messages_unrouted_total", GLOBAL, "?unrouted",                                     \
    "Messages delivered by the broker whose topic matches no route (counted, not stored).")                          \
  X(COUNTER, ignored, "iotbridge_messages_ignored_total", GLOBAL, "",                                                \
    "Messages that arrived after stop() on a client the caller owns (not acknowledged by the recorder).")            \
  X(COUNTER, numbers, "", GLOBAL, "", "Stored readings the decoder read as a number.")                               \
  X(COUNTER, json, "", GLOBAL, "", "Stored readings the decoder read as JSON.")                                      \
  X(COUNTER, nulls, "", GLOBAL, "", "Stored readings with an empty payload.")                                        \
  X(COUNTER, text_fallbacks, "", GLOBAL, "?text", "Stored readings kept as text (neither a number nor JSON).")       \
  X(COUNTER, binary_fallbacks, "", GLOBAL, "?binary", "Stored readings kept as binary (not UTF-8).")                 \
  X(COUNTER, batches, "iotbridge_batches_total", GLOBAL, "", "Successful insert_many calls.")                        \
  X(COUNTER, retries, "iotbridge_store_retries_total", GLOBAL, "retry",                                              \
    "Failed insert_many attempts that were retried.")                                                                \
  X(COUNTER, spooled, "iotbridge_spooled_total", GLOBAL, "spool",                                                    \
    "Readings written to the disk spool in this run (the store was failing).")                                       \
  X(COUNTER, unspooled, "iotbridge_unspooled_total", GLOBAL, "", "Readings read back from the spool and stored.")    \
  X(GAUGE, spool_bytes, "iotbridge_spool_bytes", GLOBAL, "?spool_bytes", "Size of the disk spool now, in bytes.")    \
  X(COUNTER, journal_errors, "iotbridge_journal_errors_total", GLOBAL, "?journal_errors",                            \
    "Write-ahead appends that failed (reading kept in memory only); a full disk pauses instead.")                    \
  X(COUNTER, spool_errors, "iotbridge_spool_errors_total", GLOBAL, "?spool_errors",                                  \
    "Spool writes that failed (full, disk error): readings kept in memory.")                                         \
  X(GAUGE, queue_depth, "iotbridge_queue_depth", GLOBAL, "q", "Readings between the network thread and the writer.") \
  X(GAUGE, queue_capacity, "iotbridge_queue_capacity", GLOBAL, "", "Bound of that queue.")                           \
  X(GAUGE, queue_high_water, "iotbridge_queue_high_water", GLOBAL, "", "Deepest the queue has been in this run.")    \
  X(FLAG, connected, "iotbridge_mqtt_connected", GLOBAL, "mqtt up|mqtt DOWN", "1 while connected to the broker.")    \
  X(COUNTER, reconnects, "iotbridge_mqtt_reconnects_total", GLOBAL, "?reconnects",                                   \
    "Connections to the broker after the first.")                                                                    \
  X(FLAG, store_ok, "iotbridge_store_up", GLOBAL, "store ok|store FAILING",                                          \
    "1 when the last insert attempt succeeded.")                                                                     \
  X(FLAG, intake_paused, "iotbridge_intake_paused", GLOBAL, "intake PAUSED (journal disk full)|",                    \
    "1 while the write-ahead journal's disk is full and the network thread waits for room.")                         \
  X(SECONDS, uptime_seconds, "iotbridge_uptime_seconds", GLOBAL, "", "Seconds since start().")                       \
  X(HISTOGRAM, batch_seconds, "iotbridge_batch_seconds", GLOBAL, "", "Time of one successful insert_many call.")     \
  X(HISTOGRAM, receive_to_store_seconds, "iotbridge_receive_to_store_seconds", GLOBAL, "",                           \
    "From a reading's receive time to the store's confirmation.")

/// One row of the table, for tools and tests that walk it.
struct MetricInfo {
  MetricType type;
  std::string_view field;  ///< RecorderStats member and JSON key
  std::string_view name;   ///< Prometheus name ("" when not exported)
  bool per_route;          ///< has a `route` label
  std::string_view status;
  std::string_view help;
};

/// The table, in order.
std::span<const MetricInfo> recorder_metrics() noexcept;

/// The counters of one route (the ROUTE rows of the table) and what its
/// decoder made of the payloads it stored.
struct RouteStats {
  std::string name;
#define IOTBRIDGE_ROUTE_FIELD_ROUTE(type, field) std::uint64_t field = 0;
#define IOTBRIDGE_ROUTE_FIELD_GLOBAL(type, field)
#define IOTBRIDGE_ROUTE_FIELD(type, field, name, scope, status, help) IOTBRIDGE_ROUTE_FIELD_##scope(type, field)
  IOTBRIDGE_RECORDER_METRICS(IOTBRIDGE_ROUTE_FIELD)
#undef IOTBRIDGE_ROUTE_FIELD
#undef IOTBRIDGE_ROUTE_FIELD_GLOBAL
#undef IOTBRIDGE_ROUTE_FIELD_ROUTE
  /// Stored readings per kind the decoder reported ("number", "json", ...),
  /// in first-seen order; exported as iotbridge_readings_decoded_total{route,kind}.
  std::vector<std::pair<std::string, std::uint64_t>> kinds;
};

/// A snapshot of the counters (Recorder::stats()). The fields are the rows of
/// IOTBRIDGE_RECORDER_METRICS (see there for what each means); the ROUTE rows
/// are the sums over `routes`.
struct RecorderStats {
#define IOTBRIDGE_STATS_TYPE_COUNTER std::uint64_t
#define IOTBRIDGE_STATS_TYPE_GAUGE std::uint64_t
#define IOTBRIDGE_STATS_TYPE_FLAG bool
#define IOTBRIDGE_STATS_TYPE_SECONDS double
#define IOTBRIDGE_STATS_TYPE_HISTOGRAM HistogramSnapshot
#define IOTBRIDGE_STATS_INIT_COUNTER = 0
#define IOTBRIDGE_STATS_INIT_GAUGE = 0
#define IOTBRIDGE_STATS_INIT_FLAG = false
#define IOTBRIDGE_STATS_INIT_SECONDS = 0
#define IOTBRIDGE_STATS_INIT_HISTOGRAM
#define IOTBRIDGE_STATS_FIELD(type, field, name, scope, status, help) \
  IOTBRIDGE_STATS_TYPE_##type field IOTBRIDGE_STATS_INIT_##type;
  IOTBRIDGE_RECORDER_METRICS(IOTBRIDGE_STATS_FIELD)
#undef IOTBRIDGE_STATS_FIELD

  std::vector<RouteStats> routes;  ///< one per route, in the order of RecorderOptions::routes
  std::string last_error;          ///< the latest failure in words (empty: none)

  /// One JSON object: a key per table row (histograms as {"count", "sum"}),
  /// "last_error", and "routes": [{"name", the per-route counters, "kinds"}].
  std::string to_json() const;
  /// "recv 1200 stored 1180 pend 20 dup 0 retry 0 spool 0 q 20/100000 text 3 mqtt up store ok"
  std::string status_line() const;
};

/// The Prometheus text exposition (format 0.0.4) of `stats`: HELP and TYPE
/// lines, then the samples; per-route rows get a `route` label, the decoded
/// kinds `iotbridge_readings_decoded_total{route,kind}`, histograms their
/// `_bucket{le}`, `_sum` and `_count`. Served as text/plain; version=0.0.4.
std::string to_prometheus(const RecorderStats& stats);

}  // namespace iotbridge::record
