// Topic dispatch: which of N subscriptions match a topic? TopicTree against a
// linear scan calling libmosquitto's mosquitto_topic_matches_sub on each
// filter (what a hand-written libmosquitto program does).
// Run: build/test/bench/bench_topic_dispatch
#include <benchmark/benchmark.h>
#include <mosquitto.h>

#include <random>
#include <string>
#include <vector>

#include "iotbridge/topic_tree.hpp"

namespace {

// Filters shaped like a fleet's: site/building/device/sensor with wildcards
// mixed in; topics drawn from the same space so some filters match each one.
struct Workload {
  std::vector<std::string> filters;
  std::vector<std::string> topics;
};

Workload make_workload(std::size_t n) {
  std::mt19937 rng(42);
  auto num = [&](int max) { return std::to_string(std::uniform_int_distribution<int>(0, max - 1)(rng)); };
  const char* sensors[] = {"temperature", "humidity", "co2", "light"};
  Workload w;
  for (std::size_t i = 0; i < n; ++i) {
    std::string site = "site" + num(100), dev = "dev" + num(1000), sensor = sensors[i % 4];
    switch (i % 10) {
      case 0: w.filters.push_back(site + "/+/" + dev + "/#"); break;
      case 1: w.filters.push_back(site + "/+/+/" + sensor); break;
      default: w.filters.push_back(site + "/b" + num(10) + "/" + dev + "/" + sensor); break;
    }
  }
  for (int i = 0; i < 1024; ++i)
    w.topics.push_back("site" + num(100) + "/b" + num(10) + "/dev" + num(1000) + "/" + sensors[i % 4]);
  return w;
}

void BM_TopicTree(benchmark::State& state) {
  Workload w = make_workload(static_cast<std::size_t>(state.range(0)));
  iotbridge::TopicTree<std::size_t> tree;
  for (std::size_t i = 0; i < w.filters.size(); ++i) tree.insert(w.filters[i], i);
  std::size_t i = 0, hits = 0;
  for (auto _ : state) {
    tree.match(w.topics[i++ % w.topics.size()], [&](std::size_t) { ++hits; });
  }
  benchmark::DoNotOptimize(hits);
  state.SetItemsProcessed(state.iterations());
}

void BM_LinearMosquitto(benchmark::State& state) {
  Workload w = make_workload(static_cast<std::size_t>(state.range(0)));
  std::size_t i = 0, hits = 0;
  for (auto _ : state) {
    const std::string& topic = w.topics[i++ % w.topics.size()];
    for (const auto& f : w.filters) {
      bool match = false;
      mosquitto_topic_matches_sub(f.c_str(), topic.c_str(), &match);
      hits += match;
    }
  }
  benchmark::DoNotOptimize(hits);
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(BM_TopicTree)->Arg(10)->Arg(1000)->Arg(10000)->Arg(100000);
BENCHMARK(BM_LinearMosquitto)->Arg(10)->Arg(1000)->Arg(10000)->Arg(100000);
BENCHMARK_MAIN();
