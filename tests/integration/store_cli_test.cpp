// iotbridge-db, run as a program against a SQLite file and the MongoDB-compatible
// server: the same verbs print the same output on both; errors exit 2 (usage)
// or 1 (failure) with a sentence a person can act on.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>

#include "cli_helpers.hpp"
#include "iotbridge/store/open.hpp"
#include "servers.hpp"

using namespace iotbridge;
using iotbridge::store::Document;
using iotbridge::store::open_store;
using iotbridge::test::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kCli = IOTBRIDGE_BINARY_DIR "/cli/iotbridge-db";

struct Run {
  int code;
  std::string out;  // stdout and stderr together
};

// Runs the CLI with stderr folded into stdout; `input` is fed on stdin.
Run cli(const std::vector<std::string>& args, const std::string& input = "") {
  std::vector<std::string> argv = {
      "/bin/sh", "-c", input.empty() ? "exec \"$0\" \"$@\" 2>&1" : "printf '%s' \"$IOTB_INPUT\" | \"$0\" \"$@\" 2>&1",
      kCli};
  argv.insert(argv.end(), args.begin(), args.end());
  if (!input.empty()) ::setenv("IOTB_INPUT", input.c_str(), 1);
  Run r;
  r.code = iotbridge::test::run_command(argv, &r.out);
  ::unsetenv("IOTB_INPUT");
  return r;
}

struct Target {
  std::string kind;
  std::unique_ptr<TempDir> dir;
  std::string uri, db;
  explicit Target(const std::string& k) : kind(k) {
    if (kind == "sqlite") {
      dir = std::make_unique<TempDir>("iotbridge-cli");
      uri = "sqlite:" + (dir->path() / "cli.db").string();
      db = "testDB";
    } else {
      uri = iotbridge::test::test_mongo_uri();
      db = iotbridge::test::unique_db_name("iotb_cli");
    }
  }
  ~Target() {
    if (kind == "mongodb") cli({"--store", uri, "drop", db});
  }
  Run operator()(std::vector<std::string> args, const std::string& input = "") const {
    args.insert(args.begin(), {"--store", uri});
    return cli(args, input);
  }
};

}  // namespace

