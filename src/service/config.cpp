// The iotbridge-recorder configuration file (see config.hpp): TOML read with
// toml++, checked key by key against the one table below, then turned into
// RecorderOptions.
#include "iotbridge/service/config.hpp"

#include <sys/stat.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "iotbridge/duration.hpp"
#include "iotbridge/record/decoder.hpp"
#include "iotbridge/record/report.hpp"
#include "iotbridge/record/route.hpp"
#include "iotbridge/store/open.hpp"
#include "iotbridge/topic.hpp"

namespace iotbridge::service {

ConfigError::ConfigError(const std::string& file, int line, int column, const std::string& what)
    : Error(ErrorCategory::config, (file.empty() ? std::string("config") : file) + ":" + std::to_string(line) + ":" +
                                       std::to_string(column) + ": " + what),
      file_(file),
      line_(line),
      column_(column) {}

std::string ListenAddress::to_string() const {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

ListenAddress parse_listen_address(std::string_view text) {
  const std::string shown(text);
  ListenAddress a;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos)
      throw Error(ErrorCategory::config, "'" + shown + "' has no closing ']'; write \"[::1]:9464\"");
    a.host = std::string(text.substr(1, close - 1));
    std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':')
      throw Error(ErrorCategory::config,
                  "'" + shown + "' has a host but no port; write \"" + shown + ":9464\" (host:port)");
    port_text = rest.substr(1);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      throw Error(ErrorCategory::config,
                  "'" + shown + "' has a host but no port; write \"" + shown + ":9464\" (host:port)");
    a.host = std::string(text.substr(0, colon));
    if (a.host.find(':') != std::string::npos)
      throw Error(ErrorCategory::config, "'" + shown + "': put an IPv6 address in brackets, as \"[::1]:9464\"");
    port_text = text.substr(colon + 1);
  }
  if (a.host.empty())
    throw Error(ErrorCategory::config,
                "'" + shown +
                    "' has no host; write \"127.0.0.1:9464\" (an address to bind to, loopback for local "
                    "scrapes)");
  int port = 0;
  bool digits = !port_text.empty() && port_text.size() <= 5 &&
                std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) port = std::stoi(std::string(port_text));
  if (!digits || port < 1 || port > 65535)
    throw Error(ErrorCategory::config,
                "'" + shown + "' has no valid port; use a port from 1 to 65535, as \"" + a.host + ":9464\"");
  a.port = port;
  return a;
}

namespace {

struct Pos {
  int line = 0;
  int column = 0;
};

Pos pos_of(const toml::source_region& r) { return {static_cast<int>(r.begin.line), static_cast<int>(r.begin.column)}; }

// A problem at a place in the file; turned into ConfigError with the file name.
struct Problem {
  Pos pos;
  std::string what;
};

[[noreturn]] void fail(Pos pos, std::string what) { throw Problem{pos, std::move(what)}; }

enum class Kind { string, integer, number, boolean, strings, string_table };

std::string_view kind_name(Kind k) {
  switch (k) {
    case Kind::string: return "string";
    case Kind::integer: return "integer";
    case Kind::number: return "number";
    case Kind::boolean: return "boolean";
    case Kind::strings: return "array of strings";
    case Kind::string_table: return "table of strings";
  }
  return "?";
}

// A value of the file, of the kind its key declares, with where it was.
struct Value {
  Pos pos;
  std::string text;
  std::int64_t integer = 0;
  double number = 0;
  bool boolean = false;
  std::vector<std::pair<std::string, Pos>> list;                         // strings
  std::vector<std::pair<std::string, std::pair<std::string, Pos>>> map;  // string_table: key -> (value, pos)
};

struct RouteDraft {
  Pos pos;
  std::string name;
  std::vector<std::string> filters;
  std::optional<std::string> database;
  std::string collection = "sensors";
  std::string decoder = "auto";
  std::string topic_fields;
  std::vector<std::pair<std::string, std::string>> fields;  // field -> JSON Pointer
  std::string timestamp;                                    // JSON Pointer
  bool include_qos = false;
  bool include_retain = false;
  bool keep_payload = true;
  record::Route policies;       // the policy keys (quarantine ... dedup_key), copied as they are
  std::set<std::string> given;  // keys present, for the required check
};

struct Draft {
  std::string url = "mqtt://localhost:1883";
  Pos url_pos;
  std::vector<std::string> urls;  // a failover list, instead of url
  Pos urls_pos;
  std::string client_id;
  bool clean_session = true;
  Pos clean_session_pos;
  int qos = 1;
  std::string username;
  std::string password_file;
  Pos password_file_pos;
  mqtt::Protocol protocol = mqtt::Protocol::v311;
  int keepalive = 60;
  std::string ca_file, ca_dir, cert_file, key_file;
  Pos cert_pos;
  bool insecure = false;

  std::string store_uri;
  Pos store_uri_pos;
  std::string store_uri_file;
  Pos store_uri_file_pos;
  std::string database = "iot_service";
  std::int64_t batch_size = 1000;
  std::int64_t flush_ms = 100;

