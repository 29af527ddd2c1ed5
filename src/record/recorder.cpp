#include "iotbridge/record/recorder.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <span>
#include <thread>

#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"
#include "iotbridge/queue.hpp"
#include "iotbridge/record/journal.hpp"
#include "iotbridge/store/open.hpp"
#include "iotbridge/topic.hpp"
#include "iotbridge/worker.hpp"
#include "json_string.hpp"
namespace iotbridge::record {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using store::Document;

namespace {

std::string human_bytes(std::uint64_t n) {
  if (n < 1024) return fmt::format("{} B", n);
  if (n < 1024 * 1024) return fmt::format("{:.1f} KiB", n / 1024.0);
  if (n < 1024ull * 1024 * 1024) return fmt::format("{:.1f} MiB", n / (1024.0 * 1024));
  return fmt::format("{:.2f} GiB", n / (1024.0 * 1024 * 1024));
}

}  // namespace

// ---- the recorder ----

namespace {

// One reading on its way: `seq` is its write-ahead record (0: none).
struct Item {
  std::uint64_t seq = 0;
  Reading reading;
};
using Batch = std::vector<Item>;

// The spool folder belongs to one recorder at a time (flock, released by the
// kernel when the process dies, so a SIGKILLed recorder does not block its
// successor).
class DirLock {
 public:
  explicit DirLock(const fs::path& dir) {
    fs::path file = dir / "LOCK";
    fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(ErrorCategory::io, "cannot open " + file.string() + ": " + std::strerror(errno), errno);
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      ::close(fd_);
      fd_ = -1;
      throw Error(ErrorCategory::io,
                  "spool folder " + dir.string() +
                      " is in use by another recorder; give each recorder its own folder (--spool DIR)",
                  err);
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) == 0) {
      [[maybe_unused]] auto n = ::write(fd_, pid.data(), pid.size());
    }
  }
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  int fd_ = -1;
};

// A spool record: u32 count, then that many encoded readings.
std::string encode_batch(const Batch& batch, std::size_t begin, std::size_t end) {
  std::string out;
  std::uint32_t n = static_cast<std::uint32_t>(end - begin);
  for (int k = 0; k < 4; ++k) out.push_back(static_cast<char>((n >> (8 * k)) & 0xFF));
  for (std::size_t i = begin; i < end; ++i) encode_reading(batch[i].reading, out);
  return out;
}

std::vector<Reading> decode_batch(std::string_view bytes) {
  if (bytes.size() < 4) throw Error(ErrorCategory::io, "malformed spool record: too short");
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  std::uint32_t n = p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
  bytes.remove_prefix(4);
  std::vector<Reading> out;
  out.reserve(std::min<std::uint32_t>(n, 100000));
  for (std::uint32_t i = 0; i < n; ++i) out.push_back(decode_reading_prefix(bytes));
  if (!bytes.empty()) throw Error(ErrorCategory::io, "malformed spool record: trailing bytes");
  return out;
}

}  // namespace

struct Recorder::Impl {
  explicit Impl(RecorderOptions o) : opts(std::move(o)) {}

  RecorderOptions opts;
  std::vector<Route> routes;
  std::shared_ptr<store::DocumentStore> store;
  std::shared_ptr<store::Collection> collection;
  std::shared_ptr<mqtt::Client> client;
  bool own_client = false;

  std::unique_ptr<DirLock> lock;
  std::unique_ptr<Journal> wal;
  std::unique_ptr<Journal> spool;
  std::uint64_t spool_seq_at_start = 0;  // spool records up to this came from an earlier run
  // Write-ahead trims are checkpoints (an fsync each): done at most every
  // kWalTrimInterval, which only means a few more duplicates on a replay.
  std::uint64_t wal_trim_wanted = 0;
  std::uint64_t wal_trimmed = 0;
  Clock::time_point wal_trimmed_at{};

  std::unique_ptr<BoundedQueue<Item>> queue;
  std::mutex accept_mutex;  // keeps journal order == queue order
  Batch late;               // accepted during shutdown while the queue was full (accept_mutex)
  std::uint64_t next_seq = 0;
  std::atomic<bool> accepting{false};
  std::stop_source accept_stop;  // unblocks a network thread waiting on a full queue at shutdown

  std::jthread worker;
  std::stop_source giveup;  // the worker stops retrying (shutdown timeout)
  std::unique_ptr<PeriodicTimer> stats_timer;
  std::stop_source self_stop;  // max_messages reached
  std::atomic<bool> running{false};
  Clock::time_point started_at{};

  // Worker-owned.
  std::deque<Batch> held;  // batches in hand, older than the queue, newer than the spool
  Clock::time_point spill_blocked_until{};

