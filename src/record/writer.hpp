// Writer stage, on its own thread (a Worker): takes readings from the queue in
// batches (batch_size or flush_interval), syncs the write-ahead journal,
// builds each reading's documents by its route, inserts them per collection
// with insert_many (retrying with one capped, jittered Backoff while the store
// fails), trims the write-ahead journal behind what is stored, and moves
// readings to the spool past the memory bound / back from it once the store
// answers. Its stop token is "give up": stop() fires it after the shutdown
// timeout, leaving the rest in the journal and spool for the next start.
#pragma once

#include <deque>
#include <memory>

#include "handoff.hpp"
#include "intake.hpp"
#include "iotbridge/backoff.hpp"
#include "iotbridge/record/journal.hpp"
#include "iotbridge/record/recorder.hpp"
#include "iotbridge/worker.hpp"
#include "pipeline.hpp"
#include "spool.hpp"

namespace iotbridge::record::detail {

class Writer final : public Worker {
 public:
  // `routes()` is the route set in force (for readings read back from the
  // journal or the spool, which carry a route name).
  Writer(const RecorderOptions& options, Counters& counters, const Log& log, Progress& progress, Intake& intake,
         HandOff& queue, Journal* wal, Spool* spool, std::function<const RouteSet*()> routes);
  ~Writer() override;

  // Nothing in hand, queue and spool empty (wait_idle()).
  bool idle() const { return idle_.load(); }
  // run() has returned.
  bool done() const;

 protected:
  void run(std::stop_token give_up) override;

 private:
  enum class Outcome { stored, abandoned, gave_up };
  template <typename Between>
  Outcome store_group(const std::vector<Item*>& group, Between&& between);
  template <typename Between>
  Outcome store_batch(HeldBatch& batch, Between&& between);
  bool store_held();
  bool drain_spool();
  bool maybe_spill();
  void collect(Batch& batch);
  void trim_wal(std::uint64_t seq, bool force);
  void drop_oversize(Batch& items);
  void wait_for_retry(Backoff::Duration delay);
  std::size_t spill_threshold() const;

  const RecorderOptions& options_;
  Counters& counters_;
  const Log& log_;
  Progress& progress_;
  Intake& intake_;
  HandOff& queue_;
  Journal* wal_;
  Spool* spool_;
  std::function<const RouteSet*()> routes_;
  std::stop_token give_up_;

  Backoff backoff_;
  std::deque<HeldBatch> held_;  // older than the queue, newer than the spool
  Clock::time_point spill_blocked_until_{};
  // Write-ahead trims are checkpoints (an fsync each): done at most every
  // kWalTrimInterval, which only means a few more duplicates on a replay.
  static constexpr std::chrono::milliseconds kWalTrimInterval{200};
  std::uint64_t wal_trim_wanted_ = 0;
  std::uint64_t wal_trimmed_ = 0;
  Clock::time_point wal_trimmed_at_{};
  // Full batches taken from a deep queue at once (one journal sync for all).
  static constexpr std::size_t kReadAhead = 8;
  std::uint64_t synced_seq_ = 0;  // write-ahead records up to this are fdatasynced
  std::atomic<bool> idle_{false};
  std::atomic<bool> done_{false};
};

}  // namespace iotbridge::record::detail
