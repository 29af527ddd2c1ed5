#include "iotbridge/backoff.hpp"

#include <catch2/catch.hpp>
#include <set>

#include "iotbridge/error.hpp"

using iotbridge::Backoff;
using ms = std::chrono::milliseconds;

TEST_CASE("Backoff: each delay lies in [cap/2, cap], the cap doubling up to max", "[backoff]") {
  Backoff b(ms(100), ms(1000), 42);
  const ms caps[] = {ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000), ms(1000)};
  for (ms cap : caps) {
    CHECK(b.ceiling() == cap);
    ms d = b.next();
    CHECK(d >= cap / 2);
    CHECK(d <= cap);
  }
  CHECK(b.failures() == 7);
  b.reset();
  CHECK(b.failures() == 0);
  CHECK(b.ceiling() == ms(100));
}

TEST_CASE("Backoff: two clients with different seeds do not retry in step", "[backoff]") {
  // The fleet problem: without jitter every recorder reconnects at the same instant.
  std::set<ms::rep> firsts;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    Backoff b(ms(1000), ms(30000), seed);
    b.next();
    b.next();
    firsts.insert(b.next().count());  // cap 4000: anywhere in [2000, 4000]
  }
  CHECK(firsts.size() > 10);
  CHECK(*firsts.begin() >= 2000);
  CHECK(*firsts.rbegin() <= 4000);
}

TEST_CASE("Backoff: the same seed gives the same delays", "[backoff]") {
  Backoff a(ms(10), ms(5000), 7), b(ms(10), ms(5000), 7);
  for (int i = 0; i < 12; ++i) CHECK(a.next() == b.next());
}

TEST_CASE("Backoff: a huge number of failures stays at max without overflow", "[backoff]") {
  Backoff b(ms(1), ms(60000), 3);
  for (int i = 0; i < 10000; ++i) {
    ms d = b.next();
    REQUIRE(d >= ms(1) / 2);
    REQUIRE(d <= ms(60000));
  }
  CHECK(b.ceiling() == ms(60000));
}

TEST_CASE("Backoff: bad bounds are a config error", "[backoff]") {
  CHECK_THROWS_AS(Backoff(ms(0), ms(10)), iotbridge::Error);
  CHECK_THROWS_AS(Backoff(ms(-5), ms(10)), iotbridge::Error);
  CHECK_THROWS_AS(Backoff(ms(100), ms(10)), iotbridge::Error);
  CHECK_NOTHROW(Backoff(ms(10), ms(10)));
}