TEST_CASE("iotbridge-db: the containerBox sequence on every backend", "[store][cli]") {
  REQUIRE(::access(kCli.c_str(), X_OK) == 0);
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "mongodb");
  if (kind == "mongodb") IOTBRIDGE_REQUIRE_MONGO();
  INFO("backend: " << kind);
  Target t(kind);

  auto ins = t({"insert", t.db, "containerBox", R"({"name": "bear", "weight": 60, "category": "animal"})",
                R"({"name": "bear", "weight": 10, "category": "animal"})"});
  CHECK(ins.code == 0);
  CHECK_THAT(ins.out, Catch::Contains("$oid"));
  auto ins2 = t({"insert", t.db, "containerBox"},
                "{\"name\": \"cat\", \"weight\": 2, \"category\": \"animal\"}\n"
                "{\"name\": \"phone\", \"weight\": 1, \"category\": \"electronic\"}\n");
  CHECK(ins2.code == 0);
  CHECK(t({"count", t.db, "containerBox"}).out == "4\n");
  CHECK(t({"count", t.db, "containerBox", R"({"category": "animal"})"}).out == "3\n");

  auto found = t({"find", t.db, "containerBox", R"({"category": "animal", "name": "bear"})", "--projection",
                  R"({"_id": 0, "weight": 1})"});
  CHECK(found.code == 0);
  CHECK(found.out == "{ \"weight\" : 60 }\n{ \"weight\" : 10 }\n");
  auto sorted =
      t({"find", t.db, "containerBox", "--sort", R"({"weight": 1})", "--limit", "2", "-p", R"({"_id": 0, "name": 1})"});
  CHECK(sorted.out == "{ \"name\" : \"phone\" }\n{ \"name\" : \"cat\" }\n");
  auto pretty = t({"find", t.db, "containerBox", R"({"name": "phone"})", "--pretty", "-p", R"({"_id": 0})"});
  CHECK(pretty.out == "{\n  \"name\": \"phone\",\n  \"weight\": 1,\n  \"category\": \"electronic\"\n}\n");

  auto up = t({"update", t.db, "containerBox", R"({"name": "bear"})",
               R"({"$set": {"name": "teddy bear", "category": "tody"}})", "--many"});
  CHECK(up.code == 0);
  CHECK(up.out == "matched 2, modified 2\n");
  auto del = t({"delete", t.db, "containerBox", R"({"category": "animal"})"});
  CHECK(del.out == "deleted 1\n");

  auto csv = t({"export", t.db, "containerBox", "--csv", "--fields", "name,weight", "--sort", R"({"weight": -1})"});
  CHECK(csv.code == 0);
  CHECK(csv.out == "name,weight\nteddy bear,60\nteddy bear,10\nphone,1\n");

  CHECK(t({"create", t.db, "log", "--capped", "--size", "100000", "--max", "10"}).code == 0);
  auto stats = t({"stats", t.db, "log"});
  CHECK(stats.code == 0);
  CHECK_THAT(stats.out, Catch::Contains("\"capped\": true") && Catch::Contains("\"max\": 10"));

  CHECK(t({"index", t.db, "containerBox", R"({"name": 1, "weight": -1})"}).out == "name_1_weight_-1\n");
  CHECK(t({"index", t.db, "containerBox"}).out ==
        "_id_ { \"_id\" : 1 } unique\nname_1_weight_-1 { \"name\" : 1, \"weight\" : -1 }\n");

  CHECK(t({"collections", t.db}).out == "containerBox\nlog\n");
  CHECK_THAT(t({"dbs"}).out, Catch::Contains(t.db + "\n"));
  CHECK(t({"drop", t.db, "log"}).out == "dropped " + t.db + ".log\n");
  auto again = t({"drop", t.db, "log"});
  CHECK(again.code == 1);
  CHECK_THAT(again.out, Catch::Contains("no collection"));

  // The remaining flags of find, update, delete and export.
  auto skipped = t({"find", t.db, "containerBox", "--sort", R"({"weight": -1})", "--skip", "1", "--limit", "1", "-p",
                    R"({"_id": 0, "weight": 1})"});
  CHECK(skipped.code == 0);
  CHECK(skipped.out == "{ \"weight\" : 10 }\n");
  auto upserted = t({"update", t.db, "containerBox", R"({"name": "lamp"})", R"({"$inc": {"weight": 3}})", "--upsert"});
  CHECK(upserted.code == 0);
  CHECK_THAT(upserted.out, Catch::StartsWith("matched 0, modified 0, upserted { \"$oid\" : "));
  auto lines = t({"export", t.db, "containerBox", R"({"name": "lamp"})", "-p", R"({"_id": 0})"});
  CHECK(lines.code == 0);
  CHECK(lines.out == "{ \"name\" : \"lamp\", \"weight\" : 3 }\n");
  auto one = t({"delete", t.db, "containerBox", R"({"name": "teddy bear"})", "--one"});
  CHECK(one.out == "deleted 1\n");
  CHECK(t({"count", t.db, "containerBox"}).out == "3\n");
  auto dropped = t({"drop", t.db});
  CHECK(dropped.code == 0);
  CHECK(dropped.out == "dropped database " + t.db + "\n");
  CHECK(t({"collections", t.db}).out.empty());
  CHECK_THAT(t({"dbs"}).out, !Catch::Contains(t.db + "\n"));
}

