// Replaying quarantined readings into their route's collection.
#include <fmt/format.h>

#include <algorithm>

#include "iotbridge/error.hpp"
#include "iotbridge/record/quarantine.hpp"
#include "pipeline.hpp"

namespace iotbridge::record {

QuarantineReplay replay_quarantine(store::DocumentStore& store, const Route& route, const store::Document& filter) {
  validate_routes({route});
  detail::CompiledRoute compiled;
  compiled.route = route;
  compiled.decoder = find_decoder(route.decoder);
  for (const auto& [field, pointer] : route.fields) compiled.fields.emplace_back(field, JsonPointer(pointer));
  compiled.dedup = DedupKey(route.dedup_key);
  compiled.collection = store.collection(route.database, route.collection);
  auto quarantine = store.collection(route.database, quarantine_collection(route));
  const std::size_t max_bytes = route.max_document_bytes ? route.max_document_bytes : 16 * 1024 * 1024 - 16 * 1024;
  store::InsertManyOptions options;
  options.ignore_duplicate_ids = true;  // a replay interrupted after the insert: stored once

  QuarantineReplay result;
  for (const store::Document& doc : quarantine->find(filter)) {
    QuarantinedReading q = quarantined_reading_from_document(doc);
    std::vector<store::Document> docs;
    std::string error;
    auto built = detail::build_documents(compiled, q.reading, docs, &error);
    std::size_t largest = 0;
    for (const auto& d : docs) largest = std::max(largest, d.size());
    std::optional<std::tuple<QuarantineReason, std::string, int>> again;
    if (built.unmapped && route.on_unmapped == Route::OnUnmapped::quarantine) {
      again.emplace(QuarantineReason::unmapped, "the payload lacks a mapped field (on_unmapped = \"quarantine\")", 0);
    } else if (largest > max_bytes) {
      again.emplace(QuarantineReason::too_large,
                    fmt::format("the document is {} bytes; max_document_bytes is {}", largest, max_bytes), 0);
    } else {
      try {
        if (!docs.empty()) compiled.collection->insert_many(std::move(docs), options);
      } catch (const store::BulkWriteError& e) {
        again.emplace(classify_refusal(e.code(), e.what()), e.what(), e.code());
      }
    }
    const auto id = store::Document().append("_id", q.reading.id);
    if (!again) {
      quarantine->delete_one(id);
      ++result.moved;
      continue;
    }
    ++result.failed;
    quarantine->update_one(id, store::Document().append("$set", store::Document()
                                                                    .append("reason", to_string(std::get<0>(*again)))
                                                                    .append("message", std::get<1>(*again))
                                                                    .append("code", std::get<2>(*again))
                                                                    .append("quarantined_at", store::DateTime::now())));
  }
  return result;
}

}  // namespace iotbridge::record
