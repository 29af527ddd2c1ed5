// The iotbridge-recorder configuration file: what it accepts, and every kind of
// bad input refused with FILE:LINE:COLUMN and a sentence (no server needed).
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "iotbridge/service/config.hpp"
#include "servers.hpp"

using namespace iotbridge;
using namespace iotbridge::service;

namespace {

// A valid file as (table, key, value) rows; a case sets or removes rows, or
// appends raw text, and the file is written in table order.
struct Rows {
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> tables = {
      {"mqtt", {{"url", "\"mqtt://127.0.0.1:1883\""}}},
      {"store", {{"uri", "\"sqlite::memory:\""}}},
      {"durability", {{"dir", "\"spool\""}}},
      {"route", {{"name", "\"climate\""}, {"filters", "[\"iot/+/+/temp\"]"}}},
  };
  std::string extra;

  void set(const std::string& table, const std::string& key, const std::string& value) {
    for (auto& [name, keys] : tables) {
      if (name != table) continue;
      for (auto& kv : keys)
        if (kv.first == key) {
          kv.second = value;
          return;
        }
      keys.emplace_back(key, value);
      return;
    }
    tables.push_back({table, {{key, value}}});
  }
  void remove(const std::string& table, const std::string& key) {
    for (auto& [name, keys] : tables)
      if (name == table) std::erase_if(keys, [&](const auto& kv) { return kv.first == key; });
  }
  // The text, and the line:column where `table`.`key`'s value starts.
  std::string text(const std::string& at_table = "", const std::string& at_key = "", int* line = nullptr,
                   int* column = nullptr) const {
    std::string out;
    int n = 0;
    for (const auto& [name, keys] : tables) {
      out += (name == "route" ? "[[route]]\n" : "[" + name + "]\n");
      ++n;
      for (const auto& [key, value] : keys) {
        out += key + " = " + value + "\n";
        ++n;
        if (name == at_table && key == at_key && line) {
          *line = n;
          *column = static_cast<int>(key.size() + 4);
        }
      }
    }
    return out + extra;
  }
};

struct Refusal {
  std::string message;
  int line = -1;
  int column = -1;
};

Refusal refuse(const std::string& text) {
  try {
    parse_config_text(text, "recorder.toml");
  } catch (const ConfigError& e) {
    return {e.what(), e.line(), e.column()};
  }
  FAIL("accepted:\n" << text);
  return {};
}

// A value of a type the key does not take.
std::string wrong_value(std::string_view type) {
  if (type == "string") return "5";
  if (type == "integer") return "\"5\"";
  if (type == "boolean") return "\"yes\"";
  if (type == "array of strings") return "\"iot/#\"";
  return "\"x\"";  // table of strings
}

struct EnvGuard {
  explicit EnvGuard(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) saved_ = v;
    ::unsetenv(name);
  }
  ~EnvGuard() {
    if (!saved_.empty()) ::setenv(name_, saved_.c_str(), 1);
  }
  const char* name_;
  std::string saved_;
};

}  // namespace

TEST_CASE("the example configuration is read as written", "[config][unit]") {
  Rows rows;
  rows.set("mqtt", "client_id", "\"recorder-1\"");
  rows.set("mqtt", "clean_session", "false");
  rows.set("mqtt", "qos", "1");
  rows.set("store", "database", "\"farm\"");
  rows.set("metrics", "listen", "\"127.0.0.1:9464\"");
  rows.set("route", "collection", "\"climate\"");
  rows.set("route", "topic_fields", "\"iot/{home}/{device}/{sensor}\"");
  rows.set("route", "fields", "{ temperature = \"/t\", battery = \"/bat\" }");
  rows.set("route", "timestamp", "\"/ts\"");
  auto c = parse_config_text(rows.text(), "recorder.toml");
  CHECK(c.recorder.mqtt.host == "127.0.0.1");
  CHECK(c.recorder.mqtt.port == 1883);
  CHECK(c.recorder.mqtt.client_id == "recorder-1");
  CHECK_FALSE(c.recorder.mqtt.clean_session);
  CHECK(c.recorder.qos == 1);
  CHECK(c.recorder.store_uri == "sqlite::memory:");
  CHECK(c.recorder.spool_dir == "spool");
  CHECK(c.metrics_enabled);
  CHECK(c.metrics.to_string() == "127.0.0.1:9464");
  CHECK(describe_start(c).find("route climate (") != std::string::npos);
}

TEST_CASE("the metrics address: host:port, IPv6 in brackets", "[config][unit]") {
  CHECK(parse_listen_address("127.0.0.1:9464").port == 9464);
  CHECK(parse_listen_address("[::1]:9").host == "::1");
  CHECK(parse_listen_address("[::1]:9").to_string() == "[::1]:9");
  for (const char* bad : {"127.0.0.1", "localhost:", ":9464", "[::1]", "::1:9464", "host:0", "host:65536", "h:x"})
    CHECK_THROWS_AS(parse_listen_address(bad), Error);
}

