#include "iotbridge/store/store.hpp"

#include <algorithm>

#include "store/bson_util.hpp"
#include "store/query.hpp"

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

}  // namespace iotbridge::store
