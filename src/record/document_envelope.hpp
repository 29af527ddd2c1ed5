// The document around a decoded value, shared by build_document() and the
// routes' build_documents(): {_id, topic, [value], [fields], reg_date, [qos],
// [retain], [topic fields], [timestamp]} (docs/document-contract.md). Private.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "iotbridge/record/payload.hpp"

namespace iotbridge::record::detail {

// `value` null: no "value" field; `fields` null or empty: none (they follow
// "value", or "topic" when there is no value). The timestamp
// (options.timestamp_field) is read from `value` when it is a JSON object.
// `info` must not be null (topic_matched, timestamp_found are set).
store::Document make_document(const Reading& reading, const store::ObjectId& id, const store::Value* value,
                              std::vector<std::pair<std::string, store::Value>>* fields, const DocumentOptions& options,
                              BuildInfo* info);

}  // namespace iotbridge::record::detail
