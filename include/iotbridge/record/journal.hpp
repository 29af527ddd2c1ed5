/// @file
/// Journal: a durable, append-only log of opaque byte records in one
/// directory. The recorder uses it twice: as its write-ahead file (every
/// accepted reading is appended before it is queued, synced per batch, trimmed
/// once the batch is stored) and as its disk spool (batches the store could not
/// take yet). Records are numbered by a 64-bit sequence that never goes back.
///
/// Guarantee (docs/journal.md has the details and the file format):
/// - A record is durable once sync() returns after its append(); before that
///   it survives a process kill (append is a plain write() into the kernel) but
///   not a machine crash.
/// - trim_through(seq) is durable when it returns (the consumed position goes
///   to one of two checkpoint slots, rewritten in place and fdatasynced, so a
///   trim works even on a full disk). replay() after
///   a restart yields exactly the records after the last durable checkpoint that
///   were synced (plus any unsynced ones that happened to reach the disk):
///   at-least-once, with duplicates only for records after that checkpoint.
/// - A torn record at the end of the last segment (crash mid-write) is
///   truncated away at open and reported; corruption elsewhere is reported with
///   the file and offset, the rest of that segment is skipped, later segments
///   are still replayed, and the number of records lost is counted.
/// - Never throws or crashes on arbitrary file contents.
///
/// Thread-safety: every member function may be called from any thread; a
/// mutex inside serialises them. sync() and trim_through() release it around
/// their fdatasync, so appends never wait for the disk. replay() holds it only to take a
/// snapshot, so its callback may append() or trim_through() (records appended
/// during a replay are not part of it). One Journal per directory: a second
/// one, in this process or another, fails to open (flock on the LOCK file).
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "iotbridge/record/fs.hpp"

namespace iotbridge::record {

struct JournalOptions {
  /// Segment files are named "<prefix>-<first sequence, 20 digits>.log".
  std::string prefix = "wal";
  /// A segment is closed and a new one started once the next record would take
  /// it past this size (a record larger than this gets a segment to itself).
  std::uint64_t segment_bytes = 64ull << 20;
  /// Bytes of segment files the journal may use; 0 = unlimited. append() past
  /// it throws Error(io, "... spool is full ...", ENOSPC): the caller slows down.
  std::uint64_t max_bytes = 0;
  /// When everything is consumed, the active segment is deleted (and a fresh one
  /// started on the next append) once it has grown to this size. Smaller
  /// consumed segments are kept, so that a trim per batch does not cost a file
  /// creation and a directory fsync per batch.
  std::uint64_t retire_consumed_bytes = 1ull << 20;
  /// false skips every fdatasync/fsync: for tests and throwaway data only.
  bool fsync = true;
  /// The file system every read and write goes through; null: Fs::posix().
  /// Tests wrap it to inject a full disk, a failed fsync or a torn write.
  std::shared_ptr<Fs> fs = nullptr;
};

enum class JournalProblemKind {
  torn_tail,           ///< an incomplete or bad record at the end of the last segment: truncated
  corrupt_record,      ///< a bad record with data after it: the rest of its segment is skipped
  bad_segment_header,  ///< a segment whose header is not ours: set aside as *.corrupt
  missing_records,     ///< sequence numbers with no record (a segment ended early)
  bad_checkpoint,      ///< the consumed-position file is unreadable: everything is replayed
};

std::string_view to_string(JournalProblemKind kind) noexcept;

struct JournalProblem {
  JournalProblemKind kind;
  std::filesystem::path file;
  std::uint64_t offset = 0;         ///< byte offset in `file` where the problem starts
  std::uint64_t bytes_dropped = 0;  ///< bytes truncated or skipped
  std::uint64_t records_lost = 0;   ///< unconsumed records that cannot be replayed (when known)
  std::string message;              ///< one sentence naming the file and the offset
};

struct JournalStats {
  std::uint64_t next_sequence = 1;     ///< what the next append() returns
  std::uint64_t consumed_through = 0;  ///< the last trimmed sequence (0: none)
  std::uint64_t pending_records = 0;   ///< next_sequence - 1 - consumed_through
  std::uint64_t bytes_on_disk = 0;     ///< sum of the segment files' sizes
  std::uint64_t segments = 0;          ///< segment files on disk
  std::uint64_t appended = 0;          ///< appends by this object
  std::uint64_t torn_tails = 0;        ///< torn tails repaired (at open)
  std::uint64_t corruptions = 0;       ///< other problems reported
  std::uint64_t records_lost = 0;      ///< unconsumed records reported lost
};

/// Where a problem is reported as well as kept in problems(). Called with the
/// journal's mutex held: it must not call back into the journal.
using JournalProblemHandler = std::function<void(const JournalProblem&)>;
using JournalVisitor = std::function<void(std::uint64_t sequence, std::span<const std::byte> payload)>;

class Journal {
 public:
  /// Opens (creating it if needed) the journal in `dir`: takes the directory
  /// lock, reads the checkpoint, deletes consumed segments and repairs a torn
  /// tail. Throws Error(io) when the directory cannot be used, Error(config)
  /// for bad options.
  explicit Journal(std::filesystem::path dir, JournalOptions options = {}, JournalProblemHandler on_problem = {});
  ~Journal();  ///< best-effort sync, then close; never throws
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  /// Writes one record with one write() and returns its sequence number. On any
  /// failure (ENOSPC, EDQUOT, EIO, max_bytes) throws Error(io) with errno as the
  /// code (ENOSPC for max_bytes) and leaves the journal as it was: a partial
  /// record is truncated away.
  std::uint64_t append(std::span<const std::byte> payload);
  std::uint64_t append(std::string_view payload);

  /// fdatasync of everything appended so far (and the directory when a segment
  /// was created). Throws Error(io).
  void sync();

  /// Marks every record up to and including `sequence` as consumed (clamped to
  /// the last appended one), durably, and deletes fully consumed segments.
  void trim_through(std::uint64_t sequence);

  /// Calls visit(sequence, payload) for every unconsumed record with
  /// sequence >= from, in order, across segments. Problems met on the way are
  /// reported and skipped. Returns how many records were visited. An exception
  /// thrown by visit stops the replay and propagates.
  std::uint64_t replay(const JournalVisitor& visit, std::uint64_t from = 0);

  JournalStats stats() const;
  std::vector<JournalProblem> problems() const;  ///< every problem seen (the first 1000)
  const std::filesystem::path& directory() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// True for the errors that mean "out of room" (max_bytes, ENOSPC, EDQUOT):
/// the caller should slow intake or trim rather than give up.
bool is_journal_full(const std::exception& error) noexcept;

/// The segment reader on bytes in memory, as the journal reads a file:
/// validates the header and every frame, calls visit for the good records, and
/// returns where and why it stopped. For fuzzing and tools; never throws on
/// any input.
struct SegmentScan {
  bool header_ok = false;
  std::uint64_t base_sequence = 0;
  std::uint64_t records = 0;    ///< good records
  std::uint64_t valid_end = 0;  ///< byte offset just past the last good record
  bool clean_end = false;       ///< valid_end is the end of the bytes
  bool torn = false;            ///< the bad frame reaches the end of the bytes (a torn write)
};
SegmentScan scan_segment(std::span<const std::byte> bytes, const JournalVisitor& visit = {});

/// CRC-32C (Castagnoli), the checksum of every frame; exposed for tests/tools.
std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc = 0) noexcept;

}  // namespace iotbridge::record
