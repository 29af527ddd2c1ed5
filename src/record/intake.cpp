// Intake stage (intake.hpp).
#include "intake.hpp"

#include <random>

namespace iotbridge::record::detail {

IdSource::IdSource() {
  std::random_device device;
  for (auto& b : random_) b = static_cast<std::uint8_t>(device());
  counter_ = device() & 0xFFFFFF;
}

store::ObjectId IdSource::next(store::DateTime now) {
  store::ObjectId id;
  const auto seconds = static_cast<std::uint32_t>(now.millis / 1000);
  for (int i = 0; i < 4; ++i) id.bytes[i] = static_cast<std::uint8_t>(seconds >> (24 - 8 * i));
  for (int i = 0; i < 5; ++i) id.bytes[4 + i] = random_[i];
  const std::uint32_t count = counter_++ & 0xFFFFFF;
  for (int i = 0; i < 3; ++i) id.bytes[9 + i] = static_cast<std::uint8_t>(count >> (16 - 8 * i));
  return id;
}

void Intake::open(Journal* wal, HandOff* queue, const RouteSet* routes) {
  std::lock_guard lock(mutex_);
  wal_ = wal;
  queue_ = queue;
  routes_.store(routes);
  late_.clear();
  accept_stop_ = std::stop_source();
  limit_ = std::stop_source();
  accepting_.store(true, std::memory_order_release);
}

void Intake::set_routes(const RouteSet* routes) {
  std::lock_guard lock(mutex_);  // no reading is half way through the old set
  routes_.store(routes);
}

Batch Intake::take_late() {
  std::lock_guard lock(mutex_);
  Batch out = std::move(late_);
  late_.clear();
  return out;
}

void Intake::accept(const std::string& filter, const mqtt::Message& m) {
  if (!accepting_.load(std::memory_order_acquire)) {
    ++counters_.ignored;
    return;
  }
  thread_local std::vector<const CompiledRoute*> targets;
  bool limit_reached = false;
  {
    std::lock_guard lock(mutex_);
    if (!routes_.load()->match(filter, m.topic, targets)) return;  // another filter's handler takes it
    // Past max_messages a message is stored all the same: libmosquitto has
    // acknowledged it already, so dropping it here would lose it for good
    // (the broker will not send it again, even to a persistent session).
    // run() stops after the limit; what arrives until the disconnect counts.
    const std::uint64_t before = counters_.messages.fetch_add(1);
    if (targets.empty()) {
      ++counters_.unrouted;
    } else {
      const store::DateTime now = store::DateTime::now();
      for (const CompiledRoute* route : targets) accept_reading(*route, m, now);
    }
    limit_reached = max_messages_ != 0 && before + 1 == max_messages_;
  }
  if (limit_reached) {
    limit_.request_stop();
    progress_.notify();
  }
}

// Called with mutex_ held.
void Intake::accept_reading(const CompiledRoute& route, const mqtt::Message& m, store::DateTime now) {
  Item item;
  item.route = &route;
  item.reading.id = ids_.next(now);
  item.reading.received = now;
  item.reading.topic = m.topic;
  item.reading.payload = m.payload;
  item.reading.qos = m.qos;
  item.reading.retain = m.retain;
  item.reading.route = route.route.name;
  if (wal_) item.seq = append_to_journal(item.reading);
  ++route.counters->received;
  // At shutdown a full queue no longer waits (see Recorder::stop()): the
  // reading, and every one after it (journal order), waits in late_ and is
  // stored after the queue.
  if (!late_.empty() || !queue_->push(std::move(item), accept_stop_.get_token())) late_.push_back(std::move(item));
}

std::uint64_t Intake::append_to_journal(const Reading& reading) {
  thread_local std::string buffer;
  buffer.clear();
  encode_reading(reading, buffer);
  bool paused = false;
  while (true) {
    try {
      std::uint64_t seq = wal_->append(buffer);
      if (paused) {
        counters_.intake_paused = false;
        log_(mqtt::LogLevel::notice, "the write-ahead journal has room again; taking messages");
      }
      return seq;
    } catch (const std::exception& e) {
      if (is_journal_full(e) && !accept_stop_.stop_requested()) {
        // Out of disk: wait for room (the writer frees it as the store takes
        // readings) instead of holding readings in memory only. This network
        // thread waiting is the flow control: the broker keeps the rest (QoS
        // 1). stop() ends the wait (release_waiters()).
        if (!paused) {
          log_(mqtt::LogLevel::error,
               std::string("write-ahead journal full, intake paused until there is room: ") + e.what());
          log_.set_error(std::string("write-ahead journal full, intake paused: ") + e.what());
          paused = true;
          counters_.intake_paused = true;
        }
        std::unique_lock lk(progress_.mutex);
        progress_.cv.wait_for(lk, std::chrono::milliseconds(100));
        continue;
      }
      counters_.intake_paused = false;
      // Accepted all the same (the PUBACK is gone already); it lives in memory only.
      if (counters_.journal_errors.fetch_add(1) % 1000 == 0)
        log_(mqtt::LogLevel::error, std::string("write-ahead journal append failed: ") + e.what());
      log_.set_error(std::string("write-ahead journal: ") + e.what());
      return 0;
    }
  }
}

}  // namespace iotbridge::record::detail