  // Counters.
  std::atomic<std::uint64_t> received{0}, replayed{0}, stored{0}, duplicates{0}, rejected{0}, ignored{0};
  std::atomic<std::uint64_t> numbers{0}, json{0}, nulls{0}, text_fb{0}, binary_fb{0};
  std::atomic<std::uint64_t> batches{0}, retries{0}, spooled{0}, unspooled{0}, journal_errors{0}, spool_errors{0};
  std::atomic<std::uint64_t> spool_bytes{0};
  std::atomic<bool> connected{false}, store_ok{true};
  std::atomic<bool> intake_paused{false};  // the network thread waits for room in the write-ahead journal
  std::atomic<std::uint64_t> connects{0};
  std::atomic<bool> worker_idle{false};  // nothing in hand, queue and spool empty
  mutable std::mutex state_mutex;
  mutable std::condition_variable state_cv;
  std::string last_error;
  bool worker_done = false;

  // ---- logging ----
  void log(mqtt::LogLevel level, const std::string& message) {
    if (opts.on_log) {
      try {
        opts.on_log(level, message);
      } catch (...) {
      }
      return;
    }
    if (level == mqtt::LogLevel::warning || level == mqtt::LogLevel::error)
      std::fprintf(stderr, "iotbridge recorder: %s\n", message.c_str());
  }
  void set_error(const std::string& message) {
    {
      std::lock_guard lk(state_mutex);
      last_error = message;
    }
  }
  void notify() {
    { std::lock_guard lk(state_mutex); }
    state_cv.notify_all();
  }

  // ---- network thread ----
  void accept(const mqtt::Message& m) {
    if (!accepting.load(std::memory_order_acquire)) {
      ++ignored;
      return;
    }
    Item item;
    item.reading.id = store::ObjectId::generate();
    item.reading.received = store::DateTime::now();
    item.reading.topic = m.topic;
    item.reading.payload = m.payload;
    item.reading.qos = m.qos;
    item.reading.retain = m.retain;
    bool limit_reached = false;
    {
      std::lock_guard lk(accept_mutex);
      // Past max_messages a message is stored all the same: libmosquitto has
      // acknowledged it already, so dropping it here would lose it for good
      // (the broker will not send it again, even to a persistent session).
      // run() stops after the limit; what arrives until the disconnect counts.
      const bool limit_was_reached = opts.max_messages != 0 && received.load() >= opts.max_messages;
      if (wal) {
        thread_local std::string buffer;
        buffer.clear();
        encode_reading(item.reading, buffer);
        bool paused = false;
        while (true) {
          try {
            item.seq = wal->append(buffer);
            if (paused) {
              intake_paused = false;
              log(mqtt::LogLevel::notice, "the write-ahead journal has room again; taking messages");
            }
            break;
          } catch (const std::exception& e) {
            if (is_journal_full(e) && !accept_stop.stop_requested()) {
              // Out of disk: wait for room (the worker frees it as the store
              // takes readings) instead of holding readings in memory only.
              // This network thread waiting is the flow control: the broker
              // keeps the rest (QoS 1). stop() ends the wait (accept_stop).
              if (!paused) {
                log(mqtt::LogLevel::error,
                    std::string("write-ahead journal full, intake paused until there is room: ") + e.what());
                set_error(std::string("write-ahead journal full, intake paused: ") + e.what());
                paused = true;
                intake_paused = true;
              }
              std::unique_lock lk(state_mutex);
              state_cv.wait_for(lk, std::chrono::milliseconds(100));
              continue;
            }
            intake_paused = false;
            // Accepted all the same (the PUBACK is gone already); it lives in memory only.
            if (journal_errors.fetch_add(1) % 1000 == 0)
              log(mqtt::LogLevel::error, std::string("write-ahead journal append failed: ") + e.what());
            set_error(std::string("write-ahead journal: ") + e.what());
            break;
          }
        }
      }
      worker_idle.store(false, std::memory_order_relaxed);
      ++received;
      // At shutdown a full queue no longer waits (see stop()): the reading,
      // and every one after it (journal order), waits in `late` and is
      // stored after the queue.
      if (!late.empty() || !queue->push(std::move(item), accept_stop.get_token())) late.push_back(std::move(item));
      limit_reached = !limit_was_reached && opts.max_messages != 0 && received.load() >= opts.max_messages;
    }
    if (limit_reached) {
      self_stop.request_stop();
      notify();
    }
  }

  // ---- worker ----
  enum class Outcome { stored, abandoned, gave_up };

  std::chrono::milliseconds backoff(int failures) const {
    auto d = opts.retry_delay_min;
    for (int i = 1; i < failures && d < opts.retry_delay_max; ++i) d *= 2;
    return std::min(d, opts.retry_delay_max);
  }

  std::size_t spill_threshold() const {
    return opts.spill_threshold ? opts.spill_threshold : std::max<std::size_t>(1, opts.queue_capacity / 2);
  }

