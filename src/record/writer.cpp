// Writer stage (writer.hpp).
#include "writer.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace iotbridge::record::detail {

Writer::Writer(const RecorderOptions& options, Counters& counters, const Log& log, Progress& progress, Intake& intake,
               HandOff& queue, Journal* wal, Spool* spool, std::function<const RouteSet*()> routes)
    : Worker("record writer"),
      options_(options),
      counters_(counters),
      log_(log),
      progress_(progress),
      intake_(intake),
      queue_(queue),
      wal_(wal),
      spool_(spool),
      routes_(std::move(routes)),
      backoff_(options.retry_delay_min, options.retry_delay_max),
      wal_trimmed_at_(Clock::now()) {}

Writer::~Writer() { stop(); }

bool Writer::done() const { return done_.load(); }

std::size_t Writer::spill_threshold() const {
  return options_.spill_threshold ? options_.spill_threshold : std::max<std::size_t>(1, options_.queue_capacity / 2);
}

// Stores the readings of one route (trying again and again while the store
// fails). Between attempts `between()` may take the batch elsewhere (returns
// true: abandoned; nothing of `group` may be touched then).
template <typename Between>
Writer::Outcome Writer::store_group(const std::vector<Item*>& group, Between&& between) {
  const CompiledRoute& route = *group.front()->route;
  RouteCounters& counters = *route.counters;
  std::size_t offset = 0;  // group[0, offset) are done
  int doc_failures = 0;    // consecutive document-level failures at `offset`
  std::vector<BuildResult> built(group.size());
  std::vector<std::size_t> reading_of;  // document index -> reading index
  store::InsertManyOptions insert_options;
  insert_options.ordered = true;
  insert_options.ignore_duplicate_ids = true;
  // Counted once per run of readings, not per reading: one lock for the
  // kinds, one add per counter and histogram bucket.
  auto done = [&](std::size_t begin, std::size_t end) {
    if (begin >= end) return;
    const auto now = store::DateTime::now();
    std::string_view kind = built[begin].kind;
    std::uint64_t same_kind = 0, unmapped = 0;
    thread_local std::vector<double> latencies;
    latencies.clear();
    for (std::size_t i = begin; i < end; ++i) {
      if (built[i].kind != kind) {
        counters.count_kind(kind, same_kind);
        kind = built[i].kind;
        same_kind = 0;
      }
      ++same_kind;
      if (built[i].unmapped) ++unmapped;
      latencies.push_back(
          std::max<double>(0, static_cast<double>(now.millis - group[i]->reading.received.millis) / 1000.0));
    }
    counters.count_kind(kind, same_kind);
    if (unmapped) counters.unmapped += unmapped;
    counters_.receive_to_store_seconds.observe_all(latencies);
    counters.stored += end - begin;
  };

  while (offset < group.size()) {
    std::vector<store::Document> docs;
    docs.reserve(group.size() - offset);
    reading_of.clear();
    for (std::size_t i = offset; i < group.size(); ++i) {
      std::string error;
      built[i] = build_documents(route, group[i]->reading, docs, &error);
      if (!error.empty()) log_(mqtt::LogLevel::warning, error);
      reading_of.resize(docs.size(), i);
    }
    try {
      const auto started = Clock::now();
      store::InsertManyResult result;
      if (!docs.empty()) result = route.collection->insert_many(std::move(docs), insert_options);
      counters_.batch_seconds.observe(std::chrono::duration<double>(Clock::now() - started).count());
      done(offset, group.size());
      counters.duplicates += static_cast<std::uint64_t>(result.duplicates_skipped);
      ++counters_.batches;
      backoff_.reset();
      if (!counters_.store_ok.exchange(true)) log_(mqtt::LogLevel::notice, "the store answers again");
      progress_.notify();
      return Outcome::stored;
    } catch (const store::BulkWriteError& e) {
      // The store answered and refused one document: the readings before it are in.
      std::size_t failed = e.index() < reading_of.size() ? reading_of[e.index()] : group.size();
      std::size_t before = offset;
      done(before, failed);
      offset = failed;
      doc_failures = failed > before ? 1 : doc_failures + 1;
      log_.set_error(std::string("store refused a document: ") + e.what());
      if (doc_failures >= 3 && offset < group.size()) {
        // Three refusals of the same document: it will never go in. Skip it,
        // loudly; everything else in the batch still gets stored.
        ++counters.rejected;
        log_(mqtt::LogLevel::error,
             fmt::format("reading {} on '{}' (route '{}') rejected by the store, skipped: {}",
                         group[offset]->reading.id.to_hex(), group[offset]->reading.topic, route.route.name, e.what()));
        ++offset;
        doc_failures = 0;
        progress_.notify();
        continue;
      }
      ++counters_.retries;
    } catch (const std::exception& e) {
      ++counters_.retries;
      if (counters_.store_ok.exchange(false) || backoff_.failures() == 0)
        log_(mqtt::LogLevel::warning, std::string("store insert failed, retrying: ") + e.what());
      log_.set_error(std::string("store: ") + e.what());
    }
    // Wait before the next attempt, looking after the queue meanwhile.
    auto until = Clock::now() + backoff_.next();
    while (Clock::now() < until) {
      if (give_up_.stop_requested()) return Outcome::gave_up;
      if (between()) return Outcome::abandoned;
      std::unique_lock lk(progress_.mutex);
      progress_.cv.wait_until(lk, std::min(until, Clock::now() + std::chrono::milliseconds(20)));
    }
    if (give_up_.stop_requested()) return Outcome::gave_up;
  }
  progress_.notify();
  return Outcome::stored;
}

