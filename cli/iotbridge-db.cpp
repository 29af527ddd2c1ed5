// iotbridge-db: the mongo shell's everyday verbs for any iotbridge store
// (MongoDB or the embedded SQLite file). Parses arguments, calls the library,
// prints. Exit codes: 0 success, 1 failure (store unreachable, write refused),
// 2 usage error (unknown verb, bad option, malformed JSON).
//
//   iotbridge-db --store sqlite:iot.db find '{"value": {"$gt": 24.1}}'
//       --projection '{"_id": 0, "topic": 1, "value": 1}' --sort '{"value": 1}'
//
// The database and collection default to iot_service / sensors (--db,
// --collection, $IOTBRIDGE_DB, $IOTBRIDGE_COLLECTION); the older positional
// form `find DB COLLECTION [FILTER]` still works: words that are not JSON
// before the JSON arguments name them.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "db_target.hpp"
#include "iotbridge/duration.hpp"
#include "iotbridge/error.hpp"
#include "iotbridge/shutdown.hpp"
#include "iotbridge/store/open.hpp"
#include "quarantine_commands.hpp"
#include "view/commands.hpp"

using namespace iotbridge;
using namespace iotbridge::store;

namespace {

using iotbridge::cli::kDefaultCollection;
using iotbridge::cli::kDefaultDatabase;

constexpr int kFailure = 1;
constexpr int kUsage = 2;

// A usage problem found after parsing (malformed JSON argument, missing store).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One verb: how its positional arguments read, and whether it only reads.
struct Verb {
  const char* name;
  const char* usage;  // the positional arguments, for messages
  int words;          // words of its own before the JSON arguments (distinct FIELD)
  int min_json, max_json;
  bool read_only;
};

// max_json -1: any number.
constexpr Verb kVerbs[] = {
    {"dbs", "", 0, 0, 0, true},
    {"collections", "[DB]", 0, 0, 0, true},
    {"find", "[DB COLLECTION] [FILTER]", 0, 0, 1, true},
    {"findone", "[DB COLLECTION] [FILTER]", 0, 0, 1, true},
    {"count", "[DB COLLECTION] [FILTER]", 0, 0, 1, true},
    {"distinct", "[DB COLLECTION] FIELD [FILTER]", 1, 0, 1, true},
    {"insert", "[DB COLLECTION] [DOC ...]", 0, 0, -1, false},
    {"update", "[DB COLLECTION] FILTER UPDATE", 0, 2, 2, false},
    {"replace", "[DB COLLECTION] FILTER DOC", 0, 2, 2, false},
    {"delete", "[DB COLLECTION] FILTER", 0, 1, 1, false},
    {"create", "[DB COLLECTION]", 0, 0, 0, false},
    {"drop", "DB [COLLECTION]", 0, 0, 0, false},
    {"index", "[DB COLLECTION] [KEYS]", 0, 0, 1, false},
    {"aggregate", "[DB COLLECTION] PIPELINE", 0, 1, 1, true},
    {"tail", "[DB COLLECTION] [FILTER]", 0, 0, 1, true},
    {"export", "[DB COLLECTION] [FILTER]", 0, 0, 1, true},
    {"stats", "[DB COLLECTION]", 0, 0, 0, true},
};

// Every registered verb, ours and those added by other files.
std::string verb_list(CLI::App& app) {
  std::string out;
  for (const auto* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    out += (out.empty() ? "" : ", ") + sub->get_name();
  return out;
}

const Verb* find_verb(const std::string& name) {
  for (const auto& v : kVerbs)
    if (name == v.name) return &v;
  return nullptr;
}

bool looks_like_json(const std::string& s) {
  auto first = s.find_first_not_of(" \t\r\n");
  return first != std::string::npos && (s[first] == '{' || s[first] == '[');
}

Document parse_json(const std::string& what, const std::string& text) {
  try {
    return Document::from_json(text);
  } catch (const Error& e) {
    std::string why = e.what();
    if (why.rfind("invalid JSON", 0) == 0) why = why.substr(13);  // "invalid JSON at position ..." -> "at ..."
    throw UsageError(fmt::format("{} is not valid JSON {}", what, why));
  }
}

// Where a verb works, and its JSON arguments, from its positional arguments.
struct Target {
  std::string db, coll;
  std::vector<std::string> own;   // the verb's own words (distinct FIELD)
  std::vector<std::string> json;  // the JSON arguments, in order
};

Target split_arguments(const Verb& verb, const std::vector<std::string>& args, const std::string& db_default,
                       const std::string& coll_default) {
  Target t{db_default, coll_default, {}, {}};
  std::size_t words = 0;
  while (words < args.size() && !looks_like_json(args[words])) ++words;
  std::vector<std::string> names(args.begin(), args.begin() + static_cast<std::ptrdiff_t>(words));
  const std::size_t own = static_cast<std::size_t>(verb.words);
  auto usage = [&](const std::string& problem) {
    return UsageError(
        fmt::format("{}: {}; usage: iotbridge-db {} {} (DB and COLLECTION default to {} {}, or "
                    "--db/--collection, $IOTBRIDGE_DB/$IOTBRIDGE_COLLECTION)",
                    verb.name, problem, verb.name, verb.usage, kDefaultDatabase, kDefaultCollection));
  };
  if (names.size() == own + 2) {
    t.db = names[0];
    t.coll = names[1];
    t.own.assign(names.begin() + 2, names.end());
  } else if (names.size() == own) {
    t.own = names;
  } else if (names.size() == own + 1 && own == 0) {
    throw usage(
        fmt::format("'{}' is neither JSON nor a database and a collection (give both names, or neither)", names[0]));
  } else {
    throw usage(fmt::format("{} word(s) before the JSON arguments, where {} (or {} with DB COLLECTION) belong",
                            names.size(), own, own + 2));
  }
  for (std::size_t i = words; i < args.size(); ++i) {
    if (!looks_like_json(args[i]))
      throw usage(fmt::format("'{}' comes after a JSON argument but is not JSON itself", args[i]));
    t.json.push_back(args[i]);
  }
  if (static_cast<int>(t.json.size()) < verb.min_json) throw usage("a JSON argument is missing");
  if (verb.max_json >= 0 && static_cast<int>(t.json.size()) > verb.max_json)
    throw usage(fmt::format("{} JSON arguments, at most {} expected", t.json.size(), verb.max_json));
  return t;
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
  // The store, database and collection may come before or after the verb.
  app.fallthrough();
  cli::DbFlags flags;
  app.add_option("--store", flags.store_uri, "Store URI (default: $IOTBRIDGE_STORE)");
  app.add_option("--db", flags.database, "Database (default: $IOTBRIDGE_DB, else iot_service)");
  app.add_option("--collection", flags.collection, "Collection (default: $IOTBRIDGE_COLLECTION, else sensors)");
  app.require_subcommand(1);

  std::vector<std::string> args;
  std::string filter_flag, projection_text, sort_text, keys_text, index_name, fields_text;
  std::int64_t limit = 0, skip = 0, size = 0, max = 0;
  bool pretty = false, many = false, one = false, upsert = false, capped = false, unique = false, csv = false;

  auto add_args = [&](CLI::App* sub, const char* what) {
    sub->add_option("args", args, "Words and JSON documents, in this order")->type_name(what);
  };
  auto add_query = [&](CLI::App* sub) {
    sub->add_option("--filter", filter_flag, "Filter, a JSON document");
    sub->add_option("--projection,-p", projection_text, "Projection, e.g. '{\"_id\": 0, \"value\": 1}'");
    sub->add_option("--sort,-s", sort_text, "Sort, e.g. '{\"reg_date\": -1}'");
    sub->add_option("--limit,-n", limit, "At most this many documents (0: all)")->check(CLI::NonNegativeNumber);
    sub->add_option("--skip", skip, "Skip this many documents first")->check(CLI::NonNegativeNumber);
  };

  app.add_subcommand("dbs", "List databases");
  add_args(app.add_subcommand("collections", "List the collections of a database"), "[DB]");
  auto* find = app.add_subcommand("find", "Print matching documents, one JSON document per line");
  add_args(find, "[DB COLLECTION] [FILTER]");
  add_query(find);
  find->add_flag("--pretty", pretty, "Indented JSON");
  auto* findone = app.add_subcommand("findone", "Print the first matching document, or null");
  add_args(findone, "[DB COLLECTION] [FILTER]");
  findone->add_option("--filter", filter_flag, "Filter, a JSON document");
  findone->add_option("--projection,-p", projection_text, "Projection, e.g. '{\"_id\": 0, \"value\": 1}'");
  findone->add_option("--sort,-s", sort_text,
                      "Sort: the first in this order, e.g. '{\"reg_date\": -1}' for the newest");
  findone->add_flag("--pretty", pretty, "Indented JSON");
  add_args(app.add_subcommand("count", "Count matching documents"), "[DB COLLECTION] [FILTER]");
  add_args(app.add_subcommand("distinct", "Print the distinct values of a field among the matches, one per line"),
           "[DB COLLECTION] FIELD [FILTER], e.g. topic '{\"value\": {\"$gt\": 30}}'");
  add_args(app.add_subcommand("insert", "Insert JSON documents (arguments, or one per line on stdin)"),
           "[DB COLLECTION] [DOC ...]");
  auto* update = app.add_subcommand("update", "Update matching documents ($set, $unset, $inc)");
  add_args(update, "[DB COLLECTION] FILTER UPDATE, e.g. '{\"name\": \"x\"}' '{\"$set\": {\"name\": \"y\"}}'");
  update->add_flag("--many", many, "Every match (default: the first)");
  update->add_flag("--upsert", upsert, "Insert when nothing matches");
  auto* replace = app.add_subcommand("replace", "Replace the first match by a whole document (keeping its _id)");
  add_args(replace, "[DB COLLECTION] FILTER DOC, e.g. '{\"name\": \"x\"}' '{\"name\": \"y\", \"n\": 1}'");
  replace->add_flag("--upsert", upsert, "Insert DOC when nothing matches");
  auto* del = app.add_subcommand("delete", "Delete matching documents (every match; --one for the first)");
  add_args(del, "[DB COLLECTION] FILTER ('{}' deletes everything)");
  del->add_flag("--one", one, "Only the first match");
  auto* create = app.add_subcommand("create", "Create a collection");
  add_args(create, "[DB COLLECTION]");
  create->add_flag("--capped", capped, "Capped: keep only the newest documents");
  create->add_option("--size", size, "Capped: maximum total size in bytes")->check(CLI::PositiveNumber);
  create->add_option("--max", max, "Capped: maximum number of documents")->check(CLI::PositiveNumber);
  add_args(app.add_subcommand("drop", "Drop a collection, or a whole database when no collection is given"),
           "DB [COLLECTION]");
  auto* index = app.add_subcommand("index", "Create an index ('{\"topic\": 1, \"reg_date\": -1}'); list without keys");
  add_args(index, "[DB COLLECTION] [KEYS]");
  index->add_flag("--unique", unique, "Unique index");
  index->add_option("--name", index_name, "Index name");
  auto* aggregate = app.add_subcommand("aggregate", "Run an aggregation pipeline; print the results, one per line");
  add_args(aggregate,
           "[DB COLLECTION] PIPELINE, e.g. '[{\"$group\": {\"_id\": \"$topic\", \"avg\": {\"$avg\": \"$value\"}}}]'");
  aggregate->add_flag("--pretty", pretty, "Indented JSON");
  auto* tail = app.add_subcommand("tail", "Print the newest documents; with -f, new ones as they are stored");
  add_args(tail, "[DB COLLECTION] [FILTER]");
  std::int64_t tail_lines = 10;
  bool follow = false;
  tail->add_option("-n,--lines", tail_lines, "The newest N documents first (default 10)")
      ->check(CLI::NonNegativeNumber);
  tail->add_flag("-f,--follow", follow, "Keep printing new documents until Ctrl-C / SIGTERM");
  tail->add_flag("--pretty", pretty, "Indented JSON");
  auto* exp = app.add_subcommand("export", "Print matching documents as CSV (--csv) or JSON lines");
  add_args(exp, "[DB COLLECTION] [FILTER]");
  add_query(exp);
  exp->add_flag("--csv", csv, "CSV with a header row");
  exp->add_option("--fields,-f", fields_text, "CSV columns, comma separated (default: the first document's fields)");
  add_args(app.add_subcommand("stats", "Document count, size, capped limits and index count of a collection"),
           "[DB COLLECTION]");
  // Verbs of other files register here, with one call each taking `app` and
  // `flags` (cli::resolve(flags) gives their store, database and collection);
  // they run from their CLI11 callbacks during parsing.
  view::add_view_commands(app, {flags.store_uri, flags.database, flags.collection});  // plot, serve
  cli::add_quarantine_commands(app, flags);  // quarantine list, count, replay, drop

  // An unknown verb gets its own message (CLI11 would only say that a
  // subcommand is required).
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--store" || arg == "--db" || arg == "--collection") {
      ++i;
      continue;
    }
    if (arg.empty() || arg[0] == '-') continue;
    auto registered = app.get_subcommands([&](const CLI::App* sub) { return sub->get_name() == arg; });
    if (registered.empty()) {
      std::cerr << "iotbridge-db: unknown verb '" << arg << "'; verbs: " << verb_list(app)
                << " (iotbridge-db --help)\n";
      return kUsage;
    }
    break;
  }