  // Stores `readings` (trying again and again while the store fails). Between
  // attempts `between()` may take the batch elsewhere (returns true:
  // abandoned). `kinds` collects the decode outcome for the counters.
  template <typename Between>
  Outcome store_readings(const std::vector<const Reading*>& readings, Between&& between) {
    std::size_t offset = 0;  // readings[0, offset) are done
    int failures = 0;        // consecutive transient failures
    int doc_failures = 0;    // consecutive document-level failures at `offset`
    std::vector<PayloadKind> kinds(readings.size(), PayloadKind::null);
    std::vector<bool> counted(readings.size(), false);
    auto count_kind = [&](std::size_t i) {
      if (counted[i]) return;
      counted[i] = true;
      switch (kinds[i]) {
        case PayloadKind::null: ++nulls; break;
        case PayloadKind::number: ++numbers; break;
        case PayloadKind::json: ++json; break;
        case PayloadKind::text: ++text_fb; break;
        case PayloadKind::binary: ++binary_fb; break;
      }
    };
    store::InsertManyOptions insert_options;
    insert_options.ordered = true;
    insert_options.ignore_duplicate_ids = true;

    while (offset < readings.size()) {
      std::vector<Document> docs;
      docs.reserve(readings.size() - offset);
      BuildInfo info;
      for (std::size_t i = offset; i < readings.size(); ++i) {
        docs.push_back(build_document(*readings[i], opts.document, &info));
        kinds[i] = info.kind;
      }
      try {
        auto result = collection->insert_many(std::move(docs), insert_options);
        for (std::size_t i = offset; i < readings.size(); ++i) count_kind(i);
        stored += readings.size() - offset;
        duplicates += static_cast<std::uint64_t>(result.duplicates_skipped);
        ++batches;
        if (!store_ok.exchange(true)) log(mqtt::LogLevel::notice, "the store answers again");
        notify();
        return Outcome::stored;
      } catch (const store::BulkWriteError& e) {
        // The store answered and refused one document: the ones before it are in.
        std::size_t done = std::min(e.index(), readings.size() - offset);
        for (std::size_t i = offset; i < offset + done; ++i) count_kind(i);
        stored += done;
        offset += done;
        doc_failures = done > 0 ? 1 : doc_failures + 1;
        set_error(std::string("store refused a document: ") + e.what());
        if (doc_failures >= 3 && offset < readings.size()) {
          // Three refusals of the same document: it will never go in. Skip
          // it, loudly; everything else in the batch still gets stored.
          ++rejected;
          log(mqtt::LogLevel::error, fmt::format("reading {} on '{}' rejected by the store, skipped: {}",
                                                 readings[offset]->id.to_hex(), readings[offset]->topic, e.what()));
          ++offset;
          doc_failures = 0;
          notify();
          continue;
        }
        ++retries;
        ++failures;
      } catch (const std::exception& e) {
        ++retries;
        ++failures;
        if (store_ok.exchange(false) || failures == 1)
          log(mqtt::LogLevel::warning, std::string("store insert failed, retrying: ") + e.what());
        set_error(std::string("store: ") + e.what());
      }
      // Wait before the next attempt, looking after the queue meanwhile.
      auto until = Clock::now() + backoff(failures);
      while (Clock::now() < until) {
        if (giveup.stop_requested()) return Outcome::gave_up;
        if (between()) return Outcome::abandoned;
        std::unique_lock lk(state_mutex);
        state_cv.wait_until(lk, std::min(until, Clock::now() + std::chrono::milliseconds(20)));
      }
      if (giveup.stop_requested()) return Outcome::gave_up;
    }
    notify();
    return Outcome::stored;
  }

  // Moves held batches, then queued readings, to the spool when the memory
  // bound is passed. Returns true when held.front() went to the spool.
  bool maybe_spill() {
    if (!spool) return false;
    std::size_t held_count = 0;
    for (const auto& b : held) held_count += b.size();
    if (queue->size() + held_count < spill_threshold()) return false;
    if (Clock::now() < spill_blocked_until) return false;
    bool front_spilled = false;
    bool synced = true;
    std::uint64_t max_seq = 0;
    std::size_t written = 0;
    try {
      // Pull the queue into `held` in batch-sized chunks, then write all of
      // held in order. At most one chunk of new memory if a write fails.
      while (!held.empty()) {
        Batch& b = held.front();
        std::string record = encode_batch(b, 0, b.size());
        spool->append(record);
        for (const auto& item : b) max_seq = std::max(max_seq, item.seq);
        written += b.size();
        held.pop_front();
        front_spilled = true;
      }
      std::size_t to_move = queue->size();
      while (to_move > 0) {
        Batch chunk;
        std::size_t n = queue->pop_many(chunk, std::min(to_move, opts.batch_size), std::chrono::milliseconds(0));
        if (n == 0) break;
        to_move -= std::min(to_move, n);
        held.push_back(std::move(chunk));
        Batch& b = held.back();
        spool->append(encode_batch(b, 0, b.size()));
        for (const auto& item : b) max_seq = std::max(max_seq, item.seq);
        written += b.size();
        held.pop_back();
      }
      spool->sync();
    } catch (const std::exception& e) {
      spill_blocked_until = Clock::now() + opts.retry_delay_max;
      ++spool_errors;
      log(mqtt::LogLevel::error, std::string("cannot write to the spool (intake slows down instead): ") + e.what());
      set_error(std::string("spool: ") + e.what());
      // What went to the spool stays there (appends are whole records);
      // the write-ahead journal is trimmed behind it only once it is synced.
      // A reading both spooled and still in `held` is stored once (same _id).
      try {
        spool->sync();
      } catch (...) {
        synced = false;
      }
    }
    if (written > 0) {
      spooled += written;
      update_spool_bytes();
      if (synced) trim_wal(max_seq, true);
      log(mqtt::LogLevel::info, fmt::format("{} readings spooled to disk while the store is failing", written));
    }
    return front_spilled;
  }

