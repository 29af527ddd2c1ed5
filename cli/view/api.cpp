#include "api.hpp"

#include <fmt/core.h>

#include <charconv>

#include "chart.hpp"
#include "duration.hpp"
#include "svg.hpp"

namespace iotbridge::view {

using store::Document;

namespace {

constexpr const char* kDefaultRange = "1h";

std::string json_string(const std::string& text) { return store::Value(text).to_json(); }

std::int64_t int_param(const std::string& text, std::int64_t fallback, std::int64_t low, std::int64_t high,
                       const char* name) {
  if (text.empty()) return fallback;
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n < low || n > high)
    throw Error(ErrorCategory::config, fmt::format("{}={} is not a number from {} to {}", name, text, low, high));
  return n;
}

SeriesQuery range_query(const ApiSource& source, const std::string& topic, const std::string& since) {
  SeriesQuery q = source.shape;
  if (!topic.empty()) q.filter = Document().append(q.by, topic);
  auto range = parse_duration(since.empty() ? kDefaultRange : since, "since");
  q.since = store::DateTime{store::DateTime::now().millis - range.count()};
  return q;
}

}  // namespace

std::string api_topics(const ApiSource& source) {
  std::string out = "[";
  for (const auto& t : topic_summaries(*source.collection, source.shape)) {
    Document d;
    d.append("topic", t.topic).append("last_value", t.last_value.value_or(store::Value()));
    if (t.last_time)
      d.append("last_time", iso_time(t.last_time->millis))
          .append("last_time_ms", static_cast<long long>(t.last_time->millis));
    out += (out.size() > 1 ? ",\n" : "\n") + d.to_json();
  }
  return out + "\n]\n";
}

std::string api_series(const ApiSource& source, const std::string& topic, const std::string& since) {
  auto q = range_query(source, topic, since);
  auto result = query_series(*source.collection, q, true);
  std::string out = fmt::format("{{\"since_ms\": {}, \"series\": [", q.since->millis);
  for (std::size_t i = 0; i < result.series.size(); ++i) {
    out += fmt::format("{}\n{{\"name\": {}, \"points\": [", i ? "," : "", json_string(result.series[i].name));
    for (std::size_t j = 0; j < result.series[i].points.size(); ++j) {
      const auto& p = result.series[i].points[j];
      out += fmt::format("{}[{}, {}]", j ? ", " : "", p.millis, store::Value(p.value).to_json());
    }
    out += "]}";
  }
  return out + "\n]}\n";
}

std::string api_readings(const ApiSource& source, const std::string& limit) {
  auto n = int_param(limit, 20, 1, 1000, "limit");
  std::string out = "[";
  for (const auto& doc : newest_readings(*source.collection, n, source.shape.time_field)) {
    Document d;
    if (auto id = doc.get("_id"))
      d.append("id", id->is<store::ObjectId>() ? store::Value(id->as_object_id().to_hex()) : *id);
    d.append(source.shape.by, doc.get(source.shape.by).value_or(store::Value()));
    d.append(source.shape.field, doc.get(source.shape.field).value_or(store::Value()));
    if (auto time = doc.get_datetime(source.shape.time_field))
      d.append("time", iso_time(time->millis)).append("time_ms", static_cast<long long>(time->millis));
    out += (out.size() > 1 ? ",\n" : "\n") + d.to_json();
  }
  return out + "\n]\n";
}

std::string api_stats(const ApiSource& source) {
  const auto& db = source.collection->database_name();
  const auto& name = source.collection->name();
  auto s = source.store->collection_stats(db, name);
  Document d;
  d.append("store", source.store->description())
      .append("backend", source.store->backend())
      .append("ns", db + "." + name)
      .append("count", static_cast<long long>(s.count))
      .append("size", static_cast<long long>(s.size_bytes))
      .append("capped", s.capped)
      .append("nindexes", static_cast<long long>(s.index_count));
  return d.to_json() + "\n";
}

std::string api_chart_svg(const ApiSource& source, const std::string& topic, const std::string& since,
                          const std::string& width) {
  auto q = range_query(source, topic, since);
  auto result = query_series(*source.collection, q, true);
  ChartStyle style;
  style.width = static_cast<int>(int_param(width, 720, 200, 4000, "width"));
  style.height = style.width * 3 / 8 < 200 ? 200 : style.width * 3 / 8;
  style.y_label = q.field;
  style.legend = !result.series.empty() && (topic.empty() || result.series.size() > 1);
  style.x_from = q.since->millis;
  style.x_to = store::DateTime::now().millis;
  if (result.series.empty())
    style.title = fmt::format("no readings in the last {}", since.empty() ? kDefaultRange : since);
  return to_svg(layout_chart(result.series, style));
}

}  // namespace iotbridge::view