  // CLI11 reads an argument in [...] as a list and splits it at its commas: a
  // trailing space keeps a JSON array (a pipeline) whole.
  std::vector<std::string> argv_reversed;
  for (int i = argc - 1; i >= 1; --i) {
    std::string arg = argv[i];
    if (!arg.empty() && arg.front() == '[' && arg.back() == ']') arg += ' ';
    argv_reversed.push_back(std::move(arg));
  }
  try {
    app.parse(argv_reversed);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // a verb that ran in its callback (plot, serve) and printed its outcome
  } catch (const CLI::ExtrasError& e) {
    if (app.get_subcommands().empty() && argc > 1) {
      std::cerr << "iotbridge-db: unknown verb: " << e.what() << "\nverbs: " << verb_list(app)
                << " (iotbridge-db --help)\n";
      return kUsage;
    }
    std::cerr << "iotbridge-db: " << e.what() << " (iotbridge-db --help)\n";
    return kUsage;
  } catch (const CLI::ParseError& e) {
    std::cerr << "iotbridge-db: " << e.what() << " (iotbridge-db --help)\n";
    return kUsage;
  } catch (const std::exception& e) {  // thrown by a subcommand's callback
    std::cerr << "iotbridge-db: " << e.what() << "\n";
    return kFailure;
  }

