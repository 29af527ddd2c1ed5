// The recorder's per-reading work off the network thread: decoding payloads
// of each kind and building the stored document, and the reading encoding the
// network thread does for the write-ahead journal.
#include <benchmark/benchmark.h>

#include <string>

#include "iotbridge/record/payload.hpp"

using namespace iotbridge;
using namespace iotbridge::record;

namespace {

void BM_DecodePayload(benchmark::State& state, std::string payload) {
  for (auto _ : state) benchmark::DoNotOptimize(decode_payload(payload));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_DecodePayload, number, std::string("24.37"));
BENCHMARK_CAPTURE(BM_DecodePayload, json, std::string(R"({"temp": 21.5, "hum": 40, "ok": true})"));
BENCHMARK_CAPTURE(BM_DecodePayload, text, std::string("door open"));
BENCHMARK_CAPTURE(BM_DecodePayload, binary, std::string("\x01\xff\x00\x10", 4));

Reading sample() {
  Reading r;
  r.id = store::ObjectId::generate();
  r.received = store::DateTime::now();
  r.topic = "iot/home1/boiler/temp";
  r.payload = "24.37";
  r.qos = 1;
  return r;
}

void BM_BuildDocument(benchmark::State& state) {
  Reading r = sample();
  DocumentOptions opts;
  if (state.range(0)) opts.topic_fields = TopicPattern("iot/{home}/{device}/{sensor}");
  for (auto _ : state) benchmark::DoNotOptimize(build_document(r, opts));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BuildDocument)->Arg(0)->Arg(1);

void BM_EncodeReading(benchmark::State& state) {
  Reading r = sample();
  std::string buffer;
  for (auto _ : state) {
    buffer.clear();
    encode_reading(r, buffer);
    benchmark::DoNotOptimize(buffer.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EncodeReading);

void BM_AcceptIdAndTime(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(store::ObjectId::generate());
    benchmark::DoNotOptimize(store::DateTime::now());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AcceptIdAndTime);

}  // namespace

BENCHMARK_MAIN();