TEST_CASE("iotbridge-db: usage errors exit 2, failures exit 1, with a clear message", "[store][cli]") {
  REQUIRE(::access(kCli.c_str(), X_OK) == 0);
  TempDir dir;
  std::string store = "sqlite:" + (dir / "e.db").string();

  auto unknown = cli({"--store", store, "frobnicate"});
  CHECK(unknown.code == 2);
  CHECK_THAT(unknown.out, Catch::Contains("unknown verb") && Catch::Contains("find"));

  auto bad_json = cli({"--store", store, "find", "db", "c", R"({"a": })"});
  CHECK(bad_json.code == 2);
  CHECK_THAT(bad_json.out, Catch::Contains("the filter is not valid JSON") && Catch::Contains("position"));

  auto bad_stdin = cli({"--store", store, "insert", "db", "c"}, "{\"ok\": 1}\n{oops\n");
  CHECK(bad_stdin.code == 2);
  CHECK_THAT(bad_stdin.out, Catch::Contains("stdin line 2"));

  ::unsetenv("IOTBRIDGE_STORE");
  auto no_store = cli({"count", "db", "c"});
  CHECK(no_store.code == 2);
  CHECK_THAT(no_store.out, Catch::Contains("--store") && Catch::Contains("IOTBRIDGE_STORE"));

  auto bad_uri = cli({"--store", "redis://x", "dbs"});
  CHECK(bad_uri.code == 2);
  CHECK_THAT(bad_uri.out, Catch::Contains("unsupported store URI scheme 'redis'"));

  auto unsupported = cli({"--store", store, "find", "db", "c", R"({"a": {"$size": 2}})"});
  CHECK(unsupported.code == 1);
  CHECK_THAT(unsupported.out, Catch::Contains("unsupported query operator $size"));

  auto missing_arg = cli({"--store", store, "update", "db", "c"});
  CHECK(missing_arg.code == 2);

  auto no_size = cli({"--store", store, "create", "db", "c", "--capped"});
  CHECK(no_size.code == 2);
  CHECK_THAT(no_size.out, Catch::Contains("--size"));

  CHECK(cli({"--store", store, "insert", "db", "c", R"({"_id": 1})"}).code == 0);
  auto dup = cli({"--store", store, "insert", "db", "c", R"({"_id": 2})", R"({"_id": 1})"});
  CHECK(dup.code == 1);
  CHECK_THAT(dup.out, Catch::Contains("document 1") && Catch::Contains("duplicate key"));

  int port = iotbridge::test::free_port();
  auto down = cli(
      {"--store", "mongodb://u:hunter2@127.0.0.1:" + std::to_string(port) + "/?serverSelectionTimeoutMS=300", "dbs"});
  CHECK(down.code == 1);
  CHECK_THAT(down.out, Catch::Contains("no MongoDB server reachable") && !Catch::Contains("hunter2"));

  ::setenv("IOTBRIDGE_STORE", store.c_str(), 1);
  auto from_env = cli({"count", "db", "c"});
  ::unsetenv("IOTBRIDGE_STORE");
  CHECK(from_env.code == 0);
  CHECK(from_env.out == "2\n");  // ordered: {_id: 2} was stored before the duplicate
}

TEST_CASE("iotbridge-db: database and collection default to iot_service / sensors", "[store][cli]") {
  REQUIRE(::access(kCli.c_str(), X_OK) == 0);
  TempDir dir;
  std::string store = "sqlite:" + (dir / "d.db").string();
  ::unsetenv("IOTBRIDGE_DB");
  ::unsetenv("IOTBRIDGE_COLLECTION");
  REQUIRE(cli({"--store", store, "insert", R"({"topic": "a", "value": 1})", R"({"topic": "b", "value": 2})"}).code ==
          0);
  // The positional form names the same collection.
  CHECK(cli({"--store", store, "count", "iot_service", "sensors"}).out == "2\n");
  CHECK(cli({"--store", store, "count", R"({"value": {"$gt": 1}})"}).out == "1\n");
  CHECK(cli({"--store", store, "find", R"({"value": 2})", "-p", R"({"_id": 0})"}).out ==
        "{ \"topic\" : \"b\", \"value\" : 2 }\n");
  // --db / --collection, before or after the verb.
  CHECK(cli({"--store", store, "insert", "--db", "other", "--collection", "log", R"({"x": 1})"}).code == 0);
  CHECK(cli({"--db", "other", "--store", store, "count", "--collection", "log"}).out == "1\n");
  CHECK(cli({"--store", store, "collections", "other"}).out == "log\n");
  CHECK(cli({"--store", store, "collections"}).out == "sensors\n");
  // The environment, below the flags.
  ::setenv("IOTBRIDGE_DB", "other", 1);
  ::setenv("IOTBRIDGE_COLLECTION", "log", 1);
  CHECK(cli({"--store", store, "count"}).out == "1\n");
  CHECK(cli({"--store", store, "count", "--collection", "sensors", "--db", "iot_service"}).out == "2\n");
  ::unsetenv("IOTBRIDGE_DB");
  ::unsetenv("IOTBRIDGE_COLLECTION");

  auto half = cli({"--store", store, "find", "iot_service"});
  CHECK(half.code == 2);
  CHECK_THAT(half.out, Catch::Contains("'iot_service' is neither JSON nor a database and a collection") &&
                           Catch::Contains("--db"));
  auto drop = cli({"--store", store, "drop"});
  CHECK(drop.code == 2);
  CHECK_THAT(drop.out, Catch::Contains("drop needs the names"));
}

