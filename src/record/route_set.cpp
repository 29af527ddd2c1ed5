// The routes in force (which routes a message goes to) and the documents a
// route makes of a reading (decoder -> field mapping -> envelope).
#include <algorithm>

#include "document_envelope.hpp"
#include "iotbridge/error.hpp"
#include "iotbridge/topic.hpp"
#include "pipeline.hpp"

namespace iotbridge::record::detail {

RouteSet::RouteSet(const std::vector<Route>& routes, Counters& counters) {
  validate_routes(routes);
  for (const Route& r : routes) {
    auto compiled = std::make_unique<CompiledRoute>();
    compiled->route = r;
    compiled->decoder = find_decoder(r.decoder);
    for (const auto& [field, pointer] : r.fields) compiled->fields.emplace_back(field, JsonPointer(pointer));
    compiled->counters = &counters.route(r.name);
    for (const auto& f : r.filters) {
      auto it = std::find(filters_.begin(), filters_.end(), f);
      std::size_t index = static_cast<std::size_t>(it - filters_.begin());
      if (it == filters_.end()) {
        filters_.push_back(f);
        routes_of_filter_.emplace_back();
        auto shared = parse_shared(f);
        std::string inner = shared ? shared->filter : f;
        auto* slot = by_filter_.find(inner);
        if (slot)
          slot->push_back(index);
        else
          by_filter_.insert(inner, std::vector<std::size_t>{index});
      }
      auto& list = routes_of_filter_[index];
      if (std::find(list.begin(), list.end(), compiled.get()) == list.end()) list.push_back(compiled.get());
    }
    routes_.push_back(std::move(compiled));
  }
}

std::vector<std::string> RouteSet::names() const {
  std::vector<std::string> out;
  for (const auto& r : routes_) out.push_back(r->route.name);
  return out;
}

const CompiledRoute& RouteSet::by_name(std::string_view name) const {
  for (const auto& r : routes_)
    if (r->route.name == name) return *r;
  return *routes_.front();
}

void RouteSet::open(store::DocumentStore& store) {
  for (auto& r : routes_) r->collection = store.collection(r->route.database, r->route.collection);
}

bool RouteSet::match(std::string_view filter, std::string_view topic, std::vector<const CompiledRoute*>& out) const {
  out.clear();
  if (filters_.size() == 1) {  // the common case: one filter, one handler, no question who takes it
    if (filter != filters_.front()) return false;
    out = routes_of_filter_.front();
    return true;
  }
  // Every matching filter's handler is called for this message: the first
  // matching filter (in filters_ order) takes it, for all routes at once.
  thread_local std::vector<std::size_t> matched;
  matched.clear();
  by_filter_.match(topic, [&](std::vector<std::size_t>& indexes) {
    for (auto i : indexes) matched.push_back(i);
  });
  if (matched.empty()) return true;  // no route wants it: unrouted
  std::size_t first = *std::min_element(matched.begin(), matched.end());
  if (filters_[first] != filter) {
    // Another handler takes it, unless this filter is not one of ours any
    // more (a reload): then the taker is the first filter's own handler.
    return false;
  }
  for (auto i : matched)
    for (const CompiledRoute* r : routes_of_filter_[i])
      if (std::find(out.begin(), out.end(), r) == out.end()) out.push_back(r);
  // Routes in their configured order, whatever order the filters matched in.
  std::sort(out.begin(), out.end(), [this](const CompiledRoute* a, const CompiledRoute* b) {
    auto pos = [this](const CompiledRoute* r) {
      for (std::size_t i = 0; i < routes_.size(); ++i)
        if (routes_[i].get() == r) return i;
      return routes_.size();
    };
    return pos(a) < pos(b);
  });
  return true;
}

namespace {

// The _id of the k-th document of one reading: the reading's own for the
// first; for the others its process-random bytes flipped by k, which no id of
// this process has, and which every replay derives again.
store::ObjectId item_id(const store::ObjectId& id, std::size_t k) {
  if (k == 0) return id;
  store::ObjectId out = id;
  out.bytes[8] ^= static_cast<std::uint8_t>(k & 0xFF);
  out.bytes[7] ^= static_cast<std::uint8_t>(((k >> 8) & 0x7F) | 0x80);
  return out;
}

}  // namespace

BuildResult build_documents(const CompiledRoute& route, const Reading& reading, std::vector<store::Document>& out,
                            std::string* error) {
  const DocumentOptions& options = route.route.document;
  thread_local std::vector<DecodedItem> items;
  items.clear();
  try {
    route.decoder->decode(DecodeInput{reading.topic, reading.payload, options.decode}, items);
  } catch (const std::exception& e) {
    if (error)
      *error = "decoder '" + route.route.decoder + "' failed on a payload of '" + reading.topic + "': " + e.what() +
               "; stored as \"auto\" decodes it";
    items.clear();
    find_decoder("auto")->decode(DecodeInput{reading.topic, reading.payload, options.decode}, items);
  }
  BuildResult result;
  result.kind = items.empty() ? std::string_view("empty") : items.front().kind;
  for (std::size_t k = 0; k < items.size(); ++k) {
    DecodedItem& item = items[k];
    std::vector<std::pair<std::string, store::Value>> fields = std::move(item.fields);
    const store::Value* value = fields.empty() ? &item.value : nullptr;
    if (!route.fields.empty() && value) {
      for (const auto& [name, pointer] : route.fields) {
        if (auto v = pointer.resolve(item.value))
          fields.emplace_back(name, std::move(*v));
        else
          result.unmapped = true;
      }
      // Dropping the payload leaves only the mapped fields: never for a
      // payload that is not a JSON object (nothing of it would be left).
      if (!route.route.keep_payload && item.value.get_if<store::Document>()) value = nullptr;
    }
    BuildInfo info;
    out.push_back(make_document(reading, item_id(reading.id, k), value, &fields, options, &info));
  }
  result.documents = items.size();
  return result;
}

}  // namespace iotbridge::record::detail
