// What this teaches: the three ways of running work on threads that the MQTT
// tutorials show (a function target, a subclass overriding run, a lock around
// shared data), done with iotbridge's helpers: a Worker subclass, a callable
// Worker, a BoundedQueue between one producer and a pool of consumers, and a
// clean stop on Ctrl-C or when the work is done.
// Run (no broker needed):
//   build/examples/threads --count 1000
#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <iotbridge/queue.hpp>
#include <iotbridge/shutdown.hpp>
#include <iotbridge/worker.hpp>
#include <stop_token>
#include <string>

struct Reading {
  std::string sensor;
  double value;
};

// Style 1: subclass Worker and override run(). The producer simulates a sensor.
class SensorSimulator : public iotbridge::Worker {
 public:
  SensorSimulator(iotbridge::BoundedQueue<Reading>& out, int count) : Worker("sensor"), out_(out), count_(count) {}
  ~SensorSimulator() override { stop(); }  // stop before our members go away

 protected:
  void run(std::stop_token stop) override {
    for (int i = 0; i < count_ && !stop.stop_requested(); ++i)
      out_.push(Reading{"room" + std::to_string(i % 3), 20.0 + i % 10 * 0.5}, stop);
    out_.close();  // tells the consumers there is no more
  }

 private:
  iotbridge::BoundedQueue<Reading>& out_;
  int count_;
};

int main(int argc, char** argv) {
  int count = 1000;
  CLI::App app{"Hands simulated readings from a producer thread to a pool of consumers."};
  app.option_defaults()->always_capture_default();
  app.add_option("--count", count, "readings to produce")->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  iotbridge::ShutdownSignal shutdown;          // Ctrl-C stops everything below
  iotbridge::BoundedQueue<Reading> queue(64);  // bounded: the producer waits when consumers lag

  // Style 2: a pool of callable workers sharing the queue; atomics instead of a lock.
  std::atomic<int> consumed{0};
  std::atomic<long> total_centi{0};
  iotbridge::WorkerPool consumers(2, [&](std::stop_token stop, std::size_t) {
    while (auto reading = queue.pop(stop)) {
      ++consumed;
      total_centi += static_cast<long>(reading->value * 100);
    }
  });

  // Style 3: a periodic timer reporting progress.
  iotbridge::PeriodicTimer progress(std::chrono::milliseconds(500),
                                    [&] { std::printf("progress: %d readings consumed\n", consumed.load()); });

  SensorSimulator sensor(queue, count);
  // Ctrl-C asks the producer to stop; it closes the queue and the consumers drain it.
  std::stop_callback on_signal(shutdown.token(), [&] { sensor.request_stop(); });
  consumers.start();
  progress.start();
  sensor.start();

  sensor.join();     // the producer closes the queue when done ...
  consumers.join();  // ... and the consumers drain it, then return
  progress.stop();
  consumers.rethrow_if_failed();

  std::printf("consumed %d of %d readings, average %.2f, queue high-water mark %zu of %zu\n", consumed.load(), count,
              consumed ? total_centi / 100.0 / consumed : 0.0, queue.high_water_mark(), queue.capacity());
  if (shutdown.stop_requested()) std::printf("stopped early by signal %d\n", shutdown.signal_number());
  return consumed == count || shutdown.stop_requested() ? 0 : 1;
}
