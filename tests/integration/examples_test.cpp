// Every example runs and prints what its tutorial says it prints.
#include <catch2/catch.hpp>
#include <string>

#include "servers.hpp"

using namespace iotbridge::test;

namespace {
std::string example(const std::string& name) { return std::string(IOTBRIDGE_BINARY_DIR) + "/examples/" + name; }
}  // namespace

TEST_CASE("example threads: a producer, a consumer pool and a timer hand over every reading", "[examples]") {
  std::string out;
  REQUIRE(run_command({example("threads"), "1000"}, &out) == 0);
  CHECK_THAT(out, Catch::Contains("consumed 1000 of 1000 readings"));
  CHECK_THAT(out, Catch::Contains("average 22.25"));
}
