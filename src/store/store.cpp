#include "iotbridge/store/store.hpp"

#include <algorithm>

#include "store/aggregate.hpp"
#include "store/bson_util.hpp"
#include "store/json_diagnose.hpp"
#include "store/query.hpp"
#include "store/vector_cursor.hpp"

namespace iotbridge::store {

std::vector<Document> Cursor::to_vector() {
  std::vector<Document> out;
  while (auto d = next()) out.push_back(std::move(*d));
  return out;
}

std::optional<Document> Collection::find_one(const Document& filter, const FindOptions& options) {
  FindOptions one = options;
  one.limit = 1;
  auto cursor = find(filter, one);
  return cursor->next();
}

std::int64_t delete_dated_before(Collection& collection, const std::string& field, DateTime cutoff,
                                 std::int64_t limit) {
  if (limit <= 0) return 0;
  FindOptions options;
  options.projection = Document().append("_id", 1);
  options.limit = limit;
  // $lt a date matches dates only (MongoDB's type bracketing), as a TTL index does.
  Array ids;
  for (const Document& doc : collection.find(Document().append(field, Document().append("$lt", cutoff)), options))
    if (auto id = doc.get("_id")) ids.push_back(*id);
  if (ids.empty()) return 0;
  return collection.delete_many(Document().append("_id", Document().append("$in", ids)));
}

std::int64_t Collection::delete_expired(std::int64_t limit) {
  std::int64_t deleted = 0;
  for (const IndexInfo& index : list_indexes()) {
    if (index.expire_after_seconds <= 0 || index.keys.size() != 1 || deleted >= limit) continue;
    const DateTime cutoff{DateTime::now().millis - index.expire_after_seconds * 1000};
    deleted += delete_dated_before(*this, index.keys.front().first, cutoff, limit - deleted);
  }
  return deleted;
}

std::vector<Value> Collection::distinct(const std::string& path, const Document& filter) {
  if (path.empty() || path[0] == '$') detail::fail("distinct needs a field path such as \"topic\", not '" + path + "'");
  FindOptions options;
  options.projection = Document().append(path, 1).append("_id", path == "_id" ? 1 : 0);
  std::vector<Value> values;
  auto cursor = find(filter, options);
  while (auto doc = cursor->next()) {
    for (auto& v : query::resolve(*doc, path, true))
      if (!v.is<Array>()) values.push_back(std::move(v));
  }
  std::stable_sort(values.begin(), values.end(), [](const Value& a, const Value& b) { return compare(a, b) < 0; });
  values.erase(
      std::unique(values.begin(), values.end(), [](const Value& a, const Value& b) { return compare(a, b) == 0; }),
      values.end());
  return values;
}

std::unique_ptr<Cursor> Collection::aggregate(const std::vector<Document>& pipeline) {
  aggregate::validate(pipeline);
  // The leading $match stages select what find() reads; the rest runs here.
  Document filter;
  std::size_t first = 0;
  Array matches;
  for (; first < pipeline.size() && pipeline[first].keys()[0] == "$match"; ++first)
    matches.push_back(pipeline[first].at("$match"));
  if (matches.size() == 1) filter = matches[0].as_document();
  if (matches.size() > 1) filter.append("$and", matches);
  auto docs = find(filter)->to_vector();
  return std::make_unique<detail::VectorCursor>(aggregate::run(std::move(docs), pipeline, first));
}

std::vector<Document> pipeline_from_json(std::string_view json) {
  auto first = json.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || json[first] != '[') {
    // One stage alone is a pipeline of one.
    if (first != std::string_view::npos && json[first] == '{') return {Document::from_json(json)};
    throw Error(ErrorCategory::config,
                "a pipeline is a JSON array of stages: '[{\"$match\": {...}}, {\"$group\": "
                "{...}}]'");
  }
  Document wrapped;
  try {
    wrapped = Document::from_json("{\"p\": " + std::string(json) + "}");
  } catch (const Error& e) {
    if (auto why = detail::diagnose_json(json)) throw Error(ErrorCategory::config, "invalid JSON " + *why, e.code());
    throw;
  }
  std::vector<Document> stages;
  const Value list = wrapped.at("p");  // kept: as_array() refers into it
  for (const auto& v : list.as_array().values()) {
    if (!v.is<Document>())
      throw Error(ErrorCategory::config,
                  "each pipeline stage is a JSON object such as {\"$match\": {...}}, not " + v.to_json());
    stages.push_back(v.as_document());
  }
  return stages;
}

}  // namespace iotbridge::store
