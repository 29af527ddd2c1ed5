#include "quarantine_commands.hpp"

#include <fmt/chrono.h>
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <ctime>
#include <iostream>
#include <memory>
#include <optional>

#include "iotbridge/error.hpp"
#include "iotbridge/record/quarantine.hpp"
#include "iotbridge/service/config.hpp"
#include "iotbridge/store/open.hpp"
#include "run_verb.hpp"

namespace iotbridge::cli {

namespace {

constexpr int kFailure = 1;  // replay: a reading was refused again

// The flags of the four sub-verbs (each registers the ones it takes).
struct Request {
  std::string filter_text;  // FILTER
  std::string reason;       // --reason
  std::string config;       // --config
  std::string route;        // --route
  std::string quarantine;   // --quarantine
  std::int64_t limit = 20;  // list -n
  std::size_t max_document_bytes = 0;
  bool max_given = false;  // replay --max-document-bytes
  bool all = false;        // drop --all
};

// What a sub-verb works on: the store, the route (where its readings go and
// how they are decoded), its quarantine collection, and which readings.
struct Where {
  std::string store_uri;
  record::Route route;
  std::string quarantine;
  store::Document filter;
  std::string ns() const { return route.database + "." + quarantine; }
};

[[noreturn]] void usage(const std::string& what) { throw Error(ErrorCategory::config, what); }

record::Route route_from_config(const Request& req, const service::ServiceConfig& config) {
  std::string names;
  for (const auto& r : config.routes) names += (names.empty() ? "" : ", ") + r.name;
  const record::Route* chosen = nullptr;
  if (!req.route.empty()) {
    for (const auto& r : config.routes)
      if (r.name == req.route) chosen = &r;
    if (!chosen) usage(fmt::format("{} has no route '{}'; its routes: {}", req.config, req.route, names));
  } else if (config.routes.size() == 1) {
    chosen = &config.routes.front();
  } else {
    usage(fmt::format("{} has {} routes ({}): name one with --route", req.config, config.routes.size(), names));
  }
  record::Route route = *chosen;
  if (route.max_document_bytes == 0) route.max_document_bytes = config.recorder.max_document_bytes;
  return route;
}

Where resolve_where(const DbFlags& flags, const Request& req) {
  Where w;
  w.store_uri = flags.store_uri.empty() ? env_or("IOTBRIDGE_STORE", "") : flags.store_uri;
  if (!req.config.empty()) {
    auto config = service::load_config(req.config);
    w.route = route_from_config(req, config);
    if (w.store_uri.empty()) w.store_uri = config.recorder.store_uri;
  } else {
    DbFlags given = flags;
    given.store_uri = w.store_uri;
    DbFlags resolved;
    try {
      resolved = resolve(given);
    } catch (const std::invalid_argument& e) {
      usage(fmt::format("{} (or --config FILE: the recorder's store)", e.what()));
    }
    // As iotbridge-sub --store records: decoder auto, the whole payload in `value`.
    w.route.name = req.route.empty() ? "default" : req.route;
    w.route.filters = {"#"};
    w.route.database = resolved.database;
    w.route.collection = resolved.collection;
  }
  if (!req.quarantine.empty()) w.route.quarantine = req.quarantine;
  if (req.max_given) w.route.max_document_bytes = req.max_document_bytes;
  w.quarantine = record::quarantine_collection(w.route);

  try {
    w.filter = store::Document::from_json(req.filter_text.empty() ? "{}" : req.filter_text);
  } catch (const Error& e) {
    usage(fmt::format("the filter is not valid JSON: {}", e.what()));
  }
  auto add = [&](const char* key, const std::string& value, const char* flag) {
    if (w.filter.has(key)) usage(fmt::format("the filter has '{}' and {} is given too: give it once", key, flag));
    w.filter.append(key, value);
  };
  if (!req.reason.empty()) {
    if (!record::parse_quarantine_reason(req.reason))
      usage(fmt::format("--reason '{}' is not a reason; one of too_large, validator, unique_index, unmapped, refused",
                        req.reason));
    add("reason", req.reason, "--reason");
  }
  if (!req.route.empty()) add("route", req.route, "--route");
  return w;
}

std::unique_ptr<store::DocumentStore> open(const Where& w, bool read_only) {
  store::OpenOptions options;
  options.read_only = read_only;  // a mistyped SQLite path is an error, never a new file
  return store::open_store(w.store_uri, options);
}

std::string utc(const store::DateTime& t) {
  const std::time_t seconds = static_cast<std::time_t>(t.millis / 1000 - (t.millis % 1000 < 0 ? 1 : 0));
  const auto millis = static_cast<int>(((t.millis % 1000) + 1000) % 1000);
  return fmt::format("{:%Y-%m-%d %H:%M:%S}.{:03}Z", fmt::gmtime(seconds), millis);
}

int run_list(const DbFlags& flags, const Request& req) {
  Where w = resolve_where(flags, req);
  auto db = open(w, true);
  auto coll = db->collection(w.route.database, w.quarantine);
  const std::int64_t total = coll->count_documents(w.filter);
  store::FindOptions options;
  options.sort = store::Document().append("reg_date", 1).append("_id", 1);
  options.limit = req.limit;
  constexpr const char* kRow = "{:<24}  {:<12}  {:>8}  {:<24}  {:<24}  {}\n";
  if (total > 0) fmt::print(kRow, "received (UTC)", "reason", "bytes", "_id", "topic", "why");
  std::int64_t shown = 0;
  for (const store::Document& d : coll->find(w.filter, options)) {
    auto q = record::quarantined_reading_from_document(d);
    fmt::print(kRow, utc(q.reading.received), to_string(q.reason), q.reading.payload.size(), q.reading.id.to_hex(),
               q.reading.topic, q.message);
    ++shown;
  }
  fmt::print("{} of {} quarantined readings in {} shown{}\n", shown, total, w.ns(),
             shown < total ? " (-n 0 for all)" : "");
  return 0;
}

int run_count(const DbFlags& flags, const Request& req) {
  Where w = resolve_where(flags, req);
  auto db = open(w, true);
  fmt::print("{}\n", db->collection(w.route.database, w.quarantine)->count_documents(w.filter));
  return 0;
}

int run_replay(const DbFlags& flags, const Request& req) {
  Where w = resolve_where(flags, req);
  auto db = open(w, false);
  const auto& r = w.route;
  fmt::print(
      "iotbridge-db quarantine replay: {} -> {}.{} in {} (route {}: decoder {}, {} mapped fields, "
      "max_document_bytes {})\n",
      w.ns(), r.database, r.collection, db->description(), r.name, r.decoder, r.fields.size(),
      r.max_document_bytes ? std::to_string(r.max_document_bytes) : std::string("16 MiB - 16 KiB"));
  std::cout.flush();
  auto result = record::replay_quarantine(*db, r, w.filter);
  fmt::print("replayed {}: {} stored in {}.{} and removed from the quarantine, {} refused again and kept{}\n",
             result.moved + result.failed, result.moved, r.database, r.collection, result.failed,
             result.failed ? " (iotbridge-db quarantine list shows why)" : "");
  return result.failed ? kFailure : 0;
}

int run_drop(const DbFlags& flags, const Request& req) {
  Where w = resolve_where(flags, req);
  if (w.filter.empty() && !req.all)
    usage("drop deletes for good: give a FILTER, --reason or --route, or --all for every quarantined reading");
  if (!w.filter.empty() && req.all) usage("--all and a filter contradict each other: give one");
  auto db = open(w, false);
  const std::int64_t dropped = db->collection(w.route.database, w.quarantine)->delete_many(w.filter);
  fmt::print("dropped {} quarantined readings from {} in {}\n", dropped, w.ns(), db->description());
  return 0;
}

}  // namespace

void add_quarantine_commands(CLI::App& app, const DbFlags& flags) {
  auto req = std::make_shared<Request>();
  auto action = std::make_shared<std::string>();
  auto* sub = app.add_subcommand(
      "quarantine",
      "Readings the store refused, kept aside by the recorder: list (time, reason, size, topic, why), count, "
      "replay (decode and store them again as the route says now; those refused again stay, with the new "
      "reason), drop");
  sub->add_option("action", *action, "list, count, replay or drop")
      ->required()
      ->check(CLI::IsMember({"list", "count", "replay", "drop"}));
  sub->add_option("filter", req->filter_text, "Which quarantined readings: a JSON filter (default {})");
  sub->add_option("--reason", req->reason,
                  "Only readings kept for this reason: too_large, validator, unique_index, unmapped, refused");
  sub->add_option("--config", req->config,
                  "iotbridge-recorder's configuration file: the route's database, collection, quarantine and "
                  "decoding (and the store, when no --store)");
  sub->add_option("--route", req->route, "Only the readings of this route (with --config: which [[route]])");
  sub->add_option("--quarantine", req->quarantine, "The quarantine collection (default: <collection>_quarantine)");
  auto* limit = sub->add_option("-n,--limit", req->limit, "list: at most this many, oldest first (default 20; 0: all)")
                    ->check(CLI::NonNegativeNumber);
  auto* max = sub->add_option_function<std::size_t>(
      "--max-document-bytes",
      [req](std::size_t n) {
        req->max_document_bytes = n;
        req->max_given = true;
      },
      "replay: the largest document stored, this time (default: the route's, else 16 MiB - 16 KiB)");
  auto* all = sub->add_flag("--all", req->all, "drop: every quarantined reading (without it, drop needs a filter)");
  const DbFlags* where = &flags;
  sub->callback([where, req, action, limit, max, all] {
    run_verb("iotbridge-db quarantine " + *action, [&] {
      auto only = [&](const CLI::Option* option, const char* verb) {
        if (option->count() > 0 && *action != verb)
          usage(fmt::format("{} applies to quarantine {}, not {}", option->get_name(), verb, *action));
      };
      only(limit, "list");
      only(max, "replay");
      only(all, "drop");
      if (*action == "list") return run_list(*where, *req);
      if (*action == "count") return run_count(*where, *req);
      if (*action == "replay") return run_replay(*where, *req);
      return run_drop(*where, *req);
    });
  });
}

}  // namespace iotbridge::cli
