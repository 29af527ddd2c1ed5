// The journal's record format (docs/journal.md): segment headers, CRC-checked
// frames, checkpoint slots, segment file names, and the scanner that reads
// frames from memory or from a file. Private to the library; pure functions.
#pragma once

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "iotbridge/error.hpp"
#include "iotbridge/record/fs.hpp"
#include "iotbridge/record/journal.hpp"

namespace iotbridge::record::journal_format {

namespace fs = std::filesystem;

// Stored CRCs are "masked" (LevelDB's trick): a frame of zeros, which is what
// a crash can leave past the end of the written data on some file systems,
// must never check out, and neither must CRCs of data that embeds CRCs.
inline std::uint32_t mask(std::uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

// ---- format ----------------------------------------------------------------

inline constexpr char kSegmentMagic[8] = {'I', 'O', 'T', 'B', 'J', 'R', 'N', 'L'};
inline constexpr char kCheckpointMagic[8] = {'I', 'O', 'T', 'B', 'C', 'K', 'P', 'T'};
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kHeaderBytes = 32;            // magic, version, reserved, base, reserved, crc
constexpr std::size_t kFrameHeaderBytes = 8;        // length, masked crc
constexpr std::size_t kCheckpointBytes = 24;        // magic, consumed, version, crc
constexpr std::size_t kCheckpointSlotStride = 512;  // one slot per disk sector
constexpr std::size_t kCheckpointFileBytes = 2 * kCheckpointSlotStride;
constexpr std::size_t kMaxProblems = 1000;
constexpr std::size_t kSmallFrame = 4096;  // copied and written with write(): cheaper than writev

inline void put32(std::byte* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
inline void put64(std::byte* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
inline std::uint32_t get32(const std::byte* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t(std::to_integer<std::uint8_t>(p[i])) << (8 * i);
  return v;
}
inline std::uint64_t get64(const std::byte* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t(std::to_integer<std::uint8_t>(p[i])) << (8 * i);
  return v;
}

// The frame CRC covers the record's sequence number (implicit: not stored),
// its length and its payload, so a frame that is intact but in the wrong
// place (a stale segment, a renamed file) fails the check too.
inline std::uint32_t frame_crc(std::uint64_t seq, std::uint32_t length, std::span<const std::byte> payload) {
  std::byte prefix[12];
  put64(prefix, seq);
  put32(prefix + 8, length);
  return mask(crc32c(payload, crc32c(prefix)));
}

inline std::array<std::byte, kHeaderBytes> make_header(std::uint64_t base) {
  std::array<std::byte, kHeaderBytes> h{};
  std::memcpy(h.data(), kSegmentMagic, 8);
  put32(h.data() + 8, kVersion);
  put64(h.data() + 16, base);
  put32(h.data() + 28, mask(crc32c(std::span(h.data(), 28))));
  return h;
}

// Base sequence from a valid header, or 0 (no valid segment has base 0).
inline std::uint64_t parse_header(std::span<const std::byte> h) {
  if (h.size() < kHeaderBytes || std::memcmp(h.data(), kSegmentMagic, 8) != 0) return 0;
  if (get32(h.data() + 8) != kVersion) return 0;
  if (get32(h.data() + 28) != mask(crc32c(h.first(28)))) return 0;
  return get64(h.data() + 16);
}

// ---- reading ---------------------------------------------------------------

// Bytes to scan: memory, or a file read in large chunks (replay reads frames
// of any size; a pread per frame would cost two syscalls per record).
class MemorySource {
 public:
  explicit MemorySource(std::span<const std::byte> bytes) : bytes_(bytes) {}
  std::uint64_t size() const { return bytes_.size(); }
  // A view of [offset, offset + n); the caller checked the bounds.
  std::span<const std::byte> view(std::uint64_t offset, std::size_t n) { return bytes_.subspan(offset, n); }

 private:
  std::span<const std::byte> bytes_;
};

class FileSource {
 public:
  FileSource(File& file, std::uint64_t size, const fs::path& path) : file_(file), size_(size), path_(path) {}
  std::uint64_t size() const { return size_; }
  std::span<const std::byte> view(std::uint64_t offset, std::size_t n) {
    if (offset < start_ || offset + n > start_ + filled_) fill(offset, n);
    return std::span<const std::byte>(buffer_).subspan(offset - start_, n);
  }

 private:
  void fill(std::uint64_t offset, std::size_t n) {
    std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(std::max<std::size_t>(n, kChunk), size_ - offset));
    if (buffer_.size() < want) buffer_.resize(want);
    std::size_t got = 0;
    if (auto ec = file_.read_at(offset, std::span(buffer_.data(), want), got))
      throw Error(
          ErrorCategory::io,
          "journal " + path_.string() + ": read failed at offset " + std::to_string(offset) + ": " + ec.message(),
          ec.value());
    // Shrank under us: the rest reads as zeros, which never validate.
    if (got < want) std::memset(buffer_.data() + got, 0, want - got);
    start_ = offset;
    filled_ = want;
  }

  static constexpr std::size_t kChunk = 1 << 20;
  File& file_;
  std::uint64_t size_;
  const fs::path& path_;
  std::vector<std::byte> buffer_;
  std::uint64_t start_ = 0;
  std::size_t filled_ = 0;
};

struct ScanResult {
  bool header_ok = false;
  std::uint64_t base = 0;
  std::uint64_t records = 0;
  std::uint64_t valid_end = 0;
  bool clean_end = false;
  bool torn = false;
};

// Reads frames until the end, a bad frame, or `limit` (a sequence number that
// belongs to the next segment). visit may be empty.
template <typename Source>
ScanResult scan(Source& src, std::uint64_t limit, const JournalVisitor& visit) {
  ScanResult r;
  const std::uint64_t size = src.size();
  if (size < kHeaderBytes) return r;
  r.base = parse_header(src.view(0, kHeaderBytes));
  if (r.base == 0) return r;
  r.header_ok = true;
  std::uint64_t offset = kHeaderBytes;
  std::uint64_t seq = r.base;
  r.valid_end = offset;
  while (true) {
    if (offset == size) {
      r.clean_end = true;
      break;
    }
    if (seq >= limit) break;  // overlaps the next segment: not ours
    if (size - offset < kFrameHeaderBytes) {
      r.torn = true;
      break;
    }
    auto fh = src.view(offset, kFrameHeaderBytes);
    std::uint32_t length = get32(fh.data());
    std::uint32_t stored = get32(fh.data() + 4);
    if (length > size - offset - kFrameHeaderBytes) {
      r.torn = true;  // runs past the end: a write cut short
      break;
    }
    auto payload = src.view(offset + kFrameHeaderBytes, length);
    if (frame_crc(seq, length, payload) != stored) {
      r.torn = offset + kFrameHeaderBytes + length == size;
      break;
    }
    if (visit) visit(seq, payload);
    offset += kFrameHeaderBytes + length;
    ++seq;
    ++r.records;
    r.valid_end = offset;
  }
  return r;
}

// After a bad frame: all zeros up to the end is what a crash leaves behind
// when the file size reached the disk but the data did not. That is a torn
// tail too, not corruption.
template <typename Source>
bool zeros_to_end(Source& src, std::uint64_t offset) {
  while (offset < src.size()) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(src.size() - offset, 1 << 16));
    for (std::byte b : src.view(offset, n))
      if (b != std::byte{0}) return false;
    offset += n;
  }
  return true;
}

// ---- errors and names ------------------------------------------------------

inline std::string errno_text(int err) {
  std::string name;
  switch (err) {
    case ENOSPC: name = " (ENOSPC)"; break;
    case EDQUOT: name = " (EDQUOT)"; break;
    case EIO: name = " (EIO)"; break;
    case EROFS: name = " (EROFS)"; break;
    case EACCES: name = " (EACCES)"; break;
    default: break;
  }
  return std::string(std::strerror(err)) + name;
}

[[noreturn]] inline void throw_io(const fs::path& path, const std::string& what, int err) {
  throw Error(ErrorCategory::io, "journal " + path.string() + ": " + what + ": " + errno_text(err), err);
}

inline std::string segment_name(const std::string& prefix, std::uint64_t base) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(base));
  return prefix + "-" + digits + ".log";
}

// The base sequence in a segment file name, or 0 when it is not one.
inline std::uint64_t parse_segment_name(const std::string& prefix, const std::string& name) {
  const std::size_t digits = 20;
  if (name.size() != prefix.size() + 1 + digits + 4) return 0;
  if (name.compare(0, prefix.size(), prefix) != 0 || name[prefix.size()] != '-') return 0;
  if (name.compare(name.size() - 4, 4, ".log") != 0) return 0;
  std::uint64_t v = 0;
  for (std::size_t i = prefix.size() + 1; i < prefix.size() + 1 + digits; ++i) {
    if (name[i] < '0' || name[i] > '9') return 0;
    std::uint64_t d = static_cast<std::uint64_t>(name[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return 0;
    v = v * 10 + d;
  }
  return v;
}

// Throws Error (io) for a failed Fs call on `path`.
[[noreturn]] inline void throw_io(const fs::path& path, const std::string& what, std::error_code ec) {
  throw_io(path, what, ec.value());
}

}  // namespace iotbridge::record::journal_format
