// BoundedQueue: policies, close semantics, and a multi-producer/consumer
// stress test (every item delivered exactly once; run under TSan by scripts/test --tsan).
#include "iotbridge/queue.hpp"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

#include "iotbridge/error.hpp"

using namespace iotbridge;
using namespace std::chrono_literals;

TEST_CASE("BoundedQueue is FIFO and holds move-only items", "[queue]") {
  BoundedQueue<std::unique_ptr<int>> q(3);
  CHECK(q.push(std::make_unique<int>(1)));
  CHECK(q.push(std::make_unique<int>(2)));
  CHECK(q.size() == 2);
  CHECK(**q.pop() == 1);
  CHECK(**q.try_pop() == 2);
  CHECK_FALSE(q.try_pop().has_value());
  CHECK(q.high_water_mark() == 2);
  CHECK_THROWS_AS(BoundedQueue<int>(0), Error);
}

TEST_CASE("BoundedQueue overflow policies", "[queue]") {
  SECTION("fail rejects without moving the item") {
    BoundedQueue<std::unique_ptr<int>> q(1, OverflowPolicy::fail);
    CHECK(q.push(std::make_unique<int>(1)));
    auto second = std::make_unique<int>(2);
    CHECK_FALSE(q.push(std::move(second)));
    REQUIRE(second != nullptr);  // the caller still owns the rejected item
    CHECK(*second == 2);
    CHECK_FALSE(q.try_push(std::make_unique<int>(3)));
  }
  SECTION("drop_oldest evicts and counts") {
    BoundedQueue<int> q(2, OverflowPolicy::drop_oldest);
    for (int i = 1; i <= 5; ++i) CHECK(q.push(i));
    CHECK(q.dropped() == 3);
    CHECK(*q.pop() == 4);
    CHECK(*q.pop() == 5);
  }
  SECTION("block waits for room") {
    BoundedQueue<int> q(1);
    q.push(1);
    std::atomic<bool> pushed{false};
    std::jthread producer([&] {
      q.push(2);
      pushed = true;
    });
    CHECK(*q.pop() == 1);  // makes room; the producer then completes
    CHECK(*q.pop() == 2);
    producer.join();
    CHECK(pushed);
  }
  SECTION("a blocked push gives up when its stop token fires") {
    BoundedQueue<int> q(1);
    q.push(1);
    std::stop_source stop;
    std::atomic<int> result{-1};
    std::jthread producer([&] { result = q.push(2, stop.get_token()) ? 1 : 0; });
    stop.request_stop();
    producer.join();
    CHECK(result == 0);
    CHECK(q.size() == 1);
  }
}

TEST_CASE("BoundedQueue close wakes waiters and drains what was accepted", "[queue]") {
  BoundedQueue<int> q(4);
  std::optional<int> got = 0;
  std::jthread consumer([&] { got = q.pop(); });
  q.close();
  consumer.join();
  CHECK_FALSE(got.has_value());

  BoundedQueue<int> r(4);
  r.push(1);
  r.push(2);
  r.close();
  CHECK_FALSE(r.push(3));
  CHECK(*r.pop() == 1);
  CHECK_FALSE(r.drained());
  CHECK(*r.pop() == 2);
  CHECK_FALSE(r.pop().has_value());
  CHECK(r.drained());
}

TEST_CASE("BoundedQueue pop_many takes a batch or times out", "[queue]") {
  BoundedQueue<int> q(100);
  for (int i = 0; i < 10; ++i) q.push(i);
  std::vector<int> batch;
  CHECK(q.pop_many(batch, 4, 1s) == 4);
  CHECK(batch == std::vector<int>{0, 1, 2, 3});
  CHECK(q.pop_many(batch, 100, 1s) == 6);
  CHECK(batch.size() == 10);
  CHECK(q.pop_many(batch, 100, 1ms) == 0);
  CHECK(!q.try_pop_for(1ms).has_value());
}

TEST_CASE("BoundedQueue stress: producers and consumers, every item exactly once", "[queue][stress]") {
  constexpr int kProducers = 4, kConsumers = 4, kPerProducer = 20000;
  BoundedQueue<int> q(64);
  std::vector<std::vector<int>> received(kConsumers);
  std::vector<std::jthread> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.emplace_back([&, c] {
      std::vector<int> batch;
      while (true) {
        if (c % 2 == 0) {
          auto item = q.pop();
          if (!item) break;
          received[c].push_back(*item);
        } else {
          batch.clear();
          if (q.pop_many(batch, 16, 10ms) == 0 && q.drained()) break;
          received[c].insert(received[c].end(), batch.begin(), batch.end());
        }
      }
    });
  }
  std::atomic<int> rejected{0};  // Catch2 assertions are not thread-safe: count, check after
  {
    std::vector<std::jthread> producers;
    for (int p = 0; p < kProducers; ++p)
      producers.emplace_back([&, p] {
        for (int i = 0; i < kPerProducer; ++i)
          if (!q.push(p * kPerProducer + i)) ++rejected;
      });
  }
  q.close();  // after every push returned: nothing accepted may be lost
  consumers.clear();
  CHECK(rejected == 0);

  std::vector<int> all;
  for (auto& r : received) all.insert(all.end(), r.begin(), r.end());
  std::sort(all.begin(), all.end());
  std::vector<int> expected(kProducers * kPerProducer);
  std::iota(expected.begin(), expected.end(), 0);
  CHECK(all == expected);
  CHECK(q.high_water_mark() <= 64);
}