// Stores a batch route by route (one insert_many per route, in the order the
// routes first appear). A stored route's readings leave the batch, so that a
// retry after giving up does not store them twice.
template <typename Between>
Writer::Outcome Writer::store_batch(HeldBatch& batch, Between&& between) {
  while (!batch.items.empty()) {
    const CompiledRoute* route = batch.items.front().route;
    std::vector<Item*> group;
    group.reserve(batch.items.size());
    for (Item& item : batch.items)
      if (item.route == route) group.push_back(&item);
    Outcome outcome = store_group(group, between);
    if (outcome != Outcome::stored) return outcome;  // abandoned: `batch` may be gone
    if (group.size() == batch.items.size()) {
      batch.items.clear();
    } else {
      std::erase_if(batch.items, [route](const Item& item) { return item.route == route; });
    }
  }
  return Outcome::stored;
}

// Moves held batches, then queued readings, to the spool when the memory
// bound is passed. Returns true when held_.front() went to the spool.
bool Writer::maybe_spill() {
  if (!spool_) return false;
  std::size_t held_count = 0;
  for (const auto& b : held_) held_count += b.items.size();
  if (queue_.size() + held_count < spill_threshold()) return false;
  if (Clock::now() < spill_blocked_until_) return false;
  Spool::Spilled spilled = spool_->spill(held_, queue_, options_.batch_size);
  if (!spilled.error.empty()) {
    spill_blocked_until_ = Clock::now() + options_.retry_delay_max;
    ++counters_.spool_errors;
    log_(mqtt::LogLevel::error, "cannot write to the spool (intake slows down instead): " + spilled.error);
    log_.set_error("spool: " + spilled.error);
  }
  if (spilled.readings > 0) {
    counters_.spooled += spilled.readings;
    counters_.spool_bytes = spool_->bytes();
    if (spilled.synced) trim_wal(spilled.max_seq, true);
    log_(mqtt::LogLevel::info, fmt::format("{} readings spooled to disk while the store is failing", spilled.readings));
  }
  return spilled.front_spilled;
}

// Stores the spool's records in order. False when giving up.
bool Writer::drain_spool() {
  try {
    bool ok = spool_->drain(
        [&](std::vector<Reading>& readings, bool from_earlier_run) {
          HeldBatch batch;
          batch.items.reserve(readings.size());
          const RouteSet* routes = routes_();
          for (Reading& r : readings) {
            const CompiledRoute* route = &routes->by_name(r.route);
            if (from_earlier_run) ++route->counters->replayed;
            batch.items.push_back(Item{0, route, std::move(r)});
          }
          drop_oversize(batch.items);
          Outcome outcome = store_batch(batch, [&] {
            maybe_spill();  // spilled batches go behind this record: order kept
            return false;
          });
          if (outcome == Outcome::gave_up) return false;
          counters_.unspooled += readings.size();
          counters_.spool_bytes = spool_->bytes();
          return true;
        },
        log_);
    counters_.spool_bytes = spool_->bytes();
    return ok;
  } catch (const std::exception& e) {
    log_(mqtt::LogLevel::error, std::string("spool read failed, trying again: ") + e.what());
    log_.set_error(std::string("spool: ") + e.what());
    std::unique_lock lk(progress_.mutex);
    progress_.cv.wait_for(lk, options_.retry_delay_max);
    return !give_up_.stop_requested();
  }
}