  std::string spool_dir = "iotbridge-spool";
  bool sync = true;
  std::int64_t spool_max_bytes = 0;
  std::int64_t queue_capacity = 100000;

  std::optional<ListenAddress> metrics;
  Pos metrics_pos;

  std::vector<RouteDraft> routes;
};

using Apply = void (*)(Draft&, RouteDraft*, const Value&);

struct Key {
  ConfigKeyInfo info;
  Kind kind;
  Apply apply;
};

std::int64_t in_range(const Value& v, std::int64_t min, std::int64_t max, std::string_view what) {
  if (v.integer < min || v.integer > max)
    fail(v.pos, std::to_string(v.integer) + " is not " + std::string(what) + "; use " + std::to_string(min) + " to " +
                    std::to_string(max));
  return v.integer;
}

std::string non_empty(const Value& v, std::string_view example) {
  if (v.text.empty()) fail(v.pos, "an empty string is not allowed here; write " + std::string(example));
  return v.text;
}

// A library check (a duration, a word) whose Error becomes a refusal at the value.
template <typename F>
auto with_pos(const Value& v, F&& parse) {
  try {
    return parse();
  } catch (const Error& e) {
    fail(v.pos, e.what());
  }
}

// A JSON Pointer (RFC 6901): "" or "/a/b", ~0 and ~1 escapes only.
void check_pointer(const std::string& p, Pos pos) {
  if (p.empty()) return;
  if (p.front() != '/')
    fail(pos, "'" + p + "' is not a JSON Pointer; write it with a leading slash, as \"/" + p + "\"");
  for (std::size_t i = 0; i < p.size(); ++i)
    if (p[i] == '~' && (i + 1 >= p.size() || (p[i + 1] != '0' && p[i + 1] != '1')))
      fail(pos, "'" + p + "': in a JSON Pointer '~' is written ~0 and '/' inside a name ~1");
}

// A field name of the document: not one of the contract's own, no '$' or '.'.
void check_field_name(const std::string& name, Pos pos) {
  static const std::set<std::string> reserved = {"_id", "topic", "value", "reg_date", "qos", "retain"};
  if (name.empty() || reserved.count(name) || name.front() == '$' || name.find('.') != std::string::npos)
    fail(pos, "'" + name +
                  "' cannot be a field name: it is empty, one of _id, topic, value, reg_date, qos, retain, or has "
                  "'$' or '.'; choose another name");
}

// The table. Each key: where it lives, its type, default, one sentence, and
// what it does to the draft. The parser, --keys and the docs read it.
// clang-format off
const Key kKeys[] = {
  {{"mqtt", "url", "string", "\"mqtt://localhost:1883\"", "The broker: mqtt://host[:port] (1883), or mqtts://host[:port] for TLS (8883)."},
   Kind::string, [](Draft& d, RouteDraft*, const Value& v) {
     d.url = non_empty(v, "\"mqtt://127.0.0.1:1883\"");
     d.url_pos = v.pos;
     try {
       (void)mqtt::options_from_url(d.url);
     } catch (const Error& e) {
       fail(v.pos, std::string(e.what()));
     }
   }},
  {{"mqtt", "urls", "array of strings", "", "Failover, instead of url: brokers tried in order, e.g. [\"mqtt://node1:1883\", \"mqtt://node2:1883\"]; when one is lost the next is tried at once."},
   Kind::strings, [](Draft& d, RouteDraft*, const Value& v) {
     if (v.list.empty()) fail(v.pos, "an empty list is not allowed here; write [\"mqtt://node1:1883\", \"mqtt://node2:1883\"]");
     d.urls.clear();
     for (const auto& [url, pos] : v.list) {
       if (url.empty()) fail(pos, "an empty URL is not allowed here; write \"mqtt://node2:1883\"");
       try {
         (void)mqtt::options_from_url(url);
       } catch (const Error& e) {
         fail(pos, std::string(e.what()));
       }
       d.urls.push_back(url);
     }
     try {
       (void)mqtt::options_from_urls(d.urls);  // they agree on TLS and credentials
     } catch (const Error& e) {
       fail(v.pos, std::string(e.what()));
     }
     d.urls_pos = v.pos;
   }},
  {{"mqtt", "client_id", "string", "", "The MQTT client id; needed for a persistent session (clean_session = false). Default: generated."},
   Kind::string, [](Draft& d, RouteDraft*, const Value& v) { d.client_id = non_empty(v, "\"recorder-1\""); }},
  {{"mqtt", "clean_session", "boolean", "true", "false keeps a persistent session: the broker holds QoS 1 readings while the recorder is away."},
   Kind::boolean, [](Draft& d, RouteDraft*, const Value& v) { d.clean_session = v.boolean; d.clean_session_pos = v.pos; }},
  {{"mqtt", "qos", "integer", "1", "Subscription QoS 0, 1 or 2 (1 with the write-ahead journal: nothing accepted is lost)."},
   Kind::integer, [](Draft& d, RouteDraft*, const Value& v) { d.qos = static_cast<int>(in_range(v, 0, 2, "a QoS")); }},
  {{"mqtt", "username", "string", "", "User name for the broker."},
   Kind::string, [](Draft& d, RouteDraft*, const Value& v) { d.username = non_empty(v, "\"recorder\""); }},
  {{"mqtt", "password_file", "string", "", "File whose first line is the broker password (else $IOTBRIDGE_PASSWORD, with username)."},
   Kind::string, [](Draft& d, RouteDraft*, const Value& v) {
     d.password_file = non_empty(v, "\"/etc/iotbridge/recorder.password\"");
     d.password_file_pos = v.pos;
   }},
  {{"mqtt", "protocol", "string", "\"3.1.1\"", "MQTT version: \"3.1.1\", \"5\" or \"3.1\"."},
   Kind::string, [](Draft& d, RouteDraft*, const Value& v) {
     if (v.text == "3.1.1") d.protocol = mqtt::Protocol::v311;
     else if (v.text == "5" || v.text == "5.0") d.protocol = mqtt::Protocol::v5;
     else if (v.text == "3.1") d.protocol = mqtt::Protocol::v31;
     else fail(v.pos, "'" + v.text + "' is not an MQTT version; write \"3.1.1\", \"5\" or \"3.1\"");
   }},
  {{"mqtt", "keepalive", "integer", "60", "Seconds between PINGs, 5 to 65535."},
   Kind::integer, [](Draft& d, RouteDraft*, const Value& v) { d.keepalive = static_cast<int>(in_range(v, 5, 65535, "a keepalive")); }},
  {{"mqtt", "ca_file", "string", "", "PEM file of the CAs that signed the broker's certificate (TLS); default: the system's."},
   Kind::string, [](Draft& d, RouteDraft*, const Value& v) { d.ca_file = non_empty(v, "\"/etc/iotbridge/ca.pem\""); }},
  {{"mqtt", "ca_dir", "string", "", "Folder of hashed PEM CAs (TLS)."},
   Kind::string, [](Draft& d, RouteDraft*, const Value& v) { d.ca_dir = non_empty(v, "\"/etc/ssl/certs\""); }},
  {{"mqtt", "cert_file", "string", "", "Client certificate, PEM (with key_file)."},
   Kind::string, [](Draft& d, RouteDraft*, const Value& v) { d.cert_file = non_empty(v, "\"/etc/iotbridge/recorder.crt\""); d.cert_pos = v.pos; }},
  {{"mqtt", "key_file", "string", "", "Client private key, PEM (with cert_file)."},
   Kind::string, [](Draft& d, RouteDraft*, const Value& v) { d.key_file = non_empty(v, "\"/etc/iotbridge/recorder.key\""); d.cert_pos = v.pos; }},
  {{"mqtt", "insecure", "boolean", "false", "true skips the check of the broker's host name against its certificate (testing only)."},
   Kind::boolean, [](Draft& d, RouteDraft*, const Value& v) { d.insecure = v.boolean; }},

  {{"store", "uri", "string", "required", "Where readings go: sqlite:PATH or mongodb://... (or uri_file, or $IOTBRIDGE_STORE)."},
   Kind::string, [](Draft& d, RouteDraft*, const Value& v) {
     d.store_uri = non_empty(v, "\"sqlite:/var/lib/iotbridge/readings.db\"");
     d.store_uri_pos = v.pos;
     if (d.store_uri.rfind("sqlite:", 0) != 0 && d.store_uri.rfind("mongodb://", 0) != 0 &&
         d.store_uri.rfind("mongodb+srv://", 0) != 0)
       fail(v.pos, "'" + store::redact_uri(d.store_uri) +
                       "' is not a store URI; write \"sqlite:PATH\" or \"mongodb://host[:port]/\"");
   }},
  {{"store", "uri_file", "string", "", "File whose first line is the store URI (keeps a MongoDB password out of this file)."},
   Kind::string, [](Draft& d, RouteDraft*, const Value& v) {
     d.store_uri_file = non_empty(v, "\"/etc/iotbridge/store.uri\"");
     d.store_uri_file_pos = v.pos;
   }},
  {{"store", "database", "string", "\"iot_service\"", "Database of the routes that name none."},
   Kind::string, [](Draft& d, RouteDraft*, const Value& v) { d.database = non_empty(v, "\"iot_service\""); }},
  {{"store", "batch_size", "integer", "1000", "Documents per insert, 1 to 1000000."},
   Kind::integer, [](Draft& d, RouteDraft*, const Value& v) { d.batch_size = in_range(v, 1, 1000000, "a batch size"); }},
  {{"store", "flush_ms", "integer", "100", "A partial batch waits at most this many milliseconds, 1 to 3600000."},
   Kind::integer, [](Draft& d, RouteDraft*, const Value& v) { d.flush_ms = in_range(v, 1, 3600000, "a flush interval"); }},

  {{"durability", "dir", "string", "\"iotbridge-spool\"", "Folder of the write-ahead journal and the disk spool (one recorder per folder)."},
   Kind::string, [](Draft& d, RouteDraft*, const Value& v) { d.spool_dir = non_empty(v, "\"/var/lib/iotbridge/spool\""); }},
  {{"durability", "sync", "boolean", "true", "fdatasync the journal once per batch (power-loss safety)."},
   Kind::boolean, [](Draft& d, RouteDraft*, const Value& v) { d.sync = v.boolean; }},
  {{"durability", "spool_max_bytes", "integer", "0", "The spool refuses batches past this size (0: only the disk limits it)."},
   Kind::integer, [](Draft& d, RouteDraft*, const Value& v) { d.spool_max_bytes = in_range(v, 0, INT64_MAX, "a size in bytes"); }},
  {{"durability", "queue_capacity", "integer", "100000", "Readings held in memory between the network and the store, 1 to 100000000."},
   Kind::integer, [](Draft& d, RouteDraft*, const Value& v) { d.queue_capacity = in_range(v, 1, 100000000, "a queue capacity"); }},

  {{"metrics", "listen", "string", "", "host:port of /metrics, /healthz and /readyz (absent: no HTTP)."},
   Kind::string, [](Draft& d, RouteDraft*, const Value& v) {
     try {
       d.metrics = parse_listen_address(v.text);
     } catch (const Error& e) {
       fail(v.pos, std::string("[metrics] listen ") + e.what());
     }
     d.metrics_pos = v.pos;
   }},

  {{"route", "name", "string", "required", "The route's name: letters, digits, '_' and '-'; the label of its metrics."},
   Kind::string, [](Draft&, RouteDraft* r, const Value& v) {
     r->name = non_empty(v, "\"climate\"");
     for (char c : r->name)
       if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'))
         fail(v.pos, "route name '" + r->name + "' has a '" + std::string(1, c) +
                         "'; use letters, digits, '_' and '-' (it becomes a metrics label)");
   }},
  {{"route", "filters", "array of strings", "required", "MQTT filters of the readings this route stores, e.g. [\"iot/+/+/temp\"]."},
   Kind::strings, [](Draft&, RouteDraft* r, const Value& v) {
     if (v.list.empty()) fail(v.pos, "a route needs at least one filter; write filters = [\"iot/#\"]");
     for (const auto& [filter, pos] : v.list) {
       if (auto problem = filter_problem(filter))
         fail(pos, "'" + filter + "' is not a valid MQTT filter: " + *problem);
       r->filters.push_back(filter);
     }
   }},
  {{"route", "database", "string", "", "Database of this route; default: [store] database."},
   Kind::string, [](Draft&, RouteDraft* r, const Value& v) { r->database = non_empty(v, "\"iot_service\""); }},
  {{"route", "collection", "string", "\"sensors\"", "Collection of this route's documents."},
   Kind::string, [](Draft&, RouteDraft* r, const Value& v) {
     r->collection = non_empty(v, "\"sensors\"");
     if (r->collection.front() == '$' || r->collection.find('\0') != std::string::npos)
       fail(v.pos, "'" + r->collection + "' cannot be a collection name (no leading '$'); write \"sensors\"");
   }},
  {{"route", "decoder", "string", "\"auto\"", "How payloads become values: auto, number, json, text or binary."},
   Kind::string, [](Draft&, RouteDraft* r, const Value& v) {
     try {
       (void)record::find_decoder(v.text);
     } catch (const Error& e) {
       fail(v.pos, "unknown decoder '" + v.text + "': " + e.what());
     }
     r->decoder = v.text;
   }},
  {{"route", "topic_fields", "string", "", "Copies topic levels into fields: \"iot/{home}/{device}/{sensor}\"."},
   Kind::string, [](Draft&, RouteDraft* r, const Value& v) {
     try {
       record::TopicPattern pattern(v.text);
     } catch (const Error& e) {
       fail(v.pos, "topic_fields '" + v.text + "': " + e.what());
     }
     r->topic_fields = v.text;
   }},
  {{"route", "fields", "table of strings", "", "Fields taken from a JSON payload: { temperature = \"/t\" } (JSON Pointers)."},
   Kind::string_table, [](Draft&, RouteDraft* r, const Value& v) {
     for (const auto& [name, pointer] : v.map) {
       check_field_name(name, pointer.second);
       check_pointer(pointer.first, pointer.second);
       r->fields.emplace_back(name, pointer.first);
     }
   }},
  {{"route", "timestamp", "string", "", "JSON Pointer of a timestamp in the payload, stored as the datetime field ts: \"/ts\"."},
   Kind::string, [](Draft&, RouteDraft* r, const Value& v) {
     check_pointer(v.text, v.pos);
     if (v.text.empty()) fail(v.pos, "an empty pointer is the whole payload; write the timestamp's place, as \"/ts\"");
     r->timestamp = v.text;
   }},
  {{"route", "keep_payload", "boolean", "true", "With fields: also store the whole payload as value (false: only the mapped fields)."},
   Kind::boolean, [](Draft&, RouteDraft* r, const Value& v) { r->keep_payload = v.boolean; }},
  {{"route", "include_qos", "boolean", "false", "Add the message's QoS as field qos."},
   Kind::boolean, [](Draft&, RouteDraft* r, const Value& v) { r->include_qos = v.boolean; }},
  {{"route", "include_retain", "boolean", "false", "Add the message's retain flag as field retain."},
   Kind::boolean, [](Draft&, RouteDraft* r, const Value& v) { r->include_retain = v.boolean; }},

  // The route policies (docs/recorder.md, "Policies"): the names of record::Route's fields.
  {{"route", "quarantine", "string", "\"<collection>_quarantine\"", "Collection of the readings the store refuses (and, with on_unmapped, unmapped ones)."},
   Kind::string, [](Draft&, RouteDraft* r, const Value& v) { r->policies.quarantine = non_empty(v, "\"sensors_quarantine\""); }},
  {{"route", "on_unmapped", "string", "\"store\"", "A payload without a mapped field: \"store\" it without the field, or \"quarantine\" it."},
   Kind::string, [](Draft&, RouteDraft* r, const Value& v) { r->policies.on_unmapped = with_pos(v, [&] { return record::parse_on_unmapped(v.text); }); }},
  {{"route", "max_document_bytes", "integer", "0", "A larger document (BSON bytes) is quarantined as too_large; 0: the recorder's 16 MiB limit."},
   Kind::integer, [](Draft&, RouteDraft* r, const Value& v) {
     r->policies.max_document_bytes = static_cast<std::size_t>(in_range(v, 0, INT64_MAX, "a size in bytes"));
   }},
  {{"route", "expire_after", "string", "", "Documents older than this disappear: \"30d\", \"12h\", \"2s\" (absent: kept forever)."},
   Kind::string, [](Draft&, RouteDraft* r, const Value& v) {
     r->policies.expire_after = std::chrono::duration_cast<std::chrono::seconds>(
         with_pos(v, [&] { return parse_duration(v.text, "expire_after"); }));
     if (r->policies.expire_after.count() <= 0) fail(v.pos, "expire_after must be at least 1s; write \"30d\"");
   }},
  {{"route", "timeseries", "table of strings", "", "A MongoDB 5+ time-series collection: { time_field = \"reg_date\", meta_field = \"topic\", granularity = \"seconds\" }."},
   Kind::string_table, [](Draft&, RouteDraft* r, const Value& v) {
     store::TimeseriesOptions ts;
     for (const auto& [name, text] : v.map) {
       if (name == "time_field") ts.time_field = text.first;
       else if (name == "meta_field") ts.meta_field = text.first;
       else if (name == "granularity") {
         if (text.first != "seconds" && text.first != "minutes" && text.first != "hours")
           fail(text.second, "granularity '" + text.first + "' is not one of seconds, minutes, hours; write \"seconds\"");
         ts.granularity = text.first;
       } else
         fail(text.second, "timeseries has no key '" + name + "'; it takes time_field, meta_field and granularity");
     }
     r->policies.timeseries = ts;
   }},
  {{"route", "deadband", "number", "", "Store a number only when it moved at least this far from the last stored one, per topic."},
   Kind::number, [](Draft&, RouteDraft* r, const Value& v) {
     if (!(v.number >= 0) || !std::isfinite(v.number)) fail(v.pos, "a deadband is a finite number >= 0; write 0.2");
     r->policies.deadband = v.number;
   }},
  {{"route", "on_change", "boolean", "false", "Store a value only when it differs from the last stored one, per topic."},
   Kind::boolean, [](Draft&, RouteDraft* r, const Value& v) { r->policies.on_change = v.boolean; }},
  {{"route", "heartbeat", "string", "", "With deadband or on_change: store anyway after this long without a stored reading: \"15m\"."},
   Kind::string, [](Draft&, RouteDraft* r, const Value& v) {
     r->policies.heartbeat = with_pos(v, [&] { return parse_duration(v.text, "heartbeat"); });
   }},
  {{"route", "dedup_key", "string", "", "The _id from a key, so a redelivered reading is stored once: \"/seq\", \"user_property:NAME\" or \"payload\"."},
   Kind::string, [](Draft&, RouteDraft* r, const Value& v) { r->policies.dedup_key = non_empty(v, "\"/seq\""); }},
};
// clang-format on

const std::vector<ConfigKeyInfo>& key_infos() {
  static const std::vector<ConfigKeyInfo> infos = [] {
    std::vector<ConfigKeyInfo> out;
    for (const auto& k : kKeys) out.push_back(k.info);
    return out;
  }();
  return infos;
}

constexpr std::string_view kTables[] = {"mqtt", "store", "durability", "metrics"};

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string table_title(std::string_view table) {
  return table == "route" ? "[[route]]" : "[" + std::string(table) + "]";
}

std::string unknown_key_message(std::string_view table, std::string_view key) {
  std::string names;
  std::string best;
  std::size_t best_distance = 3;  // suggest only close spellings
  for (const auto& k : kKeys) {
    if (k.info.table != table) continue;
    names += (names.empty() ? "" : ", ") + std::string(k.info.name);
    auto d = edit_distance(key, k.info.name);
    if (d < best_distance) {
      best_distance = d;
      best = k.info.name;
    }
  }
  std::string out = "unknown key '" + std::string(key) + "' in " + table_title(table);
  if (!best.empty()) out += "; did you mean '" + best + "'?";
  return out + " The keys of " + table_title(table) + " are: " + names + ".";
}

std::string toml_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number with a fraction";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
  }
}

