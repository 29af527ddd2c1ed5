/// @file
/// ChangeFilter: change-only recording with a heartbeat, per topic (and per
/// mapped field when a route maps fields). A reading is stored when
///  - it is the first one of its topic the filter knows of,
///  - a value changed: numbers by at least `deadband` (|new - last stored| >=
///    deadband), any other value (and numbers under `on_change`) when it
///    differs from the last stored one,
///  - or nothing was stored for its topic for `heartbeat` (so a flat sensor
///    still shows that it is alive);
/// otherwise it is suppressed (counted, not stored). Times are the readings'
/// receive times, so a decision never depends on when the writer runs.
///
/// Restart: the filter's memory is the last stored document of each topic.
/// It is read back from the store itself, lazily, the first time a topic is
/// seen in a run (ChangeFilter::Lookup, store_lookup()): the store is the
/// truth, whereas a state file written after the insert can lag behind it
/// after a crash and then miss a change. export_state()/restore() carry the
/// same memory for programs that keep it elsewhere.
///
/// Memory is bounded: at most ChangePolicy::max_topics topics are remembered;
/// past that the least recently seen topic is forgotten (counted in
/// evicted()). Its next reading is then looked up again (a store_lookup()
/// reads it back from the store) or, without a Lookup, stored as a first one:
/// forgetting never suppresses a change, it may only store one reading more.
///
/// Replays: a reading that is not newer than the last stored reading of its
/// topic (the same reading coming back from the spool, or one an earlier run
/// accepted) is stored without touching the memory: its fate was decided
/// before, or cannot be known, and storing is the side that loses nothing
/// (the _id makes a second copy a duplicate the store skips).
///
/// Thread-safety: one ChangeFilter belongs to one thread (the recorder's
/// writer). Throws: the constructor throws Error (config) for a negative or
/// non-finite deadband; decide() throws only what the Lookup throws.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "iotbridge/store/document.hpp"
#include "iotbridge/store/store.hpp"

namespace iotbridge::record {

struct ChangePolicy {
  /// Numbers: store when |new - last stored| >= deadband (and they differ).
  /// Values that are not numbers are stored when they differ.
  std::optional<double> deadband;
  bool on_change = false;  ///< store any value only when it differs from the last stored one
  /// Store anyway when nothing was stored for the topic for this long; 0: never.
  std::chrono::milliseconds heartbeat{0};
  /// Topics remembered at most (the least recently seen is forgotten first).
  /// 100,000 topics of small values hold some tens of MiB; a fleet with more
  /// topics per route than that pays one read-back per forgotten topic.
  std::size_t max_topics = 100000;

  /// True when the policy suppresses anything (deadband or on_change set).
  bool active() const noexcept { return deadband.has_value() || on_change; }
};

/// What the filter remembers of one topic: its last stored reading.
struct ChangeState {
  std::string topic;
  store::ObjectId id;         ///< the _id of that reading
  store::DateTime stored_at;  ///< its receive time (reg_date)
  /// The values compared: {"value", v}, or the mapped fields.
  std::vector<std::pair<std::string, store::Value>> values;
};

enum class ChangeDecision {
  store_first,      ///< the topic's first reading the filter knows of
  store_changed,    ///< a value moved past the deadband or changed
  store_heartbeat,  ///< nothing stored for `heartbeat`
  store_replay,     ///< not newer than the last stored reading: stored, memory unchanged
  suppress,         ///< unchanged: not stored
};

/// "first", "changed", "heartbeat", "replay", "suppress".
std::string_view to_string(ChangeDecision decision) noexcept;
inline bool stores(ChangeDecision d) noexcept { return d != ChangeDecision::suppress; }

class ChangeFilter {
 public:
  /// Where a topic's last stored reading is read back from the first time
  /// the filter meets the topic; nullopt: none stored yet.
  using Lookup = std::function<std::optional<ChangeState>(std::string_view topic)>;

  explicit ChangeFilter(ChangePolicy policy, Lookup lookup = {});
  // The entries point into the filter's own recency list: movable, not copyable.
  ChangeFilter(const ChangeFilter&) = delete;
  ChangeFilter& operator=(const ChangeFilter&) = delete;
  ChangeFilter(ChangeFilter&&) = default;
  ChangeFilter& operator=(ChangeFilter&&) = default;

  const ChangePolicy& policy() const noexcept { return policy_; }

  /// Decides for one reading of `topic` with _id `id`, received at
  /// `received`, that would store `values` (see ChangeState::values), and
  /// remembers it when it is stored.
  ChangeDecision decide(std::string_view topic, const store::ObjectId& id, store::DateTime received,
                        const std::vector<std::pair<std::string, store::Value>>& values);

  /// Puts a topic's memory in place (replacing what the filter had).
  void restore(ChangeState state);
  /// Every topic's memory, by topic.
  std::vector<ChangeState> export_state() const;
  /// Topics remembered (including those looked up and found empty); at
  /// most policy().max_topics.
  std::size_t size() const noexcept { return topics_.size(); }
  /// Topics forgotten to stay within max_topics, since construction.
  std::size_t evicted() const noexcept { return evicted_; }

 private:
  using Recency = std::list<const std::string*>;  // most recently seen first; points at topics_' keys
  struct Entry {
    bool stored = false;  // false: looked up, nothing stored yet
    store::ObjectId id;
    store::DateTime stored_at;
    std::vector<std::pair<std::string, store::Value>> values;
    Recency::iterator recency;
  };
  using Topics = std::map<std::string, Entry, std::less<>>;
  // Adds or replaces a topic's entry as the most recently seen; forgets the
  // least recently seen beyond max_topics.
  Topics::iterator remember_topic(std::string topic, Entry entry);
  bool changed(const Entry& last, const std::vector<std::pair<std::string, store::Value>>& values) const;
  bool value_changed(const store::Value& last, const store::Value& now) const;

  ChangePolicy policy_;
  Lookup lookup_;
  Topics topics_;
  Recency recency_;
  std::size_t evicted_ = 0;
};

/// The memory of a topic read from a stored document: its _id, reg_date and
/// `fields` (empty: "value"). nullopt when the document has no _id ObjectId
/// or no reg_date datetime.
std::optional<ChangeState> change_state_from_document(const store::Document& doc,
                                                      const std::vector<std::string>& fields);

/// A Lookup reading the newest document of a topic from `collection`
/// (find {topic} sorted by reg_date, then _id, descending, limit 1; an index on
/// {topic: 1, reg_date: -1} keeps it cheap). A store that fails throws.
ChangeFilter::Lookup store_lookup(std::shared_ptr<store::Collection> collection, std::vector<std::string> fields);

}  // namespace iotbridge::record