  const std::string verb_name = app.get_subcommands().front()->get_name();
  const Verb* verb = find_verb(verb_name);
  if (!verb) return 0;  // a subcommand registered with a callback ran it during parse
  auto is = [&](const char* name) { return verb_name == name; };

  try {
    cli::DbFlags where;
    try {
      where = cli::resolve(flags);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    if (capped && size <= 0) throw UsageError("create --capped needs --size BYTES");
    if (!capped && (size || max)) throw UsageError("--size and --max apply to --capped collections");

    const std::string& db_default = where.database;
    const std::string& coll_default = where.collection;
    Target t;
    if (is("dbs")) {
      if (!args.empty()) throw UsageError("dbs takes no arguments");
    } else if (is("collections")) {
      if (args.size() > 1) throw UsageError("collections takes one database name at most");
      t.db = args.empty() ? db_default : args[0];
    } else if (is("drop")) {
      // Destructive: the names are never defaulted.
      if (args.empty() || args.size() > 2 || looks_like_json(args[0]))
        throw UsageError("drop needs the names: iotbridge-db drop DB [COLLECTION] (no COLLECTION: the whole database)");
      t.db = args[0];
      if (args.size() == 2) t.coll = args[1];
    } else {
      t = split_arguments(*verb, args, db_default, coll_default);
    }

    const std::string filter_text =
        !filter_flag.empty() ? filter_flag : (!t.json.empty() && !is("insert") && !is("aggregate") ? t.json[0] : "{}");
    Document filter = parse_json("the filter", filter_text);
    FindOptions options;
    if (!projection_text.empty()) options.projection = parse_json("--projection", projection_text);
    if (!sort_text.empty()) options.sort = parse_json("--sort", sort_text);
    options.limit = limit;
    options.skip = skip;

    OpenOptions open_options;
    open_options.read_only = verb->read_only || (is("index") && t.json.empty());
    std::unique_ptr<DocumentStore> store;
    try {
      store = open_store(where.store_uri, open_options);
    } catch (const Error& e) {
      if (e.category() == ErrorCategory::config) throw UsageError(e.what());
      throw;
    }

    if (is("dbs")) {
      for (const auto& name : store->list_databases()) fmt::print("{}\n", name);
    } else if (is("collections")) {
      for (const auto& name : store->list_collections(t.db)) fmt::print("{}\n", name);
    } else if (is("find") || (is("export") && !csv)) {
      auto cursor = store->collection(t.db, t.coll)->find(filter, options);
      while (auto d = cursor->next()) fmt::print("{}\n", pretty ? d->to_pretty_json() : d->to_json());
    } else if (is("export")) {
      auto cursor = store->collection(t.db, t.coll)->find(filter, options);
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
    } else if (is("findone")) {
      auto d = store->collection(t.db, t.coll)->find_one(filter, options);
      fmt::print("{}\n", !d ? std::string("null") : pretty ? d->to_pretty_json() : d->to_json());
    } else if (is("distinct")) {
      for (const auto& v : store->collection(t.db, t.coll)->distinct(t.own.at(0), filter))
        fmt::print("{}\n", v.to_json());
    } else if (is("aggregate")) {
      std::vector<Document> pipeline;
      try {
        pipeline = pipeline_from_json(t.json[0]);
      } catch (const Error& e) {
        std::string why = e.what();
        if (why.rfind("invalid JSON", 0) == 0) why = "is not valid JSON " + why.substr(13);
        throw UsageError("the pipeline " + why);
      }
      auto cursor = store->collection(t.db, t.coll)->aggregate(pipeline);
      while (auto d = cursor->next()) fmt::print("{}\n", pretty ? d->to_pretty_json() : d->to_json());
    } else if (is("tail")) {
      std::optional<ShutdownSignal> shutdown;
      if (follow) shutdown.emplace();  // Ctrl-C / SIGTERM end the follow, exit 0
      TailOptions to;
      to.last = tail_lines;
      to.follow = follow;
      store->collection(t.db, t.coll)
          ->tail(
              filter, to,
              [&](const Document& d) {
                fmt::print("{}\n", pretty ? d.to_pretty_json() : d.to_json());
                std::fflush(stdout);  // a pipe reader sees each document as it comes
              },
              shutdown ? shutdown->token() : std::stop_token());
    } else if (is("count")) {
      fmt::print("{}\n", store->collection(t.db, t.coll)->count_documents(filter));
    } else if (is("insert")) {
      std::vector<Document> docs;
      for (const auto& text : t.json) docs.push_back(parse_json("a document", text));
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
      auto result = store->collection(t.db, t.coll)->insert_many(std::move(docs));
      for (const auto& id : result.inserted_ids) fmt::print("{}\n", id.to_json());
    } else if (is("update")) {
      Document update_doc = parse_json("the update", t.json[1]);
      UpdateOptions uo;
      uo.upsert = upsert;
      auto c = store->collection(t.db, t.coll);
      auto r = many ? c->update_many(filter, update_doc, uo) : c->update_one(filter, update_doc, uo);
      fmt::print("matched {}, modified {}{}\n", r.matched, r.modified,
                 r.upserted_id ? ", upserted " + r.upserted_id->to_json() : std::string());
    } else if (is("replace")) {
      Document replacement = parse_json("the replacement", t.json[1]);
      UpdateOptions uo;
      uo.upsert = upsert;
      auto r = store->collection(t.db, t.coll)->replace_one(filter, std::move(replacement), uo);
      fmt::print("matched {}, modified {}{}\n", r.matched, r.modified,
                 r.upserted_id ? ", upserted " + r.upserted_id->to_json() : std::string());
    } else if (is("delete")) {
      auto c = store->collection(t.db, t.coll);
      fmt::print("deleted {}\n", one ? c->delete_one(filter) : c->delete_many(filter));
    } else if (is("create")) {
      CollectionOptions co;
      co.capped = capped;
      co.size_bytes = size;
      co.max_documents = max;
      store->create_collection(t.db, t.coll, co);
      fmt::print("created {}.{}\n", t.db, t.coll);
    } else if (is("drop")) {
      if (t.coll.empty()) {
        store->drop_database(t.db);
        fmt::print("dropped database {}\n", t.db);
      } else if (store->drop_collection(t.db, t.coll)) {
        fmt::print("dropped {}.{}\n", t.db, t.coll);
      } else {
        std::cerr << fmt::format("iotbridge-db: no collection {}.{} to drop\n", t.db, t.coll);
        return kFailure;
      }
    } else if (is("index")) {
      auto c = store->collection(t.db, t.coll);
      if (t.json.empty()) {
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
        for (const auto& [path, dir] : parse_json("the index keys", t.json[0]).fields()) {
          if (!dir.is_number() || (dir.as_double() != 1 && dir.as_double() != -1))
            throw UsageError("index direction for '" + path + "' must be 1 or -1");
          spec.keys.emplace_back(path, dir.as_double() > 0 ? 1 : -1);
        }
        spec.unique = unique;
        spec.name = index_name;
        fmt::print("{}\n", c->create_index(spec));
      }
    } else if (is("stats")) {
      auto s = store->collection_stats(t.db, t.coll);
      Document d;
      d.append("ns", t.db + "." + t.coll)
          .append("count", static_cast<long long>(s.count))
          .append("size", static_cast<long long>(s.size_bytes))
          .append("capped", s.capped)
          .append("nindexes", static_cast<long long>(s.index_count));
      if (s.capped)
        d.append("maxSize", static_cast<long long>(s.max_size_bytes))
            .append("max", static_cast<long long>(s.max_documents));
      // Retention: each TTL index ("documents expire 30d after reg_date").
      for (const auto& info : store->collection(t.db, t.coll)->list_indexes())
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