TEST_CASE("iotbridge-db: reading verbs never create a file, and each path problem has its own message",
          "[store][cli]") {
  REQUIRE(::access(kCli.c_str(), X_OK) == 0);
  TempDir dir;
  const auto missing = dir / "nosuch.db";
  for (const std::string verb : {"count", "find", "dbs", "collections", "stats", "export", "index"}) {
    INFO(verb);
    auto r = cli({"--store", "sqlite:" + missing.string(), verb});
    CHECK(r.code == 1);
    CHECK_THAT(r.out, Catch::Contains("no SQLite store at '" + missing.string() + "'") &&
                          Catch::Contains("does not exist") && Catch::Contains("insert"));
    CHECK(!fs::exists(missing));
  }
  auto no_folder = cli({"--store", "sqlite:" + (dir / "nofolder" / "x.db").string(), "insert", R"({"a": 1})"});
  CHECK(no_folder.code == 1);
  CHECK_THAT(no_folder.out,
             Catch::Contains("the folder '" + (dir / "nofolder").string() + "'") && Catch::Contains("mkdir -p"));
  CHECK(!fs::exists(dir / "nofolder"));
  auto folder = cli({"--store", "sqlite:" + dir.path().string(), "count"});
  CHECK(folder.code == 1);
  CHECK_THAT(folder.out, Catch::Contains("is a folder, not an SQLite file"));
  iotbridge::test::spit(dir / "empty.db", "");
  auto foreign = cli({"--store", "sqlite:" + (dir / "empty.db").string(), "count"});
  CHECK(foreign.code == 1);
  CHECK_THAT(foreign.out, Catch::Contains("not an iotbridge store"));

  // A write creates the file; reads then work on it.
  CHECK(cli({"--store", "sqlite:" + missing.string(), "insert", R"({"a": 1})"}).code == 0);
  CHECK(cli({"--store", "sqlite:" + missing.string(), "count"}).out == "1\n");
}

TEST_CASE("iotbridge-db: a malformed mongodb:// URI is refused before any connection", "[store][cli]") {
  REQUIRE(::access(kCli.c_str(), X_OK) == 0);
  for (const std::string uri : {"mongodb://[bad", "mongodb://bad host/", "mongodb://h:notaport/", "mongodb://"}) {
    INFO(uri);
    auto r = cli({"--store", uri, "count"});
    CHECK(r.code == 2);
    CHECK_THAT(r.out, Catch::Contains("bad MongoDB URI") && !Catch::Contains("no MongoDB server reachable"));
  }
}

TEST_CASE("iotbridge-db: JSON mistakes are explained, and no error names a verb that does not exist", "[store][cli]") {
  REQUIRE(::access(kCli.c_str(), X_OK) == 0);
  TempDir dir;
  std::string store = "sqlite:" + (dir / "j.db").string();
  REQUIRE(cli({"--store", store, "insert", R"({"value": 1})"}).code == 0);
  auto unquoted = cli({"--store", store, "find", "{value: {$gt: 1}}"});
  CHECK(unquoted.code == 2);
  CHECK_THAT(unquoted.out,
             Catch::Contains("position 1") && Catch::Contains(R"(keys need double quotes: {"value": ...})"));
  auto single = cli({"--store", store, "find", "{'value': 1}"});
  CHECK_THAT(single.out, Catch::Contains("single quotes"));
  auto trailing = cli({"--store", store, "find", R"({"value": 1,})"});
  CHECK_THAT(trailing.out, Catch::Contains("position 12") && Catch::Contains("trailing comma"));

  // Every verb an error message suggests is one iotbridge-db has.
  auto replacement = cli({"--store", store, "update", "{}", R"({"value": 2})"});
  CHECK(replacement.code == 1);
  CHECK_THAT(replacement.out, Catch::Contains("iotbridge-db replace"));
  auto help = cli({"--help"});
  CHECK_THAT(help.out, Catch::Contains("\n  replace "));
}

