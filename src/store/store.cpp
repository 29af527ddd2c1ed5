#include "iotbridge/store/store.hpp"

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

}  // namespace iotbridge::store
