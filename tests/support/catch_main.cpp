#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#include <cstdlib>

namespace {
// libmongoc creates /dev/shm/mongoc-<pid> (counters for the mongoc-stat tool)
// when it loads, and removes it only at a normal exit. The tests SIGKILL
// processes on purpose, so stale files pile up, and a later process that gets
// the same pid prints "Falling back to malloc for counters" into output the
// tests compare exactly. Nothing here reads those counters: turn them off for
// this process and every child it starts (scripts/test exports the same).
const bool kMongocShmOff = [] { return ::setenv("MONGOC_DISABLE_SHM", "1", 0) == 0; }();
}  // namespace
