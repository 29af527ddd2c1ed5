#include "store/sqlite_aggregate.hpp"

#include <limits>
#include <memory>

#include "store/aggregate.hpp"
#include "store/bson_util.hpp"
#include "store/sqlite_keys.hpp"

namespace iotbridge::store::detail {
namespace {

std::string literal(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// The value at `path` of the BSON blob in argv[doc]; nullopt when missing.
std::optional<Value> value_at(sqlite3_value* doc, sqlite3_value* path_arg) {
  const void* data = sqlite3_value_blob(doc);
  int len = sqlite3_value_bytes(doc);
  const unsigned char* path = sqlite3_value_text(path_arg);
  if (!data || !path || len < 5) return std::nullopt;
  bson_t b;
  bson_iter_t it, found;
  if (!bson_init_static(&b, static_cast<const uint8_t*>(data), static_cast<size_t>(len)) || !bson_iter_init(&it, &b) ||
      !bson_iter_find_descendant(&it, reinterpret_cast<const char*>(path), &found))
    return std::nullopt;
  return value_from_iter(&found);
}

// bson_date_trunc(doc, path, unit, bin_size, start_of_week): $dateTrunc of a
// date field as epoch milliseconds; NULL when the field is missing or null.
void date_trunc_fn(sqlite3_context* ctx, int, sqlite3_value** argv) {
  try {
    auto v = value_at(argv[0], argv[1]);
    if (!v || v->is_null()) {
      sqlite3_result_null(ctx);
      return;
    }
    if (!v->is<DateTime>()) {
      std::string msg = "$dateTrunc needs a date, found a " + std::string(to_string(v->type()));
      sqlite3_result_error(ctx, msg.c_str(), -1);
      return;
    }
    std::string unit = reinterpret_cast<const char*>(sqlite3_value_text(argv[2]));
    sqlite3_result_int64(ctx, aggregate::date_trunc(v->as_datetime().millis, unit, sqlite3_value_int64(argv[3]),
                                                    sqlite3_value_int(argv[4])));
  } catch (const std::exception& e) {
    sqlite3_result_error(ctx, e.what(), -1);  // never throw into SQLite
  }
}

// bson_group_key(doc, path): the group key of a field inside an object _id,
// where MongoDB tells a missing field ({}) from a null one ({"room": null}):
// bson_get's key, but x'00' for null (missing stays NULL).
void group_key_fn(sqlite3_context* ctx, int, sqlite3_value** argv) {
  try {
    auto v = value_at(argv[0], argv[1]);
    if (!v) {
      sqlite3_result_null(ctx);
      return;
    }
    if (v->is_null()) {
      sqlite3_result_blob(ctx, "", 1, SQLITE_STATIC);  // one zero byte, below every type rank blob
      return;
    }
    SqlKey k = sql_key(*v);
    switch (k.kind) {
      case SqlKey::integer: sqlite3_result_int64(ctx, k.i); break;
      case SqlKey::real: sqlite3_result_double(ctx, k.d); break;
      case SqlKey::text:
        sqlite3_result_text(ctx, k.bytes.data(), static_cast<int>(k.bytes.size()), SQLITE_TRANSIENT);
        break;
      case SqlKey::blob:
      case SqlKey::null:
        sqlite3_result_blob(ctx, k.bytes.data(), static_cast<int>(k.bytes.size()), SQLITE_TRANSIENT);
        break;
    }
  } catch (const std::exception& e) {
    sqlite3_result_error(ctx, e.what(), -1);
  }
}

// bson_pick(mode, seq, doc, path): $min / $max (MongoDB's order, null and
// missing ignored), $first / $last (by insertion order, seq), with the value's
// BSON type kept: the result is the BSON document {"v": value}, or NULL when
// nothing was picked (a missing field for first/last).
struct Pick {
  std::optional<Value> value;
  std::int64_t seq = 0;
  bool any = false;
};

Pick* pick_state(sqlite3_context* ctx, bool create) {
  auto** slot = static_cast<Pick**>(sqlite3_aggregate_context(ctx, create ? sizeof(Pick*) : 0));
  if (!slot) return nullptr;
  if (!*slot && create) *slot = new Pick();
  return *slot;
}

void pick_step(sqlite3_context* ctx, int, sqlite3_value** argv) {
  try {
    Pick* p = pick_state(ctx, true);
    if (!p) {
      sqlite3_result_error_nomem(ctx);
      return;
    }
    std::string mode = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
    std::int64_t seq = sqlite3_value_int64(argv[1]);
    if (mode == "first" || mode == "last") {
      if (p->any && (mode == "first" ? seq >= p->seq : seq <= p->seq)) return;
      p->any = true;
      p->seq = seq;
      p->value = value_at(argv[2], argv[3]);
      return;
    }
    auto v = value_at(argv[2], argv[3]);
    if (!v || v->is_null()) return;
    if (!p->value || (mode == "min" ? compare(*v, *p->value) < 0 : compare(*v, *p->value) > 0)) p->value = std::move(v);
  } catch (const std::exception& e) {
    sqlite3_result_error(ctx, e.what(), -1);
  }
}

void pick_final(sqlite3_context* ctx) {
  Pick* p = pick_state(ctx, false);
  std::unique_ptr<Pick> owned(p);
  try {
    if (!p || !p->value) {
      sqlite3_result_null(ctx);
      return;
    }
    Document d;
    d.append("v", *p->value);
    sqlite3_result_blob(ctx, d.data(), static_cast<int>(d.size()), SQLITE_TRANSIENT);
  } catch (const std::exception& e) {
    sqlite3_result_error(ctx, e.what(), -1);
  }
}

std::optional<Value> picked(sqlite3_stmt* st, int col) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL) return std::nullopt;
  auto doc = Document::from_bson(static_cast<const std::uint8_t*>(sqlite3_column_blob(st, col)),
                                 static_cast<std::size_t>(sqlite3_column_bytes(st, col)));
  return doc.get("v");
}

Value sql_number(sqlite3_stmt* st, int col) {
  switch (sqlite3_column_type(st, col)) {
    case SQLITE_INTEGER: {
      std::int64_t i = sqlite3_column_int64(st, col);
      if (i >= std::numeric_limits<std::int32_t>::min() && i <= std::numeric_limits<std::int32_t>::max())
        return Value(static_cast<int>(i));
      return Value(static_cast<long long>(i));
    }
    case SQLITE_FLOAT: return Value(sqlite3_column_double(st, col));
    default: return Value(nullptr);
  }
}

// "$path" -> "path", when it is a plain path the SQL side may read.
std::optional<std::string> plain_path(const Value& v, const std::set<std::string>& array_keys) {
  auto s = v.get_if<std::string>();
  if (!s || s->size() < 2 || (*s)[0] != '$' || (*s)[1] == '$') return std::nullopt;
  std::string path = s->substr(1);
  if (array_keys.count(path.substr(0, path.find('.')))) return std::nullopt;
  return path;
}

struct Key {
  std::string group_expr;   // what GROUP BY uses
  std::string output_expr;  // what SELECT returns for the _id
  GroupQuery::Column::Kind kind;
};

// One group key: "$path" or {"$dateTrunc": {"date": "$path", "unit": ..., ...}}.
std::optional<Key> group_key(const Value& v, const std::set<std::string>& array_keys, bool in_object) {
  if (auto path = plain_path(v, array_keys))
    return Key{(in_object ? "bson_group_key(doc, " : "bson_get(doc, ") + literal(*path) + ")",
               "bson_pick('first', seq, doc, " + literal(*path) + ")", GroupQuery::Column::picked};
  auto d = v.get_if<Document>();
  if (!d || d->count() != 1 || d->keys()[0] != "$dateTrunc") return std::nullopt;
  auto spec = d->get_document("$dateTrunc");
  if (!spec) return std::nullopt;
  for (const auto& k : spec->keys())
    if (k != "date" && k != "unit" && k != "binSize" && k != "timezone" && k != "startOfWeek") return std::nullopt;
  auto path = plain_path(spec->get("date").value_or(Value()), array_keys);
  auto unit = spec->get_string("unit");
  if (!path || !unit) return std::nullopt;
  std::int64_t bin = 1;
  if (auto b = spec->get("binSize")) {
    if (!b->is_number()) return std::nullopt;
    bin = b->as_int64();
  }
  if (auto tz = spec->get_string("timezone"); tz && *tz != "UTC") return std::nullopt;
  if (spec->has("timezone") && !spec->get_string("timezone")) return std::nullopt;
  int start = 0;
  if (spec->has("startOfWeek")) {
    auto name = spec->get_string("startOfWeek");
    if (!name) return std::nullopt;
    start = aggregate::weekday_number(*name);
  }
  aggregate::date_trunc(0, *unit, bin, start);  // throws for a bad unit or bin size, as the evaluator would
  std::string expr = "bson_date_trunc(doc, " + literal(*path) + ", " + literal(*unit) + ", " + std::to_string(bin) +
                     ", " + std::to_string(start) + ")";
  return Key{expr, expr, GroupQuery::Column::date};
}

}  // namespace