TEST_CASE("every key with a value of the wrong type is refused at the value", "[config][unit]") {
  for (const auto& key : config_keys()) {
    Rows rows;
    rows.set(std::string(key.table), std::string(key.name), wrong_value(key.type));
    int line = 0, column = 0;
    std::string text = rows.text(std::string(key.table), std::string(key.name), &line, &column);
    auto r = refuse(text);
    INFO(text << "\n-> " << r.message);
    CHECK(r.line == line);
    CHECK(r.column == column);
    CHECK_THAT(r.message,
               Catch::StartsWith("recorder.toml:" + std::to_string(line) + ":" + std::to_string(column) + ": "));
    CHECK_THAT(r.message,
               Catch::Contains(std::string(key.name)) && Catch::Contains("must be") && Catch::Contains("write"));
  }
}

TEST_CASE("bad input: each refusal names the place and what to write", "[config][unit]") {
  EnvGuard no_store("IOTBRIDGE_STORE");
  struct Case {
    const char* what;
    std::function<void(Rows&)> change;
    int line;  // -1: not checked here
    int column;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"unknown key", [](Rows& r) { r.set("mqtt", "clean_sesion", "false"); }, 3, 1, "did you mean 'clean_session'"},
      {"unknown key in a route", [](Rows& r) { r.set("route", "colection", "\"x\""); }, 10, 1,
       "did you mean 'collection'"},
      {"unknown table", [](Rows& r) { r.extra = "[metric]\nlisten = \"127.0.0.1:1\"\n"; }, 10, 2,
       "did you mean [metrics]"},
      {"route as a table",
       [](Rows& r) {
         r.tables.pop_back();
         r.extra = "[route]\nname = \"a\"\n";
       },
       7, 2, "[[route]]"},
      {"missing route name", [](Rows& r) { r.remove("route", "name"); }, 7, 1, "has no name; add name ="},
      {"missing filters", [](Rows& r) { r.remove("route", "filters"); }, 7, 1, "has no filters; add filters ="},
      {"no route at all", [](Rows& r) { r.tables.pop_back(); }, 0, 0, "no [[route]]"},
      {"no store", [](Rows& r) { r.remove("store", "uri"); }, 3, 1, "no store: add uri ="},
      {"duplicate route name", [](Rows& r) { r.extra = "[[route]]\nname = \"climate\"\nfilters = [\"x/#\"]\n"; }, 10, 1,
       "a second route named 'climate' (the first is at line 7)"},
      {"unreadable password file",
       [](Rows& r) {
         r.set("mqtt", "username", "\"u\"");
         r.set("mqtt", "password_file", "\"/nonexistent/iotbridge.password\"");
       },
       4, 17, "cannot read the password file '/nonexistent/iotbridge.password'"},
      {"host without a port", [](Rows& r) { r.set("metrics", "listen", "\"127.0.0.1\""); }, 11, 10,
       "has a host but no port; write \"127.0.0.1:9464\""},
      {"invalid filter", [](Rows& r) { r.set("route", "filters", "[\"iot/#\", \"iot/#/temp\"]"); }, 9, 21,
       "'iot/#/temp' is not a valid MQTT filter"},
      {"QoS out of range", [](Rows& r) { r.set("mqtt", "qos", "3"); }, 3, 7, "use 0 to 2"},
      {"bad broker URL", [](Rows& r) { r.set("mqtt", "url", "\"http://x\""); }, 2, 7, "mqtt://"},
      {"persistent session without an id", [](Rows& r) { r.set("mqtt", "clean_session", "false"); }, 3, 17,
       "needs a client id; add client_id"},
      {"unknown decoder", [](Rows& r) { r.set("route", "decoder", "\"xml\""); }, 10, 11, "unknown decoder 'xml'"},
      {"bad topic pattern", [](Rows& r) { r.set("route", "topic_fields", "\"iot/{a}/{a}\""); }, 10, 16, "topic_fields"},
      {"not a JSON Pointer", [](Rows& r) { r.set("route", "fields", "{ t = \"t\" }"); }, 10, 16, "leading slash"},
      {"reserved field name", [](Rows& r) { r.set("route", "fields", "{ topic = \"/t\" }"); }, 10, 20,
       "cannot be a field name"},
      {"empty filters", [](Rows& r) { r.set("route", "filters", "[]"); }, 9, 11, "at least one filter"},
      {"a number in filters", [](Rows& r) { r.set("route", "filters", "[\"a\", 5]"); }, 9, 17, "strings only"},
      {"store URI scheme", [](Rows& r) { r.set("store", "uri", "\"postgres://x\""); }, 4, 7, "not a store URI"},
      {"TOML syntax", [](Rows& r) { r.extra = "[mqtt\n"; }, 10, -1, "TOML syntax"},
      {"duplicate key (TOML)", [](Rows& r) { r.extra = "[durability]\n"; }, 10, -1, "TOML syntax"},
  };
  for (const auto& c : cases) {
    Rows rows;
    c.change(rows);
    std::string text = rows.text();
    auto r = refuse(text);
    INFO(c.what << ":\n" << text << "\n-> " << r.message);
    if (c.line >= 0) CHECK(r.line == c.line);
    if (c.column >= 0) CHECK(r.column == c.column);
    CHECK_THAT(r.message,
               Catch::StartsWith("recorder.toml:" + std::to_string(r.line) + ":" + std::to_string(r.column) + ": "));
    CHECK_THAT(r.message, Catch::Contains(c.says));
  }
}

