// Spool stage: the disk spool (batches the store could not take yet), its
// on-disk codecs (a reading, a batch), spilling held and queued readings into
// it, draining it in order, and moving an earlier run's write-ahead journal
// into it at start. Driven by the writer's thread only (the journal inside is
// thread-safe; this class is not).
#pragma once

#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "handoff.hpp"
#include "iotbridge/record/journal.hpp"
#include "pipeline.hpp"

namespace iotbridge::record::detail {

// A spool record: u32 count, then that many encoded readings (with their
// route names). decode_batch throws Error (io) on malformed input.
std::string encode_batch(const Batch& batch);
std::vector<Reading> decode_batch(std::string_view bytes);

// A batch in the writer's hands: its readings and the last write-ahead
// record among them (trimmed once the batch is stored or spooled).
struct HeldBatch {
  Batch items;
  std::uint64_t max_seq = 0;
};

class Spool {
 public:
  // Opens (creating it) the spool journal in `dir` on `fs`. Throws Error (io).
  Spool(const std::filesystem::path& dir, std::uint64_t max_bytes, JournalProblemHandler on_problem,
        std::shared_ptr<Fs> fs);

  bool has_backlog() const { return journal_.stats().pending_records > 0; }
  // Size on disk while it holds something; 0 once drained.
  std::uint64_t bytes() const;

  // What an earlier run accepted and did not store (its write-ahead journal)
  // goes to the end of the spool, behind what it had spooled (older), so that
  // one ordered path replays both. Spool first, then trim: a crash in between
  // only spools some readings twice (same _id, stored once). Returns how many.
  // `counted` sees each migrated reading (the caller counts it as replayed).
  std::size_t migrate(Journal& wal, std::size_t chunk, const Log& log,
                      const std::function<void(const Reading&)>& counted);

  // Writes every held batch, then whatever the queue holds (in chunks), in
  // order, and syncs. Returns how many readings went in and the last
  // write-ahead record among them; `synced` says whether they are durable.
  // On a write error, stops there: what was written stays (whole records),
  // the rest stays where it was (held or queued), and `error` says why.
  struct Spilled {
    std::size_t readings = 0;
    std::uint64_t max_seq = 0;
    bool front_spilled = false;  // held.front() went to the spool
    bool synced = true;
    std::string error;  // empty: everything went in
  };
  Spilled spill(std::deque<HeldBatch>& held, HandOff& queue, std::size_t chunk);

  // Calls store(readings, from_earlier_run) for each record in order; a
  // record is trimmed once store returns true. Records spilled meanwhile
  // (behind) are taken by the next call. Returns false when store returned
  // false (giving up). A record that passed its checksum but does not decode
  // is skipped, loudly. Throws Error (io) when the spool cannot be read.
  bool drain(const std::function<bool(std::vector<Reading>&, bool from_earlier_run)>& store, const Log& log);

 private:
  Journal journal_;
  std::uint64_t last_seq_of_earlier_run_ = 0;  // records up to this were spooled by an earlier run
};

}  // namespace iotbridge::record::detail