int register_aggregate_functions(sqlite3* db) {
  int rc = sqlite3_create_function_v2(db, "bson_date_trunc", 5, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
                                      nullptr, date_trunc_fn, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_create_function_v2(db, "bson_group_key", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
                                  nullptr, group_key_fn, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return rc;
  return sqlite3_create_function_v2(db, "bson_pick", 4, SQLITE_UTF8 | SQLITE_INNOCUOUS, nullptr, nullptr, pick_step,
                                    pick_final, nullptr);
}

std::optional<GroupQuery> plan_group(const std::vector<Document>& pipeline, const std::set<std::string>& array_keys) {
  GroupQuery q;
  Array matches;
  std::size_t i = 0;
  for (; i < pipeline.size() && pipeline[i].keys()[0] == "$match"; ++i) matches.push_back(pipeline[i].at("$match"));
  if (i == pipeline.size() || pipeline[i].keys()[0] != "$group") return std::nullopt;
  if (matches.size() == 1) q.filter = matches[0].as_document();
  if (matches.size() > 1) q.filter.append("$and", matches);
  const Document spec = pipeline[i].at("$group").as_document();
  q.next_stage = i + 1;

  std::vector<std::string> select, group;
  Value id = spec.get("_id").value_or(Value());
  auto id_doc = id.get_if<Document>();
  bool object_id = id_doc && !id_doc->empty() && id_doc->keys()[0][0] != '$';
  if (object_id) {
    for (const auto& [name, expr] : id_doc->fields()) {
      auto key = group_key(expr, array_keys, true);
      if (!key) return std::nullopt;
      group.push_back(key->group_expr);
      select.push_back(key->output_expr);
      q.columns.push_back({"_id." + name, key->kind});
    }
  } else if (auto key = group_key(id, array_keys, false)) {
    group.push_back(key->group_expr);
    select.push_back(key->output_expr);
    q.columns.push_back({"_id", key->kind});
  } else if (id.is<Document>() || id.is<Array>() ||
             (id.is<std::string>() && !id.as_string().empty() && id.as_string()[0] == '$')) {
    return std::nullopt;  // an expression SQL does not know
  } else {
    q.constant_id = id;
  }

  for (const auto& [name, acc] : spec.fields()) {
    if (name == "_id") continue;
    const auto& d = acc.as_document();
    const std::string op = d.keys()[0];
    const Value arg = d.at(op);
    if (op == "$count" || (op == "$sum" && arg.is_number() && arg.as_double() == 1 && !arg.is<double>())) {
      select.push_back("count(*)");
      q.columns.push_back({name, GroupQuery::Column::sql_value});
      continue;
    }
    auto path = plain_path(arg, array_keys);
    if (!path) return std::nullopt;
    std::string value = "bson_get(doc, " + literal(*path) + ")";
    std::string number = "CASE WHEN typeof(" + value + ") IN ('integer', 'real') THEN " + value + " END";
    if (op == "$sum") {
      select.push_back("coalesce(sum(" + number + "), 0)");
      q.columns.push_back({name, GroupQuery::Column::sql_value});
    } else if (op == "$avg") {
      select.push_back("avg(" + number + ")");
      q.columns.push_back({name, GroupQuery::Column::sql_value});
    } else if (op == "$min" || op == "$max" || op == "$first" || op == "$last") {
      select.push_back("bson_pick('" + op.substr(1) + "', seq, doc, " + literal(*path) + ")");
      q.columns.push_back({name, GroupQuery::Column::picked});
    } else {
      return std::nullopt;  // $push: in process
    }
  }
  select.push_back("count(*)");  // tells an empty input from an empty group
  q.columns.push_back({"", GroupQuery::Column::count});
  for (std::size_t k = 0; k < select.size(); ++k) q.select += (k ? ", " : "") + select[k];
  if (!group.empty()) {
    q.group_by = " GROUP BY ";
    for (std::size_t k = 0; k < group.size(); ++k) q.group_by += (k ? ", " : "") + group[k];
  }
  return q;
}

bool GroupQuery::has_input(sqlite3_stmt* st) const {
  return sqlite3_column_int64(st, static_cast<int>(columns.size()) - 1) > 0;
}

Document GroupQuery::row(sqlite3_stmt* st) const {
  Document out, id_doc;
  bool object_id = false;
  std::optional<Value> id = constant_id;
  std::vector<std::pair<std::string, Value>> fields;
  for (std::size_t c = 0; c < columns.size(); ++c) {
    const auto& col = columns[c];
    int i = static_cast<int>(c);
    std::optional<Value> v;
    switch (col.kind) {
      case Column::sql_value: v = sql_number(st, i); break;
      case Column::picked: v = picked(st, i); break;
      case Column::date:
        if (sqlite3_column_type(st, i) != SQLITE_NULL) v = Value(DateTime{sqlite3_column_int64(st, i)});
        break;
      case Column::count: continue;
    }
    if (col.name.rfind("_id.", 0) == 0) {
      object_id = true;
      if (v) id_doc.append(col.name.substr(4), *v);  // a missing field is left out, as MongoDB does
    } else if (col.name == "_id") {
      id = v.value_or(Value(nullptr));
    } else {
      // $min/$max of nothing, $first/$last of a missing field: null.
      fields.emplace_back(col.name, v.value_or(Value(nullptr)));
    }
  }
  out.append("_id", object_id ? Value(id_doc) : id.value_or(Value(nullptr)));
  for (auto& [k, v] : fields) out.append(k, v);
  return out;
}

}  // namespace iotbridge::store::detail