std::string example_of(const Key& k) {
  switch (k.kind) {
    case Kind::string: return std::string(k.info.name) + " = \"...\"";
    case Kind::integer:
      return std::string(k.info.name) + " = " + std::string(k.info.default_value.empty() ? "1" : k.info.default_value);
    case Kind::number: return std::string(k.info.name) + " = 0.2";
    case Kind::boolean: return std::string(k.info.name) + " = true";
    case Kind::strings: return std::string(k.info.name) + " = [\"iot/#\"]";
    case Kind::string_table: return std::string(k.info.name) + " = { name = \"/pointer\" }";
  }
  return "";
}

Value read_value(const Key& k, const toml::node& n) {
  Value v;
  v.pos = pos_of(n.source());
  auto wrong = [&]() {
    fail(v.pos, table_title(k.info.table) + " " + std::string(k.info.name) + " must be " +
                    (k.kind == Kind::integer ? "an " : "a ") + std::string(kind_name(k.kind)) + ", not " +
                    toml_type_name(n) + "; write " + example_of(k));
  };
  switch (k.kind) {
    case Kind::string:
      if (!n.is_string()) wrong();
      v.text = n.as_string()->get();
      break;
    case Kind::integer:
      if (!n.is_integer()) wrong();
      v.integer = n.as_integer()->get();
      break;
    case Kind::number:  // 1 and 1.0 alike
      if (n.is_integer())
        v.number = static_cast<double>(n.as_integer()->get());
      else if (n.is_floating_point())
        v.number = n.as_floating_point()->get();
      else
        wrong();
      break;
    case Kind::boolean:
      if (!n.is_boolean()) wrong();
      v.boolean = n.as_boolean()->get();
      break;
    case Kind::strings:
      if (!n.is_array()) wrong();
      for (const auto& e : *n.as_array()) {
        if (!e.is_string())
          fail(pos_of(e.source()), table_title(k.info.table) + " " + std::string(k.info.name) +
                                       " must hold strings only, not " + toml_type_name(e) + "; write " +
                                       example_of(k));
        v.list.emplace_back(e.as_string()->get(), pos_of(e.source()));
      }
      break;
    case Kind::string_table:
      if (!n.is_table()) wrong();
      for (const auto& [key, e] : *n.as_table()) {
        if (!e.is_string())
          fail(pos_of(e.source()), table_title(k.info.table) + " " + std::string(k.info.name) + "." +
                                       std::string(key.str()) + " must be a string, not " + toml_type_name(e) +
                                       "; write " + example_of(k));
        v.map.emplace_back(std::string(key.str()),
                           std::make_pair(std::string(e.as_string()->get()), pos_of(e.source())));
      }
      break;
  }
  return v;
}