  struct GiveUp {};

  // Stores the spool's records in order, trimming each once stored. Records
  // spilled meanwhile are appended behind and taken by the next call. False
  // when giving up (shutdown timeout).
  bool drain_spool() {
    try {
      spool->replay([&](std::uint64_t seq, std::span<const std::byte> payload) {
        std::vector<Reading> readings;
        try {
          readings = decode_batch(std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()));
        } catch (const std::exception& e) {
          // Passed its checksum but does not decode (not written by us): skip it, loudly.
          log(mqtt::LogLevel::error, std::string("unreadable spool record skipped: ") + e.what());
          set_error(std::string("spool: ") + e.what());
        }
        if (seq <= spool_seq_at_start) replayed += readings.size();
        std::vector<const Reading*> ptrs;
        ptrs.reserve(readings.size());
        for (const auto& r : readings) ptrs.push_back(&r);
        drop_oversize(ptrs);
        Outcome outcome = store_readings(ptrs, [&] {
          maybe_spill();  // spilled batches go behind this record: order kept
          return false;
        });
        if (outcome == Outcome::gave_up) throw GiveUp{};
        unspooled += readings.size();
        try {
          spool->trim_through(seq);
        } catch (const std::exception& e) {
          log(mqtt::LogLevel::warning, std::string("spool trim failed: ") + e.what());
        }
        update_spool_bytes();
      });
    } catch (const GiveUp&) {
      return false;
    } catch (const std::exception& e) {
      log(mqtt::LogLevel::error, std::string("spool read failed, trying again: ") + e.what());
      set_error(std::string("spool: ") + e.what());
      std::unique_lock lk(state_mutex);
      state_cv.wait_for(lk, opts.retry_delay_max);
      return !giveup.stop_requested();
    }
    if (!spool_has_backlog()) {
      update_spool_bytes();
      log(mqtt::LogLevel::info, "spool drained");
    }
    return true;
  }

  void update_spool_bytes() {
    auto st = spool->stats();
    spool_bytes = st.pending_records ? st.bytes_on_disk : 0;
  }

  bool spool_has_backlog() const { return spool && spool->stats().pending_records > 0; }

  void trim_wal(std::uint64_t seq, bool force) {
    if (!wal) return;
    wal_trim_wanted = std::max(wal_trim_wanted, seq);
    if (wal_trim_wanted <= wal_trimmed) return;
    auto now = Clock::now();
    if (!force && now - wal_trimmed_at < std::chrono::milliseconds(200)) return;
    try {
      wal->trim_through(wal_trim_wanted);
      wal_trimmed = wal_trim_wanted;
      wal_trimmed_at = now;
    } catch (const std::exception& e) {
      log(mqtt::LogLevel::warning, std::string("write-ahead journal trim failed: ") + e.what());
    }
  }

  // A payload no document can hold would block its batch forever: report it
  // (rejected, with the reason) and go on without it.
  void drop_oversize(std::vector<const Reading*>& ptrs) {
    auto too_big = [this](const Reading* r) { return r->payload.size() + r->topic.size() > opts.max_document_bytes; };
    if (std::none_of(ptrs.begin(), ptrs.end(), too_big)) return;
    std::vector<const Reading*> kept;
    for (const Reading* r : ptrs) {
      if (!too_big(r)) {
        kept.push_back(r);
        continue;
      }
      ++rejected;
      std::string why = fmt::format("reading {} on '{}' rejected: {} bytes do not fit in one document (limit {})",
                                    r->id.to_hex(), r->topic, r->payload.size(), opts.max_document_bytes);
      log(mqtt::LogLevel::error, why);
      set_error(why);
    }
    ptrs.swap(kept);
  }

  // Collects up to batch_size readings: waits for the first, then up to
  // flush_interval for the rest.
  void collect(Batch& batch) {
    std::size_t n = queue->pop_many(batch, opts.batch_size, opts.flush_interval);
    if (n == 0) return;
    auto deadline = Clock::now() + opts.flush_interval;
    while (batch.size() < opts.batch_size) {
      auto now = Clock::now();
      if (now >= deadline) break;
      std::size_t got = queue->pop_many(batch, opts.batch_size - batch.size(), deadline - now);
      if (got == 0 && queue->closed()) break;
    }
  }

  // Stores held.front(). False when giving up.
  bool store_held() {
    Batch& batch = held.front();
    if (wal && opts.sync_write_ahead) {
      try {
        wal->sync();
      } catch (const std::exception& e) {
        log(mqtt::LogLevel::error, std::string("write-ahead journal sync failed: ") + e.what());
        set_error(std::string("write-ahead journal: ") + e.what());
      }
    }
    std::vector<const Reading*> ptrs;
    ptrs.reserve(batch.size());
    std::uint64_t max_seq = 0;
    for (const auto& item : batch) {
      ptrs.push_back(&item.reading);
      max_seq = std::max(max_seq, item.seq);
    }
    drop_oversize(ptrs);
    Outcome outcome = store_readings(ptrs, [&] { return maybe_spill(); });
    if (outcome == Outcome::gave_up) return false;
    if (outcome == Outcome::stored) {
      held.pop_front();
      trim_wal(max_seq, false);
    }
    return true;
  }

  void worker_main() {
    try {
      while (!giveup.stop_requested()) {
        if (spool_has_backlog()) {
          worker_idle = false;
          if (!drain_spool()) break;
          continue;
        }
        if (!held.empty()) {
          if (!store_held()) break;
          continue;
        }
        if (queue->size() == 0) {
          trim_wal(0, true);  // idle: catch up on the deferred trim
          worker_idle = true;
          notify();
        }
        Batch batch;
        batch.reserve(opts.batch_size);
        collect(batch);
        if (batch.empty()) {
          if (!queue->drained()) continue;
          // Closed and empty: the network thread is gone; pick up the stragglers.
          std::lock_guard lk(accept_mutex);
          if (late.empty()) break;
          held.push_back(std::move(late));
          late.clear();
          continue;
        }
        worker_idle = false;
        held.push_back(std::move(batch));
      }
    } catch (const std::exception& e) {
      log(mqtt::LogLevel::error, std::string("record worker stopped: ") + e.what());
      set_error(std::string("worker: ") + e.what());
    }
    if (wal) {
      if (held.empty() && !spool_has_backlog()) trim_wal(0, true);
      try {
        wal->sync();
      } catch (...) {
      }
    }
    {
      std::lock_guard lk(state_mutex);
      worker_done = true;
    }
    state_cv.notify_all();
  }

  // ---- start / stop ----
  void open_durability() {
    if (opts.spool_dir.empty()) return;
    std::error_code ec;
    fs::create_directories(opts.spool_dir, ec);
    if (ec)
      throw Error(ErrorCategory::io, "cannot create spool folder " + opts.spool_dir.string() + ": " + ec.message(),
                  ec.value());
    lock = std::make_unique<DirLock>(opts.spool_dir);
    auto on_problem = [this](const JournalProblem& problem) {
      // Called under the journal's lock: log only.
      log(mqtt::LogLevel::warning, problem.message);
      set_error(problem.message);
    };
    JournalOptions wal_options;
    wal_options.prefix = "wal";
    wal_options.fsync = opts.sync_write_ahead;
    wal = std::make_unique<Journal>(opts.spool_dir / "wal", wal_options, on_problem);
    JournalOptions spool_options;
    spool_options.prefix = "spool";
    spool_options.segment_bytes = 16ull << 20;  // drained segments are deleted sooner
    spool_options.max_bytes = opts.spool_max_bytes;
    spool_options.retire_consumed_bytes = 0;  // a drained spool is deleted, not kept for reuse
    spool = std::make_unique<Journal>(opts.spool_dir / "spool", spool_options, on_problem);
    wal_trim_wanted = wal_trimmed = 0;
    wal_trimmed_at = Clock::now();
    // What the previous run accepted and did not store moves to the end of
    // the spool (after what it had spooled, which is older), so that one
    // ordered path replays both. Spool first, then trim: a crash in between
    // only spools some readings twice (same _id, stored once).
    const std::uint64_t spool_last_before = spool->stats().next_sequence - 1;
    std::uint64_t wal_last = 0;
    std::size_t migrated = 0;
    Batch chunk;
    auto flush_chunk = [&] {
      if (chunk.empty()) return;
      spool->append(encode_batch(chunk, 0, chunk.size()));
      migrated += chunk.size();
      chunk.clear();
    };
    wal->replay([&](std::uint64_t seq, std::span<const std::byte> payload) {
      wal_last = seq;
      try {
        chunk.push_back(
            Item{0, decode_reading(std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()))});
      } catch (const std::exception& e) {
        log(mqtt::LogLevel::error, std::string("unreadable write-ahead record skipped: ") + e.what());
      }
      if (chunk.size() >= opts.batch_size) flush_chunk();
    });
    flush_chunk();
    if (migrated) spool->sync();
    if (wal_last) wal->trim_through(wal_last);
    replayed += migrated;
    // Earlier spool records are counted as replayed when read; the migrated ones now.
    spool_seq_at_start = spool_last_before;
    update_spool_bytes();
    if (migrated || spool_has_backlog())
      log(mqtt::LogLevel::notice,
          fmt::format("replaying what an earlier run left: {} readings from the write-ahead journal, spool {}",
                      migrated, human_bytes(spool->stats().bytes_on_disk)));
  }

  // The client may outlive the recorder (a given one): leave no callback of
  // ours in it. Unsubscribing while disconnected only forgets the handlers;
  // a persistent session on the broker keeps its subscriptions.
  void detach_client() {
    if (!client) return;
    try {
      client->on_connect({});
      client->on_disconnect({});
      for (const auto& f : opts.filters) client->unsubscribe(f);
    } catch (const std::exception& e) {
      log(mqtt::LogLevel::warning, std::string("detaching from the MQTT client: ") + e.what());
    }
  }

  void close_durability() {
    wal.reset();
    spool.reset();
    lock.reset();
  }
};

