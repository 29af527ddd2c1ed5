// Journal: segment files of CRC-checked frames, a checkpoint file for the
// consumed position, and recovery at open. docs/journal.md describes the
// format and the guarantees; the comments here say why the code is the way it is.
#include "iotbridge/record/journal.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <system_error>
#include <utility>

#include "iotbridge/error.hpp"

namespace iotbridge::record {

namespace fs = std::filesystem;

namespace {

// ---- checksums -------------------------------------------------------------

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t crc = i;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    table[i] = crc;
  }
  return table;
}
constexpr auto kCrcTable = make_crc_table();

// Stored CRCs are "masked" (LevelDB's trick): a frame of zeros, which is what
// a crash can leave past the end of the written data on some file systems,
// must never check out, and neither must CRCs of data that embeds CRCs.
std::uint32_t mask(std::uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

// ---- format ----------------------------------------------------------------

constexpr char kSegmentMagic[8] = {'I', 'O', 'T', 'B', 'J', 'R', 'N', 'L'};
constexpr char kCheckpointMagic[8] = {'I', 'O', 'T', 'B', 'C', 'K', 'P', 'T'};
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kHeaderBytes = 32;            // magic, version, reserved, base, reserved, crc
constexpr std::size_t kFrameHeaderBytes = 8;        // length, masked crc
constexpr std::size_t kCheckpointBytes = 24;        // magic, consumed, version, crc
constexpr std::size_t kCheckpointSlotStride = 512;  // one slot per disk sector
constexpr std::size_t kCheckpointFileBytes = 2 * kCheckpointSlotStride;
constexpr std::size_t kMaxProblems = 1000;
constexpr std::size_t kSmallFrame = 4096;  // copied and written with write(): cheaper than writev

void put32(std::byte* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
void put64(std::byte* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
std::uint32_t get32(const std::byte* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t(std::to_integer<std::uint8_t>(p[i])) << (8 * i);
  return v;
}
std::uint64_t get64(const std::byte* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t(std::to_integer<std::uint8_t>(p[i])) << (8 * i);
  return v;
}

// The frame CRC covers the record's sequence number (implicit: not stored),
// its length and its payload, so a frame that is intact but in the wrong
// place (a stale segment, a renamed file) fails the check too.
std::uint32_t frame_crc(std::uint64_t seq, std::uint32_t length, std::span<const std::byte> payload) {
  std::byte prefix[12];
  put64(prefix, seq);
  put32(prefix + 8, length);
  return mask(crc32c(payload, crc32c(prefix)));
}

std::array<std::byte, kHeaderBytes> make_header(std::uint64_t base) {
  std::array<std::byte, kHeaderBytes> h{};
  std::memcpy(h.data(), kSegmentMagic, 8);
  put32(h.data() + 8, kVersion);
  put64(h.data() + 16, base);
  put32(h.data() + 28, mask(crc32c(std::span(h.data(), 28))));
  return h;
}

// Base sequence from a valid header, or 0 (no valid segment has base 0).
std::uint64_t parse_header(std::span<const std::byte> h) {
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
  FileSource(int fd, std::uint64_t size, const fs::path& path) : fd_(fd), size_(size), path_(path) {}
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
    while (got < want) {
      ssize_t r = ::pread(fd_, buffer_.data() + got, want - got, static_cast<off_t>(offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        int err = errno;
        throw Error(ErrorCategory::io,
                    "journal " + path_.string() + ": read failed at offset " + std::to_string(offset + got) + ": " +
                        std::strerror(err),
                    err);
      }
      if (r == 0) {  // shrank under us: treat the rest as zeros, which never validate
        std::memset(buffer_.data() + got, 0, want - got);
        break;
      }
      got += static_cast<std::size_t>(r);
    }
    start_ = offset;
    filled_ = want;
  }

  static constexpr std::size_t kChunk = 1 << 20;
  int fd_;
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

// ---- files -----------------------------------------------------------------

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string errno_text(int err) {
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

[[noreturn]] void throw_io(const fs::path& path, const std::string& what, int err) {
  throw Error(ErrorCategory::io, "journal " + path.string() + ": " + what + ": " + errno_text(err), err);
}

// Writes everything, resuming after partial writes (a write that fills the
// disk is partial first, then fails). Returns 0 or the errno.
int write_all(int fd, std::span<const std::byte> a, std::span<const std::byte> b = {}) {
  std::size_t done = 0;
  const std::size_t total = a.size() + b.size();
  while (done < total) {
    iovec iov[2];
    int count = 0;
    if (done < a.size()) {
      iov[count++] = {const_cast<std::byte*>(a.data() + done), a.size() - done};
      if (!b.empty()) iov[count++] = {const_cast<std::byte*>(b.data()), b.size()};
    } else {
      std::size_t off = done - a.size();
      iov[count++] = {const_cast<std::byte*>(b.data() + off), b.size() - off};
    }
    ssize_t n = ::writev(fd, iov, count);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    done += static_cast<std::size_t>(n);
  }
  return 0;
}

int pwrite_all(int fd, std::span<const std::byte> bytes, off_t offset) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    done += static_cast<std::size_t>(n);
  }
  return 0;
}

int fsync_fd(int fd, bool data_only) {
  while (true) {
    int r = data_only ? ::fdatasync(fd) : ::fsync(fd);
    if (r == 0) return 0;
    if (errno != EINTR) return errno;
  }
}

std::string segment_name(const std::string& prefix, std::uint64_t base) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(base));
  return prefix + "-" + digits + ".log";
}

// The base sequence in a segment file name, or 0 when it is not one.
std::uint64_t parse_segment_name(const std::string& prefix, const std::string& name) {
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

}  // namespace

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
namespace {
// The SSE 4.2 crc32 instruction computes CRC-32C 8 bytes at a time: about 10x
// the table, which matters for the 1 MiB records the spool may hold.
__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(const std::byte* p, std::size_t n, std::uint32_t crc) {
  std::uint64_t c = crc;
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
  }
  auto c32 = static_cast<std::uint32_t>(c);
  for (; n > 0; ++p, --n) c32 = __builtin_ia32_crc32qi(c32, std::to_integer<unsigned char>(*p));
  return c32;
}
const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
}  // namespace
#endif