void read_table(std::string_view table, const toml::table& t, Draft& d, RouteDraft* route) {
  for (const auto& [key, node] : t) {
    const Key* found = nullptr;
    for (const auto& k : kKeys)
      if (k.info.table == table && k.info.name == key.str()) found = &k;
    if (!found) fail(pos_of(key.source()), unknown_key_message(table, key.str()));
    Value v = read_value(*found, node);
    if (route) route->given.insert(std::string(key.str()));
    found->apply(d, route, v);
  }
}

// The first line of a secret file; a file others can read is allowed, and said.
std::string read_secret(const std::string& path, Pos pos, const std::string& what, std::vector<std::string>& warnings) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    fail(pos, "cannot read the " + what + " '" + path + "': " + std::strerror(errno) +
                  "; check the path and that this user may read it");
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    warnings.push_back("the " + what + " '" + path + "' is readable by other users; chmod 600 it.");
  if (line.empty()) fail(pos, "the " + what + " '" + path + "' is empty; put the secret on its first line");
  return line;
}

// "/a/b" -> "a.b": the dotted path DocumentOptions reads the timestamp from.
std::string pointer_to_dotted(const std::string& pointer) {
  std::string out;
  for (std::size_t i = 1; i < pointer.size(); ++i) {
    if (pointer[i] == '/') {
      out += '.';
    } else if (pointer[i] == '~' && i + 1 < pointer.size()) {
      out += pointer[++i] == '0' ? '~' : '/';
    } else {
      out += pointer[i];
    }
  }
  return out;
}

