// Document store: how readings get in and out.
//  - insert N reading documents {topic, value, reg_date}: SQLite with
//    insert_many batches of 1000 vs one insert_one per document; the
//    MongoDB-compatible server with insert_many vs insert_one;
//  - one topic's last 10k readings sorted by reg_date, without and with an
//    index on {topic: 1, reg_date: -1} (the SQLite label shows the plan SQLite
//    chose, so the index use is seen, not claimed).
// Run: build/test/bench/bench_store [--benchmark_filter=Sqlite]
//      IOTBRIDGE_BENCH_MONGO_URI=mongodb://127.0.0.1:PORT/ build/test/bench/bench_store --benchmark_filter=Mongo
// Each case runs once (Iterations(1)) on a fresh store; numbers go to bench/README.md.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "iotbridge/store/open.hpp"
#include "store/backends.hpp"

using namespace iotbridge::store;
namespace fs = std::filesystem;

namespace {

constexpr int kTopics = 100;

Document reading(std::int64_t i) {
  return Document()
      .append("_id", ObjectId::generate())
      .append("topic", "iot/site" + std::to_string(i % kTopics) + "/temperature")
      .append("value", 20.0 + static_cast<double>(i % 150) / 10.0)
      .append("reg_date", DateTime{1700000000000 + i});
}

fs::path fresh_file(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("iotbridge-bench-" + name + ".db");
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(p.string() + suffix);
  return p;
}

void remove_file(const fs::path& p) {
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(p.string() + suffix);
}

void insert_batched(Collection& c, std::int64_t n, std::int64_t batch) {
  std::vector<Document> docs;
  for (std::int64_t i = 0; i < n; ++i) {
    docs.push_back(reading(i));
    if (static_cast<std::int64_t>(docs.size()) == batch || i + 1 == n) {
      c.insert_many(std::move(docs));
      docs.clear();
    }
  }
}

void BM_SqliteInsertMany(benchmark::State& state) {
  std::int64_t n = state.range(0);
  for (auto _ : state) {
    state.PauseTiming();
    auto path = fresh_file("insert-many");
    auto store = open_store("sqlite:" + path.string());
    auto c = store->collection("iot_service", "sensors");
    state.ResumeTiming();
    insert_batched(*c, n, 1000);
    state.PauseTiming();
    remove_file(path);
    state.ResumeTiming();
  }
  state.counters["docs_per_s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SqliteInsertMany)->Arg(1000000)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_SqliteInsertOne(benchmark::State& state) {
  std::int64_t n = state.range(0);
  for (auto _ : state) {
    state.PauseTiming();
    auto path = fresh_file("insert-one");
    auto store = open_store("sqlite:" + path.string());
    auto c = store->collection("iot_service", "sensors");
    state.ResumeTiming();
    for (std::int64_t i = 0; i < n; ++i) c->insert_one(reading(i));
    state.PauseTiming();
    remove_file(path);
    state.ResumeTiming();
  }
  state.counters["docs_per_s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SqliteInsertOne)->Arg(1000000)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// One topic's newest 10k readings out of 1M (100 topics x 10k).
// The benchmarked query: one topic's newest 10k readings, sorted by reg_date,
// optionally with an index on {topic, reg_date}. Returns the find options used.
FindOptions latest_readings_query(benchmark::State& state, Collection& c, const Document& filter, bool indexed) {
  if (indexed) {
    IndexSpec spec;
    spec.keys = {{"topic", 1}, {"reg_date", -1}};
    c.create_index(spec);
  }
  FindOptions o;
  o.sort = Document().append("reg_date", -1);
  o.limit = 10000;
  std::int64_t rows = 0;
  for (auto _ : state) {
    auto cursor = c.find(filter, o);
    while (auto d = cursor->next()) ++rows;
  }
  if (rows != 10000 * static_cast<std::int64_t>(state.iterations())) state.SkipWithError("wrong result size");
  return o;
}

void BM_SqliteLast10k(benchmark::State& state) {
  bool indexed = state.range(0) != 0;
  auto path = fresh_file(indexed ? "query-indexed" : "query-plain");
  auto store = open_store("sqlite:" + path.string());
  auto c = store->collection("iot_service", "sensors");
  insert_batched(*c, 1000000, 5000);
  Document filter = Document().append("topic", "iot/site42/temperature");
  FindOptions o = latest_readings_query(state, *c, filter, indexed);
  std::string plan = iotbridge::store::detail::sqlite_explain(*c, filter, o);
  for (auto& ch : plan)
    if (ch == '\n') ch = ';';
  state.SetLabel(plan);
  remove_file(path);
}
BENCHMARK(BM_SqliteLast10k)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

std::string mongo_uri() {
  const char* uri = std::getenv("IOTBRIDGE_BENCH_MONGO_URI");
  return uri ? uri : "";
}

void BM_MongoInsertMany(benchmark::State& state) {
  if (mongo_uri().empty()) return state.SkipWithError("set IOTBRIDGE_BENCH_MONGO_URI");
  std::int64_t n = state.range(0);
  auto store = open_store(mongo_uri());
  for (auto _ : state) {
    state.PauseTiming();
    store->drop_database("iotb_bench_many");
    auto c = store->collection("iotb_bench_many", "sensors");
    state.ResumeTiming();
    insert_batched(*c, n, 1000);
  }
  store->drop_database("iotb_bench_many");
  state.counters["docs_per_s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MongoInsertMany)->Arg(1000000)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_MongoInsertOne(benchmark::State& state) {
  if (mongo_uri().empty()) return state.SkipWithError("set IOTBRIDGE_BENCH_MONGO_URI");
  std::int64_t n = state.range(0);
  auto store = open_store(mongo_uri());
  for (auto _ : state) {
    state.PauseTiming();
    store->drop_database("iotb_bench_one");
    auto c = store->collection("iotb_bench_one", "sensors");
    state.ResumeTiming();
    for (std::int64_t i = 0; i < n; ++i) c->insert_one(reading(i));
  }
  store->drop_database("iotb_bench_one");
  state.counters["docs_per_s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MongoInsertOne)->Arg(1000000)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same query on the server: 200k readings, 20 topics x 10k.
void BM_MongoLast10k(benchmark::State& state) {
  if (mongo_uri().empty()) return state.SkipWithError("set IOTBRIDGE_BENCH_MONGO_URI");
  bool indexed = state.range(0) != 0;
  auto store = open_store(mongo_uri());
  std::string db = indexed ? "iotb_bench_q1" : "iotb_bench_q0";
  store->drop_database(db);
  auto c = store->collection(db, "sensors");
  std::vector<Document> docs;
  for (std::int64_t i = 0; i < 200000; ++i) {
    Document d = reading(i);
    d.set("topic", "iot/site" + std::to_string(i % 20) + "/temperature");
    docs.push_back(std::move(d));
    if (docs.size() == 1000) {
      c->insert_many(std::move(docs));
      docs.clear();
    }
  }
  latest_readings_query(state, *c, Document().append("topic", "iot/site7/temperature"), indexed);
  store->drop_database(db);
}
BENCHMARK(BM_MongoLast10k)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
