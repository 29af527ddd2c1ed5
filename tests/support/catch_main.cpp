#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#include <cstdlib>
#include <iostream>

#include "servers.hpp"

namespace {
// libmongoc creates /dev/shm/mongoc-<pid> (counters for the mongoc-stat tool)
// when it loads, and removes it only at a normal exit. The tests SIGKILL
// processes on purpose, so stale files pile up, and a later process that gets
// the same pid prints "Falling back to malloc for counters" into output the
// tests compare exactly. Nothing here reads those counters: turn them off for
// this process and every child it starts (scripts/test exports the same).
const bool kMongocShmOff = [] { return ::setenv("MONGOC_DISABLE_SHM", "1", 0) == 0; }();

// Ends each test case that skipped part of itself (IOTBRIDGE_REQUIRE_MONGO) with
// the line ctest reports as "Skipped". ctest's SKIP_REGULAR_EXPRESSION wins over
// the exit code, so the line is printed only when nothing failed: a test case
// whose SQLite half failed before its MongoDB half was skipped stays failed.
struct SkipReporter : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;

  void testCaseStarting(Catch::TestCaseInfo const& info) override {
    iotbridge::test::take_skip_reason();
    TestEventListenerBase::testCaseStarting(info);
  }

  void testCaseEnded(Catch::TestCaseStats const& stats) override {
    if (std::string reason = iotbridge::test::take_skip_reason(); !reason.empty()) {
      if (stats.totals.assertions.failed > 0)
        std::cout << "iotbridge: part of this test did not run (" << reason << "), and the part that ran FAILED\n";
      else
        std::cout << "IOTBRIDGE-SKIPPED: " << reason << "\n";
      std::cout.flush();
    }
    TestEventListenerBase::testCaseEnded(stats);
  }
};
}  // namespace

CATCH_REGISTER_LISTENER(SkipReporter)
