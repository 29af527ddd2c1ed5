// Routes: JSON Pointers, and the checks a recorder makes of its routes.
#include "iotbridge/record/route.hpp"

#include <fmt/format.h>

#include <cmath>
#include <set>

#include "iotbridge/duration.hpp"
#include "iotbridge/error.hpp"
#include "iotbridge/record/decoder.hpp"
#include "iotbridge/record/dedup.hpp"
#include "iotbridge/record/quarantine.hpp"
#include "iotbridge/topic.hpp"

namespace iotbridge::record {

namespace {

std::vector<std::string_view> split_levels(std::string_view text) {
  std::vector<std::string_view> out;
  while (true) {
    auto slash = text.find('/');
    out.push_back(text.substr(0, slash));
    if (slash == std::string_view::npos) return out;
    text.remove_prefix(slash + 1);
  }
}

// An array index token: "0" or digits without a leading zero (RFC 6901 §4).
std::optional<std::size_t> array_index(std::string_view token) {
  if (token.empty() || token.size() > 9) return std::nullopt;
  if (token.size() > 1 && token.front() == '0') return std::nullopt;
  std::size_t n = 0;
  for (char c : token) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::size_t>(c - '0');
  }
  return n;
}

// Members picked by name, exactly: Document::get() would read '.' as a path.
std::optional<store::Value> member(const store::Document& doc, const std::string& name) {
  if (name.find('.') == std::string::npos && !name.empty()) return doc.get(name);
  for (auto& [key, value] : doc.fields())
    if (key == name) return value;
  return std::nullopt;
}

bool safe_field_name(std::string_view name) {
  static const std::set<std::string, std::less<>> kReserved{"_id", "topic", "value", "reg_date", "qos", "retain"};
  return !name.empty() && name.front() != '$' && name.find('.') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos && kReserved.count(name) == 0;
}

[[noreturn]] void route_error(const Route& r, std::string_view field, const std::string& what) {
  throw Error(ErrorCategory::config, fmt::format("route '{}': {}: {}", r.name, field, what));
}

void validate_policies(const Route& r) {
  if (r.deadband && (!std::isfinite(*r.deadband) || *r.deadband < 0))
    route_error(r, "deadband", fmt::format("{} must be a finite number >= 0 (0 stores every change)", *r.deadband));
  if (r.heartbeat.count() < 0) route_error(r, "heartbeat", "must not be negative");
  if (r.heartbeat.count() > 0 && !r.deadband && !r.on_change)
    route_error(r, "heartbeat",
                fmt::format("{} forces a store when nothing was stored, which only happens with deadband or on_change; "
                            "set one of them or remove heartbeat",
                            format_duration(r.heartbeat)));
  if (r.expire_after.count() < 0) route_error(r, "expire_after", "must not be negative");
  try {
    DedupKey{r.dedup_key};
  } catch (const Error& e) {
    route_error(r, "dedup_key", e.what());
  }
  if (quarantine_collection(r) == r.collection)
    route_error(r, "quarantine", "must not be the route's own collection; default: <collection>_quarantine");
  if (r.max_document_bytes != 0 && r.max_document_bytes < 64)
    route_error(r, "max_document_bytes",
                fmt::format("{} is smaller than any document; 0 keeps the recorder's limit", r.max_document_bytes));
  if (r.timeseries) {
    const auto& ts = *r.timeseries;
    if (ts.time_field.empty()) route_error(r, "timeseries.time_field", "must not be empty (usually \"reg_date\")");
    if (ts.granularity != "seconds" && ts.granularity != "minutes" && ts.granularity != "hours")
      route_error(r, "timeseries.granularity",
                  fmt::format("'{}' is not one of seconds, minutes, hours", ts.granularity));
    if (ts.meta_field == ts.time_field) route_error(r, "timeseries.meta_field", "must differ from time_field");
  }
}

}  // namespace

std::string_view to_string(Route::OnUnmapped policy) noexcept {
  return policy == Route::OnUnmapped::quarantine ? "quarantine" : "store";
}

Route::OnUnmapped parse_on_unmapped(std::string_view word) {
  if (word == "store") return Route::OnUnmapped::store;
  if (word == "quarantine") return Route::OnUnmapped::quarantine;
  throw Error(
      ErrorCategory::config,
      fmt::format("on_unmapped '{}' is not \"store\" (keep the reading without the field) or \"quarantine\"", word));
}

