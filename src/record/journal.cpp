// Journal: segment files of CRC-checked frames (journal_format.hpp), a
// checkpoint for the consumed position (journal_checkpoint.cpp), recovery and
// replay (journal_reader.cpp); this file opens, appends, syncs and trims.
// Every disk access goes through record::Fs. docs/journal.md describes the
// format and the guarantees; the comments say why the code is the way it is.
#include <cerrno>
#include <utility>

#include "journal_impl.hpp"

namespace iotbridge::record {

using namespace journal_format;

void Journal::Impl::report(JournalProblem p) {
  std::string key = p.file.string() + "@" + std::to_string(p.offset) + "#" + std::string(to_string(p.kind));
  if (!reported.insert(key).second) return;
  if (p.kind == JournalProblemKind::torn_tail)
    ++counters.torn_tails;
  else
    ++counters.corruptions;
  counters.records_lost += p.records_lost;
  if (problems.size() < kMaxProblems) problems.push_back(p);
  if (on_problem) {
    try {
      on_problem(p);
    } catch (...) {
      // A logging hook must not abort recovery.
    }
  }
}

void Journal::Impl::sync_dir() {
  if (!options.fsync) return;
  if (auto ec = dir_file->sync(false)) throw_io(dir, "fsync of the directory failed", ec);
  dir_dirty = false;
}

// ---- open ----

void Journal::Impl::open() {
  if (options.prefix.empty() || options.prefix.find('/') != std::string::npos)
    throw Error(ErrorCategory::config, "journal prefix must be a non-empty file name part");
  if (options.segment_bytes < kHeaderBytes + kFrameHeaderBytes)
    throw Error(ErrorCategory::config, "journal segment_bytes must be at least 40");
  fs = options.fs ? options.fs : Fs::posix();
  if (auto ec = fs->create_directories(dir))
    throw Error(ErrorCategory::io, "journal " + dir.string() + ": cannot create the directory: " + ec.message(),
                ec.value());
  if (auto ec = fs->open(dir, OpenMode::directory, dir_file)) throw_io(dir, "cannot open the directory", ec);
  std::filesystem::path lock_path = dir / (options.prefix + ".lock");
  if (auto ec = fs->lock(lock_path, lock_file)) {
    if (ec.value() == EWOULDBLOCK)
      throw Error(ErrorCategory::io, "journal " + dir.string() + " is already open (in this or another process)",
                  ec.value());
    throw_io(lock_path, "cannot lock", ec);
  }
  bool allocated = false;
  checkpoint = std::make_unique<journal_format::Checkpoint>(
      *fs, checkpoint_path(), options.fsync, [this](JournalProblem p) { report(std::move(p)); }, allocated);
  consumed = checkpoint->consumed();
  if (allocated) dir_dirty = true;
  list_segments();
  recover_last_segment();
  for (const auto& s : segments) bytes_on_disk += s.bytes;
}

// ---- writing ----

void Journal::Impl::retire_active() {
  if (!active) return;
  active.reset();
  fs->remove(segments.back().path);
  bytes_on_disk -= segments.back().bytes;
  segments.pop_back();
}

void Journal::Impl::close_active_for_roll() {
  if (write_gen != synced_gen && options.fsync)
    if (auto ec = active->sync(true)) throw_io(segments.back().path, "fdatasync failed", ec);
  synced_gen = write_gen;
  active.reset();
}

void Journal::Impl::create_segment() {
  Segment s{next_seq, dir / segment_name(options.prefix, next_seq), 0};
  std::unique_ptr<File> file;
  if (auto ec = fs->open(s.path, OpenMode::create_new_append, file)) throw_io(s.path, "cannot create a segment", ec);
  auto header = make_header(s.base);
  if (auto ec = file->append(header)) {
    file.reset();
    fs->remove(s.path);
    throw_io(s.path, "cannot write a segment header", ec);
  }
  s.bytes = kHeaderBytes;
  bytes_on_disk += kHeaderBytes;
  segments.push_back(std::move(s));
  active = std::move(file);
  dir_dirty = true;
}

void Journal::Impl::throw_full(std::uint64_t needed) {
  throw Error(ErrorCategory::io,
              "journal " + dir.string() + ": spool is full (max_bytes " + std::to_string(options.max_bytes) + ", " +
                  std::to_string(bytes_on_disk) + " bytes in use, the record needs " + std::to_string(needed) +
                  "); trim consumed records or slow intake",
              ENOSPC);
}

std::uint64_t Journal::Impl::append(std::span<const std::byte> payload) {
  if (payload.size() > UINT32_MAX - kFrameHeaderBytes)
    throw Error(ErrorCategory::config,
                "journal record of " + std::to_string(payload.size()) + " bytes is too large (4 GiB max)");
  if (broken)
    throw Error(ErrorCategory::io,
                "journal " + dir.string() + ": an earlier failed write could not be undone; reopen the journal", EIO);
  const std::uint64_t frame = kFrameHeaderBytes + payload.size();
  auto needs_new = [&] {
    return !active || (segments.back().bytes + frame > options.segment_bytes && segments.back().bytes > kHeaderBytes);
  };
  if (options.max_bytes) {
    auto projected = [&] { return bytes_on_disk + frame + (needs_new() ? kHeaderBytes : 0); };
    // A fully consumed active segment is only there to save a file creation:
    // give its room back before refusing.
    if (projected() > options.max_bytes && active && consumed + 1 >= next_seq) retire_active();
    if (projected() > options.max_bytes) throw_full(frame);
  }
  if (needs_new()) {
    if (active) close_active_for_roll();
    create_segment();
  }
  std::byte fh[kFrameHeaderBytes];
  put32(fh, static_cast<std::uint32_t>(payload.size()));
  put32(fh + 4, frame_crc(next_seq, static_cast<std::uint32_t>(payload.size()), payload));
  auto write_frame = [&]() -> int {
    std::error_code ec;
    if (payload.size() > kSmallFrame) {
      ec = active->append(fh, payload);
    } else {
      frame_buffer.resize(frame);
      std::memcpy(frame_buffer.data(), fh, kFrameHeaderBytes);
      if (!payload.empty()) std::memcpy(frame_buffer.data() + kFrameHeaderBytes, payload.data(), payload.size());
      ec = active->append(frame_buffer);
    }
    return ec.value();
  };
  int err = write_frame();
  if (err) {
    // Undo the partial frame so the file ends on a record boundary again.
    if (active->truncate(segments.back().bytes)) broken = true;
    // Out of room, but the active segment holds only consumed records: give
    // its space back and try once more in a fresh segment.
    if (!broken && (err == ENOSPC || err == EDQUOT) && consumed + 1 >= next_seq &&
        segments.back().bytes > kHeaderBytes) {
      retire_active();
      try {
        create_segment();
        err = write_frame();
        if (err && active->truncate(segments.back().bytes)) broken = true;
      } catch (const Error& e) {
        err = e.code() ? e.code() : EIO;
      }
    }
  }
  if (err) {
    std::string what = "append of a " + std::to_string(frame) + "-byte record failed";
    what += broken ? " and the partial record could not be removed (reopen repairs it)"
                   : "; the partial record was removed, the journal is unchanged";
    throw_io(segments.empty() ? dir : segments.back().path, what, err);
  }
  Segment& s = segments.back();
  s.bytes += frame;
  bytes_on_disk += frame;
  ++write_gen;
  ++counters.appended;
  return next_seq++;
}

// Called with the mutex held; returns with it held, but drops it around the
// fdatasync so that appends (the network thread) never wait for the disk.
void Journal::Impl::sync(std::unique_lock<std::mutex>& lock) {
  if (!options.fsync) {
    synced_gen = write_gen;
    dir_dirty = false;
    return;
  }
  if (dir_dirty) sync_dir();
  if (write_gen == synced_gen || !active) return;
  std::shared_ptr<File> file = active;
  std::uint64_t gen = write_gen;
  std::filesystem::path path = segments.back().path;
  lock.unlock();
  auto ec = file->sync(true);
  lock.lock();
  if (ec) throw_io(path, "fdatasync failed", ec);
  synced_gen = std::max(synced_gen, gen);
}

// Called with trim_mutex and the mutex held; drops the mutex around the
// checkpoint's fdatasync like sync().
void Journal::Impl::trim_through(std::uint64_t seq, std::unique_lock<std::mutex>& lock) {
  seq = std::min(seq, next_seq - 1);
  if (seq <= consumed) return;
  // A new segment must be durable in the directory before a checkpoint that
  // may delete its predecessors is.
  if (dir_dirty) sync_dir();
  checkpoint->write_slot(seq);
  lock.unlock();
  try {
    checkpoint->sync();
  } catch (...) {
    lock.lock();
    throw;
  }
  lock.lock();
  checkpoint->commit(seq);
  consumed = std::max(consumed, seq);
  std::vector<Segment> keep;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    bool last = i + 1 == segments.size();
    std::uint64_t end = last ? next_seq : segments[i + 1].base;  // one past its last record
    bool is_active = last && active;
    if (!is_active && end - 1 <= consumed && !fs->remove(segments[i].path)) {
      bytes_on_disk -= segments[i].bytes;
    } else {
      keep.push_back(std::move(segments[i]));
    }
  }
  segments = std::move(keep);
  if (active && consumed + 1 >= next_seq && segments.back().bytes >= options.retire_consumed_bytes) retire_active();
}

