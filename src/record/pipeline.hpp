// What the recorder's stages share (private to the library): a reading on its
// way (Item), the compiled routes, the live counters behind the metrics table,
// and the log. Each stage has its own file: intake (network thread), writer
// (batches, retries), spool (spill, drain, replay, on-disk codecs), recorder
// (wiring).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "iotbridge/mqtt/client.hpp"
#include "iotbridge/record/decoder.hpp"
#include "iotbridge/record/metrics.hpp"
#include "iotbridge/record/route.hpp"
#include "iotbridge/store/store.hpp"
#include "iotbridge/topic_tree.hpp"

namespace iotbridge::record::detail {

using Clock = std::chrono::steady_clock;

// ---- counters (the live side of IOTBRIDGE_RECORDER_METRICS) ----

// A histogram with fixed buckets, observed from one thread, read from any.
class LiveHistogram {
 public:
  template <std::size_t N>
  explicit LiveHistogram(const std::array<double, N>& bounds) : bounds_(bounds.begin(), bounds.end()), counts_(N + 1) {}
  void observe(double value);
  void observe_all(const std::vector<double>& values);  // one add per touched bucket
  HistogramSnapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<std::uint64_t>> counts_;
  std::atomic<std::uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// The ROUTE rows of one route. Kept by name for the recorder's lifetime, so
// that a reload keeps counting where it was.
struct RouteCounters {
  explicit RouteCounters(std::string n) : name(std::move(n)) {}
  const std::string name;
#define IOTBRIDGE_LIVE_ROUTE_ROUTE(type, f) std::atomic<std::uint64_t> f{0};
#define IOTBRIDGE_LIVE_ROUTE_GLOBAL(type, f)
#define IOTBRIDGE_LIVE_ROUTE(type, f, name, scope, status, help) IOTBRIDGE_LIVE_ROUTE_##scope(type, f)
  IOTBRIDGE_RECORDER_METRICS(IOTBRIDGE_LIVE_ROUTE)
#undef IOTBRIDGE_LIVE_ROUTE
#undef IOTBRIDGE_LIVE_ROUTE_GLOBAL
#undef IOTBRIDGE_LIVE_ROUTE_ROUTE
  void count_kind(std::string_view kind, std::uint64_t n = 1);
  std::vector<std::pair<std::string, std::uint64_t>> kinds() const;

 private:
  mutable std::mutex kinds_mutex_;
  std::vector<std::pair<std::string, std::uint64_t>> kinds_;
};

// The GLOBAL rows. Rows computed when a snapshot is taken (queue depth,
// uptime, ...) have an atomic here too, unused: one macro, no exceptions.
struct Counters {
#define IOTBRIDGE_LIVE_TYPE_COUNTER std::atomic<std::uint64_t>
#define IOTBRIDGE_LIVE_TYPE_GAUGE std::atomic<std::uint64_t>
#define IOTBRIDGE_LIVE_TYPE_FLAG std::atomic<bool>
#define IOTBRIDGE_LIVE_TYPE_SECONDS std::atomic<double>
#define IOTBRIDGE_LIVE_INIT_COUNTER \
  { 0 }
#define IOTBRIDGE_LIVE_INIT_GAUGE \
  { 0 }
#define IOTBRIDGE_LIVE_INIT_FLAG \
  { false }
#define IOTBRIDGE_LIVE_INIT_SECONDS \
  { 0 }
#define IOTBRIDGE_LIVE_GLOBAL_GLOBAL(type, f) IOTBRIDGE_LIVE_TYPE_##type f IOTBRIDGE_LIVE_INIT_##type;
#define IOTBRIDGE_LIVE_GLOBAL_ROUTE(type, f)
#define IOTBRIDGE_LIVE_GLOBAL_H_HISTOGRAM(scope, f)
#define IOTBRIDGE_LIVE_GLOBAL_H_COUNTER(scope, f) IOTBRIDGE_LIVE_GLOBAL_##scope(COUNTER, f)
#define IOTBRIDGE_LIVE_GLOBAL_H_GAUGE(scope, f) IOTBRIDGE_LIVE_GLOBAL_##scope(GAUGE, f)
#define IOTBRIDGE_LIVE_GLOBAL_H_FLAG(scope, f) IOTBRIDGE_LIVE_GLOBAL_##scope(FLAG, f)
#define IOTBRIDGE_LIVE_GLOBAL_H_SECONDS(scope, f) IOTBRIDGE_LIVE_GLOBAL_##scope(SECONDS, f)
#define IOTBRIDGE_LIVE_GLOBAL(type, f, name, scope, status, help) IOTBRIDGE_LIVE_GLOBAL_H_##type(scope, f)
  IOTBRIDGE_RECORDER_METRICS(IOTBRIDGE_LIVE_GLOBAL)
#undef IOTBRIDGE_LIVE_GLOBAL
  Counters() { store_ok = true; }

