// iotbridge::Error: one exception type with a category and the backend's code.
#include "iotbridge/error.hpp"

#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>

#include "iotbridge/queue.hpp"
#include "iotbridge/store/open.hpp"
#include "iotbridge/topic.hpp"

using namespace iotbridge;

TEST_CASE("Error is a std::runtime_error with a category, a message and a backend code", "[error]") {
  try {
    throw Error(ErrorCategory::store, "insert failed: disk full", 13);
  } catch (const std::runtime_error& e) {  // callers that know only the standard type still catch it
    CHECK(std::string(e.what()) == "insert failed: disk full");
    const auto* error = dynamic_cast<const Error*>(&e);
    REQUIRE(error != nullptr);
    CHECK(error->category() == ErrorCategory::store);
    CHECK(error->code() == 13);
  }
  CHECK(Error(ErrorCategory::config, "bad option").code() == 0);  // no backend code: 0

  CHECK(to_string(ErrorCategory::mqtt) == "mqtt");
  CHECK(to_string(ErrorCategory::store) == "store");
  CHECK(to_string(ErrorCategory::topic) == "topic");
  CHECK(to_string(ErrorCategory::config) == "config");
  CHECK(to_string(ErrorCategory::io) == "io");
}

TEST_CASE("the library's errors carry their category, and the backend's code where there is one", "[error]") {
  try {
    validate_filter("a/#/b");
    FAIL("no exception");
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::topic);
    CHECK(e.code() == 0);
  }
  try {
    BoundedQueue<int> q(0);
    FAIL("no exception");
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::config);
  }
  try {
    // A folder that does not exist: SQLite cannot open the file (SQLITE_CANTOPEN is 14).
    store::open_store("sqlite:/nonexistent-iotbridge-dir/readings.db")->collection("db", "c");
    FAIL("no exception");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.category() == ErrorCategory::store);
    CHECK(e.code() == 14);
  }
}