std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc) noexcept {
  crc = ~crc;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (kHaveSse42) return ~crc32c_sse42(bytes.data(), bytes.size(), crc);
#endif
  for (std::byte b : bytes) crc = kCrcTable[(crc ^ std::to_integer<std::uint8_t>(b)) & 0xff] ^ (crc >> 8);
  return ~crc;
}

std::string_view to_string(JournalProblemKind kind) noexcept {
  switch (kind) {
    case JournalProblemKind::torn_tail: return "torn_tail";
    case JournalProblemKind::corrupt_record: return "corrupt_record";
    case JournalProblemKind::bad_segment_header: return "bad_segment_header";
    case JournalProblemKind::missing_records: return "missing_records";
    case JournalProblemKind::bad_checkpoint: return "bad_checkpoint";
  }
  return "unknown";
}

SegmentScan scan_segment(std::span<const std::byte> bytes, const JournalVisitor& visit) {
  MemorySource src(bytes);
  ScanResult r = scan(src, UINT64_MAX, visit);
  SegmentScan s;
  s.header_ok = r.header_ok;
  s.base_sequence = r.base;
  s.records = r.records;
  s.valid_end = r.valid_end;
  s.clean_end = r.clean_end;
  s.torn = r.torn || (r.header_ok && !r.clean_end && zeros_to_end(src, r.valid_end));
  return s;
}

bool is_journal_full(const std::exception& error) noexcept {
  auto* e = dynamic_cast<const Error*>(&error);
  return e && e->category() == ErrorCategory::io && (e->code() == ENOSPC || e->code() == EDQUOT);
}

// ---- Journal ---------------------------------------------------------------

struct Journal::Impl {
  struct Segment {
    std::uint64_t base;
    fs::path path;
    std::uint64_t bytes;
  };