TEST_CASE("iotbridge-db: findone, distinct and replace on every backend", "[store][cli]") {
  REQUIRE(::access(kCli.c_str(), X_OK) == 0);
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "mongodb");
  if (kind == "mongodb") IOTBRIDGE_REQUIRE_MONGO();
  INFO("backend: " << kind);
  Target t(kind);
  auto on = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--db", t.db});
    return t(args);
  };
  REQUIRE(on({"insert", R"({"topic": "iot/a", "value": 21.5, "tags": ["x", "y"]})",
              R"({"topic": "iot/b", "value": 30, "tags": ["y"]})", R"({"topic": "iot/a", "value": 22})"})
              .code == 0);

  CHECK(on({"findone", R"({"topic": "iot/a"})", "-p", R"({"_id": 0, "value": 1})"}).out == "{ \"value\" : 21.5 }\n");
  CHECK(on({"findone", "-s", R"({"value": -1})", "-p", R"({"_id": 0, "topic": 1})"}).out ==
        "{ \"topic\" : \"iot/b\" }\n");
  auto none = on({"findone", R"({"topic": "nope"})"});
  CHECK(none.code == 0);
  CHECK(none.out == "null\n");

  CHECK(on({"distinct", "topic"}).out == "\"iot/a\"\n\"iot/b\"\n");
  CHECK(on({"distinct", "topic", R"({"value": {"$gt": 25}})"}).out == "\"iot/b\"\n");
  CHECK(on({"distinct", "tags"}).out == "\"x\"\n\"y\"\n");
  CHECK(t({"distinct", t.db, "sensors", "value"}).out == "21.5\n22\n30\n");
  auto no_field = on({"distinct"});
  CHECK(no_field.code == 2);
  CHECK_THAT(no_field.out, Catch::Contains("FIELD"));

  auto replaced = on({"replace", R"({"topic": "iot/b"})", R"({"topic": "iot/b", "value": 31})"});
  CHECK(replaced.code == 0);
  CHECK(replaced.out == "matched 1, modified 1\n");
  CHECK(on({"find", R"({"topic": "iot/b"})", "-p", R"({"_id": 0})"}).out ==
        "{ \"topic\" : \"iot/b\", \"value\" : 31 }\n");
  auto upserted = on({"replace", R"({"topic": "iot/c"})", R"({"topic": "iot/c", "value": 1})", "--upsert"});
  CHECK(upserted.code == 0);
  CHECK_THAT(upserted.out, Catch::StartsWith("matched 0, modified 0, upserted "));
  CHECK(on({"count"}).out == "4\n");
  auto with_ops = on({"replace", "{}", R"({"$set": {"value": 1}})"});
  CHECK(with_ops.code == 1);
  CHECK_THAT(with_ops.out, Catch::Contains("iotbridge-db update"));
}