ServiceConfig finish(Draft& d, const toml::table& root) {
  ServiceConfig c;
  auto& o = c.recorder;

  // ---- mqtt ----
  mqtt::Options m;
  m.client_id = d.client_id;
  m.clean_session = d.clean_session;
  m.keepalive = std::chrono::seconds(d.keepalive);
  m.protocol = d.protocol;
  if (!d.urls.empty() && d.url_pos.line != 0)
    fail(d.urls_pos, "give the broker with url or urls, not both; put every address in urls");
  m = d.urls.empty() ? mqtt::options_from_url(d.url, m) : mqtt::options_from_urls(d.urls, m);
  if (!m.clean_session && m.client_id.empty())
    fail(d.clean_session_pos,
         "clean_session = false (a persistent session) needs a client id; add client_id = "
         "\"recorder-1\" to [mqtt]");
  if (!d.username.empty()) m.username = d.username;
  if (!d.password_file.empty()) {
    m.password = read_secret(d.password_file, d.password_file_pos, "password file", c.warnings);
  } else if (const char* env = std::getenv("IOTBRIDGE_PASSWORD"); env && *env && !m.username.empty() && !m.password) {
    m.password = std::string(env);
  }
  if (m.password && m.username.empty() && m.protocol != mqtt::Protocol::v5)
    fail(d.password_file_pos, "a password needs a user name with MQTT 3.1.1; add username = \"...\" to [mqtt]");
  if (d.cert_file.empty() != d.key_file.empty())
    fail(d.cert_pos, "cert_file and key_file go together; give both or neither");
  if (!d.ca_file.empty() || !d.ca_dir.empty() || !d.cert_file.empty() || d.insecure) m.tls.enabled = true;
  if (!d.ca_file.empty()) m.tls.ca_file = d.ca_file;
  if (!d.ca_dir.empty()) m.tls.ca_dir = d.ca_dir;
  m.tls.cert_file = d.cert_file;
  m.tls.key_file = d.key_file;
  m.tls.insecure = d.insecure;
  o.mqtt = m;
  o.qos = d.qos;

  // ---- store ----
  const bool has_store_table = root.contains("store");
  if (!d.store_uri.empty() && !d.store_uri_file.empty())
    fail(d.store_uri_file_pos, "give the store with uri or uri_file, not both");
  if (!d.store_uri_file.empty()) {
    o.store_uri = read_secret(d.store_uri_file, d.store_uri_file_pos, "store URI file", c.warnings);
  } else if (!d.store_uri.empty()) {
    o.store_uri = d.store_uri;
  } else if (const char* env = std::getenv("IOTBRIDGE_STORE"); env && *env) {
    o.store_uri = env;
  } else {
    Pos where = has_store_table ? pos_of(root["store"].node()->source()) : Pos{};
    fail(where,
         "no store: add uri = \"sqlite:/var/lib/iotbridge/readings.db\" (or mongodb://...) to [store], "
         "or uri_file, or set IOTBRIDGE_STORE");
  }
  o.database = d.database;
  o.batch_size = static_cast<std::size_t>(d.batch_size);
  o.flush_interval = std::chrono::milliseconds(d.flush_ms);

  // ---- durability ----
  o.spool_dir = d.spool_dir;
  o.sync_write_ahead = d.sync;
  o.spool_max_bytes = static_cast<std::uint64_t>(d.spool_max_bytes);
  o.queue_capacity = static_cast<std::size_t>(d.queue_capacity);

  // ---- metrics ----
  if (d.metrics) {
    c.metrics_enabled = true;
    c.metrics = *d.metrics;
  }
  c.metrics_line = d.metrics_pos.line;
  c.metrics_column = d.metrics_pos.column;

  // ---- routes ----
  if (d.routes.empty()) fail({}, "no [[route]]: add one, e.g.\n  [[route]]\n  name = \"all\"\n  filters = [\"iot/#\"]");
  std::map<std::string, Pos> names;
  for (auto& r : d.routes) {
    for (const char* required : {"name", "filters"})
      if (!r.given.count(required))
        fail(r.pos, std::string("this [[route]] has no ") + required + "; add " +
                        (std::string(required) == "name" ? "name = \"climate\"" : "filters = [\"iot/#\"]"));
    auto [it, inserted] = names.emplace(r.name, r.pos);
    if (!inserted)
      fail(r.pos, "a second route named '" + r.name + "' (the first is at line " + std::to_string(it->second.line) +
                      "); give each route its own name");
  }
  for (const auto& r : d.routes) {
    record::Route route;
    route.name = r.name;
    route.filters = r.filters;
    route.database = r.database.value_or(d.database);
    route.collection = r.collection;
    route.decoder = r.decoder;
    if (!r.topic_fields.empty()) route.document.topic_fields = record::TopicPattern(r.topic_fields);
    if (!r.timestamp.empty()) route.document.timestamp_field = pointer_to_dotted(r.timestamp);
    route.document.include_qos = r.include_qos;
    route.document.include_retain = r.include_retain;
    route.fields = r.fields;
    route.keep_payload = r.keep_payload;
    route.quarantine = r.policies.quarantine;
    route.on_unmapped = r.policies.on_unmapped;
    route.max_document_bytes = r.policies.max_document_bytes;
    route.expire_after = r.policies.expire_after;
    route.timeseries = r.policies.timeseries;
    route.deadband = r.policies.deadband;
    route.on_change = r.policies.on_change;
    route.heartbeat = r.policies.heartbeat;
    route.dedup_key = r.policies.dedup_key;
    // What the recorder itself checks (a topic pattern that cannot fit a filter, ...), at the route.
    try {
      record::validate_routes({route});
    } catch (const Error& e) {
      fail(r.pos, std::string(e.what()));
    }
    c.routes.push_back(std::move(route));
  }
  o.routes = c.routes;
  return c;
}

