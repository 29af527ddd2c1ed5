#include "series.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <ctime>
#include <map>

namespace iotbridge::view {

using store::Document;
using store::FindOptions;
using store::Value;

namespace {

Document range_filter(const SeriesQuery& q) {
  Document bounds;
  if (q.since) bounds.append("$gte", *q.since);
  if (q.until) bounds.append("$lt", *q.until);
  if (bounds.empty()) return q.filter;
  Document time = Document().append(q.time_field, bounds);
  if (q.filter.empty()) return time;
  return Document().append("$and", store::Array{q.filter, time});
}

std::string describe_range(const SeriesQuery& q) {
  if (q.since && q.until) return fmt::format("between {} and {}", iso_time(q.since->millis), iso_time(q.until->millis));
  if (q.since) return fmt::format("since {}", iso_time(q.since->millis));
  if (q.until) return fmt::format("before {}", iso_time(q.until->millis));
  return "in the collection";
}

}  // namespace

std::string iso_time(std::int64_t millis) {
  std::time_t seconds = static_cast<std::time_t>(millis >= 0 ? millis / 1000 : (millis - 999) / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", text, ((millis % 1000) + 1000) % 1000);
}

SeriesResult query_series(store::Collection& collection, const SeriesQuery& q, bool allow_empty) {
  Document filter = range_filter(q);
  FindOptions options;
  Document projection = Document().append("_id", 0).append(q.time_field, 1).append(q.field, 1);
  if (!q.by.empty() && q.by != q.field && q.by != q.time_field) projection.append(q.by, 1);
  options.projection = projection;
  options.sort = Document().append(q.time_field, 1);

  std::map<std::string, Series> by_name;
  SeriesResult result;
  std::int64_t in_range = 0;
  for (const Document& doc : collection.find(filter, options)) {
    ++in_range;
    auto time = doc.get_datetime(q.time_field);
    auto value = doc.get(q.field);
    if (!time || !value || !value->is_number()) {
      ++result.skipped;
      continue;
    }
    std::string name = q.field;
    if (!q.by.empty()) {
      auto key = doc.get(q.by);
      name = !key                         ? fmt::format("(no {})", q.by)
             : key->get_if<std::string>() ? *key->get_if<std::string>()
                                          : key->to_json();
    }
    auto& series = by_name[name];
    series.name = name;
    series.points.push_back({time->millis, value->as_double()});
    ++result.readings;
  }

  if (in_range == 0) {
    if (allow_empty) return result;
    FindOptions newest;
    newest.sort = Document().append(q.time_field, -1);
    auto last = collection.find_one(q.filter, newest);
    auto last_time = last ? last->get_datetime(q.time_field) : std::nullopt;
    std::string matching = q.filter.empty() ? std::string() : " matching " + q.filter.to_json();
    throw Error(ErrorCategory::store,
                last_time
                    ? fmt::format("no readings {} in {}.{}{}; the newest is from {}: widen --since", describe_range(q),
                                  collection.database_name(), collection.name(), matching, iso_time(last_time->millis))
                    : fmt::format("no readings {} in {}.{}{}: check --store, --db, --collection and the filter",
                                  describe_range(q), collection.database_name(), collection.name(), matching));
  }
  if (result.readings == 0) {
    auto sample = collection.find_one(filter);
    std::string fields;
    if (sample)
      for (const auto& key : sample->keys()) fields += (fields.empty() ? "" : ", ") + key;
    bool has_field = sample && sample->has(q.field);
    throw Error(ErrorCategory::config,
                has_field
                    ? fmt::format("none of the {} readings {} has a number in '{}' (nor a '{}' date): pick a "
                                  "numeric --field",
                                  in_range, describe_range(q), q.field, q.time_field)
                    : fmt::format("unknown field '{}': the readings {} have the fields {} (pick one with --field)",
                                  q.field, describe_range(q), fields));
  }
  for (auto& [name, series] : by_name) result.series.push_back(std::move(series));
  return result;
}

std::vector<TopicSummary> topic_summaries(store::Collection& collection, const SeriesQuery& shape,
                                          std::size_t max_topics) {
  const std::string& by = shape.by;
  const std::string& time_field = shape.time_field;
  std::vector<TopicSummary> topics;
  std::optional<std::string> previous;
  while (topics.size() < max_topics) {
    // The next topic after `previous` in sort order: with an index on `by`,
    // one short lookup instead of a scan of every reading.
    Document next = Document().append(by, Document().append(previous ? "$gt" : "$gte", previous ? *previous : ""));
    FindOptions first;
    first.sort = Document().append(by, 1);
    first.projection = Document().append("_id", 0).append(by, 1);
    auto doc = collection.find_one(next, first);
    if (!doc) break;
    auto name = doc->get_string(by);
    if (!name) break;
    previous = *name;

    TopicSummary summary;
    summary.topic = *name;
    FindOptions newest;
    newest.sort = Document().append(time_field, -1);
    Document of_topic = Document().append(by, *name);
    if (auto last = collection.find_one(of_topic, newest)) {
      summary.last_value = last->get(shape.field);
      summary.last_time = last->get_datetime(time_field);
    }
    topics.push_back(std::move(summary));
  }
  return topics;
}

std::vector<Document> newest_readings(store::Collection& collection, std::int64_t limit,
                                      const std::string& time_field) {
  FindOptions options;
  options.sort = Document().append(time_field, -1);
  options.limit = limit;
  return collection.find(Document(), options)->to_vector();
}

}  // namespace iotbridge::view
