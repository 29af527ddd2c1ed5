#include "store/aggregate.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "store/bson_util.hpp"
#include "store/query.hpp"

namespace iotbridge::store::aggregate {

using detail::fail;

namespace {

constexpr std::int64_t kMsPerDay = 86'400'000;
constexpr std::int64_t kReference2000 = 946'684'800'000;  // 2000-01-01T00:00:00Z, MongoDB's bin origin

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Days since 1970-01-01 <-> proleptic Gregorian year/month/day (UTC).
struct Civil {
  std::int64_t year;
  int month, day;
};
Civil civil_from_days(std::int64_t z) {
  z += 719468;
  std::int64_t era = floor_div(z, 146097);
  std::int64_t doe = z - era * 146097;
  std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  std::int64_t mp = (5 * doy + 2) / 153;
  int d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  int m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  return {yoe + era * 400 + (m <= 2), m, d};
}
std::int64_t days_from_civil(std::int64_t y, int m, int d) {
  y -= m <= 2;
  std::int64_t era = floor_div(y, 400);
  std::int64_t yoe = y - era * 400;
  std::int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool is_operator(const Value& v, std::string* op = nullptr) {
  auto d = v.get_if<Document>();
  if (!d || d->count() != 1) return false;
  auto key = d->keys()[0];
  if (key.empty() || key[0] != '$') return false;
  if (op) *op = key;
  return true;
}

const Document& stage_arg_document(const std::string& stage, const Value& arg) {
  if (!arg.is<Document>()) fail(stage + " takes a document");
  return arg.as_document();
}

std::optional<DateTime> as_date(const std::optional<Value>& v, const std::string& op) {
  if (!v || v->is_null()) return std::nullopt;
  if (v->is<DateTime>()) return v->as_datetime();
  if (v->is<ObjectId>())
    return DateTime{
        std::chrono::duration_cast<std::chrono::milliseconds>(v->as_object_id().time().time_since_epoch()).count()};
  fail(op + " needs a date, found a " + std::string(to_string(v->type())));
}

std::optional<Value> numeric(const std::string& op, const std::vector<std::optional<Value>>& args) {
  if (op == "$subtract" || op == "$divide") {
    if (args.size() != 2) fail(op + " takes two arguments");
    if (!args[0] || !args[1] || args[0]->is_null() || args[1]->is_null()) return Value(nullptr);
    if (op == "$subtract" && args[0]->is<DateTime>()) {
      if (args[1]->is<DateTime>())
        return Value(static_cast<long long>(args[0]->as_datetime().millis - args[1]->as_datetime().millis));
      return Value(DateTime{args[0]->as_datetime().millis - args[1]->as_int64()});
    }
    if (!args[0]->is_number() || !args[1]->is_number()) fail(op + " needs numbers");
    if (op == "$divide") {
      if (args[1]->as_double() == 0) fail("$divide by zero");
      return Value(args[0]->as_double() / args[1]->as_double());
    }
    if (args[0]->is<double>() || args[1]->is<double>()) return Value(args[0]->as_double() - args[1]->as_double());
    return Value(static_cast<long long>(args[0]->as_int64() - args[1]->as_int64()));
  }
  // $add, $multiply: any number of arguments; $add takes one date.
  bool any_double = false;
  std::optional<std::int64_t> date;
  std::int64_t i = op == "$add" ? 0 : 1;
  double d = op == "$add" ? 0 : 1;
  for (const auto& a : args) {
    if (!a || a->is_null()) return Value(nullptr);
    if (op == "$add" && a->is<DateTime>()) {
      if (date) fail("$add takes one date at most");
      date = a->as_datetime().millis;
      continue;
    }
    if (!a->is_number()) fail(op + " needs numbers");
    any_double = any_double || a->is<double>();
    if (op == "$add") {
      i += a->as_int64();
      d += a->as_double();
    } else {
      i *= a->as_int64();
      d *= a->as_double();
    }
  }
  if (date) return Value(DateTime{*date + (any_double ? static_cast<std::int64_t>(std::llround(d)) : i)});
  if (any_double) return Value(d);
  if (i >= std::numeric_limits<std::int32_t>::min() && i <= std::numeric_limits<std::int32_t>::max())
    return Value(static_cast<int>(i));
  return Value(static_cast<long long>(i));
}

std::optional<Value> date_part(const std::string& op, const DateTime& t) {
  std::int64_t days = floor_div(t.millis, kMsPerDay);
  std::int64_t in_day = t.millis - days * kMsPerDay;
  Civil c = civil_from_days(days);
  if (op == "$year") return Value(static_cast<int>(c.year));
  if (op == "$month") return Value(c.month);
  if (op == "$dayOfMonth") return Value(c.day);
  if (op == "$hour") return Value(static_cast<int>(in_day / 3'600'000));
  if (op == "$minute") return Value(static_cast<int>(in_day / 60'000 % 60));
  if (op == "$second") return Value(static_cast<int>(in_day / 1000 % 60));
  if (op == "$dayOfWeek") return Value(static_cast<int>(days + 4 - floor_div(days + 4, 7) * 7) + 1);  // 1 = Sunday
  fail("unsupported expression operator " + op);
}

const char* const kOperators[] = {"$literal", "$dateTrunc", "$year",      "$month", "$dayOfMonth", "$hour",
                                  "$minute",  "$second",    "$dayOfWeek", "$add",   "$subtract",   "$multiply",
                                  "$divide",  "$concat",    "$ifNull",    "$toDate"};

bool known_operator(const std::string& op) {
  return std::find(std::begin(kOperators), std::end(kOperators), op) != std::end(kOperators);
}

// Throws for an expression operator evaluate() does not implement.
void validate_expression(const Value& e) {
  std::string op;
  if (is_operator(e, &op)) {
    if (!known_operator(op))
      fail("unsupported expression operator " + op +
           " (implemented: $dateTrunc $year $month $dayOfMonth $hour "
           "$minute $second $dayOfWeek $add $subtract $multiply $divide $concat $ifNull $toDate $literal)");
    if (op == "$literal") return;
    validate_expression(e.as_document().fields()[0].second);
    return;
  }
  if (auto d = e.get_if<Document>())
    for (const auto& [k, v] : d->fields()) validate_expression(v);
  if (auto a = e.get_if<Array>())
    for (const auto& v : a->values()) validate_expression(v);
}

std::vector<std::optional<Value>> evaluate_args(const Value& arg, const Document& doc) {
  std::vector<std::optional<Value>> out;
  if (auto a = arg.get_if<Array>()) {
    for (const auto& v : a->values()) out.push_back(evaluate(v, doc));
  } else {
    out.push_back(evaluate(arg, doc));
  }
  return out;
}

std::optional<Value> evaluate_operator(const std::string& op, const Value& arg, const Document& doc) {
  if (op == "$literal") return arg;
  if (op == "$dateTrunc") {
    const auto& spec = stage_arg_document("$dateTrunc", arg);
    auto date = as_date(evaluate(spec.get("date").value_or(Value()), doc), op);
    auto unit = spec.get_string("unit");
    if (!unit) fail("$dateTrunc needs a unit (\"hour\", \"day\", ...)");
    std::int64_t bin = spec.get("binSize") ? spec.at("binSize").as_int64() : 1;
    if (auto tz = spec.get_string("timezone"); tz && *tz != "UTC" && *tz != "GMT" && *tz != "+00:00" && *tz != "Z")
      fail("$dateTrunc: only the UTC timezone is implemented, not '" + *tz + "'");
    int start = spec.get_string("startOfWeek") ? weekday_number(*spec.get_string("startOfWeek")) : 0;
    if (!date) return Value(nullptr);
    return Value(DateTime{date_trunc(date->millis, *unit, bin, start)});
  }
  auto args = evaluate_args(arg, doc);
  if (op == "$add" || op == "$subtract" || op == "$multiply" || op == "$divide") return numeric(op, args);
  if (op == "$concat") {
    std::string out;
    for (const auto& a : args) {
      if (!a || a->is_null()) return Value(nullptr);
      if (!a->is<std::string>()) fail("$concat needs strings, found a " + std::string(to_string(a->type())));
      out += a->as_string();
    }
    return Value(out);
  }
  if (op == "$ifNull") {
    for (const auto& a : args)
      if (a && !a->is_null()) return a;
    return args.empty() ? std::nullopt : args.back();
  }
  if (op == "$toDate") {
    if (args.size() != 1) fail("$toDate takes one argument");
    if (!args[0] || args[0]->is_null()) return Value(nullptr);
    if (args[0]->is_number()) return Value(DateTime{args[0]->as_int64()});
    return Value(*as_date(args[0], op));
  }
  if (args.size() != 1) fail(op + " takes one date");
  auto date = as_date(args[0], op);
  if (!date) return Value(nullptr);
  return date_part(op, *date);
}

// Sets a dotted path in doc (creating sub-documents), for $unwind and $addFields.
Document set_path(const Document& doc, const std::vector<std::string>& segs, std::size_t i, const Value& v) {
  Document out = doc;
  if (i + 1 == segs.size()) {
    out.set(segs[i], v);
    return out;
  }
  Document child = doc.get_document(segs[i]).value_or(Document());
  out.set(segs[i], set_path(child, segs, i + 1, v));
  return out;
}

struct GroupSpec {
  Value id;
  std::vector<std::tuple<std::string, std::string, Value>> accumulators;  // name, $op, expression
};

GroupSpec parse_group(const Document& spec, const std::string& stage) {
  GroupSpec g;
  bool has_id = false;
  for (const auto& [name, acc] : spec.fields()) {
    if (name == "_id") {
      g.id = acc;
      has_id = true;
      validate_expression(acc);
      continue;
    }
    std::string op;
    if (!is_operator(acc, &op))
      fail(stage + " field '" + name + "' must be an accumulator such as {\"$avg\": \"$value\"}");
    if (!Accumulator::supported(op))
      fail("unsupported accumulator " + op + " in " + stage +
           " (implemented: $sum $avg $min $max $count $first $last $push)");
    Value expr = acc.as_document().fields()[0].second;
    if (op == "$count") {
      if (!expr.is<Document>() || !expr.as_document().empty()) fail("$count as an accumulator takes {}");
    } else {
      validate_expression(expr);
    }
    g.accumulators.emplace_back(name, op, expr);
  }
  if (!has_id && stage == "$group") fail("$group needs an _id (null for one group of everything)");
  return g;
}

std::vector<Document> group(const std::vector<Document>& docs, const GroupSpec& g) {
  struct Bucket {
    Value id;
    std::vector<Accumulator> accs;
  };
  std::vector<Bucket> buckets;
  // Groups by MongoDB's equality of keys (1 and 1.0 are one group).
  auto less = [](const Value& a, const Value& b) { return compare(a, b) < 0; };
  std::map<Value, std::size_t, decltype(less)> index(less);
  for (const auto& doc : docs) {
    Value key = evaluate(g.id, doc).value_or(Value(nullptr));
    auto it = index.find(key);
    if (it == index.end()) {
      Bucket b{key, {}};
      for (const auto& acc : g.accumulators) b.accs.emplace_back(std::get<1>(acc));
      buckets.push_back(std::move(b));
      it = index.emplace(key, buckets.size() - 1).first;
    }
    auto& bucket = buckets[it->second];
    for (std::size_t i = 0; i < g.accumulators.size(); ++i) {
      const auto& [name, op, expr] = g.accumulators[i];
      bucket.accs[i].add(op == "$count" ? std::optional<Value>(Value(1)) : evaluate(expr, doc));
    }
  }
  std::vector<Document> out;
  for (const auto& b : buckets) {
    Document d;
    d.append("_id", b.id);
    for (std::size_t i = 0; i < g.accumulators.size(); ++i)
      d.append(std::get<0>(g.accumulators[i]), b.accs[i].result());
    out.push_back(std::move(d));
  }
  return out;
}

std::vector<Document> bucket(const std::vector<Document>& docs, const Document& spec) {
  auto group_by = spec.get("groupBy");
  auto boundaries = spec.get("boundaries");
  if (!group_by || !boundaries || !boundaries->is<Array>() || boundaries->as_array().size() < 2)
    fail("$bucket needs groupBy and at least two boundaries");
  const auto& bounds = boundaries->as_array().values();
  for (std::size_t i = 1; i < bounds.size(); ++i)
    if (compare(bounds[i - 1], bounds[i]) >= 0) fail("$bucket boundaries must be sorted ascending");
  auto fallback = spec.get("default");
  GroupSpec g;
  if (auto output = spec.get_document("output"))
    g = parse_group(*output, "$bucket output");
  else
    g.accumulators.emplace_back("count", "$sum", Value(1));
  // Each document goes to the bucket of its lower boundary, or the default.
  std::vector<Document> out;
  std::vector<std::pair<Value, std::vector<Document>>> members;
  for (const auto& doc : docs) {
    Value v = evaluate(*group_by, doc).value_or(Value(nullptr));
    std::optional<Value> id;
    for (std::size_t i = 0; i + 1 < bounds.size() && !id; ++i)
      if (detail::type_rank(v.type()) == detail::type_rank(bounds[i].type()) && compare(bounds[i], v) <= 0 &&
          compare(v, bounds[i + 1]) < 0)
        id = bounds[i];
    if (!id) {
      if (!fallback)
        fail("$bucket: a value (" + v.to_json() + ") falls outside the boundaries and no default is given");
      id = *fallback;
    }
    auto it = std::find_if(members.begin(), members.end(), [&](const auto& m) { return compare(m.first, *id) == 0; });
    if (it == members.end()) {
      members.emplace_back(*id, std::vector<Document>{});
      it = members.end() - 1;
    }
    it->second.push_back(doc);
  }
  auto rank = [&](const Value& id) {
    for (std::size_t i = 0; i < bounds.size(); ++i)
      if (compare(bounds[i], id) == 0) return i;
    return bounds.size();  // the default bucket comes last
  };
  std::stable_sort(members.begin(), members.end(),
                   [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
  GroupSpec all;
  all.id = Value(nullptr);
  all.accumulators = g.accumulators;
  for (const auto& [id, group_docs] : members) {
    auto one = group(group_docs, all);
    Document d;
    d.append("_id", id);
    for (const auto& [k, v] : one.at(0).fields())
      if (k != "_id") d.append(k, v);
    out.push_back(std::move(d));
  }
  return out;
}

Document project_computed(const Document& doc, const Document& spec) {
  Document out;
  bool keep_id = true;
  if (auto id = spec.get("_id");
      id && (id->is<bool>() || id->is_number()) && !(id->is<bool>() ? id->as_bool() : id->as_double() != 0))
    keep_id = false;
  if (keep_id && !spec.has("_id"))
    if (auto id = doc.get("_id")) out.append("_id", *id);
  for (const auto& [key, v] : spec.fields()) {
    bool flag = v.is<bool>() || v.is_number();
    if (flag) {
      bool on = v.is<bool>() ? v.as_bool() : v.as_double() != 0;
      if (!on) {
        if (key == "_id") continue;
        fail("$project cannot mix exclusions with computed fields (field '" + key + "')");
      }
      if (auto got = doc.get(key)) out.append(key, *got);
      continue;
    }
    if (auto got = evaluate(v, doc)) out.append(key, *got);
  }
  return out;
}

bool is_plain_projection(const Document& spec) {
  for (const auto& [k, v] : spec.fields())
    if (!v.is<bool>() && !v.is_number()) return false;
  return true;
}

std::vector<Document> unwind(std::vector<Document> docs, const Value& arg) {
  std::string path;
  bool keep_empty = false;
  std::string index_field;
  if (arg.is<std::string>()) {
    path = arg.as_string();
  } else if (auto d = arg.get_if<Document>()) {
    path = d->get_string("path").value_or("");
    keep_empty = d->get_bool("preserveNullAndEmptyArrays").value_or(false);
    index_field = d->get_string("includeArrayIndex").value_or("");
  }
  if (path.size() < 2 || path[0] != '$') fail("$unwind needs a field path such as \"$tags\"");
  path = path.substr(1);
  auto segs = query::split_path(path);
  std::vector<Document> out;
  for (auto& doc : docs) {
    auto v = doc.get(path);
    auto with_index = [&](Document d, const Value& idx) {
      if (!index_field.empty()) d.set(index_field, idx);
      return d;
    };
    if (v && v->is<Array>()) {
      const auto& items = v->as_array().values();
      if (items.empty() && keep_empty) out.push_back(with_index(doc, Value(nullptr)));
      for (std::size_t i = 0; i < items.size(); ++i)
        out.push_back(with_index(set_path(doc, segs, 0, items[i]), Value(static_cast<long long>(i))));
    } else if (v && !v->is_null()) {
      out.push_back(with_index(std::move(doc), Value(nullptr)));  // a non-array is one element
    } else if (keep_empty) {
      out.push_back(with_index(std::move(doc), Value(nullptr)));
    }
  }
  return out;
}

const char* const kStages[] = {"$match",  "$project", "$group",  "$sort",      "$limit", "$skip",
                               "$unwind", "$count",   "$bucket", "$addFields", "$set"};

}  // namespace

int weekday_number(const std::string& name) {
  static const char* const kDays[] = {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"};
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (int i = 0; i < 7; ++i)
    if (lower == kDays[i] || lower == std::string(kDays[i]).substr(0, 3)) return i;
  fail("startOfWeek '" + name + "' is not a day name (sunday ... saturday)");
}

std::int64_t date_trunc(std::int64_t millis, const std::string& unit, std::int64_t bin, int start_of_week) {
  if (bin < 1) fail("$dateTrunc binSize must be a positive integer");
  std::int64_t step = 0;
  if (unit == "millisecond") step = 1;
  if (unit == "second") step = 1000;
  if (unit == "minute") step = 60'000;
  if (unit == "hour") step = 3'600'000;
  if (unit == "day") step = kMsPerDay;
  if (step) return kReference2000 + floor_div(millis - kReference2000, step * bin) * step * bin;
  if (unit == "week") {
    // The first start_of_week day on or before 2000-01-01 (a Saturday, weekday 6).
    std::int64_t origin = kReference2000 - ((6 - start_of_week + 7) % 7) * kMsPerDay;
    std::int64_t span = 7 * kMsPerDay * bin;
    return origin + floor_div(millis - origin, span) * span;
  }
  std::int64_t months_per = unit == "month" ? 1 : unit == "quarter" ? 3 : unit == "year" ? 12 : 0;
  if (!months_per)
    fail("$dateTrunc unit '" + unit +
         "' is not one of year, quarter, month, week, day, hour, minute, second, "
         "millisecond");
  Civil c = civil_from_days(floor_div(millis, kMsPerDay));
  std::int64_t months = (c.year - 2000) * 12 + (c.month - 1);
  std::int64_t start = floor_div(months, months_per * bin) * months_per * bin;
  std::int64_t year = 2000 + floor_div(start, 12);
  int month = static_cast<int>(start - floor_div(start, 12) * 12) + 1;
  return days_from_civil(year, month, 1) * kMsPerDay;
}

std::optional<Value> evaluate(const Value& e, const Document& doc) {
  if (auto s = e.get_if<std::string>(); s && !s->empty() && (*s)[0] == '$') {
    if (*s == "$$ROOT" || *s == "$$CURRENT") return Value(doc);
    if (s->size() > 1 && (*s)[1] == '$') fail("unsupported variable " + *s + " ($$ROOT and $$CURRENT are)");
    return doc.get(s->substr(1));
  }
  std::string op;
  if (is_operator(e, &op)) {
    if (!known_operator(op)) validate_expression(e);  // throws naming it
    return evaluate_operator(op, e.as_document().fields()[0].second, doc);
  }
  if (auto d = e.get_if<Document>()) {
    Document out;
    for (const auto& [k, v] : d->fields())
      if (auto got = evaluate(v, doc)) out.append(k, *got);
    return Value(out);
  }
  if (auto a = e.get_if<Array>()) {
    Array out;
    for (const auto& v : a->values()) out.push_back(evaluate(v, doc).value_or(Value(nullptr)));
    return Value(out);
  }
  return e;
}

Accumulator::Accumulator(const std::string& op) : op_(op) {
  if (!supported(op)) fail("unsupported accumulator " + op);
}

bool Accumulator::supported(const std::string& op) {
  for (const char* known : {"$sum", "$avg", "$min", "$max", "$count", "$first", "$last", "$push"})
    if (op == known) return true;
  return false;
}

void Accumulator::add(const std::optional<Value>& v) {
  ++count_;
  if (op_ == "$sum" || op_ == "$avg" || op_ == "$count") {
    if (!v || !v->is_number()) return;
    ++numbers_;
    if (v->is<double>()) any_double_ = true;
    if (v->is<std::int64_t>()) any_int64_ = true;
    double_sum_ += v->as_double();
    if (!v->is<double>() && __builtin_add_overflow(int_sum_, v->as_int64(), &int_sum_)) overflow_ = true;
    return;
  }
  if (op_ == "$first") {
    if (count_ == 1) picked_ = v.value_or(Value(nullptr));
    return;
  }
  if (op_ == "$last") {
    picked_ = v.value_or(Value(nullptr));
    return;
  }
  if (op_ == "$push") {
    if (v) pushed_.push_back(*v);
    return;
  }
  if (!v || v->is_null()) return;  // $min / $max ignore null and missing
  if (!picked_ || (op_ == "$min" ? compare(*v, *picked_) < 0 : compare(*v, *picked_) > 0)) picked_ = *v;
}

Value Accumulator::result() const {
  if (op_ == "$sum" || op_ == "$count") {
    if (any_double_ || overflow_) return Value(double_sum_);
    if (!any_int64_ && int_sum_ >= std::numeric_limits<std::int32_t>::min() &&
        int_sum_ <= std::numeric_limits<std::int32_t>::max())
      return Value(static_cast<int>(int_sum_));
    return Value(static_cast<long long>(int_sum_));
  }
  if (op_ == "$avg") return numbers_ ? Value(double_sum_ / static_cast<double>(numbers_)) : Value(nullptr);
  if (op_ == "$push") return Value(Array(pushed_));
  return picked_.value_or(Value(nullptr));
}

void validate(const std::vector<Document>& pipeline) {
  for (std::size_t i = 0; i < pipeline.size(); ++i) {
    const auto& stage = pipeline[i];
    if (stage.count() != 1)
      fail("pipeline stage " + std::to_string(i) + " must have exactly one field, such as {\"$match\": {...}}");
    auto [name, arg] = stage.fields()[0];
    if (std::find(std::begin(kStages), std::end(kStages), name) == std::end(kStages))
      fail("unsupported pipeline stage " + name +
           " (implemented: $match $project $group $sort $limit $skip $unwind $count $bucket $addFields $set)");
    if (name == "$match") query::validate_filter(stage_arg_document(name, arg));
    if (name == "$group") parse_group(stage_arg_document(name, arg), name);
    if (name == "$sort") query::validate_sort(stage_arg_document(name, arg));
    if (name == "$project" || name == "$addFields" || name == "$set")
      for (const auto& [k, v] : stage_arg_document(name, arg).fields()) validate_expression(v);
    if ((name == "$limit" || name == "$skip") && (!arg.is_number() || arg.as_double() < 0))
      fail(name + " takes a number that is not negative");
    if (name == "$count" && (!arg.is<std::string>() || arg.as_string().empty() || arg.as_string()[0] == '$'))
      fail("$count takes the name of the output field, such as \"n\"");
  }
}

std::vector<Document> run(std::vector<Document> docs, const std::vector<Document>& pipeline, std::size_t first) {
  for (std::size_t i = first; i < pipeline.size(); ++i) {
    auto [name, arg] = pipeline[i].fields()[0];
    if (name == "$match") {
      const auto& filter = arg.as_document();
      std::erase_if(docs, [&](const Document& d) { return !query::matches(d, filter); });
    } else if (name == "$project") {
      const auto& spec = arg.as_document();
      bool plain = is_plain_projection(spec);
      if (plain) query::validate_projection(spec);
      for (auto& d : docs) d = plain ? query::project(d, spec) : project_computed(d, spec);
    } else if (name == "$addFields" || name == "$set") {
      for (auto& d : docs)
        for (const auto& [k, v] : arg.as_document().fields())
          if (auto got = evaluate(v, d)) d = set_path(d, query::split_path(k), 0, *got);
    } else if (name == "$group") {
      docs = group(docs, parse_group(arg.as_document(), name));
    } else if (name == "$bucket") {
      docs = bucket(docs, stage_arg_document(name, arg));
    } else if (name == "$sort") {
      const auto& spec = arg.as_document();
      std::stable_sort(docs.begin(), docs.end(),
                       [&](const Document& a, const Document& b) { return query::compare_for_sort(a, b, spec) < 0; });
    } else if (name == "$limit") {
      auto n = static_cast<std::size_t>(arg.as_int64());
      if (n == 0) fail("$limit must be positive");
      if (docs.size() > n) docs.resize(n);
    } else if (name == "$skip") {
      auto n = std::min(docs.size(), static_cast<std::size_t>(arg.as_int64()));
      docs.erase(docs.begin(), docs.begin() + static_cast<std::ptrdiff_t>(n));
    } else if (name == "$unwind") {
      docs = unwind(std::move(docs), arg);
    } else if (name == "$count") {
      std::size_t n = docs.size();
      docs.clear();
      if (n > 0) docs.push_back(Document().append(arg.as_string(), Value(static_cast<int>(n))));
    }
  }
  return docs;
}

}  // namespace iotbridge::store::aggregate
