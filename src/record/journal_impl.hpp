// The journal's state, shared by its files: journal.cpp (open, append, sync,
// trim), journal_reader.cpp (recovery at open, replay). Private.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "iotbridge/record/fs.hpp"
#include "iotbridge/record/journal.hpp"
#include "journal_checkpoint.hpp"
#include "journal_format.hpp"

namespace iotbridge::record {

struct Journal::Impl {
  struct Segment {
    std::uint64_t base;
    std::filesystem::path path;
    std::uint64_t bytes;
  };

  std::filesystem::path dir;
  JournalOptions options;
  std::shared_ptr<Fs> fs;  // options.fs, or Fs::posix()
  JournalProblemHandler on_problem;
  mutable std::mutex mutex;

  std::unique_ptr<File> dir_file;
  std::unique_ptr<File> lock_file;
  std::unique_ptr<journal_format::Checkpoint> checkpoint;
  // The last segment, open for appends (null until the first append after a
  // retire). Shared so that sync() can fdatasync it without holding the mutex.
  std::shared_ptr<File> active;
  std::mutex trim_mutex;                // serialises trims; taken before `mutex`
  std::uint64_t write_gen = 0;          // appends so far
  std::uint64_t synced_gen = 0;         // appends known to be on disk
  std::vector<std::byte> frame_buffer;  // small frames go out in one write()
  std::vector<Segment> segments;
  bool dir_dirty = false;  // a segment created since the last directory fsync
  bool broken = false;     // a failed write could not be undone: appends refused
  std::uint64_t next_seq = 1;
  std::uint64_t consumed = 0;
  std::uint64_t bytes_on_disk = 0;
  JournalStats counters;
  std::vector<JournalProblem> problems;
  std::set<std::string> reported;  // file@offset: each problem is reported once

  std::filesystem::path checkpoint_path() const { return dir / (options.prefix + ".checkpoint"); }
  void report(JournalProblem p);
  void sync_dir();

  // journal.cpp
  void open();
  void retire_active();
  void close_active_for_roll();
  void create_segment();
  [[noreturn]] void throw_full(std::uint64_t needed);
  std::uint64_t append(std::span<const std::byte> payload);
  void sync(std::unique_lock<std::mutex>& lock);
  void trim_through(std::uint64_t seq, std::unique_lock<std::mutex>& lock);

  // journal_reader.cpp
  void list_segments();
  void recover_last_segment();
};

}  // namespace iotbridge::record