TEST_CASE("[mqtt] urls: a failover list instead of url", "[config][unit]") {
  Rows rows;
  rows.remove("mqtt", "url");
  rows.set("mqtt", "urls", "[\"mqtt://127.0.0.1:1883\", \"mqtt://[::1]:1884\", \"mqtt://node3\"]");
  auto c = parse_config_text(rows.text(), "recorder.toml");
  CHECK(c.recorder.mqtt.host == "127.0.0.1");
  CHECK(c.recorder.mqtt.port == 1883);
  CHECK(c.recorder.mqtt.failover == std::vector<mqtt::BrokerAddress>{{"::1", 1884}, {"node3", 1883}});
  CHECK_THAT(describe_start(c), Catch::Contains("recording mqtt://127.0.0.1:1883 -> ") &&
                                    Catch::Contains(", failover to mqtt://[::1]:1884 mqtt://node3:1883"));

  // One entry is a list of one: no failover.
  rows.set("mqtt", "urls", "[\"mqtt://127.0.0.1:1885\"]");
  auto one = parse_config_text(rows.text(), "recorder.toml");
  CHECK(one.recorder.mqtt.port == 1885);
  CHECK(one.recorder.mqtt.failover.empty());
  CHECK_THAT(describe_start(one), !Catch::Contains("failover"));
}

TEST_CASE("[mqtt] urls: bad lists are refused at the entry, and url with urls is refused", "[config][unit]") {
  struct Case {
    const char* urls;
    bool with_url;
    int column;
    const char* says;
  };
  const Case cases[] = {
      {"[]", false, 8, "an empty list is not allowed here"},
      {"[\"mqtt://a\", \"\"]", false, 21, "an empty URL is not allowed here"},
      {"[\"mqtt://a\", \"http://b\"]", false, 21, "unknown scheme 'http'"},
      {"[\"mqtt://a\", \"mqtt://b:0\"]", false, 21, "port must be a number"},
      {"[\"mqtt://a\", \"mqtts://b\"]", false, 8, "differ in TLS"},
      {"[\"mqtt://u:p@a\", \"mqtt://v:p@b\"]", false, 8, "other credentials"},
      {"[\"mqtt://a\", \"mqtt://b\"]", true, 8, "give the broker with url or urls, not both"},
  };
  for (const auto& c : cases) {
    Rows rows;
    if (!c.with_url) rows.remove("mqtt", "url");
    rows.set("mqtt", "urls", c.urls);
    std::string text = rows.text();
    auto r = refuse(text);
    INFO(text << "\n-> " << r.message);
    CHECK(r.line == (c.with_url ? 3 : 2));
    CHECK(r.column == c.column);
    CHECK_THAT(r.message, Catch::Contains(c.says));
  }
}

TEST_CASE("secrets come from files or the environment and are never shown", "[config][unit]") {
  test::TempDir dir("iotbridge-config");
  {
    std::ofstream(dir / "pw") << "s3cret\n";
    std::ofstream(dir / "uri") << "mongodb://u:hidden@127.0.0.1:1/\n";
  }
  Rows rows;
  rows.set("mqtt", "username", "\"u\"");
  rows.set("mqtt", "password_file", "\"" + (dir / "pw").string() + "\"");
  rows.remove("store", "uri");
  rows.set("store", "uri_file", "\"" + (dir / "uri").string() + "\"");
  auto c = parse_config_text(rows.text(), "recorder.toml");
  CHECK(c.recorder.mqtt.password == std::optional<std::string>("s3cret"));
  CHECK(c.recorder.store_uri == "mongodb://u:hidden@127.0.0.1:1/");
  CHECK(describe_start(c).find("hidden") == std::string::npos);
  for (const auto& line : describe_routes(c)) CHECK(line.find("hidden") == std::string::npos);

  EnvGuard store_env("IOTBRIDGE_STORE");
  ::setenv("IOTBRIDGE_STORE", "sqlite:from-env.db", 1);
  Rows env_rows;
  env_rows.remove("store", "uri");
  CHECK(parse_config_text(env_rows.text(), "recorder.toml").recorder.store_uri == "sqlite:from-env.db");
  ::unsetenv("IOTBRIDGE_STORE");
}

