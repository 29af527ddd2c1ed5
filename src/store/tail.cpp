// Collection::tail's default: the newest matches, then polling for new ones
// by _id. It assumes _ids grow with insertion order, as the ObjectIds of one
// writer do (they start with the time); the SQLite backend polls by its
// insertion sequence instead, and MongoDB uses a change stream where it can.
#include <condition_variable>
#include <mutex>

#include "iotbridge/store/store.hpp"
#include "store/tail_wait.hpp"

namespace iotbridge::store {

namespace detail {

bool wait_for_stop(std::stop_token stop, std::chrono::milliseconds interval) {
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  cv.wait_for(lock, stop, interval, [] { return false; });
  return !stop.stop_requested();
}

}  // namespace detail

namespace {

// The greatest _id stored now, or nullopt for an empty collection.
std::optional<Value> greatest_id(Collection& c, const std::optional<Value>& above) {
  FindOptions o;
  o.sort = Document().append("_id", -1);
  o.limit = 1;
  o.projection = Document().append("_id", 1);
  Document filter;
  if (above) filter.append("_id", Document().append("$gt", *above));
  auto top = c.find(filter, o)->next();
  if (!top) return std::nullopt;
  return top->get("_id");
}

Document and_filter(const Document& filter, const Document& extra) {
  if (filter.empty()) return extra;
  return Document().append("$and", Array{filter, extra});
}

}  // namespace

void Collection::tail(const Document& filter, const TailOptions& options,
                      const std::function<void(const Document&)>& on_document, std::stop_token stop) {
  // Everything up to the baseline is "already there"; later documents are new.
  std::optional<Value> last = greatest_id(*this, std::nullopt);
  if (options.last > 0 && last) {
    FindOptions o;
    o.sort = Document().append("_id", -1);
    o.limit = options.last;
    auto newest = find(and_filter(filter, Document().append("_id", Document().append("$lte", *last))), o)->to_vector();
    for (auto it = newest.rbegin(); it != newest.rend(); ++it) on_document(*it);
  }
  if (!options.follow) return;
  while (detail::wait_for_stop(stop, options.poll_interval)) {
    auto now = greatest_id(*this, last);
    if (!now) continue;
    Document range = Document().append("$lte", *now);
    if (last) range.append("$gt", *last);
    FindOptions o;
    o.sort = Document().append("_id", 1);
    auto cursor = find(and_filter(filter, Document().append("_id", range)), o);
    while (auto d = cursor->next()) {
      on_document(*d);
      if (stop.stop_requested()) return;
    }
    last = now;
  }
}

}  // namespace iotbridge::store
