// Fs::posix(): the real file system behind record::Fs.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

#include "iotbridge/record/fs.hpp"

namespace iotbridge::record {

namespace fs = std::filesystem;

namespace {

std::error_code last_error() { return std::error_code(errno, std::generic_category()); }
std::error_code error(int err) { return std::error_code(err, std::generic_category()); }

class PosixFile final : public File {
 public:
  explicit PosixFile(int fd) : fd_(fd) {}
  ~PosixFile() override { ::close(fd_); }

  // Writes everything, resuming after partial writes (a write that fills the
  // disk is partial first, then fails).
  std::error_code append(std::span<const std::byte> a, std::span<const std::byte> b) override {
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
      ssize_t n = ::writev(fd_, iov, count);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return last_error();
      if (n == 0) return error(EIO);
      done += static_cast<std::size_t>(n);
    }
    return {};
  }

  std::error_code write_at(std::uint64_t offset, std::span<const std::byte> bytes) override {
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::pwrite(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return last_error();
      if (n == 0) return error(EIO);
      done += static_cast<std::size_t>(n);
    }
    return {};
  }

  std::error_code read_at(std::uint64_t offset, std::span<std::byte> out, std::size_t& got) override {
    got = 0;
    while (got < out.size()) {
      ssize_t r = ::pread(fd_, out.data() + got, out.size() - got, static_cast<off_t>(offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return last_error();
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    return {};
  }

  std::error_code sync(bool data_only) override {
    while (true) {
      int r = data_only ? ::fdatasync(fd_) : ::fsync(fd_);
      if (r == 0) return {};
      if (errno != EINTR) return last_error();
    }
  }

  std::error_code truncate(std::uint64_t size) override {
    return ::ftruncate(fd_, static_cast<off_t>(size)) == 0 ? std::error_code() : last_error();
  }

  std::error_code size(std::uint64_t& out) override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return last_error();
    out = static_cast<std::uint64_t>(st.st_size);
    return {};
  }

 private:
  int fd_;
};

class PosixFs final : public Fs {
 public:
  std::error_code open(const fs::path& path, OpenMode mode, std::unique_ptr<File>& out) override {
    int flags = O_CLOEXEC;
    switch (mode) {
      case OpenMode::read_only: flags |= O_RDONLY; break;
      case OpenMode::read_write_create: flags |= O_RDWR | O_CREAT; break;
      case OpenMode::append_existing: flags |= O_RDWR | O_APPEND; break;
      case OpenMode::create_new_append: flags |= O_WRONLY | O_CREAT | O_EXCL | O_APPEND; break;
      case OpenMode::directory: flags |= O_RDONLY | O_DIRECTORY; break;
    }
    int fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0) return last_error();
    out = std::make_unique<PosixFile>(fd);
    return {};
  }

  std::error_code remove(const fs::path& path) override {
    return ::unlink(path.c_str()) == 0 ? std::error_code() : last_error();
  }

  std::error_code rename(const fs::path& from, const fs::path& to) override {
    return ::rename(from.c_str(), to.c_str()) == 0 ? std::error_code() : last_error();
  }

  std::error_code create_directories(const fs::path& path) override {
    std::error_code ec;
    fs::create_directories(path, ec);
    return ec;
  }

  std::error_code list(const fs::path& dir, std::vector<Entry>& out) override {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code size_ec;
      if (!it->is_regular_file(size_ec)) continue;
      auto size = it->file_size(size_ec);
      if (size_ec) continue;  // removed meanwhile
      out.push_back({it->path().filename().string(), size});
    }
    return ec;
  }

  std::error_code lock(const fs::path& path, std::unique_ptr<File>& held) override {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return last_error();
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      auto ec = last_error();
      ::close(fd);
      return ec;
    }
    held = std::make_unique<PosixFile>(fd);  // closing it releases the lock
    return {};
  }
};

}  // namespace

std::shared_ptr<Fs> Fs::posix() {
  static const std::shared_ptr<Fs> instance = std::make_shared<PosixFs>();
  return instance;
}

}  // namespace iotbridge::record
