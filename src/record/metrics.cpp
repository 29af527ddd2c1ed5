// The printers of the metrics table: every one walks IOTBRIDGE_RECORDER_METRICS,
// none names a counter of its own.
#include "iotbridge/record/metrics.hpp"

#include <fmt/format.h>

#include <cmath>

#include "json_string.hpp"

namespace iotbridge::record {

std::string_view to_string(MetricType type) noexcept {
  switch (type) {
    case MetricType::counter: return "counter";
    case MetricType::gauge: return "gauge";
    case MetricType::histogram: return "histogram";
  }
  return "untyped";
}

namespace {

constexpr MetricType metric_type(std::string_view column) {
  if (column == "COUNTER") return MetricType::counter;
  if (column == "HISTOGRAM") return MetricType::histogram;
  return MetricType::gauge;
}

constexpr MetricInfo kTable[] = {
#define IOTBRIDGE_METRIC_ROW(type, field, name, scope, status, help) \
  MetricInfo{metric_type(#type), #field, name, std::string_view(#scope) == "ROUTE", status, help},
    IOTBRIDGE_RECORDER_METRICS(IOTBRIDGE_METRIC_ROW)
#undef IOTBRIDGE_METRIC_ROW
};

std::string human_bytes(std::uint64_t n) {
  if (n < 1024) return fmt::format("{} B", n);
  if (n < 1024 * 1024) return fmt::format("{:.1f} KiB", n / 1024.0);
  if (n < 1024ull * 1024 * 1024) return fmt::format("{:.1f} MiB", n / (1024.0 * 1024));
  return fmt::format("{:.2f} GiB", n / (1024.0 * 1024 * 1024));
}

// One value of any table type, so that a printer can be written once.
struct Cell {
  enum class Kind { number, flag, seconds, histogram } kind = Kind::number;
  std::uint64_t number = 0;
  bool flag = false;
  double seconds = 0;
  const HistogramSnapshot* histogram = nullptr;
};
Cell cell(std::uint64_t v) { return Cell{Cell::Kind::number, v, false, 0, nullptr}; }
Cell cell(bool v) { return Cell{Cell::Kind::flag, 0, v, 0, nullptr}; }
Cell cell(double v) { return Cell{Cell::Kind::seconds, 0, false, v, nullptr}; }
Cell cell(const HistogramSnapshot& v) { return Cell{Cell::Kind::histogram, 0, false, 0, &v}; }

// Calls visit(info, cell) for every row, in table order.
template <typename Visit>
void for_each_cell(const RecorderStats& s, Visit&& visit) {
  std::size_t row = 0;
#define IOTBRIDGE_METRIC_VISIT(type, field, name, scope, status, help) visit(kTable[row++], cell(s.field));
  IOTBRIDGE_RECORDER_METRICS(IOTBRIDGE_METRIC_VISIT)
#undef IOTBRIDGE_METRIC_VISIT
}

// The per-route value of a ROUTE row (0 for the others).
std::uint64_t route_value(const RouteStats& r, std::string_view field) {
#define IOTBRIDGE_ROUTE_VALUE_ROUTE(f) \
  if (field == #f) return r.f;
#define IOTBRIDGE_ROUTE_VALUE_GLOBAL(f)
#define IOTBRIDGE_ROUTE_VALUE(type, f, name, scope, status, help) IOTBRIDGE_ROUTE_VALUE_##scope(f)
  IOTBRIDGE_RECORDER_METRICS(IOTBRIDGE_ROUTE_VALUE)
#undef IOTBRIDGE_ROUTE_VALUE
#undef IOTBRIDGE_ROUTE_VALUE_GLOBAL
#undef IOTBRIDGE_ROUTE_VALUE_ROUTE
  return 0;
}

void append_quoted(std::string& out, std::string_view text) { iotbridge::detail::append_json_string(out, text); }

// A Prometheus label value: backslash, double quote and newline escaped.
std::string label_value(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

// A sample value: integers as integers, +Inf/-Inf/NaN as Prometheus spells them.
std::string sample(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

}  // namespace

std::span<const MetricInfo> recorder_metrics() noexcept { return kTable; }

std::string RecorderStats::to_json() const {
  std::string out = "{";
  for_each_cell(*this, [&](const MetricInfo& m, const Cell& c) {
    out += fmt::format("\"{}\":", m.field);
    switch (c.kind) {
      case Cell::Kind::number: out += fmt::format("{}", c.number); break;
      case Cell::Kind::flag: out += c.flag ? "true" : "false"; break;
      case Cell::Kind::seconds: out += fmt::format("{:.3f}", c.seconds); break;
      case Cell::Kind::histogram:
        out += fmt::format("{{\"count\":{},\"sum\":{:.6f}}}", c.histogram->count, c.histogram->sum);
        break;
    }
    out += ',';
  });
  out += "\"last_error\":";
  append_quoted(out, last_error);
  out += ",\"routes\":[";
  for (std::size_t i = 0; i < routes.size(); ++i) {
    const RouteStats& r = routes[i];
    if (i) out += ',';
    out += "{\"name\":";
    append_quoted(out, r.name);
    for (const MetricInfo& m : kTable)
      if (m.per_route) out += fmt::format(",\"{}\":{}", m.field, route_value(r, m.field));
    out += ",\"kinds\":{";
    for (std::size_t k = 0; k < r.kinds.size(); ++k) {
      if (k) out += ',';
      append_quoted(out, r.kinds[k].first);
      out += fmt::format(":{}", r.kinds[k].second);
    }
    out += "}}";
  }
  out += "]}";
  return out;
}

std::string RecorderStats::status_line() const {
  std::string line;
  auto add = [&](std::string_view text) {
    if (text.empty()) return;
    if (!line.empty()) line += ' ';
    line += text;
  };
  for_each_cell(*this, [&](const MetricInfo& m, const Cell& c) {
    std::string_view status = m.status;
    if (status.empty()) return;
    if (c.kind == Cell::Kind::flag) {
      auto bar = status.find('|');
      add(c.flag ? status.substr(0, bar) : status.substr(bar + 1));
      return;
    }
    const bool only_nonzero = status.front() == '?';
    if (only_nonzero) status.remove_prefix(1);
    if (c.kind != Cell::Kind::number) return;
    if (only_nonzero && c.number == 0) return;
    if (m.field == "queue_depth") {  // depth against the bound: "q 20/100000"
      add(fmt::format("{} {}/{}", status, c.number, queue_capacity));
      return;
    }
    const bool bytes = m.field.ends_with("_bytes");
    add(fmt::format("{} {}", status, bytes ? human_bytes(c.number) : std::to_string(c.number)));
  });
  if (!store_ok && !last_error.empty()) line += ": " + last_error;
  return line;
}

std::string to_prometheus(const RecorderStats& stats) {
  std::string out;
  auto header = [&](std::string_view name, std::string_view help, MetricType type) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, to_string(type));
  };
  for_each_cell(stats, [&](const MetricInfo& m, const Cell& c) {
    if (m.name.empty()) return;
    header(m.name, m.help, m.type);
    if (m.per_route) {
      for (const RouteStats& r : stats.routes)
        out += fmt::format("{}{{route=\"{}\"}} {}\n", m.name, label_value(r.name), route_value(r, m.field));
      return;
    }
    switch (c.kind) {
      case Cell::Kind::number: out += fmt::format("{} {}\n", m.name, c.number); break;
      case Cell::Kind::flag: out += fmt::format("{} {}\n", m.name, c.flag ? 1 : 0); break;
      case Cell::Kind::seconds: out += fmt::format("{} {}\n", m.name, sample(c.seconds)); break;
      case Cell::Kind::histogram: {
        const HistogramSnapshot& h = *c.histogram;
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < h.bounds.size(); ++i) {
          cumulative += i < h.counts.size() ? h.counts[i] : 0;
          out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", m.name, sample(h.bounds[i]), cumulative);
        }
        out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", m.name, h.count);
        out += fmt::format("{}_sum {}\n{}_count {}\n", m.name, sample(h.sum), m.name, h.count);
        break;
      }
    }
  });
  header("iotbridge_readings_decoded_total", "Stored readings per route and per kind their decoder reported.",
         MetricType::counter);
  for (const RouteStats& r : stats.routes)
    for (const auto& [kind, n] : r.kinds)
      out += fmt::format("iotbridge_readings_decoded_total{{route=\"{}\",kind=\"{}\"}} {}\n", label_value(r.name),
                         label_value(kind), n);
  return out;
}

}  // namespace iotbridge::record
