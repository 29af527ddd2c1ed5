// The live counters behind the metrics table, and their snapshot.
#include <algorithm>
#include <cstdio>

#include "pipeline.hpp"

namespace iotbridge::record::detail {

void LiveHistogram::observe(double value) {
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  counts_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

void LiveHistogram::observe_all(const std::vector<double>& values) {
  if (values.empty()) return;
  thread_local std::vector<std::uint64_t> local;
  local.assign(counts_.size(), 0);
  double sum = 0;
  for (double v : values) {
    ++local[static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin())];
    sum += v;
  }
  for (std::size_t i = 0; i < local.size(); ++i)
    if (local[i]) counts_[i].fetch_add(local[i], std::memory_order_relaxed);
  count_.fetch_add(values.size(), std::memory_order_relaxed);
  sum_.fetch_add(sum, std::memory_order_relaxed);
}

HistogramSnapshot LiveHistogram::snapshot() const {
  HistogramSnapshot s;
  s.bounds = bounds_;
  s.counts.reserve(counts_.size());
  for (const auto& c : counts_) s.counts.push_back(c.load(std::memory_order_relaxed));
  for (auto c : s.counts) s.count += c;  // consistent with the buckets, whatever races
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

void RouteCounters::count_kind(std::string_view kind, std::uint64_t n) {
  std::lock_guard lock(kinds_mutex_);
  for (auto& [k, count] : kinds_) {
    if (k == kind) {
      count += n;
      return;
    }
  }
  kinds_.emplace_back(std::string(kind), n);
}

std::vector<std::pair<std::string, std::uint64_t>> RouteCounters::kinds() const {
  std::lock_guard lock(kinds_mutex_);
  return kinds_;
}

RouteCounters& Counters::route(const std::string& name) {
  std::lock_guard lock(routes_mutex_);
  for (auto& r : routes_)
    if (r->name == name) return *r;
  routes_.push_back(std::make_shared<RouteCounters>(name));
  return *routes_.back();
}

std::vector<std::shared_ptr<RouteCounters>> Counters::routes(const std::vector<std::string>& order) const {
  std::lock_guard lock(routes_mutex_);
  std::vector<std::shared_ptr<RouteCounters>> out;
  for (const auto& name : order)
    for (const auto& r : routes_)
      if (r->name == name) out.push_back(r);
  for (const auto& r : routes_)
    if (std::find(order.begin(), order.end(), r->name) == order.end()) out.push_back(r);
  return out;
}

RecorderStats Counters::snapshot(const std::vector<std::string>& route_order) const {
  RecorderStats s;
#define IOTBRIDGE_SNAP_GLOBAL(f) s.f = f.load();
#define IOTBRIDGE_SNAP_ROUTE(f)
#define IOTBRIDGE_SNAP_H_HISTOGRAM(scope, f) s.f = f.snapshot();
#define IOTBRIDGE_SNAP_H_COUNTER(scope, f) IOTBRIDGE_SNAP_##scope(f)
#define IOTBRIDGE_SNAP_H_GAUGE(scope, f) IOTBRIDGE_SNAP_##scope(f)
#define IOTBRIDGE_SNAP_H_FLAG(scope, f) IOTBRIDGE_SNAP_##scope(f)
#define IOTBRIDGE_SNAP_H_SECONDS(scope, f) IOTBRIDGE_SNAP_##scope(f)
#define IOTBRIDGE_SNAP(type, f, name, scope, status, help) IOTBRIDGE_SNAP_H_##type(scope, f)
  IOTBRIDGE_RECORDER_METRICS(IOTBRIDGE_SNAP)
#undef IOTBRIDGE_SNAP
  for (const auto& live : routes(route_order)) {
    RouteStats r;
    r.name = live->name;
#define IOTBRIDGE_SNAP_R_ROUTE(f) \
  r.f = live->f.load();           \
  s.f += r.f;
#define IOTBRIDGE_SNAP_R_GLOBAL(f)
#define IOTBRIDGE_SNAP_R(type, f, name, scope, status, help) IOTBRIDGE_SNAP_R_##scope(f)
    IOTBRIDGE_RECORDER_METRICS(IOTBRIDGE_SNAP_R)
#undef IOTBRIDGE_SNAP_R
    r.kinds = live->kinds();
    for (const auto& [kind, n] : r.kinds) {
      if (kind == "number")
        s.numbers += n;
      else if (kind == "json")
        s.json += n;
      else if (kind == "null")
        s.nulls += n;
      else if (kind == "text")
        s.text_fallbacks += n;
      else if (kind == "binary")
        s.binary_fallbacks += n;
    }
    s.routes.push_back(std::move(r));
  }
  // pending is what is neither stored nor rejected, per route and in total.
  s.pending = 0;
  for (auto& r : s.routes) {
    std::uint64_t in = r.received + r.replayed, out = r.stored + r.rejected;
    r.pending = in > out ? in - out : 0;
    s.pending += r.pending;
  }
  return s;
}

void Log::operator()(mqtt::LogLevel level, const std::string& message) const {
  if (handler_) {
    try {
      handler_(level, message);
    } catch (...) {
    }
    return;
  }
  if (level == mqtt::LogLevel::warning || level == mqtt::LogLevel::error)
    std::fprintf(stderr, "iotbridge recorder: %s\n", message.c_str());
}

void Log::set_error(const std::string& message) const {
  std::lock_guard lock(mutex_);
  last_error_ = message;
}

std::string Log::last_error() const {
  std::lock_guard lock(mutex_);
  return last_error_;
}

}  // namespace iotbridge::record::detail