  fs::path dir;
  JournalOptions options;
  JournalProblemHandler on_problem;
  mutable std::mutex mutex;

  Fd dir_fd;
  Fd lock_fd;
  Fd checkpoint_fd;
  int checkpoint_slot = 0;  // the slot the next checkpoint goes to
  // The last segment, open for appends (null until the first append after a
  // retire). Shared so that sync() can fdatasync it without holding the mutex.
  std::shared_ptr<Fd> active_fd;
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

  fs::path checkpoint_path() const { return dir / (options.prefix + ".checkpoint"); }

  void report(JournalProblem p) {
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

  void sync_dir() {
    if (!options.fsync) return;
    if (int err = fsync_fd(dir_fd.get(), false)) throw_io(dir, "fsync of the directory failed", err);
    dir_dirty = false;
  }

  // ---- open ----

  void open() {
    if (options.prefix.empty() || options.prefix.find('/') != std::string::npos)
      throw Error(ErrorCategory::config, "journal prefix must be a non-empty file name part");
    if (options.segment_bytes < kHeaderBytes + kFrameHeaderBytes)
      throw Error(ErrorCategory::config, "journal segment_bytes must be at least 40");
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
      throw Error(ErrorCategory::io, "journal " + dir.string() + ": cannot create the directory: " + ec.message(),
                  ec.value());
    dir_fd = Fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir_fd) throw_io(dir, "cannot open the directory", errno);
    fs::path lock_path = dir / (options.prefix + ".lock");
    lock_fd = Fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!lock_fd) throw_io(lock_path, "cannot create the lock file", errno);
    if (::flock(lock_fd.get(), LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      if (err == EWOULDBLOCK)
        throw Error(ErrorCategory::io, "journal " + dir.string() + " is already open (in this or another process)",
                    err);
      throw_io(lock_path, "cannot lock", err);
    }
    read_checkpoint();
    list_segments();
    recover_last_segment();
    for (const auto& s : segments) bytes_on_disk += s.bytes;
  }