// ---- Recorder ----

namespace {

// The filters for a message: a hostile one may be 65535 bytes long.
std::string describe_filters(const std::vector<std::string>& filters) {
  std::string out;
  for (const auto& f : filters) {
    if (!out.empty()) out += ", ";
    if (f.size() <= 80)
      out += "'" + f + "'";
    else
      out += fmt::format("'{}...' ({} bytes, {} levels)", f.substr(0, 60), f.size(),
                         std::count(f.begin(), f.end(), '/') + 1);
  }
  return out;
}

// The routes a recorder runs: RecorderOptions::routes, or the single-route
// options as one route named "default".
std::vector<Route> effective_routes(const RecorderOptions& o) {
  if (!o.routes.empty()) {
    if (!o.filters.empty())
      throw Error(ErrorCategory::config,
                  "set either the single-route options (filters) or routes, not both: move the filters into a route");
    return o.routes;
  }
  if (o.filters.empty()) throw Error(ErrorCategory::config, "the recorder needs at least one topic filter");
  Route r;
  r.filters = o.filters;
  r.database = o.database;
  r.collection = o.collection;
  r.document = o.document;
  if (r.database.empty() || r.collection.empty())
    throw Error(ErrorCategory::config, "database and collection names must not be empty");
  return {r};
}

void check_options(const RecorderOptions& o) {
  auto routes = effective_routes(o);
  for (const auto& r : routes)
    for (const auto& f : r.filters) validate_filter(f);
  validate_routes(routes);
  if (o.qos < 0 || o.qos > 2) throw Error(ErrorCategory::config, "qos must be 0, 1 or 2");
  if (o.batch_size == 0) throw Error(ErrorCategory::config, "batch size must be at least 1");
  if (o.queue_capacity == 0) throw Error(ErrorCategory::config, "queue capacity must be at least 1");
  if (o.flush_interval.count() <= 0) throw Error(ErrorCategory::config, "flush interval must be positive");
  if (o.retry_delay_min.count() <= 0 || o.retry_delay_max < o.retry_delay_min)
    throw Error(ErrorCategory::config, "retry delays must be positive, min <= max");
}

}  // namespace