TEST_CASE("iotbridge-db: aggregate on every backend", "[store][cli]") {
  REQUIRE(::access(kCli.c_str(), X_OK) == 0);
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "mongodb");
  if (kind == "mongodb") IOTBRIDGE_REQUIRE_MONGO();
  INFO("backend: " << kind);
  Target t(kind);
  auto on = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--db", t.db});
    return t(args);
  };
  REQUIRE(on({"insert", R"({"topic": "iot/a", "value": 1})", R"({"topic": "iot/b", "value": 2})",
              R"({"topic": "iot/a", "value": 3})"})
              .code == 0);
  // A pipeline in [...] stays whole (CLI11 would split a list at its commas).
  auto grouped =
      on({"aggregate", R"([{"$group": {"_id": "$topic", "total": {"$sum": "$value"}}}, {"$sort": {"_id": 1}}])"});
  INFO(grouped.out);
  CHECK(grouped.code == 0);
  CHECK(grouped.out == "{ \"_id\" : \"iot/a\", \"total\" : 4 }\n{ \"_id\" : \"iot/b\", \"total\" : 2 }\n");
  CHECK(t({"aggregate", t.db, "sensors", R"([{"$match": {"value": {"$gt": 1}}}, {"$count": "n"}])"}).out ==
        "{ \"n\" : 2 }\n");
  auto pretty = on({"aggregate", R"([{"$match": {"value": 2}}, {"$project": {"_id": 0, "topic": 1}}])", "--pretty"});
  CHECK(pretty.out == "{\n  \"topic\": \"iot/b\"\n}\n");
  auto bad = on({"aggregate", R"([{"$match": {value: 1}}])"});
  CHECK(bad.code == 2);
  CHECK_THAT(bad.out, Catch::Contains("the pipeline is not valid JSON at position") &&
                          Catch::Contains("keys need double quotes"));
  auto missing = on({"aggregate"});
  CHECK(missing.code == 2);
  CHECK_THAT(missing.out, Catch::Contains("PIPELINE"));
}

TEST_CASE("iotbridge-db: tail prints the newest, and -f follows new documents until SIGTERM", "[store][cli][tail]") {
  REQUIRE(::access(kCli.c_str(), X_OK) == 0);
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "mongodb");
  if (kind == "mongodb") IOTBRIDGE_REQUIRE_MONGO();
  INFO("backend: " << kind);
  Target t(kind);
  auto store = open_store(t.uri);
  auto sensors = store->collection(t.db, "sensors");
  for (int i = 1; i <= 5; ++i)
    sensors->insert_one(Document::from_json(R"({"topic": "iot/a", "value": )" + std::to_string(i) + "}"));
  sensors->insert_one(Document::from_json(R"({"topic": "iot/b", "value": 6})"));

  // The newest, oldest of them first; a filter applies before -n.
  CHECK(t({"tail", "--db", t.db, "-n", "2", "-p", "x"}).code == 2);  // tail has no --projection
  auto newest = t({"tail", "--db", t.db, "-n", "2"});
  CHECK(newest.code == 0);
  CHECK_THAT(newest.out, Catch::Contains("\"value\" : 5 }\n{") && Catch::EndsWith("\"value\" : 6 }\n"));
  auto filtered = t({"tail", "--db", t.db, R"({"topic": "iot/a"})", "-n", "1"});
  CHECK_THAT(filtered.out, Catch::EndsWith("\"topic\" : \"iot/a\", \"value\" : 5 }\n"));

  TempDir dir("iotbridge-tail");
  auto out = dir / "tail.out";
  auto follower = iotbridge::test::start_tool(
      {kCli, "--store", t.uri, "tail", "--db", t.db, R"({"topic": "iot/a"})", "-n", "1", "-f"}, out);
  REQUIRE(iotbridge::test::wait_until(
      [&] { return iotbridge::test::contains(iotbridge::test::slurp(out), "\"value\" : 5 }"); }));
  // Stored while tail -f runs: the match appears, the other topic does not.
  sensors->insert_one(Document::from_json(R"({"topic": "iot/b", "value": 7})"));
  sensors->insert_one(Document::from_json(R"({"topic": "iot/a", "value": 8, "marker": "new"})"));
  INFO(iotbridge::test::slurp(out) << iotbridge::test::slurp(out.string() + ".err"));
  REQUIRE(iotbridge::test::wait_until(
      [&] { return iotbridge::test::contains(iotbridge::test::slurp(out), "\"marker\" : \"new\""); }));
  CHECK(follower->terminate() == 0);
  auto text = iotbridge::test::slurp(out);
  CHECK(!iotbridge::test::contains(text, "\"value\" : 7"));
  CHECK(!iotbridge::test::contains(text, "\"value\" : 4"));
  CHECK(std::count(text.begin(), text.end(), '\n') == 2);  // the newest, then the new one: each once
}