  // The checkpoint is two fixed slots in one preallocated file, written in
  // turn in place (pwrite + fdatasync), not a temp file renamed over the old
  // one: overwriting allocated blocks works on a full disk, where the trim that
  // frees space must not fail for want of space, and costs one sync instead of
  // three. A slot torn by a crash fails its CRC and the other slot (the
  // previous position) wins: more duplicates, never a loss.
  void read_checkpoint() {
    fs::path path = checkpoint_path();
    checkpoint_fd = Fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!checkpoint_fd) throw_io(path, "cannot open the checkpoint", errno);
    std::byte buf[kCheckpointFileBytes] = {};
    ssize_t n = 0;
    while (true) {
      ssize_t r = ::pread(checkpoint_fd.get(), buf + n, sizeof buf - static_cast<std::size_t>(n), n);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) throw_io(path, "cannot read the checkpoint", errno);
      if (r == 0) break;
      n += r;
      if (n == static_cast<ssize_t>(sizeof buf)) break;
    }
    bool found = false;
    for (int slot = 0; slot < 2; ++slot) {
      const std::byte* p = buf + slot * kCheckpointSlotStride;
      if (std::memcmp(p, kCheckpointMagic, 8) != 0 || get32(p + 16) != kVersion ||
          get32(p + 20) != mask(crc32c(std::span<const std::byte>(p, 20))))
        continue;
      std::uint64_t value = get64(p + 8);
      if (value >= UINT64_MAX - 1) continue;
      if (!found || value > consumed) {
        consumed = value;
        checkpoint_slot = 1 - slot;  // the next write spares the newest good slot
      }
      found = true;
    }
    bool blank = std::all_of(buf, buf + n, [](std::byte b) { return b == std::byte{0}; });
    if (!found && !blank) {
      report({JournalProblemKind::bad_checkpoint, path, 0, 0, 0,
              "journal checkpoint " + path.string() +
                  " is unreadable; every record still on disk will be replayed (duplicates possible)"});
    }
    if (n < static_cast<ssize_t>(kCheckpointFileBytes)) {
      // Allocate both slots now, while there may still be room; keep what
      // was readable so a good slot is never lost to this write.
      if (!found) {
        std::memcpy(buf, slot_bytes(consumed).data(), kCheckpointBytes);
        checkpoint_slot = 1;
      }
      if (int err = pwrite_all(checkpoint_fd.get(), buf, 0)) throw_io(path, "cannot write the checkpoint", err);
      if (options.fsync)
        if (int err = fsync_fd(checkpoint_fd.get(), false)) throw_io(path, "fsync failed", err);
      dir_dirty = true;
    }
  }

  static std::array<std::byte, kCheckpointBytes> slot_bytes(std::uint64_t seq) {
    std::array<std::byte, kCheckpointBytes> b{};
    std::memcpy(b.data(), kCheckpointMagic, 8);
    put64(b.data() + 8, seq);
    put32(b.data() + 16, kVersion);
    put32(b.data() + 20, mask(crc32c(std::span<const std::byte>(b.data(), 20))));
    return b;
  }

  void list_segments() {
    std::error_code ec;
    std::vector<Segment> found;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::uint64_t base = parse_segment_name(options.prefix, it->path().filename().string());
      if (base == 0) continue;
      std::error_code size_ec;
      auto size = fs::file_size(it->path(), size_ec);
      if (size_ec) continue;
      found.push_back({base, it->path(), size});
    }
    if (ec)
      throw Error(ErrorCategory::io, "journal " + dir.string() + ": cannot list the directory: " + ec.message(),
                  ec.value());
    std::sort(found.begin(), found.end(), [](const Segment& a, const Segment& b) { return a.base < b.base; });

    // Headers: a short or all-zero header on the newest segment is a crash
    // between creating it and writing it; anything else is set aside, not deleted.
    std::vector<Segment> good;
    for (std::size_t i = 0; i < found.size(); ++i) {
      Segment& s = found[i];
      bool last = i + 1 == found.size();
      std::byte h[kHeaderBytes] = {};
      ssize_t n = -1;
      {
        Fd fd(::open(s.path.c_str(), O_RDONLY | O_CLOEXEC));
        if (fd) n = ::pread(fd.get(), h, kHeaderBytes, 0);
      }
      if (n == static_cast<ssize_t>(kHeaderBytes) &&
          parse_header(std::span<const std::byte>(h, kHeaderBytes)) == s.base) {
        good.push_back(s);
        continue;
      }
      bool zero = std::all_of(h, h + kHeaderBytes, [](std::byte b) { return b == std::byte{0}; });
      if (last && n >= 0 && (n < static_cast<ssize_t>(kHeaderBytes) || zero) && s.bytes <= kHeaderBytes) {
        if (s.bytes > 0)
          report({JournalProblemKind::torn_tail, s.path, 0, s.bytes, 0,
                  "journal segment " + s.path.string() + " has a torn header (" + std::to_string(s.bytes) +
                      " bytes, crash while creating it); removed"});
        ::unlink(s.path.c_str());
        continue;
      }
      fs::path aside = s.path.string() + ".corrupt";
      std::uint64_t lost = 0;
      if (!last && found[i + 1].base > std::max(s.base, consumed + 1))
        lost = found[i + 1].base - std::max(s.base, consumed + 1);
      ::rename(s.path.c_str(), aside.c_str());
      report({JournalProblemKind::bad_segment_header, s.path, 0, s.bytes, lost,
              "journal segment " + s.path.string() + " has a bad header at offset 0; moved aside to " +
                  aside.filename().string() + (lost ? ", " + std::to_string(lost) + " records lost" : "")});
    }

    // Whole consumed segments (the trim that consumed them may have been
    // cut short before it deleted them).
    segments.clear();
    for (std::size_t i = 0; i < good.size(); ++i) {
      bool last = i + 1 == good.size();
      if (!last && good[i + 1].base - 1 <= consumed) {
        ::unlink(good[i].path.c_str());
        continue;
      }
      segments.push_back(good[i]);
    }
  }

  void recover_last_segment() {
    next_seq = consumed + 1;
    if (segments.empty()) return;
    Segment& s = segments.back();
    Fd fd(::open(s.path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
    if (!fd) throw_io(s.path, "cannot open", errno);
    FileSource src(fd.get(), s.bytes, s.path);
    ScanResult r = scan(src, UINT64_MAX, {});
    if (!r.clean_end) {
      bool torn = r.torn || zeros_to_end(src, r.valid_end);
      std::uint64_t dropped = s.bytes - r.valid_end;
      if (::ftruncate(fd.get(), static_cast<off_t>(r.valid_end)) != 0)
        throw_io(s.path, "cannot truncate a torn tail", errno);
      if (options.fsync)
        if (int err = fsync_fd(fd.get(), true)) throw_io(s.path, "fdatasync failed", err);
      s.bytes = r.valid_end;
      if (torn) {
        report({JournalProblemKind::torn_tail, s.path, r.valid_end, dropped, 0,
                "journal segment " + s.path.string() + ": torn record at offset " + std::to_string(r.valid_end) +
                    " (crash mid-write); " + std::to_string(dropped) + " bytes truncated, " +
                    std::to_string(r.records) + " good records kept"});
      } else {
        report({JournalProblemKind::corrupt_record, s.path, r.valid_end, dropped, 0,
                "journal segment " + s.path.string() + ": corrupt record at offset " + std::to_string(r.valid_end) +
                    " with data after it; " + std::to_string(dropped) +
                    " bytes truncated (the records in them cannot be told apart)"});
      }
    }
    std::uint64_t end = r.base + r.records;  // one past the last record
    if (end - 1 <= consumed && !(r.records == 0 && r.base == consumed + 1)) {
      // Fully consumed (or numbered below the checkpoint): not worth keeping.
      fd.reset();
      ::unlink(s.path.c_str());
      segments.pop_back();
      return;
    }
    next_seq = std::max(end, consumed + 1);
    active_fd = std::make_shared<Fd>(std::move(fd));
  }

  // ---- writing ----

  void retire_active() {
    if (!active_fd) return;
    active_fd.reset();
    ::unlink(segments.back().path.c_str());
    bytes_on_disk -= segments.back().bytes;
    segments.pop_back();
  }

  void close_active_for_roll() {
    if (write_gen != synced_gen && options.fsync)
      if (int err = fsync_fd(active_fd->get(), true)) throw_io(segments.back().path, "fdatasync failed", err);
    synced_gen = write_gen;
    active_fd.reset();
  }

  void create_segment() {
    Segment s{next_seq, dir / segment_name(options.prefix, next_seq), 0};
    Fd fd(::open(s.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644));
    if (!fd) throw_io(s.path, "cannot create a segment", errno);
    auto header = make_header(s.base);
    if (int err = write_all(fd.get(), header)) {
      fd.reset();
      ::unlink(s.path.c_str());
      throw_io(s.path, "cannot write a segment header", err);
    }
    s.bytes = kHeaderBytes;
    bytes_on_disk += kHeaderBytes;
    segments.push_back(std::move(s));
    active_fd = std::make_shared<Fd>(std::move(fd));
    dir_dirty = true;
  }

  [[noreturn]] void throw_full(std::uint64_t needed) {
    throw Error(ErrorCategory::io,
                "journal " + dir.string() + ": spool is full (max_bytes " + std::to_string(options.max_bytes) + ", " +
                    std::to_string(bytes_on_disk) + " bytes in use, the record needs " + std::to_string(needed) +
                    "); trim consumed records or slow intake",
                ENOSPC);
  }

  std::uint64_t append(std::span<const std::byte> payload) {
    if (payload.size() > UINT32_MAX - kFrameHeaderBytes)
      throw Error(ErrorCategory::config,
                  "journal record of " + std::to_string(payload.size()) + " bytes is too large (4 GiB max)");
    if (broken)
      throw Error(ErrorCategory::io,
                  "journal " + dir.string() + ": an earlier failed write could not be undone; reopen the journal", EIO);
    const std::uint64_t frame = kFrameHeaderBytes + payload.size();
    auto needs_new = [&] {
      return !active_fd ||
             (segments.back().bytes + frame > options.segment_bytes && segments.back().bytes > kHeaderBytes);
    };
    if (options.max_bytes) {
      auto projected = [&] { return bytes_on_disk + frame + (needs_new() ? kHeaderBytes : 0); };
      // A fully consumed active segment is only there to save a file creation:
      // give its room back before refusing.
      if (projected() > options.max_bytes && active_fd && consumed + 1 >= next_seq) retire_active();
      if (projected() > options.max_bytes) throw_full(frame);
    }
    if (needs_new()) {
      if (active_fd) close_active_for_roll();
      create_segment();
    }
    std::byte fh[kFrameHeaderBytes];
    put32(fh, static_cast<std::uint32_t>(payload.size()));
    put32(fh + 4, frame_crc(next_seq, static_cast<std::uint32_t>(payload.size()), payload));
    auto write_frame = [&] {
      if (payload.size() > kSmallFrame) return write_all(active_fd->get(), fh, payload);
      frame_buffer.resize(frame);
      std::memcpy(frame_buffer.data(), fh, kFrameHeaderBytes);
      if (!payload.empty()) std::memcpy(frame_buffer.data() + kFrameHeaderBytes, payload.data(), payload.size());
      return write_all(active_fd->get(), frame_buffer);
    };
    int err = write_frame();
    if (err) {
      // Undo the partial frame so the file ends on a record boundary again.
      if (::ftruncate(active_fd->get(), static_cast<off_t>(segments.back().bytes)) != 0) broken = true;
      // Out of room, but the active segment holds only consumed records: give
      // its space back and try once more in a fresh segment.
      if (!broken && (err == ENOSPC || err == EDQUOT) && consumed + 1 >= next_seq &&
          segments.back().bytes > kHeaderBytes) {
        retire_active();
        try {
          create_segment();
          err = write_frame();
          if (err && ::ftruncate(active_fd->get(), static_cast<off_t>(segments.back().bytes)) != 0) broken = true;
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
  void sync(std::unique_lock<std::mutex>& lock) {
    if (!options.fsync) {
      synced_gen = write_gen;
      dir_dirty = false;
      return;
    }
    if (dir_dirty) sync_dir();
    if (write_gen == synced_gen || !active_fd) return;
    std::shared_ptr<Fd> fd = active_fd;
    std::uint64_t gen = write_gen;
    fs::path path = segments.back().path;
    lock.unlock();
    int err = fsync_fd(fd->get(), true);
    lock.lock();
    if (err) throw_io(path, "fdatasync failed", err);
    synced_gen = std::max(synced_gen, gen);
  }

  // Called with trim_mutex and the mutex held; drops the mutex around the
  // checkpoint's fdatasync like sync().
  void trim_through(std::uint64_t seq, std::unique_lock<std::mutex>& lock) {
    seq = std::min(seq, next_seq - 1);
    if (seq <= consumed) return;
    // A new segment must be durable in the directory before a checkpoint that
    // may delete its predecessors is.
    if (dir_dirty) sync_dir();
    auto b = slot_bytes(seq);
    if (int err = pwrite_all(checkpoint_fd.get(), b, static_cast<off_t>(checkpoint_slot * kCheckpointSlotStride)))
      throw_io(checkpoint_path(), "cannot write the checkpoint", err);
    if (options.fsync) {
      lock.unlock();
      int err = fsync_fd(checkpoint_fd.get(), true);
      lock.lock();
      // The slot written may not be durable: write it again next time, so the
      // other slot keeps the last durable position.
      if (err) throw_io(checkpoint_path(), "fdatasync of the checkpoint failed", err);
    }
    checkpoint_slot = 1 - checkpoint_slot;
    consumed = std::max(consumed, seq);
    std::vector<Segment> keep;
    for (std::size_t i = 0; i < segments.size(); ++i) {
      bool last = i + 1 == segments.size();
      std::uint64_t end = last ? next_seq : segments[i + 1].base;  // one past its last record
      bool active = last && active_fd;
      if (!active && end - 1 <= consumed && ::unlink(segments[i].path.c_str()) == 0) {
        bytes_on_disk -= segments[i].bytes;
      } else {
        keep.push_back(std::move(segments[i]));
      }
    }
    segments = std::move(keep);
    if (active_fd && consumed + 1 >= next_seq && segments.back().bytes >= options.retire_consumed_bytes)
      retire_active();
  }
};

Journal::Journal(fs::path dir, JournalOptions options, JournalProblemHandler on_problem)
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

std::uint64_t Journal::replay(const JournalVisitor& visit, std::uint64_t from) {
  std::vector<Impl::Segment> segments;
  std::uint64_t next_seq, start;
  {
    std::lock_guard lock(impl_->mutex);
    segments = impl_->segments;  // the last one's size is what was appended so far
    next_seq = impl_->next_seq;
    start = std::max(from, impl_->consumed + 1);
  }
  auto report = [&](JournalProblem p) {
    std::lock_guard lock(impl_->mutex);
    impl_->report(std::move(p));
  };
  std::uint64_t visited = 0;
  std::uint64_t expected = start;  // the next sequence number a record should carry
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const auto& s = segments[i];
    std::uint64_t limit = i + 1 < segments.size() ? segments[i + 1].base : next_seq;
    if (limit <= start) continue;
    Fd fd(::open(s.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
      if (errno == ENOENT) {  // deleted by a concurrent trim_through: consumed, not missing
        expected = std::max(expected, limit);
        continue;
      }
      throw_io(s.path, "cannot open for replay", errno);
    }
    std::uint64_t size = s.bytes;
    if (i + 1 < segments.size()) {
      struct stat st {};
      if (::fstat(fd.get(), &st) == 0) size = static_cast<std::uint64_t>(st.st_size);
    }
    if (s.base > expected) {
      report({JournalProblemKind::missing_records, s.path, 0, 0, s.base - expected,
              "journal: records " + std::to_string(expected) + ".." + std::to_string(s.base - 1) +
                  " are missing before segment " + s.path.string()});
    }
    FileSource src(fd.get(), size, s.path);
    ScanResult r = scan(src, limit, [&](std::uint64_t seq, std::span<const std::byte> payload) {
      if (seq < start) return;
      visit(seq, payload);
      ++visited;
    });
    if (!r.header_ok) {
      std::uint64_t lost = limit > std::max(s.base, start) ? limit - std::max(s.base, start) : 0;
      report({JournalProblemKind::bad_segment_header, s.path, 0, size, lost,
              "journal segment " + s.path.string() + " has a bad header at offset 0; skipped, " + std::to_string(lost) +
                  " records lost"});
      expected = std::max(expected, limit);
      continue;
    }
    std::uint64_t end = r.base + r.records;
    if (!r.clean_end && end < limit) {
      std::uint64_t lost = limit > std::max(end, start) ? limit - std::max(end, start) : 0;
      report({JournalProblemKind::corrupt_record, s.path, r.valid_end, size - r.valid_end, lost,
              "journal segment " + s.path.string() + ": corrupt record at offset " + std::to_string(r.valid_end) +
                  "; the rest of the segment (" + std::to_string(size - r.valid_end) + " bytes, " +
                  std::to_string(lost) + " unconsumed records) is skipped, later segments are replayed"});
      expected = std::max(expected, limit);
      continue;
    }
    if (end < limit && i + 1 < segments.size()) {
      std::uint64_t lost = limit - std::max(end, start);  // limit > start here
      if (lost)
        report({JournalProblemKind::missing_records, s.path, r.valid_end, 0, lost,
                "journal segment " + s.path.string() + " ends at record " + std::to_string(end - 1) +
                    " but the next starts at " + std::to_string(limit) + "; " + std::to_string(lost) +
                    " records missing"});
      expected = std::max(expected, limit);
      continue;
    }
    expected = std::max(expected, end);
  }
  return visited;
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

const fs::path& Journal::directory() const { return impl_->dir; }

}  // namespace iotbridge::record
