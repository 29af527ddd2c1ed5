#include "store/query.hpp"

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>

#include "iotbridge/error.hpp"
#include "store/bson_util.hpp"

namespace iotbridge::store::query {

using detail::fail;
using detail::type_rank;

namespace {

bool is_index(const std::string& s) {
  return !s.empty() && s.size() < 10 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void resolve_into(const Value& v, const std::vector<std::string>& segs, std::size_t i, bool expand,
                  std::vector<Value>& out) {
  if (i == segs.size()) {
    out.push_back(v);
    if (expand)
      if (auto a = v.get_if<Array>())
        for (const auto& e : a->values()) out.push_back(e);
    return;
  }
  const std::string& seg = segs[i];
  if (auto d = v.get_if<Document>()) {
    if (auto child = d->get(seg)) {
      // A key containing no dot: Document::get does a top-level lookup.
      resolve_into(*child, segs, i + 1, expand, out);
    }
  } else if (auto a = v.get_if<Array>()) {
    if (is_index(seg)) {
      std::size_t idx = std::stoul(seg);
      if (idx < a->size()) resolve_into((*a)[idx], segs, i + 1, expand, out);
    } else {
      for (const auto& e : a->values())
        if (e.is<Document>()) resolve_into(e, segs, i, expand, out);
    }
  }
}

bool is_operator_doc(const Value& v) {
  auto d = v.get_if<Document>();
  if (!d || d->empty()) return false;
  auto keys = d->keys();
  return !keys.empty() && keys[0].size() > 0 && keys[0][0] == '$';
}

bool values_equal(const Value& a, const Value& b) {
  return type_rank(a.type()) == type_rank(b.type()) && compare(a, b) == 0;
}

bool match_eq(const std::vector<Value>& found, const Value& target) {
  if (target.is_null() && found.empty()) return true;
  for (const auto& f : found)
    if (values_equal(f, target)) return true;
  return false;
}

// $gt & co: only values of the same type class compare (MongoDB's type bracketing).
template <typename Pred>
bool match_cmp(const std::vector<Value>& found, const Value& target, Pred pred) {
  for (const auto& f : found)
    if (type_rank(f.type()) == type_rank(target.type()) && pred(compare(f, target))) return true;
  if (target.is_null() && found.empty()) return pred(0);
  return false;
}

const Array& array_operand(const Value& v, const std::string& op) {
  if (!v.is<Array>()) fail(op + " needs an array");
  return v.as_array();
}

bool match_operators(const std::vector<Value>& found, const Document& ops);

bool match_operator(const std::vector<Value>& found, const std::string& op, const Value& arg) {
  if (op == "$eq") return match_eq(found, arg);
  if (op == "$ne") return !match_eq(found, arg);
  if (op == "$gt") return match_cmp(found, arg, [](int c) { return c > 0; });
  if (op == "$gte") return match_cmp(found, arg, [](int c) { return c >= 0; });
  if (op == "$lt") return match_cmp(found, arg, [](int c) { return c < 0; });
  if (op == "$lte") return match_cmp(found, arg, [](int c) { return c <= 0; });
  if (op == "$in") {
    for (const auto& v : array_operand(arg, op).values())
      if (match_eq(found, v)) return true;
    return false;
  }
  if (op == "$nin") {
    for (const auto& v : array_operand(arg, op).values())
      if (match_eq(found, v)) return false;
    return true;
  }
  if (op == "$exists") {
    bool want = arg.is<bool>() ? arg.as_bool() : (arg.is_number() ? arg.as_double() != 0 : !arg.is_null());
    return want == !found.empty();
  }
  if (op == "$not") {
    if (!arg.is<Document>() || !is_operator_doc(arg)) fail("$not needs an operator document such as {\"$gt\": 1}");
    return !match_operators(found, arg.as_document());
  }
  fail("unsupported query operator " + op +
       " (the SQLite backend implements $eq $ne $gt $gte $lt $lte $in $nin "
       "$exists $not $and $or $nor)");
}

bool match_operators(const std::vector<Value>& found, const Document& ops) {
  for (const auto& [op, arg] : ops.fields())
    if (!match_operator(found, op, arg)) return false;
  return true;
}

const Array& clause_list(const Value& v, const std::string& op) {
  if (!v.is<Array>() || v.as_array().empty()) fail(op + " needs a non-empty array of filter documents");
  for (const auto& e : v.as_array().values())
    if (!e.is<Document>()) fail(op + " needs a non-empty array of filter documents");
  return v.as_array();
}

void validate_ops(const Document& ops) {
  static const char* kKnown[] = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$not"};
  for (const auto& [op, arg] : ops.fields()) {
    if (std::find(std::begin(kKnown), std::end(kKnown), op) == std::end(kKnown))
      match_operator({}, op, arg);  // throws naming it
    if ((op == "$in" || op == "$nin")) array_operand(arg, op);
    if (op == "$not") {
      if (!is_operator_doc(arg)) fail("$not needs an operator document such as {\"$gt\": 1}");
      validate_ops(arg.as_document());
    }
  }
}

}  // namespace

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    auto dot = path.find('.', start);
    out.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return out;
}

std::vector<Value> resolve(const Document& doc, const std::string& path, bool expand_arrays) {
  std::vector<Value> out;
  auto segs = split_path(path);
  auto first = doc.get(segs[0]);
  if (segs[0].empty() || !first) return out;
  resolve_into(*first, segs, 1, expand_arrays, out);
  return out;
}

namespace {
// {"a": {"$regex": "^x"}} and {"a": /x/} arrive as a BSON regex value.
void refuse_regex(const Value& v) {
  if (auto o = v.get_if<OtherBson>(); o && o->bson_type == 0x0B)
    fail("unsupported query operator $regex (regular expressions are not implemented by the SQLite backend)");
  if (auto a = v.get_if<Array>())
    for (const auto& e : a->values()) refuse_regex(e);
  if (auto d = v.get_if<Document>())
    for (const auto& [k, e] : d->fields()) refuse_regex(e);
}
}  // namespace

void validate_filter(const Document& filter) {
  for (const auto& [key, value] : filter.fields()) {
    refuse_regex(value);
    if (!key.empty() && key[0] == '$') {
      if (key != "$and" && key != "$or" && key != "$nor")
        fail("unsupported query operator " + key + " (the SQLite backend implements $and $or $nor at the top level)");
      for (const auto& c : clause_list(value, key).values()) validate_filter(c.as_document());
    } else if (is_operator_doc(value)) {
      validate_ops(value.as_document());
    }
  }
}

bool matches(const Document& doc, const Document& filter) {
  for (const auto& [key, value] : filter.fields()) {
    if (!key.empty() && key[0] == '$') {
      const auto& list = clause_list(value, key).values();
      if (key == "$and") {
        for (const auto& c : list)
          if (!matches(doc, c.as_document())) return false;
      } else if (key == "$or" || key == "$nor") {
        bool any = false;
        for (const auto& c : list)
          if (matches(doc, c.as_document())) {
            any = true;
            break;
          }
        if (any != (key == "$or")) return false;
      } else {
        fail("unsupported query operator " + key);
      }
      continue;
    }
    auto found = resolve(doc, key);
    if (is_operator_doc(value)) {
      if (!match_operators(found, value.as_document())) return false;
    } else if (!match_eq(found, value)) {
      return false;
    }
  }
  return true;
}

// ---- updates -------------------------------------------------------------------

bool is_replacement(const Document& update) {
  auto keys = update.keys();
  bool ops = false, plain = false;
  for (const auto& k : keys) (k.size() && k[0] == '$' ? ops : plain) = true;
  if (ops && plain) fail("an update mixes $ operators and plain fields; use one or the other");
  return !ops;
}

void require_update_operators(const Document& update) {
  if (is_replacement(update))
    fail(
        "an update needs $ operators ($set, $unset, $inc), e.g. {\"$set\": {\"name\": \"x\"}}; a document without "
        "them replaces the whole match: Collection::replace_one (iotbridge-db replace)");
}

void require_replacement(const Document& replacement) {
  if (!is_replacement(replacement))
    fail(
        "a replacement is a whole document without $ operators; to change some fields use update_one "
        "(iotbridge-db update) with $set, $unset or $inc");
}

void validate_update(const Document& update) {
  if (update.empty()) fail("an update needs at least one operator ($set, $unset, $inc)");
  for (const auto& [op, arg] : update.fields()) {
    if (op != "$set" && op != "$unset" && op != "$inc")
      fail("unsupported update operator " + op + " (the SQLite backend implements $set $unset $inc)");
    if (!arg.is<Document>()) fail(op + " needs a document of field paths");
    for (const auto& [path, v] : arg.as_document().fields()) {
      if (path == "_id" || path.rfind("_id.", 0) == 0) fail("the _id field cannot be changed by " + op);
      if (op == "$inc" && !v.is_number()) fail("$inc needs a number for '" + path + "'");
    }
  }
}

namespace {

Value inc_value(const std::optional<Value>& current, const Value& by, const std::string& path) {
  if (!current) return by;
  if (!current->is_number()) fail("cannot $inc '" + path + "': it holds a " + std::string(to_string(current->type())));
  if (current->is<double>() || by.is<double>()) return Value(current->as_double() + by.as_double());
  std::int64_t sum = current->as_int64() + by.as_int64();
  if (current->is<std::int32_t>() && by.is<std::int32_t>() && sum >= INT32_MIN && sum <= INT32_MAX)
    return Value(static_cast<int>(sum));
  return Value(static_cast<long long>(sum));
}

// Applies fn to the value at segs (nullopt when absent); fn returns the new
// value, or nullopt to remove it. Creates intermediate documents for $set.
using Modifier = std::function<std::optional<Value>(const std::optional<Value>&)>;

Value modify(const Value& node, const std::vector<std::string>& segs, std::size_t i, const Modifier& fn,
             const std::string& path);

Document modify_doc(const Document& doc, const std::vector<std::string>& segs, std::size_t i, const Modifier& fn,
                    const std::string& path) {
  Document out = doc;
  const std::string& key = segs[i];
  auto current = doc.get(key);
  if (i + 1 == segs.size()) {
    auto next = fn(current);
    if (next)
      out.set(key, *next);
    else
      out.remove(key);
    return out;
  }
  if (!current) {
    auto probe = fn(std::nullopt);
    if (!probe) return out;  // $unset of a missing path
    out.set(key, modify(Value(Document()), segs, i + 1, fn, path));
    return out;
  }
  out.set(key, modify(*current, segs, i + 1, fn, path));
  return out;
}

Value modify(const Value& node, const std::vector<std::string>& segs, std::size_t i, const Modifier& fn,
             const std::string& path) {
  if (auto d = node.get_if<Document>()) return Value(modify_doc(*d, segs, i, fn, path));
  if (auto a = node.get_if<Array>()) {
    if (!is_index(segs[i])) fail("cannot use the part '" + segs[i] + "' of '" + path + "' to traverse an array");
    std::vector<Value> items = a->values();
    std::size_t idx = std::stoul(segs[i]);
    if (i + 1 == segs.size()) {
      std::optional<Value> current;
      if (idx < items.size()) current = items[idx];
      auto next = fn(current);
      if (idx >= items.size()) {
        if (!next) return node;
        items.resize(idx + 1, Value(nullptr));
      }
      items[idx] = next ? *next : Value(nullptr);  // $unset on an element leaves null, as in MongoDB
      return Value(Array(std::move(items)));
    }
    if (idx >= items.size()) items.resize(idx + 1, Value(nullptr));
    Value child = items[idx].is_null() ? Value(Document()) : items[idx];
    items[idx] = modify(child, segs, i + 1, fn, path);
    return Value(Array(std::move(items)));
  }
  fail("cannot create field '" + segs[i] + "' of '" + path + "': its parent is a " +
       std::string(to_string(node.type())));
}

}  // namespace

Document apply_update(const Document& doc, const Document& update) {
  validate_update(update);
  Document out = doc;
  for (const auto& [op, arg] : update.fields()) {
    for (const auto& [path, v] : arg.as_document().fields()) {
      auto segs = split_path(path);
      Modifier fn;
      if (op == "$set")
        fn = [&v = v](const std::optional<Value>&) { return std::optional<Value>(v); };
      else if (op == "$unset")
        fn = [](const std::optional<Value>&) { return std::optional<Value>(); };
      else
        fn = [&v = v, &path = path](const std::optional<Value>& cur) {
          return std::optional<Value>(inc_value(cur, v, path));
        };
      out = modify_doc(out, segs, 0, fn, path);
    }
  }
  return out;
}

// The _id first, as MongoDB stores it; a new ObjectId when missing.
Document with_id(Document doc) {
  {
    // Fast path: _id already first (what the recorder builds).
    bson_t b = detail::view(doc);
    bson_iter_t it;
    if (bson_iter_init(&it, &b) && bson_iter_next(&it) && std::string_view(bson_iter_key(&it)) == "_id") return doc;
  }
  auto id = doc.get("_id");
  if (id) {
    Document out;
    out.append("_id", *id);
    for (auto& [k, v] : doc.fields())
      if (k != "_id") out.append(k, v);
    return out;
  }
  Document out;
  out.append("_id", ObjectId::generate());
  for (auto& [k, v] : doc.fields()) out.append(k, v);
  return out;
}

Document upsert_seed(const Document& filter) {
  Document seed;
  for (const auto& [key, value] : filter.fields()) {
    if (key.empty() || key[0] == '$' || key.find('.') != std::string::npos) continue;
    if (is_operator_doc(value)) {
      if (auto eq = value.as_document().get("$eq")) seed.append(key, *eq);
      continue;
    }
    seed.append(key, value);
  }
  return seed;
}

// ---- projection ------------------------------------------------------------------

namespace {

struct PathTree {
  bool leaf = false;
  std::map<std::string, PathTree> children;
};

bool projection_flag(const std::string& path, const Value& v) {
  if (v.is<bool>()) return v.as_bool();
  if (v.is_number()) return v.as_double() != 0;
  fail("unsupported projection for '" + path + "': only 1/0/true/false are implemented (no $slice, $elemMatch, $meta)");
}

Document include_tree(const Document& doc, const PathTree& tree);

Value include_value(const Value& v, const PathTree& tree, bool& keep) {
  if (auto d = v.get_if<Document>()) {
    keep = true;
    return Value(include_tree(*d, tree));
  }
  if (auto a = v.get_if<Array>()) {
    Array out;
    for (const auto& e : a->values()) {
      bool k = false;
      Value r = include_value(e, tree, k);
      if (k) out.push_back(r);
    }
    keep = true;
    return Value(std::move(out));
  }
  keep = false;
  return v;
}

Document include_tree(const Document& doc, const PathTree& tree) {
  Document out;
  for (const auto& [key, value] : doc.fields()) {
    auto it = tree.children.find(key);
    if (it == tree.children.end()) continue;
    if (it->second.leaf) {
      out.append(key, value);
    } else {
      bool keep = false;
      Value r = include_value(value, it->second, keep);
      if (keep) out.append(key, r);
    }
  }
  return out;
}

Document exclude_tree(const Document& doc, const PathTree& tree);

Value exclude_value(const Value& v, const PathTree& tree) {
  if (auto d = v.get_if<Document>()) return Value(exclude_tree(*d, tree));
  if (auto a = v.get_if<Array>()) {
    Array out;
    for (const auto& e : a->values()) out.push_back(exclude_value(e, tree));
    return Value(std::move(out));
  }
  return v;
}

Document exclude_tree(const Document& doc, const PathTree& tree) {
  Document out;
  for (const auto& [key, value] : doc.fields()) {
    auto it = tree.children.find(key);
    if (it == tree.children.end())
      out.append(key, value);
    else if (!it->second.leaf)
      out.append(key, exclude_value(value, it->second));
  }
  return out;
}

}  // namespace

void validate_projection(const Document& projection) {
  int includes = 0, excludes = 0;
  for (const auto& [path, v] : projection.fields()) {
    bool on = projection_flag(path, v);
    if (path == "_id") continue;
    (on ? includes : excludes)++;
  }
  if (includes && excludes) fail("a projection cannot mix inclusion and exclusion (except for _id)");
}

Document project(const Document& doc, const Document& projection) {
  if (projection.empty()) return doc;
  validate_projection(projection);
  bool id_on = true, inclusion = false;
  PathTree tree;
  for (const auto& [path, v] : projection.fields()) {
    bool on = projection_flag(path, v);
    if (path == "_id") {
      id_on = on;
      continue;
    }
    inclusion = on;
    PathTree* node = &tree;
    for (const auto& seg : split_path(path)) node = &node->children[seg];
    node->leaf = true;
  }
  bool any_other = projection.count() > (projection.has("_id") ? 1u : 0u);
  if (!any_other) inclusion = false;
  if (inclusion) {
    if (id_on) tree.children["_id"].leaf = true;
    return include_tree(doc, tree);
  }
  if (!id_on) tree.children["_id"].leaf = true;
  return exclude_tree(doc, tree);
}

// ---- sort ------------------------------------------------------------------------

void validate_sort(const Document& sort) {
  for (const auto& [path, v] : sort.fields()) {
    if (!v.is_number() || (v.as_double() != 1 && v.as_double() != -1))
      fail("sort direction for '" + path + "' must be 1 or -1 (no $meta)");
  }
}

namespace {
// MongoDB sorts an array field by its smallest element ascending and its
// largest descending; a missing field sorts as null.
Value sort_key(const Document& doc, const std::string& path, bool ascending) {
  auto found = resolve(doc, path, false);
  std::vector<Value> candidates;
  for (auto& f : found) {
    if (auto a = f.get_if<Array>()) {
      if (a->empty()) candidates.push_back(Value(nullptr));
      // an empty array sorts before null in MongoDB; close enough: as null
      for (const auto& e : a->values()) candidates.push_back(e);
    } else {
      candidates.push_back(f);
    }
  }
  if (candidates.empty()) return Value(nullptr);
  Value best = candidates[0];
  for (std::size_t i = 1; i < candidates.size(); ++i) {
    int c = compare(candidates[i], best);
    if (ascending ? c < 0 : c > 0) best = candidates[i];
  }
  return best;
}
}  // namespace

int compare_for_sort(const Document& x, const Document& y, const Document& sort) {
  for (const auto& [path, v] : sort.fields()) {
    bool asc = v.as_double() > 0;
    int c = compare(sort_key(x, path, asc), sort_key(y, path, asc));
    if (c) return asc ? c : -c;
  }
  return 0;
}

}  // namespace iotbridge::store::query
