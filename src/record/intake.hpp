// Intake stage, on the MQTT client's network thread: route the message, stamp
// each reading (_id, receive time), append it to the write-ahead journal,
// hand it to the queue. Nothing else runs there: libmosquitto has acknowledged
// a QoS 1 message already, so the journal append is what makes it safe, and a
// network thread that waits long stalls every other message.
#pragma once

#include <atomic>
#include <mutex>
#include <stop_token>

#include "iotbridge/queue.hpp"
#include "iotbridge/record/journal.hpp"
#include "pipeline.hpp"

namespace iotbridge::record::detail {

class Intake {
 public:
  Intake(Counters& counters, const Log& log, Progress& progress, std::uint64_t max_messages)
      : counters_(counters), log_(log), progress_(progress), max_messages_(max_messages) {}

  // Starts taking messages into `queue` (and `wal` when not null) by `routes`.
  void open(Journal* wal, BoundedQueue<Item>* queue, const RouteSet* routes);
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
  BoundedQueue<Item>* queue_ = nullptr;
  std::atomic<const RouteSet*> routes_{nullptr};
  std::atomic<bool> accepting_{false};
  std::stop_source accept_stop_;
  std::stop_source limit_;
  std::mutex mutex_;  // journal order == queue order; guards late_
  Batch late_;
};

}  // namespace iotbridge::record::detail