Recorder::Recorder(RecorderOptions options, std::shared_ptr<store::DocumentStore> store,
                   std::shared_ptr<mqtt::Client> client)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  check_options(impl_->opts);
  impl_->routes = effective_routes(impl_->opts);
  if (impl_->routes.size() > 1) throw Error(ErrorCategory::config, "several routes: not implemented yet in this build");
  impl_->store = std::move(store);
  impl_->client = std::move(client);
}

Recorder::~Recorder() {
  try {
    stop();
  } catch (...) {
  }
}

const RecorderOptions& Recorder::options() const noexcept { return impl_->opts; }
std::vector<Route> Recorder::routes() const { return impl_->routes; }

void Recorder::update_routes(std::vector<Route>) {
  throw Error(ErrorCategory::config, "changing the routes of a recorder: not implemented yet in this build");
}

bool Recorder::running() const noexcept { return impl_->running.load(); }

void Recorder::start() {
  Impl& d = *impl_;
  if (d.running) throw Error(ErrorCategory::config, "the recorder is already running");
  d.started_at = Clock::now();
  d.late.clear();
  d.worker_done = false;
  d.giveup = std::stop_source();
  d.accept_stop = std::stop_source();
  d.self_stop = std::stop_source();
  try {
    d.open_durability();
    if (!d.store) d.store = store::open_store(d.opts.store_uri);
    if (d.opts.check_store_on_start) d.store->ping();
    d.collection = d.store->collection(d.opts.database, d.opts.collection);
    d.queue = std::make_unique<BoundedQueue<Item>>(d.opts.queue_capacity);
    d.worker = std::jthread([&d] { d.worker_main(); });

    if (!d.client) {
      d.client = std::shared_ptr<mqtt::Client>(mqtt::make_mosquitto_client(d.opts.mqtt));
      d.own_client = true;
    }
    d.client->on_connect([&d](const mqtt::ConnectResult& r) {
      if (r.reason_code != 0) return;
      d.connected = true;
      if (d.connects.fetch_add(1) > 0) d.log(mqtt::LogLevel::notice, "reconnected to the broker");
    });
    d.client->on_disconnect([&d](const mqtt::DisconnectInfo& info) {
      d.connected = false;
      if (info.unexpected) {
        d.log(mqtt::LogLevel::warning, "lost the broker connection (" + info.reason + "); reconnecting");
        d.set_error("mqtt: " + info.reason);
      }
    });
    std::vector<mqtt::Subscription> subs;
    for (const auto& f : d.opts.filters)
      subs.push_back(mqtt::Subscription{f, d.opts.qos, [&d](const mqtt::Message& m) { d.accept(m); }});
    d.accepting = true;
    auto token = d.client->subscribe(subs);
    if (!d.client->connected()) {
      d.client->connect();
      d.connected = true;
      if (d.connects.load() == 0) d.connects = 1;
    } else {
      d.connected = true;  // a given client, connected by its owner
      if (d.connects.load() == 0) d.connects = 1;
    }
    d.client->loop_start();
    // A broker that refuses a filter may close the connection instead of
    // answering (Mosquitto does so for filters deeper than 200 levels): that
    // is reported at once, not as a timeout after a reconnect loop.
    auto wait = d.client->options().connect_timeout;
    auto deadline = Clock::now() + wait;
    bool answered = false;
    while (!(answered = token.wait_for(std::chrono::milliseconds(50))) && Clock::now() < deadline) {
      if (d.connects.load() > 1 || !d.connected.load())
        throw Error(ErrorCategory::mqtt,
                    fmt::format("the broker closed the connection instead of answering the subscription to {}; "
                                "it refuses a filter (Mosquitto does so for more than 200 levels) or this client",
                                describe_filters(d.opts.filters)));
    }
    if (!answered)
      throw Error(ErrorCategory::mqtt,
                  "the broker did not answer the subscription within " + std::to_string(wait.count()) + " ms");
    auto granted = token.granted_qos();
    for (std::size_t i = 0; i < granted.size() && i < d.opts.filters.size(); ++i) {
      if (mqtt::SubscribeResult::is_failure(granted[i]))
        throw Error(ErrorCategory::mqtt,
                    fmt::format("the broker refused the subscription to {} (code 0x{:02x}); check its ACL",
                                describe_filters({d.opts.filters[i]}), granted[i]),
                    granted[i]);
    }
  } catch (...) {
    d.accepting = false;
    if (d.client) {
      try {
        d.client->disconnect();
        d.client->loop_stop();
      } catch (...) {
      }
      d.detach_client();
      if (d.own_client) {
        d.client.reset();
        d.own_client = false;
      }
    }
    if (d.queue) d.queue->close();
    d.giveup.request_stop();
    if (d.worker.joinable()) d.worker.join();
    d.queue.reset();
    d.close_durability();
    throw;
  }
  d.running = true;
  if (d.opts.on_stats && d.opts.stats_interval.count() > 0) {
    d.stats_timer = std::make_unique<PeriodicTimer>(d.opts.stats_interval, [this] { impl_->opts.on_stats(stats()); });
    d.stats_timer->start();
  }
}

