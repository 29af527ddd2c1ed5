// Retention: TTL indexes, the recorder's own expiry where the server has
// none, time-series collections.
#include "iotbridge/record/retention.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "iotbridge/duration.hpp"
#include "iotbridge/error.hpp"

namespace iotbridge::record {

namespace {

constexpr int kNotImplemented = 238;  // MongoDB's NotImplemented, as FerretDB answers

bool refuses_feature(const Error& e, std::string_view option) {
  std::string_view what = e.what();
  return e.code() == kNotImplemented ||
         (what.find(option) != std::string_view::npos && (what.find("not implemented") != std::string_view::npos ||
                                                          what.find("not supported") != std::string_view::npos));
}

std::string human(std::int64_t seconds) { return format_duration(std::chrono::seconds(seconds)); }

}  // namespace

std::string_view to_string(Retention::Mode mode) noexcept {
  switch (mode) {
    case Retention::Mode::none: return "none";
    case Retention::Mode::server: return "server";
    case Retention::Mode::recorder: return "recorder";
    case Retention::Mode::conflict: return "conflict";
  }
  return "?";
}

std::string expiry_field(const Route& route) {
  return route.document.timestamp_field.empty() ? "reg_date" : route.document.timestamp_key;
}

void prepare_timeseries(store::DocumentStore& store, const Route& route) {
  if (!route.timeseries) return;
  auto names = store.list_collections(route.database);
  if (std::find(names.begin(), names.end(), route.collection) != names.end()) return;
  store::CollectionOptions options;
  options.timeseries = route.timeseries;
  options.expire_after_seconds = route.expire_after.count();
  try {
    store.create_collection(route.database, route.collection, options);
  } catch (const Error& e) {
    if (e.code() == 48) return;  // made meanwhile (another recorder of the group)
    if (e.category() == ErrorCategory::store &&
        (refuses_feature(e, "timeseries") || store.backend() == "sqlite" || e.code() == 72 /* InvalidOptions */))
      throw Error(ErrorCategory::config,
                  fmt::format("route '{}': timeseries: {} cannot create a time-series collection ({}); they need "
                              "MongoDB 5.0 or later (FerretDB 1.x and the SQLite store have none): remove timeseries "
                              "from the route",
                              route.name, store.backend() == "sqlite" ? "the SQLite store" : "the server", e.what()),
                  e.code());
    throw;
  }
}

Retention Retention::setup(store::DocumentStore& store, std::shared_ptr<store::Collection> collection,
                           const Route& route) {
  Retention r;
  r.collection_ = std::move(collection);
  r.field_ = route.timeseries ? route.timeseries->time_field : expiry_field(route);
  r.expire_after_ = route.expire_after;
  if (route.expire_after.count() <= 0) return r;
  const std::string where = fmt::format("{}.{}", route.database, route.collection);
  const std::int64_t seconds = route.expire_after.count();
  if (route.timeseries && store.backend() != "sqlite") {
    // The collection's own expireAfterSeconds (prepare_timeseries) does it.
    r.mode_ = Mode::server;
    r.message_ = fmt::format("route '{}': time-series collection {} expires documents after {} (the server does it)",
                             route.name, where, human(seconds));
    return r;
  }
  const bool sqlite = store.backend() == "sqlite";
  auto conflict = [&](const store::IndexInfo& index) {
    r.mode_ = Mode::conflict;
    r.message_ = fmt::format(
        "route '{}': expire_after {} is not applied: {} already has index '{}' on {} {}; it is kept as it is. "
        "Drop it (iotbridge-db dropIndex) or set expire_after to match, then restart",
        route.name, human(seconds), where, index.name, r.field_,
        index.expire_after_seconds > 0 ? "with expiry after " + human(index.expire_after_seconds) : "without expiry");
  };
  std::optional<store::IndexInfo> plain;  // an index on the field without expiry
  for (const store::IndexInfo& index : r.collection_->list_indexes()) {
    if (index.keys.size() != 1 || index.keys.front().first != r.field_) continue;
    if (index.expire_after_seconds == seconds) {
      r.mode_ = sqlite ? Mode::recorder : Mode::server;
      r.message_ = fmt::format("route '{}': {} expires documents {} after {} (TTL index '{}', in place)", route.name,
                               where, human(seconds), r.field_, index.name);
      return r;
    }
    if (index.expire_after_seconds > 0) {
      conflict(index);
      return r;
    }
    plain = index;
  }
  store::IndexSpec spec;
  spec.keys = {{r.field_, 1}};
  spec.expire_after_seconds = seconds;
  try {
    r.collection_->create_index(spec);
    r.mode_ = sqlite ? Mode::recorder : Mode::server;
    r.message_ =
        fmt::format("route '{}': {} expires documents {} after {} (TTL index made{})", route.name, where,
                    human(seconds), r.field_, sqlite ? "; the SQLite store removes them in small batches" : "");
  } catch (const Error& e) {
    if (!sqlite && refuses_feature(e, "expireAfterSeconds")) {
      // FerretDB 1.x: an ordinary index keeps the batched deletes cheap.
      if (!plain) {
        store::IndexSpec ordinary;
        ordinary.keys = {{r.field_, 1}};
        r.collection_->create_index(ordinary);
      }
      r.mode_ = Mode::recorder;
      r.message_ = fmt::format(
          "route '{}': the server refuses TTL indexes (FerretDB 1.x does); the recorder itself removes documents of "
          "{} older than {} by {}, in small batches",
          route.name, where, human(seconds), r.field_);
    } else if (plain && (e.code() == 85 || e.code() == 86)) {  // IndexOptionsConflict, IndexKeySpecsConflict
      conflict(*plain);
    } else {
      throw;
    }
  }
  return r;
}

std::int64_t Retention::expire_some(std::int64_t limit) {
  if (mode_ != Mode::recorder) return 0;
  const store::DateTime cutoff{store::DateTime::now().millis - expire_after_.count() * 1000};
  return store::delete_dated_before(*collection_, field_, cutoff, limit);
}

}  // namespace iotbridge::record
