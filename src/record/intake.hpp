// Intake stage, on the MQTT client's network thread: route the message, stamp
// each reading (_id, receive time), append it to the write-ahead journal,
// hand it to the queue. Nothing else runs there: libmosquitto has acknowledged
// a QoS 1 message already, so the journal append is what makes it safe, and a
// network thread that waits long stalls every other message.
#pragma once

#include <array>
#include <atomic>
#include <mutex>
#include <stop_token>

#include "handoff.hpp"
#include "iotbridge/record/journal.hpp"
#include "pipeline.hpp"

namespace iotbridge::record::detail {

// ObjectIds made without a system call: libbson's generator calls getpid()
// for every id (to notice a fork), which was one syscall per reading. Same
// layout (4-byte seconds, 5 random bytes drawn once, 3-byte counter from a
// random start), so ids still sort by time and do not collide across
// processes. Not for a process that forks and goes on recording in both.
class IdSource {
 public:
  IdSource();
  store::ObjectId next(store::DateTime now);

 private:
  std::array<std::uint8_t, 5> random_{};
  std::uint32_t counter_ = 0;
};

class Intake {
 public:
  Intake(Counters& counters, const Log& log, Progress& progress, std::uint64_t max_messages)
      : counters_(counters), log_(log), progress_(progress), max_messages_(max_messages) {}

  // Starts taking messages into `queue` (and `wal` when not null) by `routes`.
  void open(Journal* wal, HandOff* queue, const RouteSet* routes);
  // Readings accepted from now on follow `routes` (a reload); the set must
  // stay alive until close().
  void set_routes(const RouteSet* routes);
  // The subscription handler of `filter`.
  void accept(const std::string& filter, const mqtt::Message& message);

  // stop(): a network thread waiting on a full queue or a full disk gives up
  // waiting (its reading is journaled and goes to take_late()).
  void release_waiters() { accept_stop_.request_stop(); }
  // After the disconnect: later messages are counted as ignored.
  void close() { accepting_.store(false, std::memory_order_release); }
  // The readings that could not wait for the queue at shutdown, in order.
  Batch take_late();
  // Fires once max_messages were received.
  std::stop_token limit_reached() const { return limit_.get_token(); }

 private:
  void accept_reading(const CompiledRoute& route, const mqtt::Message& message, store::DateTime now);
  std::uint64_t append_to_journal(const Reading& reading);

  Counters& counters_;
  const Log& log_;
  Progress& progress_;
  const std::uint64_t max_messages_;

  Journal* wal_ = nullptr;
  HandOff* queue_ = nullptr;
  std::atomic<const RouteSet*> routes_{nullptr};
  std::atomic<bool> accepting_{false};
  std::stop_source accept_stop_;
  std::stop_source limit_;
  std::mutex mutex_;  // journal order == queue order; guards late_ and ids_
  Batch late_;
  IdSource ids_;
};

}  // namespace iotbridge::record::detail
