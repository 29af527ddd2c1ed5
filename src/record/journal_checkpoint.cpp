// The journal's checkpoint (journal_checkpoint.hpp).
#include "journal_checkpoint.hpp"

#include "journal_format.hpp"

namespace iotbridge::record::journal_format {

namespace {

std::array<std::byte, kCheckpointBytes> slot_bytes(std::uint64_t seq) {
  std::array<std::byte, kCheckpointBytes> b{};
  std::memcpy(b.data(), kCheckpointMagic, 8);
  put64(b.data() + 8, seq);
  put32(b.data() + 16, kVersion);
  put32(b.data() + 20, mask(crc32c(std::span<const std::byte>(b.data(), 20))));
  return b;
}

}  // namespace

Checkpoint::Checkpoint(Fs& fs, std::filesystem::path path, bool fsync,
                       const std::function<void(JournalProblem)>& report, bool& allocated)
    : path_(std::move(path)), fsync_(fsync) {
  allocated = false;
  if (auto ec = fs.open(path_, OpenMode::read_write_create, file_)) throw_io(path_, "cannot open the checkpoint", ec);
  std::byte buf[kCheckpointFileBytes] = {};
  std::size_t n = 0;
  if (auto ec = file_->read_at(0, std::span(buf, sizeof buf), n)) throw_io(path_, "cannot read the checkpoint", ec);
  bool found = false;
  for (int slot = 0; slot < 2; ++slot) {
    const std::byte* p = buf + slot * kCheckpointSlotStride;
    if (std::memcmp(p, kCheckpointMagic, 8) != 0 || get32(p + 16) != kVersion ||
        get32(p + 20) != mask(crc32c(std::span<const std::byte>(p, 20))))
      continue;
    std::uint64_t value = get64(p + 8);
    if (value >= UINT64_MAX - 1) continue;
    if (!found || value > consumed_) {
      consumed_ = value;
      slot_ = 1 - slot;  // the next write spares the newest good slot
    }
    found = true;
  }
  bool blank = std::all_of(buf, buf + n, [](std::byte b) { return b == std::byte{0}; });
  if (!found && !blank) {
    report({JournalProblemKind::bad_checkpoint, path_, 0, 0, 0,
            "journal checkpoint " + path_.string() +
                " is unreadable; every record still on disk will be replayed (duplicates possible)"});
  }
  if (n < kCheckpointFileBytes) {
    // Allocate both slots now, while there may still be room; keep what was
    // readable so a good slot is never lost to this write.
    if (!found) {
      std::memcpy(buf, slot_bytes(consumed_).data(), kCheckpointBytes);
      slot_ = 1;
    }
    if (auto ec = file_->write_at(0, std::span(buf, sizeof buf))) throw_io(path_, "cannot write the checkpoint", ec);
    if (fsync_)
      if (auto ec = file_->sync(false)) throw_io(path_, "fsync failed", ec);
    allocated = true;
  }
}

void Checkpoint::write_slot(std::uint64_t seq) {
  auto b = slot_bytes(seq);
  if (auto ec = file_->write_at(static_cast<std::uint64_t>(slot_) * kCheckpointSlotStride, b))
    throw_io(path_, "cannot write the checkpoint", ec);
}

void Checkpoint::sync() {
  if (!fsync_) return;
  if (auto ec = file_->sync(true)) throw_io(path_, "fdatasync of the checkpoint failed", ec);
}

void Checkpoint::commit(std::uint64_t seq) {
  slot_ = 1 - slot_;
  consumed_ = std::max(consumed_, seq);
}

}  // namespace iotbridge::record::journal_format
