// A Cursor over documents already in memory (results computed in process).
// Private to the library; belongs to one thread like every Cursor.
#pragma once

#include <utility>
#include <vector>

#include "iotbridge/store/store.hpp"

namespace iotbridge::store::detail {

class VectorCursor final : public Cursor {
 public:
  explicit VectorCursor(std::vector<Document> docs) : docs_(std::move(docs)) {}
  std::optional<Document> next() override {
    if (pos_ >= docs_.size()) return std::nullopt;
    return std::move(docs_[pos_++]);
  }

 private:
  std::vector<Document> docs_;
  std::size_t pos_ = 0;
};

}  // namespace iotbridge::store::detail
