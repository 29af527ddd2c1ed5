// A fault-injecting record::Fs for tests (after LevelDB's
// FaultInjectionTestEnv): over the real file system, for the files whose path
// contains `watch` (say "/wal/"), it can
//  - run out of space: appends beyond `space_left` bytes write what fits,
//    then fail with ENOSPC; truncating or removing a file gives its bytes back;
//  - fail syncs of segment files (".log") with EIO;
//  - crash: every watched file is cut back to what was synced plus
//    `keep_unsynced` bytes (a torn record), and every later call fails with
//    EIO until revive() (the process is "dead").
// Thread-safe (the journal syncs without its lock while appends go on).
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "iotbridge/record/fs.hpp"

namespace iotbridge::test {

class FaultFs final : public record::FsWrapper {
 public:
  explicit FaultFs(std::string watch) : FsWrapper(record::Fs::posix()), watch_(std::move(watch)) {}

  std::atomic<std::int64_t> space_left{-1};  // bytes appends may still add to watched files; -1: no limit
  std::atomic<bool> fail_syncs{false};       // syncs of watched ".log" files fail with EIO
  std::atomic<std::uint64_t> appends_refused{0};
  std::atomic<std::uint64_t> syncs_failed{0};

  // Cuts every watched file back to its synced size plus keep_unsynced bytes;
  // everything fails from now on until revive().
  void crash(std::uint64_t keep_unsynced) {
    dead_ = true;
    std::lock_guard lock(mutex_);
    for (auto& [path, state] : files_) {
      std::uint64_t keep = std::min(state.size, state.synced + keep_unsynced);
      std::filesystem::resize_file(path, keep);
      state.size = keep;
      state.synced = keep;
    }
  }
  void revive() { dead_ = false; }

  std::error_code open(const std::filesystem::path& path, record::OpenMode mode,
                       std::unique_ptr<record::File>& out) override {
    if (dead_) return eio();
    std::unique_ptr<record::File> file;
    if (auto ec = target().open(path, mode, file)) return ec;
    if (!watched(path) || mode == record::OpenMode::directory) {
      out = std::move(file);
      return {};
    }
    std::uint64_t size = 0;
    file->size(size);
    {
      std::lock_guard lock(mutex_);
      auto& state = files_[path.string()];
      state.size = size;
      state.synced = size;
    }
    out = std::make_unique<FaultFile>(std::move(file), *this, path.string());
    return {};
  }
  std::error_code remove(const std::filesystem::path& path) override {
    if (dead_) return eio();
    auto ec = target().remove(path);
    if (!ec && watched(path)) {
      std::lock_guard lock(mutex_);
      auto it = files_.find(path.string());
      if (it != files_.end()) {
        give_back(it->second.size);
        files_.erase(it);
      }
    }
    return ec;
  }
  std::error_code rename(const std::filesystem::path& from, const std::filesystem::path& to) override {
    return dead_ ? eio() : target().rename(from, to);
  }
  std::error_code list(const std::filesystem::path& dir, std::vector<Entry>& out) override {
    return dead_ ? eio() : target().list(dir, out);
  }

 private:
  struct State {
    std::uint64_t size = 0;
    std::uint64_t synced = 0;
  };

  class FaultFile final : public record::FileWrapper {
   public:
    FaultFile(std::unique_ptr<record::File> file, FaultFs& fs, std::string path)
        : FileWrapper(std::move(file)), fs_(fs), path_(std::move(path)) {}

    std::error_code append(std::span<const std::byte> a, std::span<const std::byte> b) override {
      if (fs_.dead_) return eio();
      std::uint64_t want = a.size() + b.size();
      std::uint64_t room = fs_.take_space(want);
      if (room < want) {
        // What fits is written (a write that fills the disk is partial), then ENOSPC.
        std::uint64_t from_a = std::min<std::uint64_t>(room, a.size());
        auto ec = target().append(a.first(from_a), b.first(room - from_a));
        fs_.grew(path_, ec ? 0 : room);
        ++fs_.appends_refused;
        return std::error_code(ENOSPC, std::generic_category());
      }
      auto ec = target().append(a, b);
      fs_.grew(path_, ec ? 0 : want);
      return ec;
    }
    std::error_code write_at(std::uint64_t offset, std::span<const std::byte> bytes) override {
      return fs_.dead_ ? eio() : target().write_at(offset, bytes);
    }
    std::error_code sync(bool data_only) override {
      if (fs_.dead_) return eio();
      if (fs_.fail_syncs && path_.ends_with(".log")) {
        ++fs_.syncs_failed;
        return eio();
      }
      auto ec = target().sync(data_only);
      if (!ec) fs_.synced(path_);
      return ec;
    }
    std::error_code truncate(std::uint64_t size) override {
      if (fs_.dead_) return eio();
      auto ec = target().truncate(size);
      if (!ec) fs_.truncated(path_, size);
      return ec;
    }

   private:
    FaultFs& fs_;
    std::string path_;
  };

  static std::error_code eio() { return std::error_code(EIO, std::generic_category()); }
  bool watched(const std::filesystem::path& path) const { return path.string().find(watch_) != std::string::npos; }

  // Reserves up to `want` bytes; returns how many it may write.
  std::uint64_t take_space(std::uint64_t want) {
    std::lock_guard lock(mutex_);
    std::int64_t left = space_left.load();
    if (left < 0) return want;
    std::uint64_t room = std::min<std::uint64_t>(want, static_cast<std::uint64_t>(left));
    space_left = left - static_cast<std::int64_t>(room);
    return room;
  }
  void give_back(std::uint64_t bytes) {  // mutex_ held
    if (space_left.load() >= 0) space_left += static_cast<std::int64_t>(bytes);
  }
  void grew(const std::string& path, std::uint64_t bytes) {
    std::lock_guard lock(mutex_);
    files_[path].size += bytes;
  }
  void synced(const std::string& path) {
    std::lock_guard lock(mutex_);
    auto& s = files_[path];
    s.synced = s.size;
  }
  void truncated(const std::string& path, std::uint64_t size) {
    std::lock_guard lock(mutex_);
    auto& s = files_[path];
    if (size < s.size) give_back(s.size - size);
    s.size = size;
    s.synced = std::min(s.synced, size);
  }

  std::string watch_;
  std::atomic<bool> dead_{false};
  std::mutex mutex_;
  std::map<std::string, State> files_;
};

}  // namespace iotbridge::test
