// Worker, WorkerPool, PeriodicTimer and ShutdownSignal.
#include "iotbridge/worker.hpp"

#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>

#include "iotbridge/error.hpp"
#include "iotbridge/queue.hpp"
#include "iotbridge/shutdown.hpp"
#include "servers.hpp"

using namespace iotbridge;
using namespace std::chrono_literals;

namespace {
// The tutorials' "subclass and override run" style.
class CountingWorker : public Worker {
 public:
  explicit CountingWorker(BoundedQueue<int>& q) : Worker("counter"), queue_(q) {}
  ~CountingWorker() override { stop(); }
  int sum() const { return sum_; }

 protected:
  void run(std::stop_token stop) override {
    while (auto item = queue_.pop(stop)) sum_ += *item;
  }

 private:
  BoundedQueue<int>& queue_;
  std::atomic<int> sum_{0};
};
}  // namespace

TEST_CASE("Worker subclass overriding run consumes until the queue closes", "[worker]") {
  BoundedQueue<int> q(8);
  CountingWorker w(q);
  w.start();
  for (int i = 1; i <= 100; ++i) q.push(i);
  q.close();
  w.join();
  CHECK(w.sum() == 5050);
  CHECK_FALSE(w.running());
  CHECK(w.error() == nullptr);
}

TEST_CASE("Worker with a callable stops on request", "[worker]") {
  std::atomic<bool> saw_stop{false};
  Worker w([&](std::stop_token stop) {
    BoundedQueue<int> never(1);
    never.pop(stop);  // blocks until the stop request
    saw_stop = stop.stop_requested();
  });
  w.start();
  CHECK_THROWS_AS(w.start(), Error);
  w.stop();
  CHECK(saw_stop);
}

TEST_CASE("an exception escaping run is captured, not lost", "[worker]") {
  Worker w([](std::stop_token) { throw std::runtime_error("sensor on fire"); });
  w.start();
  w.join();
  REQUIRE(w.error() != nullptr);
  CHECK_THROWS_WITH(w.rethrow_if_failed(), "sensor on fire");
}

TEST_CASE("WorkerPool shares one queue among N workers", "[worker]") {
  BoundedQueue<int> q(16);
  std::atomic<long> sum{0};
  std::atomic<int> items{0};
  WorkerPool pool(3, [&](std::stop_token stop, std::size_t) {
    while (auto item = q.pop(stop)) {
      sum += *item;
      ++items;
    }
  });
  CHECK(pool.size() == 3);
  pool.start();
  for (int i = 1; i <= 1000; ++i) q.push(i);
  q.close();
  pool.join();
  CHECK(items == 1000);
  CHECK(sum == 500500);
  CHECK(pool.error() == nullptr);
  CHECK_THROWS_AS(WorkerPool(0, [](std::stop_token, std::size_t) {}), Error);
}

TEST_CASE("PeriodicTimer ticks until stopped", "[worker][timer]") {
  BoundedQueue<int> ticks(100);
  PeriodicTimer timer(1ms, [&] { ticks.try_push(1); });
  timer.start();
  // Wait on the condition itself (three ticks), not on a sleep.
  for (int i = 0; i < 3; ++i) REQUIRE(ticks.try_pop_for(10s).has_value());
  timer.stop();
  auto after_stop = timer.ticks();
  CHECK(after_stop >= 3);
  CHECK(timer.ticks() == after_stop);
  CHECK_THROWS_AS(PeriodicTimer(0ms, [] {}), Error);
}

TEST_CASE("ShutdownSignal turns SIGTERM and SIGINT into a stop request", "[shutdown]") {
  for (int sig : {SIGTERM, SIGINT}) {
    ShutdownSignal shutdown;
    CHECK_THROWS_AS(ShutdownSignal(), Error);  // one at a time
    BoundedQueue<int> q(1);
    std::jthread waiter([&] { q.pop(shutdown.token()); });
    ::kill(::getpid(), sig);
    shutdown.wait();
    waiter.join();
    CHECK(shutdown.stop_requested());
    CHECK(shutdown.signal_number() == sig);
  }
  ShutdownSignal again;  // the previous one is gone, so this is allowed
  again.request_stop();
  again.wait();
  CHECK(again.signal_number() == 0);
}

TEST_CASE("a worker that failed reports its error until restarted, which clears it", "[worker]") {
  std::atomic<int> runs{0};
  Worker w(
      [&](std::stop_token) {
        if (++runs == 1) throw Error(ErrorCategory::store, "store went away", 42);
      },
      "flaky");
  w.start();
  w.join();
  CHECK_FALSE(w.running());
  REQUIRE(w.error() != nullptr);
  try {
    w.rethrow_if_failed();
    FAIL("no exception");
  } catch (const Error& e) {  // the exception itself, type and code intact
    CHECK(e.category() == ErrorCategory::store);
    CHECK(e.code() == 42);
  }
  w.start();  // the second run succeeds
  w.join();
  CHECK(runs == 2);
  CHECK(w.error() == nullptr);
  CHECK_NOTHROW(w.rethrow_if_failed());
}

TEST_CASE("WorkerPool reports an exception from any one of its workers", "[worker]") {
  BoundedQueue<int> q(4);
  std::atomic<int> ended{0};
  WorkerPool pool(3, [&](std::stop_token stop, std::size_t index) {
    if (index == 1) throw std::runtime_error("worker 1 failed");
    q.pop(stop);  // the others wait for the stop request
    ++ended;
  });
  pool.start();
  pool.stop();
  CHECK(ended == 2);
  REQUIRE(pool.error() != nullptr);
  CHECK_THROWS_WITH(pool.rethrow_if_failed(), "worker 1 failed");
}

TEST_CASE("PeriodicTimer: an exception from a tick is captured and stops the timer", "[worker][timer]") {
  std::atomic<int> calls{0};
  PeriodicTimer timer(1ms, [&] {
    if (++calls == 2) throw std::runtime_error("flush failed");
  });
  timer.start();
  // No sleep: the timer's thread ends by itself after the throwing tick.
  while (timer.error() == nullptr) std::this_thread::yield();
  timer.stop();
  CHECK(calls == 2);
  CHECK(timer.ticks() == 1);  // the throwing tick is not counted
  CHECK_THROWS_WITH(std::rethrow_exception(timer.error()), "flush failed");
}

// Run in a child process by the next test ("[.]": ctest does not run it alone).
TEST_CASE("ShutdownSignal self-test: a second SIGTERM ends the process", "[.][selftest]") {
  ShutdownSignal shutdown;
  ::kill(::getpid(), SIGTERM);
  shutdown.wait();
  std::printf("first SIGTERM: stop requested\n");
  std::fflush(stdout);
  ::kill(::getpid(), SIGTERM);  // the default action now: the process ends
  // Only reached when the second signal was swallowed; the signal may land on
  // another thread, so give it time to end the process before failing.
  for (int i = 0; i < 100; ++i) std::this_thread::sleep_for(100ms);
  FAIL("still running 10 s after a second SIGTERM");
}

TEST_CASE("ShutdownSignal: the first SIGTERM requests a stop, a second one ends a stuck process", "[shutdown]") {
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::string out;
  // The shell reports how the child ended: 128 + 15 for SIGTERM.
  int rc =
      iotbridge::test::run_command({"/bin/sh", "-c", "\"$0\" \"$@\" 2>&1; echo \"exit status $?\"", self,
                                    "ShutdownSignal self-test: a second SIGTERM ends the process", "-w", "NoTests"},
                                   &out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("first SIGTERM: stop requested") != std::string::npos);
  CHECK(out.find("exit status 143") != std::string::npos);
}