Journal::Journal(std::filesystem::path dir, JournalOptions options, JournalProblemHandler on_problem)
    : impl_(std::make_unique<Impl>()) {
  impl_->dir = std::move(dir);
  impl_->options = std::move(options);
  impl_->on_problem = std::move(on_problem);
  std::lock_guard lock(impl_->mutex);
  impl_->open();
}

Journal::~Journal() {
  try {
    std::unique_lock lock(impl_->mutex);
    impl_->sync(lock);
  } catch (...) {
    // Destructors never throw; what was not synced is what sync() promises nothing about.
  }
}

std::uint64_t Journal::append(std::span<const std::byte> payload) {
  std::lock_guard lock(impl_->mutex);
  return impl_->append(payload);
}

std::uint64_t Journal::append(std::string_view payload) {
  return append(std::as_bytes(std::span(payload.data(), payload.size())));
}

void Journal::sync() {
  std::unique_lock lock(impl_->mutex);
  impl_->sync(lock);
}

void Journal::trim_through(std::uint64_t sequence) {
  std::lock_guard trim_lock(impl_->trim_mutex);
  std::unique_lock lock(impl_->mutex);
  impl_->trim_through(sequence, lock);
}

JournalStats Journal::stats() const {
  std::lock_guard lock(impl_->mutex);
  JournalStats s = impl_->counters;
  s.next_sequence = impl_->next_seq;
  s.consumed_through = impl_->consumed;
  s.pending_records = impl_->next_seq - 1 - impl_->consumed;
  s.bytes_on_disk = impl_->bytes_on_disk;
  s.segments = impl_->segments.size();
  return s;
}

std::vector<JournalProblem> Journal::problems() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->problems;
}

const std::filesystem::path& Journal::directory() const { return impl_->dir; }

}  // namespace iotbridge::record