void Recorder::stop() {
  Impl& d = *impl_;
  if (!d.running) return;
  if (d.stats_timer) {
    d.stats_timer->stop();
    d.stats_timer.reset();
  }
  // 1. Stop taking messages: the broker keeps what it has not delivered
  //    (persistent session) or drops it (clean session), as MQTT says.
  //    A network thread waiting on a full queue is released first (its
  //    reading stays in the write-ahead journal), so it cannot hold up the
  //    disconnect.
  d.accept_stop.request_stop();
  try {
    d.client->disconnect();
  } catch (const std::exception& e) {
    d.log(mqtt::LogLevel::warning, std::string("disconnect: ") + e.what());
  }
  d.client->loop_stop();
  d.accepting = false;
  d.connected = false;
  d.detach_client();
  // 2. Store everything queued; give up only when the store has made no
  //    progress for shutdown_timeout (what is left stays on disk).
  d.queue->close();
  {
    std::unique_lock lk(d.state_mutex);
    std::uint64_t last_stored = d.stored.load() + d.rejected.load();
    auto last_progress = Clock::now();
    while (!d.worker_done) {
      d.state_cv.wait_for(lk, std::chrono::milliseconds(50));
      std::uint64_t now_stored = d.stored.load() + d.rejected.load();
      if (now_stored != last_stored) {
        last_stored = now_stored;
        last_progress = Clock::now();
      } else if (Clock::now() - last_progress >= d.opts.shutdown_timeout) {
        break;
      }
    }
  }
  d.giveup.request_stop();
  d.state_cv.notify_all();
  if (d.worker.joinable()) d.worker.join();
  RecorderStats s = stats();
  if (s.pending > 0)
    d.log(mqtt::LogLevel::warning,
          fmt::format("{} readings not stored yet (the store is failing); they are kept in {} for the next start",
                      s.pending, d.opts.spool_dir.string()));
  d.close_durability();
  d.held.clear();
  d.running = false;
  if (d.own_client) {
    d.client.reset();
    d.own_client = false;
  }
}