  LiveHistogram batch_seconds{kBatchSecondsBuckets};
  LiveHistogram receive_to_store_seconds{kReceiveToStoreBuckets};

  // The route counters by name (created on first use, never removed).
  RouteCounters& route(const std::string& name);
  // Every route's counters: those named in `order` first, in that order.
  std::vector<std::shared_ptr<RouteCounters>> routes(const std::vector<std::string>& order) const;

  // The snapshot: every row copied; the ROUTE rows summed; the legacy kind
  // rows (numbers, json, ...) from the kinds the decoders reported.
  RecorderStats snapshot(const std::vector<std::string>& route_order) const;

 private:
  mutable std::mutex routes_mutex_;
  std::vector<std::shared_ptr<RouteCounters>> routes_;
};

// ---- routes ----

struct CompiledRoute {
  Route route;
  std::shared_ptr<const PayloadDecoder> decoder;
  std::vector<std::pair<std::string, JsonPointer>> fields;
  std::shared_ptr<store::Collection> collection;  // set by RouteSet::open
  RouteCounters* counters = nullptr;
};

// The routes in force, fixed once built: a reload builds a new set. Readings
// keep a pointer to the route they were accepted for; the recorder keeps every
// set it built alive until stop(), so the pointer stays good.
class RouteSet {
 public:
  RouteSet(const std::vector<Route>& routes, Counters& counters);

  const std::vector<std::unique_ptr<CompiledRoute>>& routes() const { return routes_; }
  const std::vector<std::string>& filters() const { return filters_; }  // distinct, in subscription order
  std::vector<std::string> names() const;
  // The route of that name, or the first one (a reading of an earlier run
  // whose route is gone; "" is the first route too).
  const CompiledRoute& by_name(std::string_view name) const;
  // Opens every route's collection.
  void open(store::DocumentStore& store);

  // The routes a message on `topic` goes to, for the handler of subscription
  // `filter`. The client calls the handler of every subscribed filter that
  // matches, so only one of them (the first matching in filters()) takes
  // the message: the others get false. True with an empty `out`: the message
  // fits no route (unrouted).
  bool match(std::string_view filter, std::string_view topic, std::vector<const CompiledRoute*>& out) const;

 private:
  std::vector<std::unique_ptr<CompiledRoute>> routes_;
  std::vector<std::string> filters_;
  // inner filter ($share/g/ taken off) -> indexes into filters_
  mutable TopicTree<std::vector<std::size_t>> by_filter_;
  // per filter index: the routes that subscribe it
  std::vector<std::vector<const CompiledRoute*>> routes_of_filter_;
};

// ---- a reading on its way ----

struct Item {
  std::uint64_t seq = 0;  // its write-ahead record (0: none)
  const CompiledRoute* route = nullptr;
  Reading reading;
};
using Batch = std::vector<Item>;

// ---- documents ----

// What build_documents made of one reading, for the counters.
struct BuildResult {
  std::string_view kind;  // of the first item ("empty" when the decoder gave none)
  std::size_t documents = 0;
  bool unmapped = false;  // a mapped field was missing
};

// The documents of one reading by its route: decoder, mapping, envelope.
// Appends to `out`; never throws but std::bad_alloc (a decoder that throws is
// replaced by "auto" for that reading and logged by the caller through `error`).
BuildResult build_documents(const CompiledRoute& route, const Reading& reading, std::vector<store::Document>& out,
                            std::string* error);

// ---- log and shared state ----

class Log {
 public:
  explicit Log(std::function<void(mqtt::LogLevel, std::string_view)> handler) : handler_(std::move(handler)) {}
  void operator()(mqtt::LogLevel level, const std::string& message) const;
  // Remembers `message` as the latest failure (RecorderStats::last_error).
  void set_error(const std::string& message) const;
  std::string last_error() const;

 private:
  std::function<void(mqtt::LogLevel, std::string_view)> handler_;
  mutable std::mutex mutex_;
  mutable std::string last_error_;
};

// Wakes whoever waits for progress (stop(), run(), wait_idle(), the intake
// paused on a full disk).
struct Progress {
  mutable std::mutex mutex;
  mutable std::condition_variable cv;
  void notify() const {
    { std::lock_guard lk(mutex); }
    cv.notify_all();
  }
};

}  // namespace iotbridge::record::detail
