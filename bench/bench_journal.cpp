// Journal append throughput: 100-byte records with fdatasync every 1, 100 and
// 1000 records (the recorder syncs once per batch), without sync, and the
// recorder's whole cycle (append a batch, sync, trim it). Two raw baselines
// show what a user-space buffer would save over a write() per record; the
// journal does not buffer because a record must reach the kernel before the
// callback returns to survive a process kill.
// Run: build/test/bench/bench_journal   (files go under $TMPDIR or /tmp)
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "iotbridge/record/journal.hpp"

namespace {

namespace fs = std::filesystem;
using iotbridge::record::Journal;
using iotbridge::record::JournalOptions;

class ScratchDir {
 public:
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/iotbridge-bench-XXXXXX";
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

const std::string kRecord(100, 'r');

// range(0): records per sync (0 = never).
void BM_JournalAppend(benchmark::State& state) {
  ScratchDir dir;
  Journal journal(dir.path() / "wal");
  const auto every = static_cast<std::uint64_t>(state.range(0));
  std::uint64_t n = 0;
  for (auto _ : state) {
    journal.append(kRecord);
    if (every && ++n % every == 0) journal.sync();
  }
  journal.sync();
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kRecord.size()));
}
BENCHMARK(BM_JournalAppend)->Arg(1)->Arg(100)->Arg(1000)->Arg(0)->UseRealTime();

// The recorder's cycle for one batch: append, sync, then trim once stored.
void BM_JournalBatchCycle(benchmark::State& state) {
  ScratchDir dir;
  Journal journal(dir.path() / "wal");
  const auto batch = static_cast<std::uint64_t>(state.range(0));
  for (auto _ : state) {
    std::uint64_t last = 0;
    for (std::uint64_t i = 0; i < batch; ++i) last = journal.append(kRecord);
    journal.sync();
    journal.trim_through(last);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}
BENCHMARK(BM_JournalBatchCycle)->Arg(100)->Arg(1000)->UseRealTime();

// Baselines on a plain file: one write() per 108-byte frame, and a 64 KiB
// user-space buffer (what buffering would buy, at the price of the kill window).
void BM_RawWritePerRecord(benchmark::State& state) {
  ScratchDir dir;
  int fd = ::open((dir.path() / "raw").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  std::string frame(108, 'f');
  for (auto _ : state) benchmark::DoNotOptimize(::write(fd, frame.data(), frame.size()));
  ::close(fd);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawWritePerRecord)->UseRealTime();

void BM_RawBuffered64K(benchmark::State& state) {
  ScratchDir dir;
  int fd = ::open((dir.path() / "raw").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  std::string frame(108, 'f');
  std::vector<char> buffer;
  buffer.reserve(1 << 16);
  for (auto _ : state) {
    if (buffer.size() + frame.size() > buffer.capacity()) {
      benchmark::DoNotOptimize(::write(fd, buffer.data(), buffer.size()));
      buffer.clear();
    }
    buffer.insert(buffer.end(), frame.begin(), frame.end());
  }
  benchmark::DoNotOptimize(::write(fd, buffer.data(), buffer.size()));
  ::close(fd);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawBuffered64K)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
