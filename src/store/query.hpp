// The in-process query engine used by the embedded backend: MongoDB filter
// matching, update operators, projections and sort order, evaluated on
// Documents. Deterministic; anything it does not implement throws an Error
// naming the operator. Stateless and thread-safe.
#pragma once

#include <string>
#include <vector>

#include "iotbridge/store/document.hpp"

namespace iotbridge::store::query {

// Throws Error naming the first unsupported operator in the filter.
void validate_filter(const Document& filter);
bool matches(const Document& doc, const Document& filter);

// Every value a dotted path reaches, MongoDB style: through documents, into
// arrays by index, and across array elements; an array is returned both whole
// and element by element (when `expand_arrays`).
std::vector<Value> resolve(const Document& doc, const std::string& path, bool expand_arrays = true);

// True when `update` is a replacement (no $ operators), false when it has only
// operators; throws when mixed or empty.
bool is_replacement(const Document& update);
// Throws Error when `update` has no $ operators (a replacement), saying how
// to write one and where replacing belongs; when `replacement` has some.
void require_update_operators(const Document& update);
void require_replacement(const Document& replacement);
// Throws Error naming an unsupported update operator.
void validate_update(const Document& update);
// Applies $set/$unset/$inc; returns the new document (the _id cannot change).
Document apply_update(const Document& doc, const Document& update);

// Throws Error for projection specs it does not implement ($slice, ...).
void validate_projection(const Document& projection);
Document project(const Document& doc, const Document& projection);

// Sort comparator for a sort spec {"a": 1, "b": -1}: <0 when x sorts before y.
int compare_for_sort(const Document& x, const Document& y, const Document& sort);
void validate_sort(const Document& sort);

// Splits "a.b.0" into {"a", "b", "0"}.
std::vector<std::string> split_path(const std::string& path);

// The document with its _id first (as MongoDB stores it), a new ObjectId when missing.
Document with_id(Document doc);

// The document a failed upsert inserts: the equality fields of the filter.
Document upsert_seed(const Document& filter);

}  // namespace iotbridge::store::query