RecorderStats Recorder::run(std::stop_token stop) {
  Impl& d = *impl_;
  start();
  {
    std::stop_callback on_stop(stop, [&d] { d.notify(); });
    auto self = d.self_stop.get_token();
    std::unique_lock lk(d.state_mutex);
    d.state_cv.wait(lk, [&] { return stop.stop_requested() || self.stop_requested(); });
  }
  this->stop();
  return stats();
}

bool Recorder::wait_idle(std::chrono::milliseconds timeout) const {
  Impl& d = *impl_;
  std::unique_lock lk(d.state_mutex);
  return d.state_cv.wait_for(lk, timeout, [&] {
    auto in = d.received.load() + d.replayed.load();
    auto out = d.stored.load() + d.rejected.load();
    return d.worker_idle.load() && out >= in && (!d.queue || d.queue->size() == 0);
  });
}

bool Recorder::wait_received(std::uint64_t count, std::chrono::milliseconds timeout) const {
  Impl& d = *impl_;
  auto deadline = Clock::now() + timeout;
  while (d.received.load() < count) {
    if (Clock::now() >= deadline) return false;
    std::unique_lock lk(d.state_mutex);
    d.state_cv.wait_for(lk, std::chrono::milliseconds(20));
  }
  return true;
}

RecorderStats Recorder::stats() const {
  const Impl& d = *impl_;
  RecorderStats s;
  s.received = d.received.load();
  s.replayed = d.replayed.load();
  s.stored = d.stored.load();
  s.duplicates = d.duplicates.load();
  s.rejected = d.rejected.load();
  s.ignored = d.ignored.load();
  std::uint64_t in = s.received + s.replayed, out = s.stored + s.rejected;
  s.pending = in > out ? in - out : 0;
  s.numbers = d.numbers.load();
  s.json = d.json.load();
  s.nulls = d.nulls.load();
  s.text_fallbacks = d.text_fb.load();
  s.binary_fallbacks = d.binary_fb.load();
  s.batches = d.batches.load();
  s.retries = d.retries.load();
  s.spooled = d.spooled.load();
  s.unspooled = d.unspooled.load();
  s.spool_bytes = d.spool_bytes.load();
  s.journal_errors = d.journal_errors.load();
  s.spool_errors = d.spool_errors.load();
  if (d.queue) {
    s.queue_depth = d.queue->size();
    s.queue_high_water = d.queue->high_water_mark();
  }
  s.queue_capacity = d.opts.queue_capacity;
  s.connected = d.connected.load();
  auto c = d.connects.load();
  s.reconnects = c > 0 ? c - 1 : 0;
  s.store_ok = d.store_ok.load();
  s.intake_paused = d.intake_paused.load();
  {
    std::lock_guard lk(d.state_mutex);
    s.last_error = d.last_error;
  }
  if (d.started_at != Clock::time_point{})
    s.uptime_seconds = std::chrono::duration<double>(Clock::now() - d.started_at).count();
  RouteStats route;
  route.name = d.routes.front().name;
#define IOTBRIDGE_COPY_ROUTE_ROUTE(f) route.f = s.f;
#define IOTBRIDGE_COPY_ROUTE_GLOBAL(f)
#define IOTBRIDGE_COPY_ROUTE(type, f, name, scope, status, help) IOTBRIDGE_COPY_ROUTE_##scope(f)
  IOTBRIDGE_RECORDER_METRICS(IOTBRIDGE_COPY_ROUTE)
#undef IOTBRIDGE_COPY_ROUTE
#undef IOTBRIDGE_COPY_ROUTE_GLOBAL
#undef IOTBRIDGE_COPY_ROUTE_ROUTE
  for (auto [kind, n] : {std::pair{"number", s.numbers},
                         {"json", s.json},
                         {"null", s.nulls},
                         {"text", s.text_fallbacks},
                         {"binary", s.binary_fallbacks}})
    if (n) route.kinds.emplace_back(kind, n);
  s.routes.push_back(std::move(route));
  s.messages = s.received;
  s.batch_seconds.bounds.assign(kBatchSecondsBuckets.begin(), kBatchSecondsBuckets.end());
  s.batch_seconds.counts.assign(kBatchSecondsBuckets.size() + 1, 0);
  s.receive_to_store_seconds.bounds.assign(kReceiveToStoreBuckets.begin(), kReceiveToStoreBuckets.end());
  s.receive_to_store_seconds.counts.assign(kReceiveToStoreBuckets.size() + 1, 0);
  return s;
}

}  // namespace iotbridge::record