TEST_CASE("the key table: every key once, documented, with a type", "[config][unit]") {
  std::map<std::string, int> seen;
  for (const auto& k : config_keys()) {
    ++seen[std::string(k.table) + "." + std::string(k.name)];
    CHECK_FALSE(k.help.empty());
    CHECK_FALSE(k.type.empty());
  }
  for (const auto& [key, n] : seen) {
    INFO(key);
    CHECK(n == 1);
  }
  for (const char* required :
       {"mqtt.url",           "mqtt.client_id",     "mqtt.clean_session", "mqtt.qos",        "mqtt.username",
        "mqtt.password_file", "mqtt.protocol",      "mqtt.keepalive",     "mqtt.ca_file",    "mqtt.cert_file",
        "mqtt.key_file",      "mqtt.insecure",      "store.uri",          "store.uri_file",  "store.database",
        "durability.dir",     "metrics.listen",     "route.name",         "route.filters",   "route.collection",
        "route.decoder",      "route.topic_fields", "route.fields",       "route.timestamp", "route.database"})
    CHECK(seen.count(required) == 1);
}

TEST_CASE("the route policy keys reach the route", "[config][unit]") {
  Rows rows;
  rows.set("route", "fields", "{ t = \"/t\" }");
  rows.set("route", "quarantine", "\"bad_readings\"");
  rows.set("route", "on_unmapped", "\"quarantine\"");
  rows.set("route", "max_document_bytes", "1000");
  rows.set("route", "expire_after", "\"30d\"");
  rows.set("route", "deadband", "0.2");
  rows.set("route", "heartbeat", "\"15m\"");
  rows.set("route", "dedup_key", "\"/seq\"");
  auto c = parse_config_text(rows.text(), "recorder.toml");
  REQUIRE(c.routes.size() == 1);
  const auto& r = c.routes.front();
  CHECK(r.quarantine == "bad_readings");
  CHECK(r.on_unmapped == iotbridge::record::Route::OnUnmapped::quarantine);
  CHECK(r.max_document_bytes == 1000);
  CHECK(r.expire_after == std::chrono::hours(24 * 30));
  REQUIRE(r.deadband.has_value());
  CHECK(*r.deadband == 0.2);
  CHECK(r.heartbeat == std::chrono::minutes(15));
  CHECK(r.dedup_key == "/seq");
  CHECK_FALSE(r.timeseries.has_value());

  Rows ts;
  ts.set("route", "timeseries", "{ time_field = \"reg_date\", meta_field = \"topic\", granularity = \"minutes\" }");
  ts.set("route", "on_change", "true");
  ts.set("route", "deadband", "1");  // an integer is a number too
  auto t = parse_config_text(ts.text(), "recorder.toml");
  REQUIRE(t.routes.front().timeseries.has_value());
  CHECK(t.routes.front().timeseries->granularity == "minutes");
  CHECK(t.routes.front().on_change);
  CHECK(*t.routes.front().deadband == 1.0);
}

TEST_CASE("bad route policy values are refused at the value", "[config][unit]") {
  struct Case {
    const char* key;
    const char* value;
    const char* says;
  };
  const Case cases[] = {
      {"deadband", "-0.5", "deadband"},
      {"deadband", "nan", "deadband"},
      {"on_unmapped", "\"drop\"", "quarantine"},
      {"expire_after", "\"soon\"", "expire_after"},
      {"expire_after", "\"0s\"", "at least 1s"},
      {"heartbeat", "\"15 minutes\"", "heartbeat"},
      {"timeseries", "{ granularity = \"weeks\" }", "seconds, minutes, hours"},
      {"timeseries", "{ time = \"reg_date\" }", "time_field"},
      {"max_document_bytes", "-1", "0 to"},
      {"dedup_key", "\"\"", "/seq"},
  };
  for (const auto& c : cases) {
    Rows rows;
    rows.set("route", c.key, c.value);
    int line = 0, column = 0;
    std::string text = rows.text("route", c.key, &line, &column);
    auto r = refuse(text);
    INFO(text << "\n-> " << r.message);
    CHECK(r.line == line);
    CHECK_THAT(r.message, Catch::Contains(c.says));
  }
}

TEST_CASE("a policy the recorder refuses is refused at its route", "[config][unit]") {
  Rows rows;
  rows.set("route", "heartbeat", "\"15m\"");  // a heartbeat without deadband or on_change
  auto r = refuse(rows.text());
  INFO(r.message);
  CHECK(r.line == 7);  // the [[route]] line
  CHECK_THAT(r.message, Catch::Contains("heartbeat"));
}
