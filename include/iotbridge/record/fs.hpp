/// @file
/// record::Fs: the small file-system seam the journal (and so the recorder's
/// write-ahead journal and spool) reaches the disk through. Fs::posix() is the
/// real one; a test wraps it (FsWrapper, FileWrapper) to inject a full disk, a
/// failed fsync or a torn write without root or a tmpfs, the way LevelDB's
/// EnvWrapper and FaultInjectionTestEnv do.
///
/// Every operation returns a std::error_code (std::generic_category, errno
/// values: ENOSPC, EIO, EWOULDBLOCK, ...) instead of throwing; an empty code
/// is success.
///
/// Thread-safety: an Fs may be used from any thread. A File's sync() may run
/// while another thread appends to it (the journal syncs without holding its
/// lock); its other operations are called by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace iotbridge::record {

class File {
 public:
  virtual ~File() = default;
  File() = default;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  /// Writes `a` then `b` at the end of the file (one write where the system
  /// allows). On an error part of it may have been written: the caller
  /// truncates back.
  virtual std::error_code append(std::span<const std::byte> a, std::span<const std::byte> b = {}) = 0;
  /// Writes `bytes` at `offset` (the checkpoint's slots: overwriting allocated blocks).
  virtual std::error_code write_at(std::uint64_t offset, std::span<const std::byte> bytes) = 0;
  /// Reads up to out.size() bytes at `offset`; `got` is less only at the end of the file.
  virtual std::error_code read_at(std::uint64_t offset, std::span<std::byte> out, std::size_t& got) = 0;
  /// fdatasync (data_only) or fsync.
  virtual std::error_code sync(bool data_only) = 0;
  virtual std::error_code truncate(std::uint64_t size) = 0;
  virtual std::error_code size(std::uint64_t& out) = 0;
};

enum class OpenMode {
  read_only,          ///< an existing file
  read_write_create,  ///< created if missing
  append_existing,    ///< an existing file, writes go to its end
  create_new_append,  ///< a new file (EEXIST if there is one), writes go to its end
  directory,          ///< a directory, for sync() after creating or removing files in it
};

class Fs {
 public:
  virtual ~Fs() = default;
  Fs() = default;
  Fs(const Fs&) = delete;
  Fs& operator=(const Fs&) = delete;

  struct Entry {
    std::string name;  ///< file name, no folder
    std::uint64_t size = 0;
  };

  virtual std::error_code open(const std::filesystem::path& path, OpenMode mode, std::unique_ptr<File>& out) = 0;
  virtual std::error_code remove(const std::filesystem::path& path) = 0;
  virtual std::error_code rename(const std::filesystem::path& from, const std::filesystem::path& to) = 0;
  virtual std::error_code create_directories(const std::filesystem::path& path) = 0;
  /// The regular files in `dir`.
  virtual std::error_code list(const std::filesystem::path& dir, std::vector<Entry>& out) = 0;
  /// Takes an exclusive lock on `path` (created if missing) for as long as
  /// `held` lives, released by the system if the process dies. EWOULDBLOCK
  /// when another holder has it (in this process or another).
  virtual std::error_code lock(const std::filesystem::path& path, std::unique_ptr<File>& held) = 0;

  /// The real file system (open/writev/pwrite/fdatasync/flock); shared, never null.
  static std::shared_ptr<Fs> posix();
};

/// Forwards every call to `target`: derive and override what a test changes.
class FsWrapper : public Fs {
 public:
  explicit FsWrapper(std::shared_ptr<Fs> target) : target_(std::move(target)) {}
  std::error_code open(const std::filesystem::path& path, OpenMode mode, std::unique_ptr<File>& out) override {
    return target_->open(path, mode, out);
  }
  std::error_code remove(const std::filesystem::path& path) override { return target_->remove(path); }
  std::error_code rename(const std::filesystem::path& from, const std::filesystem::path& to) override {
    return target_->rename(from, to);
  }
  std::error_code create_directories(const std::filesystem::path& path) override {
    return target_->create_directories(path);
  }
  std::error_code list(const std::filesystem::path& dir, std::vector<Entry>& out) override {
    return target_->list(dir, out);
  }
  std::error_code lock(const std::filesystem::path& path, std::unique_ptr<File>& held) override {
    return target_->lock(path, held);
  }
  Fs& target() { return *target_; }

 private:
  std::shared_ptr<Fs> target_;
};

/// Forwards every call to `target`: derive and override what a test changes.
class FileWrapper : public File {
 public:
  explicit FileWrapper(std::unique_ptr<File> target) : target_(std::move(target)) {}
  std::error_code append(std::span<const std::byte> a, std::span<const std::byte> b = {}) override {
    return target_->append(a, b);
  }
  std::error_code write_at(std::uint64_t offset, std::span<const std::byte> bytes) override {
    return target_->write_at(offset, bytes);
  }
  std::error_code read_at(std::uint64_t offset, std::span<std::byte> out, std::size_t& got) override {
    return target_->read_at(offset, out, got);
  }
  std::error_code sync(bool data_only) override { return target_->sync(data_only); }
  std::error_code truncate(std::uint64_t size) override { return target_->truncate(size); }
  std::error_code size(std::uint64_t& out) override { return target_->size(out); }
  File& target() { return *target_; }

 private:
  std::unique_ptr<File> target_;
};

}  // namespace iotbridge::record
