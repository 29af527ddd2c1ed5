// The journal's consumed position: two fixed slots in one preallocated file,
// written in turn in place (write_at + fdatasync), not a temp file renamed
// over the old one: overwriting allocated blocks works on a full disk, where
// the trim that frees space must not fail for want of space, and costs one
// sync instead of three. A slot torn by a crash fails its CRC and the other
// slot (the previous position) wins: more duplicates, never a loss.
// Private to the library; used under the journal's locks.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>

#include "iotbridge/record/fs.hpp"
#include "iotbridge/record/journal.hpp"

namespace iotbridge::record::journal_format {

class Checkpoint {
 public:
  // Opens (creating it) the file at `path` and reads the newest good slot.
  // A file that is not blank and has no good slot is reported (everything
  // is replayed then). Allocates both slots if the file is short, and says
  // so in `allocated` (the directory needs a sync). Throws Error (io).
  Checkpoint(Fs& fs, std::filesystem::path path, bool fsync, const std::function<void(JournalProblem)>& report,
             bool& allocated);

  std::uint64_t consumed() const { return consumed_; }
  const std::filesystem::path& path() const { return path_; }

  // A trim: write_slot(seq), then sync() (may run without the journal's
  // mutex), then commit(seq). Each throws Error (io); a slot written but not
  // synced is written again next time, so the other slot keeps the last
  // durable position.
  void write_slot(std::uint64_t seq);
  void sync();
  void commit(std::uint64_t seq);

 private:
  std::unique_ptr<File> file_;
  std::filesystem::path path_;
  bool fsync_;
  int slot_ = 0;  // the slot the next write goes to
  std::uint64_t consumed_ = 0;
};

}  // namespace iotbridge::record::journal_format