void Writer::trim_wal(std::uint64_t seq, bool force) {
  if (!wal_) return;
  wal_trim_wanted_ = std::max(wal_trim_wanted_, seq);
  if (wal_trim_wanted_ <= wal_trimmed_) return;
  auto now = Clock::now();
  if (!force && now - wal_trimmed_at_ < kWalTrimInterval) return;
  try {
    wal_->trim_through(wal_trim_wanted_);
    wal_trimmed_ = wal_trim_wanted_;
    wal_trimmed_at_ = now;
  } catch (const std::exception& e) {
    log_(mqtt::LogLevel::warning, std::string("write-ahead journal trim failed: ") + e.what());
  }
}

// A payload no document can hold would block its batch forever: report it
// (rejected, with the reason) and go on without it.
void Writer::drop_oversize(Batch& items) {
  auto too_big = [this](const Item& item) {
    return item.reading.payload.size() + item.reading.topic.size() > options_.max_document_bytes;
  };
  if (std::none_of(items.begin(), items.end(), too_big)) return;
  for (const Item& item : items) {
    if (!too_big(item)) continue;
    ++item.route->counters->rejected;
    std::string why = fmt::format("reading {} on '{}' rejected: {} bytes do not fit in one document (limit {})",
                                  item.reading.id.to_hex(), item.reading.topic, item.reading.payload.size(),
                                  options_.max_document_bytes);
    log_(mqtt::LogLevel::error, why);
    log_.set_error(why);
  }
  std::erase_if(items, too_big);
}

// Collects up to batch_size readings: waits for the first, then up to
// flush_interval for the rest.
void Writer::collect(Batch& batch) {
  queue_.take(batch, options_.batch_size, options_.flush_interval, options_.flush_interval);
}

// Stores held_.front(). False when giving up.
bool Writer::store_held() {
  HeldBatch& batch = held_.front();
  // One fdatasync covers everything appended before it: batches taken ahead
  // from a deep queue are synced by the first one's sync.
  if (wal_ && options_.sync_write_ahead && batch.max_seq > synced_seq_) {
    try {
      const std::uint64_t appended = wal_->stats().next_sequence - 1;
      wal_->sync();
      synced_seq_ = appended;
    } catch (const std::exception& e) {
      log_(mqtt::LogLevel::error, std::string("write-ahead journal sync failed: ") + e.what());
      log_.set_error(std::string("write-ahead journal: ") + e.what());
    }
  }
  drop_oversize(batch.items);
  const std::uint64_t max_seq = batch.max_seq;
  Outcome outcome = store_batch(batch, [&] { return maybe_spill(); });
  if (outcome == Outcome::gave_up) return false;
  if (outcome == Outcome::stored) {
    held_.pop_front();
    trim_wal(max_seq, false);
  }
  return true;
}

void Writer::run(std::stop_token give_up) {
  give_up_ = give_up;
  try {
    while (!give_up.stop_requested()) {
      if (spool_ && spool_->has_backlog()) {
        idle_ = false;
        if (!drain_spool()) break;
        continue;
      }
      if (!held_.empty()) {
        if (!store_held()) break;
        continue;
      }
      if (queue_.size() == 0) {
        trim_wal(0, true);  // idle: catch up on the deferred trim
        idle_ = true;
        progress_.notify();
      }
      HeldBatch batch;
      batch.items.reserve(options_.batch_size);
      collect(batch.items);
      if (batch.items.empty()) {
        if (!queue_.drained()) continue;
        // Closed and empty: the network thread is gone; pick up the stragglers.
        Batch late = intake_.take_late();
        if (late.empty()) break;
        batch.items = std::move(late);
      }
      idle_ = false;
      for (const Item& item : batch.items) batch.max_seq = std::max(batch.max_seq, item.seq);
      held_.push_back(std::move(batch));
      // A deep queue (the writer is behind): take a few more full batches
      // now, so that one journal sync covers them all.
      while (held_.size() < kReadAhead && queue_.size() >= options_.batch_size) {
        HeldBatch more;
        more.items.reserve(options_.batch_size);
        queue_.take_now(more.items, options_.batch_size);
        for (const Item& item : more.items) more.max_seq = std::max(more.max_seq, item.seq);
        held_.push_back(std::move(more));
      }
    }
  } catch (const std::exception& e) {
    log_(mqtt::LogLevel::error, std::string("record worker stopped: ") + e.what());
    log_.set_error(std::string("worker: ") + e.what());
  }
  if (wal_) {
    if (held_.empty() && !(spool_ && spool_->has_backlog())) trim_wal(0, true);
    try {
      wal_->sync();
    } catch (...) {
    }
  }
  done_ = true;
  progress_.notify();
}

}  // namespace iotbridge::record::detail