ServiceConfig parse(std::string_view text, const std::string& file_name) {
  toml::table root;
  try {
    root = toml::parse(text, file_name);
  } catch (const toml::parse_error& e) {
    auto p = pos_of(e.source());
    throw ConfigError(file_name, p.line, p.column, std::string(e.description()) + " (TOML syntax)");
  }
  try {
    Draft d;
    for (const auto& [key, node] : root) {
      std::string_view name = key.str();
      if (name == "route") {
        if (!node.is_array_of_tables())
          fail(pos_of(key.source()), "write each route as [[route]] (an array of tables), not [route] or route = ...");
        for (const auto& element : *node.as_array()) {
          RouteDraft r;
          r.pos = pos_of(element.source());
          read_table("route", *element.as_table(), d, &r);
          d.routes.push_back(std::move(r));
        }
        continue;
      }
      if (std::find(std::begin(kTables), std::end(kTables), name) == std::end(kTables)) {
        std::string best;
        for (auto t : kTables)
          if (edit_distance(name, t) < 3) best = t;
        fail(pos_of(key.source()), "unknown table or key '" + std::string(name) + "'" +
                                       (best.empty() ? "" : "; did you mean [" + best + "]?") +
                                       " The tables are [mqtt], [store], [durability], [metrics] and [[route]].");
      }
      if (!node.is_table())
        fail(pos_of(key.source()), "'" + std::string(name) + "' must be a table; write [" + std::string(name) +
                                       "] on a line of its own, with its keys below it");
      read_table(name, *node.as_table(), d, nullptr);
    }
    ServiceConfig c = finish(d, root);
    return c;
  } catch (const Problem& p) {
    throw ConfigError(file_name, p.pos.line, p.pos.column, p.what);
  }
}

}  // namespace