TEST_CASE("BoundedQueue close while producers push: every accepted item popped once, no rejected one",
          "[queue][stress]") {
  constexpr int kProducers = 4, kConsumers = 2, kPerProducer = 20000;
  BoundedQueue<int> q(32);
  // accepted[p][i]: what push() answered for item i of producer p.
  std::vector<std::vector<char>> accepted(kProducers, std::vector<char>(kPerProducer, 0));
  std::vector<std::vector<int>> received(kConsumers);
  std::atomic<int> popped{0};
  std::atomic<int> accepted_after_rejection{0};
  {
    std::vector<std::jthread> threads;
    for (int c = 0; c < kConsumers; ++c)
      threads.emplace_back([&, c] {
        while (auto item = q.pop()) {
          received[c].push_back(*item);
          ++popped;
        }
      });
    for (int p = 0; p < kProducers; ++p)
      threads.emplace_back([&, p] {
        bool rejected = false;
        for (int i = 0; i < kPerProducer; ++i) {
          bool ok = q.push(p * kPerProducer + i);
          accepted[p][i] = ok;
          if (ok && rejected) ++accepted_after_rejection;
          rejected = rejected || !ok;
        }
      });
    // Close mid-stream: the queue holds at most 32, so producers are still
    // pushing (some blocked on a full queue) when 1000 items have been popped.
    while (popped < 1000) std::this_thread::yield();
    q.close();
  }                                      // every thread joined: producers saw close(), consumers drained the rest
  CHECK(accepted_after_rejection == 0);  // once closed, nothing more gets in

  std::vector<int> expected, all;
  for (int p = 0; p < kProducers; ++p)
    for (int i = 0; i < kPerProducer; ++i)
      if (accepted[p][i]) expected.push_back(p * kPerProducer + i);
  for (auto& r : received) all.insert(all.end(), r.begin(), r.end());
  std::sort(all.begin(), all.end());
  CHECK(expected.size() >= 1000);
  CHECK(all.size() == expected.size());
  CHECK(all == expected);  // each accepted item exactly once, no rejected item
  CHECK(q.drained());
}

TEST_CASE("BoundedQueue close ends a push waiting on a full queue, and the item stays with its producer", "[queue]") {
  BoundedQueue<std::unique_ptr<int>> q(1);
  REQUIRE(q.push(std::make_unique<int>(1)));
  auto item = std::make_unique<int>(2);
  std::atomic<int> result{-1};
  std::jthread producer([&] { result = q.push(std::move(item)) ? 1 : 0; });
  q.close();
  producer.join();
  CHECK(result == 0);
  REQUIRE(item != nullptr);  // not moved from: the producer still owns it
  CHECK(*item == 2);
  CHECK(**q.pop() == 1);  // what was accepted before close() is still there
  CHECK_FALSE(q.pop().has_value());
  CHECK_FALSE(q.try_push(std::make_unique<int>(3)));
}

TEST_CASE("BoundedQueue try_pop_for returns an item pushed while it waits", "[queue]") {
  BoundedQueue<int> q(4);
  std::jthread producer([&] { q.push(7); });
  auto item = q.try_pop_for(30s);  // returns as soon as the item arrives
  REQUIRE(item.has_value());
  CHECK(*item == 7);
  std::stop_source stop;
  stop.request_stop();
  CHECK_FALSE(q.try_pop_for(30s, stop.get_token()).has_value());  // a stop request ends the wait
}

TEST_CASE("BoundedQueue high-water mark and drop counter under each policy", "[queue]") {
  SECTION("block: the mark follows the largest size, not the current one") {
    BoundedQueue<int> q(10);
    for (int i = 0; i < 6; ++i) q.push(i);
    for (int i = 0; i < 4; ++i) q.pop();
    q.push(9);
    CHECK(q.size() == 3);
    CHECK(q.high_water_mark() == 6);
    CHECK(q.dropped() == 0);
    CHECK(q.policy() == OverflowPolicy::block);
    CHECK(q.capacity() == 10);
  }
  SECTION("fail: a rejected push neither counts as dropped nor raises the mark past capacity") {
    BoundedQueue<int> q(3, OverflowPolicy::fail);
    for (int i = 0; i < 5; ++i) CHECK(q.push(i) == (i < 3));
    CHECK(q.high_water_mark() == 3);
    CHECK(q.dropped() == 0);
    CHECK(*q.pop() == 0);  // the oldest stays; the newest were refused
  }
  SECTION("drop_oldest: the mark stays at capacity, every eviction counted") {
    BoundedQueue<int> q(3, OverflowPolicy::drop_oldest);
    for (int i = 0; i < 100; ++i) CHECK(q.push(i));
    CHECK(q.size() == 3);
    CHECK(q.high_water_mark() == 3);
    CHECK(q.dropped() == 97);
    CHECK(*q.pop() == 97);
    CHECK(q.try_push(1000));  // there is room again
  }
}
