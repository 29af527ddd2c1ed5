// Change-only recording: deadband, on_change, heartbeat, per topic.
#include "iotbridge/record/change_filter.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "iotbridge/error.hpp"

namespace iotbridge::record {

std::string_view to_string(ChangeDecision decision) noexcept {
  switch (decision) {
    case ChangeDecision::store_first: return "first";
    case ChangeDecision::store_changed: return "changed";
    case ChangeDecision::store_heartbeat: return "heartbeat";
    case ChangeDecision::store_replay: return "replay";
    case ChangeDecision::suppress: return "suppress";
  }
  return "?";
}

ChangeFilter::ChangeFilter(ChangePolicy policy, Lookup lookup) : policy_(policy), lookup_(std::move(lookup)) {
  if (policy_.deadband && (!std::isfinite(*policy_.deadband) || *policy_.deadband < 0))
    throw Error(ErrorCategory::config,
                fmt::format("deadband {} must be a finite number >= 0 (0 stores every change)", *policy_.deadband));
  if (policy_.heartbeat.count() < 0) throw Error(ErrorCategory::config, "heartbeat must not be negative");
  if (policy_.max_topics == 0) throw Error(ErrorCategory::config, "max_topics must be at least 1");
}

ChangeFilter::Topics::iterator ChangeFilter::remember_topic(std::string topic, Entry entry) {
  auto it = topics_.find(topic);
  if (it != topics_.end()) {
    entry.recency = it->second.recency;
    it->second = std::move(entry);
    recency_.splice(recency_.begin(), recency_, it->second.recency);
    return it;
  }
  it = topics_.emplace(std::move(topic), std::move(entry)).first;
  recency_.push_front(&it->first);
  it->second.recency = recency_.begin();
  while (topics_.size() > policy_.max_topics) {
    topics_.erase(topics_.find(*recency_.back()));
    recency_.pop_back();
    ++evicted_;
  }
  return it;
}

bool ChangeFilter::value_changed(const store::Value& last, const store::Value& now) const {
  if (policy_.deadband && last.is_number() && now.is_number()) {
    const double a = last.as_double(), b = now.as_double();
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) != std::isnan(b);
    const double diff = std::fabs(b - a);
    if (diff == 0) return false;
    // 20.2 - 20.0 is 0.1999999999999993 in binary: a change of the deadband
    // as written in decimal counts, whatever the last bits say.
    const double slack = 1e-9 * std::max({std::fabs(a), std::fabs(b), *policy_.deadband});
    return diff + slack >= *policy_.deadband;
  }
  if (last.is_number() && now.is_number()) return compare(last, now) != 0;  // 7 and 7.0 are one number
  return !(last == now);
}

bool ChangeFilter::changed(const Entry& last, const std::vector<std::pair<std::string, store::Value>>& values) const {
  for (const auto& entry : values) {  // not a structured binding: clang 14 cannot capture one in the lambda
    const std::string& field = entry.first;
    auto it = std::find_if(last.values.begin(), last.values.end(), [&](const auto& p) { return p.first == field; });
    if (it == last.values.end() || value_changed(it->second, entry.second)) return true;
  }
  return false;
}

ChangeDecision ChangeFilter::decide(std::string_view topic, const store::ObjectId& id, store::DateTime received,
                                    const std::vector<std::pair<std::string, store::Value>>& values) {
  auto it = topics_.find(topic);
  if (it == topics_.end()) {
    Entry entry;
    if (lookup_) {
      if (auto found = lookup_(topic)) {
        entry.stored = true;
        entry.id = found->id;
        entry.stored_at = found->stored_at;
        entry.values = std::move(found->values);
      }
    }
    it = remember_topic(std::string(topic), std::move(entry));
  } else if (it->second.recency != recency_.begin()) {
    recency_.splice(recency_.begin(), recency_, it->second.recency);
  }
  Entry& last = it->second;
  auto remember = [&](ChangeDecision d) {
    last.stored = true;
    last.id = id;
    last.stored_at = received;
    last.values = values;
    return d;
  };
  if (!last.stored) return remember(ChangeDecision::store_first);
  if (id == last.id || received < last.stored_at) return ChangeDecision::store_replay;
  if (policy_.heartbeat.count() > 0 && received.millis - last.stored_at.millis >= policy_.heartbeat.count())
    return remember(ChangeDecision::store_heartbeat);
  if (!policy_.active() || changed(last, values)) return remember(ChangeDecision::store_changed);
  return ChangeDecision::suppress;
}

void ChangeFilter::restore(ChangeState state) {
  Entry entry;
  entry.stored = true;
  entry.id = state.id;
  entry.stored_at = state.stored_at;
  entry.values = std::move(state.values);
  remember_topic(std::move(state.topic), std::move(entry));
}

std::vector<ChangeState> ChangeFilter::export_state() const {
  std::vector<ChangeState> out;
  for (const auto& [topic, entry] : topics_)
    if (entry.stored) out.push_back(ChangeState{topic, entry.id, entry.stored_at, entry.values});
  return out;
}

std::optional<ChangeState> change_state_from_document(const store::Document& doc,
                                                      const std::vector<std::string>& fields) {
  auto id = doc.get_object_id("_id");
  auto at = doc.get_datetime("reg_date");
  if (!id || !at) return std::nullopt;
  ChangeState state;
  state.topic = doc.get_string("topic").value_or("");
  state.id = *id;
  state.stored_at = *at;
  // Fields picked by exact top-level name: a mapped name never holds '.'.
  auto all = doc.fields();
  auto pick = [&](const std::string& name) {
    for (auto& [key, value] : all)
      if (key == name) state.values.emplace_back(name, value);
  };
  if (fields.empty())
    pick("value");
  else
    for (const auto& f : fields) pick(f);
  return state;
}

ChangeFilter::Lookup store_lookup(std::shared_ptr<store::Collection> collection, std::vector<std::string> fields) {
  return [collection = std::move(collection), fields = std::move(fields)](std::string_view topic) {
    store::FindOptions options;
    // Readings of one millisecond: the later _id (generated ones grow within a process).
    options.sort = store::Document().append("reg_date", -1).append("_id", -1);
    auto doc = collection->find_one(store::Document().append("topic", topic), options);
    std::optional<ChangeState> state;
    if (doc) state = change_state_from_document(*doc, fields);
    return state;
  };
}

}  // namespace iotbridge::record