std::span<const ConfigKeyInfo> config_keys() { return key_infos(); }

ServiceConfig parse_config_text(std::string_view text, const std::string& file_name) { return parse(text, file_name); }

ServiceConfig load_config(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw ConfigError(
        file.string(), 0, 0,
        std::string("cannot read the configuration file: ") + std::strerror(errno) +
            "; give the path of a readable TOML file (the package installs /etc/iotbridge/recorder.toml)");
  std::ostringstream text;
  text << in.rdbuf();
  ServiceConfig c = parse(text.str(), file.string());
  c.file = file;
  return c;
}

std::vector<std::string> describe_routes(const ServiceConfig& config) {
  std::vector<std::string> out;
  for (const auto& r : config.routes) {
    std::string filters;
    for (const auto& f : r.filters) filters += (filters.empty() ? "" : ", ") + f;
    std::string line =
        "route " + r.name + ": " + filters + " -> " + r.database + "." + r.collection + " (decoder " + r.decoder;
    if (!r.document.topic_fields.empty()) line += ", topic fields " + r.document.topic_fields.pattern();
    if (!r.fields.empty()) {
      line += ", fields";
      for (const auto& [name, pointer] : r.fields) line += " " + name + "=" + pointer;
      if (!r.keep_payload) line += " (no value)";
    }
    if (!r.document.timestamp_field.empty()) line += ", timestamp " + r.document.timestamp_field;
    out.push_back(line + ")");
  }
  return out;
}

std::string describe_start(const ServiceConfig& config) {
  std::string line = record::start_line(config.recorder, config.routes);
  const auto& m = config.recorder.mqtt;
  for (std::size_t i = 0; i < m.failover.size(); ++i) {
    const auto& a = m.failover[i];
    line += (i == 0 ? ", failover to " : " ") + std::string(m.tls.enabled ? "mqtts://" : "mqtt://") +
            (a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host) + ":" + std::to_string(a.port);
  }
  if (config.metrics_enabled) line += ", metrics http://" + config.metrics.to_string() + "/metrics";
  return line;
}

}  // namespace iotbridge::service
