// iotbridge-db: the mongo shell's everyday verbs for any iotbridge store
// (MongoDB or the embedded SQLite file). Parses arguments, calls the library,
// prints. Exit codes: 0 success, 1 failure (store unreachable, write refused),
// 2 usage error (unknown verb, bad option, malformed JSON).
//
//   iotbridge-db --store sqlite:iot.db find iot_service sensors '{"value": {"$gt": 24.1}}'
//       --projection '{"_id": 0, "topic": 1, "value": 1}' --sort '{"value": 1}'
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "iotbridge/duration.hpp"
#include "iotbridge/error.hpp"
#include "iotbridge/store/open.hpp"

using namespace iotbridge;
using namespace iotbridge::store;

namespace {

constexpr int kFailure = 1;
constexpr int kUsage = 2;

// A usage problem found after parsing (malformed JSON argument, missing store).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Document parse_json(const std::string& what, const std::string& text) {
  try {
    return Document::from_json(text);
  } catch (const Error& e) {
    throw UsageError(fmt::format("{} is not a JSON object ({}): {}", what, e.what(), text));
  }
}

std::string csv_cell(const std::optional<Value>& v) {
  if (!v || v->is_null()) return "";
  std::string text;
  if (auto s = v->get_if<std::string>())
    text = *s;
  else if (v->is<DateTime>()) {
    text = v->to_json();  // { "$date" : "2020-...Z" }
    auto q1 = text.find('"', text.find(':'));
    auto q2 = text.find('"', q1 + 1);
    if (q1 != std::string::npos && q2 != std::string::npos) text = text.substr(q1 + 1, q2 - q1 - 1);
  } else if (v->is<ObjectId>())
    text = v->as_object_id().to_hex();
  else
    text = v->to_json();
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "iotbridge-db: list, query and change the documents of an iotbridge store "
      "(mongodb://..., sqlite:path.db, sqlite::memory:)"};
  app.set_help_all_flag("--help-all", "Help for every verb");
  app.set_version_flag("--version", "iotbridge-db " IOTBRIDGE_VERSION, "Print the version and exit");
  std::string store_uri;
  app.add_option("--store", store_uri, "Store URI (default: $IOTBRIDGE_STORE)");
  app.require_subcommand(1);

  std::string db, coll, filter_text = "{}", projection_text, sort_text, update_text, keys_text, index_name;
  std::string fields_text;
  std::vector<std::string> docs_text;
  std::int64_t limit = 0, skip = 0, size = 0, max = 0;
  bool pretty = false, many = false, one = false, upsert = false, capped = false, unique = false, csv = false;

  auto add_db_coll = [&](CLI::App* sub, bool coll_required = true) {
    sub->add_option("db", db, "Database")->required();
    auto c = sub->add_option("collection", coll, "Collection");
    if (coll_required) c->required();
  };
  auto add_query = [&](CLI::App* sub) {
    sub->add_option("filter", filter_text, "Filter, a JSON document (default {})");
    sub->add_option("--filter", filter_text, "Filter, a JSON document");
    sub->add_option("--projection,-p", projection_text, "Projection, e.g. '{\"_id\": 0, \"value\": 1}'");
    sub->add_option("--sort,-s", sort_text, "Sort, e.g. '{\"reg_date\": -1}'");
    sub->add_option("--limit,-n", limit, "At most this many documents (0: all)")->check(CLI::NonNegativeNumber);
    sub->add_option("--skip", skip, "Skip this many documents first")->check(CLI::NonNegativeNumber);
  };

  auto* dbs = app.add_subcommand("dbs", "List databases");
  auto* collections = app.add_subcommand("collections", "List the collections of a database");
  collections->add_option("db", db, "Database")->required();
  auto* find = app.add_subcommand("find", "Print matching documents, one JSON document per line");
  add_db_coll(find);
  add_query(find);
  find->add_flag("--pretty", pretty, "Indented JSON");
  auto* count = app.add_subcommand("count", "Count matching documents");
  add_db_coll(count);
  count->add_option("filter", filter_text, "Filter, a JSON document (default {})");
  auto* insert = app.add_subcommand("insert", "Insert JSON documents (arguments, or one per line on stdin)");
  add_db_coll(insert);
  insert->add_option("documents", docs_text, "JSON documents");
  auto* update = app.add_subcommand("update", "Update matching documents ($set, $unset, $inc)");
  add_db_coll(update);
  update->add_option("filter", filter_text, "Filter")->required();
  update->add_option("update", update_text, "Update, e.g. '{\"$set\": {\"name\": \"x\"}}'")->required();
  update->add_flag("--many", many, "Every match (default: the first)");
  update->add_flag("--upsert", upsert, "Insert when nothing matches");
  auto* del = app.add_subcommand("delete", "Delete matching documents (every match; --one for the first)");
  add_db_coll(del);
  del->add_option("filter", filter_text, "Filter ('{}' deletes everything)")->required();
  del->add_flag("--one", one, "Only the first match");
  auto* create = app.add_subcommand("create", "Create a collection");
  add_db_coll(create);
  create->add_flag("--capped", capped, "Capped: keep only the newest documents");
  create->add_option("--size", size, "Capped: maximum total size in bytes")->check(CLI::PositiveNumber);
  create->add_option("--max", max, "Capped: maximum number of documents")->check(CLI::PositiveNumber);
  auto* drop = app.add_subcommand("drop", "Drop a collection, or a whole database when no collection is given");
  add_db_coll(drop, false);
  auto* index = app.add_subcommand("index", "Create an index ('{\"topic\": 1, \"reg_date\": -1}'); list without keys");
  add_db_coll(index);
  index->add_option("keys", keys_text, "Index keys, a JSON document");
  index->add_flag("--unique", unique, "Unique index");
  index->add_option("--name", index_name, "Index name");
  auto* exp = app.add_subcommand("export", "Print matching documents as CSV (--csv) or JSON lines");
  add_db_coll(exp);
  add_query(exp);
  exp->add_flag("--csv", csv, "CSV with a header row");
  exp->add_option("--fields,-f", fields_text, "CSV columns, comma separated (default: the first document's fields)");
  auto* stats = app.add_subcommand("stats", "Document count, size, capped limits and index count of a collection");
  add_db_coll(stats);

  // An unknown verb gets its own message (CLI11 would only say that a
  // subcommand is required).
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--store") {
      ++i;
      continue;
    }
    if (arg.empty() || arg[0] == '-') continue;
    static const char* kVerbs[] = {"dbs",    "collections", "find", "count", "insert", "update",
                                   "delete", "create",      "drop", "index", "export", "stats"};
    if (std::find(std::begin(kVerbs), std::end(kVerbs), arg) == std::end(kVerbs)) {
      std::cerr << "iotbridge-db: unknown verb '" << arg
                << "'; verbs: dbs, collections, find, count, insert, update, delete, create, drop, index, export, "
                   "stats (iotbridge-db --help)\n";
      return kUsage;
    }
    break;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ExtrasError& e) {
    if (app.get_subcommands().empty() && argc > 1) {
      std::cerr << "iotbridge-db: unknown verb: " << e.what()
                << "\nverbs: dbs, collections, find, count, insert, update, delete, create, drop, index, export, "
                   "stats (iotbridge-db --help)\n";
      return kUsage;
    }
    std::cerr << "iotbridge-db: " << e.what() << " (iotbridge-db --help)\n";
    return kUsage;
  } catch (const CLI::ParseError& e) {
    std::cerr << "iotbridge-db: " << e.what() << " (iotbridge-db --help)\n";
    return kUsage;
  }

  try {
    if (store_uri.empty())
      if (const char* env = std::getenv("IOTBRIDGE_STORE")) store_uri = env;
    if (store_uri.empty())
      throw UsageError(
          "no store given: pass --store URI or set IOTBRIDGE_STORE (e.g. sqlite:iot.db, "
          "mongodb://localhost:27017/)");
    if (capped && size <= 0) throw UsageError("create --capped needs --size BYTES");
    if (!capped && (size || max)) throw UsageError("--size and --max apply to --capped collections");

    Document filter = parse_json("the filter", filter_text);
    FindOptions options;
    if (!projection_text.empty()) options.projection = parse_json("--projection", projection_text);
    if (!sort_text.empty()) options.sort = parse_json("--sort", sort_text);
    options.limit = limit;
    options.skip = skip;
    Document update_doc, keys;
    if (!update_text.empty()) update_doc = parse_json("the update", update_text);
    if (!keys_text.empty()) keys = parse_json("the index keys", keys_text);
    std::vector<Document> docs;
    for (const auto& t : docs_text) docs.push_back(parse_json("a document", t));

    std::unique_ptr<DocumentStore> store;
    try {
      store = open_store(store_uri);
    } catch (const Error& e) {
      if (e.category() == ErrorCategory::config) throw UsageError(e.what());
      throw;
    }

    if (*dbs) {
      for (const auto& name : store->list_databases()) fmt::print("{}\n", name);
    } else if (*collections) {
      for (const auto& name : store->list_collections(db)) fmt::print("{}\n", name);
    } else if (*find || (*exp && !csv)) {
      auto cursor = store->collection(db, coll)->find(filter, options);
      while (auto d = cursor->next()) fmt::print("{}\n", pretty ? d->to_pretty_json() : d->to_json());
    } else if (*exp) {
      auto cursor = store->collection(db, coll)->find(filter, options);
      std::vector<std::string> fields;
      for (std::size_t start = 0; !fields_text.empty();) {
        auto comma = fields_text.find(',', start);
        fields.push_back(fields_text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      bool header = false;
      while (auto d = cursor->next()) {
        if (!header) {
          if (fields.empty()) fields = d->keys();
          std::string line;
          for (std::size_t i = 0; i < fields.size(); ++i) line += (i ? "," : "") + csv_cell(Value(fields[i]));
          fmt::print("{}\n", line);
          header = true;
        }
        std::string line;
        for (std::size_t i = 0; i < fields.size(); ++i) line += (i ? "," : "") + csv_cell(d->get(fields[i]));
        fmt::print("{}\n", line);
      }
    } else if (*count) {
      fmt::print("{}\n", store->collection(db, coll)->count_documents(filter));
    } else if (*insert) {
      if (docs.empty()) {
        std::string line;
        int n = 0;
        while (std::getline(std::cin, line)) {
          ++n;
          if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
          docs.push_back(parse_json("stdin line " + std::to_string(n), line));
        }
      }
      if (docs.empty()) throw UsageError("insert: no documents given (arguments or one JSON document per stdin line)");
      auto result = store->collection(db, coll)->insert_many(std::move(docs));
      for (const auto& id : result.inserted_ids) fmt::print("{}\n", id.to_json());
    } else if (*update) {
      UpdateOptions uo;
      uo.upsert = upsert;
      auto c = store->collection(db, coll);
      auto r = many ? c->update_many(filter, update_doc, uo) : c->update_one(filter, update_doc, uo);
      fmt::print("matched {}, modified {}{}\n", r.matched, r.modified,
                 r.upserted_id ? ", upserted " + r.upserted_id->to_json() : std::string());
    } else if (*del) {
      auto c = store->collection(db, coll);
      fmt::print("deleted {}\n", one ? c->delete_one(filter) : c->delete_many(filter));
    } else if (*create) {
      CollectionOptions co;
      co.capped = capped;
      co.size_bytes = size;
      co.max_documents = max;
      store->create_collection(db, coll, co);
      fmt::print("created {}.{}\n", db, coll);
    } else if (*drop) {
      if (coll.empty()) {
        store->drop_database(db);
        fmt::print("dropped database {}\n", db);
      } else if (store->drop_collection(db, coll)) {
        fmt::print("dropped {}.{}\n", db, coll);
      } else {
        std::cerr << fmt::format("iotbridge-db: no collection {}.{} to drop\n", db, coll);
        return kFailure;
      }
    } else if (*index) {
      auto c = store->collection(db, coll);
      if (keys.empty()) {
        for (const auto& info : c->list_indexes()) {
          Document k;
          for (const auto& [path, dir] : info.keys) k.append(path, dir);
          fmt::print("{} {}{}{}\n", info.name, k.to_json(), info.unique ? " unique" : "",
                     info.expire_after_seconds > 0
                         ? " expires after " + format_duration(std::chrono::seconds(info.expire_after_seconds))
                         : std::string());
        }
      } else {
        IndexSpec spec;
        for (const auto& [path, dir] : keys.fields()) {
          if (!dir.is_number() || (dir.as_double() != 1 && dir.as_double() != -1))
            throw UsageError("index direction for '" + path + "' must be 1 or -1");
          spec.keys.emplace_back(path, dir.as_double() > 0 ? 1 : -1);
        }
        spec.unique = unique;
        spec.name = index_name;
        fmt::print("{}\n", c->create_index(spec));
      }
    } else if (*stats) {
      auto s = store->collection_stats(db, coll);
      Document d;
      d.append("ns", db + "." + coll)
          .append("count", static_cast<long long>(s.count))
          .append("size", static_cast<long long>(s.size_bytes))
          .append("capped", s.capped)
          .append("nindexes", static_cast<long long>(s.index_count));
      if (s.capped)
        d.append("maxSize", static_cast<long long>(s.max_size_bytes))
            .append("max", static_cast<long long>(s.max_documents));
      // Retention: each TTL index ("documents expire 30d after reg_date").
      for (const auto& info : store->collection(db, coll)->list_indexes())
        if (info.expire_after_seconds > 0 && info.keys.size() == 1)
          d.append("retention",
                   Document()
                       .append("field", info.keys.front().first)
                       .append("expireAfterSeconds", static_cast<long long>(info.expire_after_seconds))
                       .append("expireAfter", format_duration(std::chrono::seconds(info.expire_after_seconds)))
                       .append("index", info.name));
      fmt::print("{}\n", d.to_pretty_json());
    }
    return 0;
  } catch (const UsageError& e) {
    std::cerr << "iotbridge-db: " << e.what() << "\n";
    return kUsage;
  } catch (const BulkWriteError& e) {
    std::cerr << fmt::format("iotbridge-db: insert stopped at document {} ({} inserted before it): {}\n", e.index(),
                             e.inserted_count(), e.what());
    return kFailure;
  } catch (const std::exception& e) {
    std::cerr << "iotbridge-db: " << e.what() << "\n";
    return kFailure;
  }
}