JsonPointer::JsonPointer(std::string_view pointer) : text_(pointer) {
  if (pointer.empty()) return;
  if (pointer.front() != '/')
    throw Error(
        ErrorCategory::config,
        fmt::format("JSON Pointer '{}' must be empty or start with '/' (as in \"/t\" or \"/meta/bat\")", text_));
  for (std::string_view raw : split_levels(pointer.substr(1))) {
    std::string token;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '~') {
        token += raw[i];
        continue;
      }
      if (i + 1 < raw.size() && (raw[i + 1] == '0' || raw[i + 1] == '1')) {
        token += raw[i + 1] == '0' ? '~' : '/';
        ++i;
        continue;
      }
      throw Error(ErrorCategory::config,
                  fmt::format("JSON Pointer '{}': '~' must be followed by 0 ('~') or 1 ('/')", text_));
    }
    tokens_.push_back(std::move(token));
  }
}

std::optional<store::Value> JsonPointer::resolve(const store::Value& root) const {
  std::optional<store::Value> at = root;
  for (const std::string& token : tokens_) {
    if (const auto* doc = at->get_if<store::Document>()) {
      at = member(*doc, token);
    } else if (const auto* array = at->get_if<store::Array>()) {
      auto index = array_index(token);
      if (!index || *index >= array->size()) return std::nullopt;
      at = (*array)[*index];
    } else {
      return std::nullopt;
    }
    if (!at) return std::nullopt;
  }
  return at;
}

bool pattern_fits_filter(const TopicPattern& pattern, std::string_view filter) {
  const auto shared = parse_shared(filter);  // kept alive: `filter` may view its string
  if (shared) filter = shared->filter;
  auto p = split_levels(pattern.pattern());
  auto f = split_levels(filter);
  for (std::size_t i = 0;; ++i) {
    const bool p_end = i == p.size(), f_end = i == f.size();
    if ((!p_end && p[i] == "#") || (!f_end && f[i] == "#")) return true;
    if (p_end || f_end) return p_end && f_end;
    const bool p_any = p[i] == "+" || (p[i].size() >= 2 && p[i].front() == '{' && p[i].back() == '}');
    if (!p_any && f[i] != "+" && p[i] != f[i]) return false;
  }
}

void validate_routes(const std::vector<Route>& routes) {
  if (routes.empty()) throw Error(ErrorCategory::config, "the recorder needs at least one route");
  std::set<std::string, std::less<>> names;
  for (const Route& r : routes) {
    if (r.name.empty()) throw Error(ErrorCategory::config, "a route needs a name (the `route` label of its metrics)");
    if (!names.insert(r.name).second)
      throw Error(ErrorCategory::config,
                  fmt::format("two routes are named '{}': give each route its own name", r.name));
    if (r.filters.empty()) route_error(r, "filters", "needs at least one topic filter");
    for (const auto& f : r.filters) {
      try {
        validate_filter(f);
      } catch (const Error& e) {
        route_error(r, "filters", e.what());
      }
    }
    if (r.database.empty()) route_error(r, "database", "must not be empty");
    if (r.collection.empty()) route_error(r, "collection", "must not be empty");
    try {
      find_decoder(r.decoder);
    } catch (const Error& e) {
      route_error(r, "decoder", e.what());
    }
    std::set<std::string, std::less<>> fields;
    for (const auto& [field, pointer] : r.fields) {
      if (!safe_field_name(field))
        route_error(r, "fields",
                    fmt::format("'{}' cannot be a field name (empty, reserved, or with '$' or '.')", field));
      if (!fields.insert(field).second) route_error(r, "fields", fmt::format("'{}' is mapped twice", field));
      try {
        JsonPointer{pointer};
      } catch (const Error& e) {
        route_error(r, fmt::format("fields.{}", field), e.what());
      }
    }
    const TopicPattern& pattern = r.document.topic_fields;
    if (!pattern.empty()) {
      for (const auto& f : r.filters)
        if (!pattern_fits_filter(pattern, f))
          route_error(r, "topic_fields",
                      fmt::format("pattern '{}' cannot match any topic of filter '{}' (its levels do not fit)",
                                  pattern.pattern(), f));
    }
    validate_policies(r);
  }
}

}  // namespace iotbridge::record
