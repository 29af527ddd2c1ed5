// The shared state behind DeliveryToken and SubscribeToken: completed once by
// the network thread, waited on by any number of threads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace iotbridge::mqtt::detail {

struct TokenState {
  std::mutex mutex;
  std::condition_variable cv;
  // Set once (after publish, on the network thread for a message sent later),
  // read by mid() without the lock.
  std::atomic<int> mid{0};
  bool done = false;
  int reason_code = 0;
  std::vector<int> granted;   // subscribe: one per filter
  std::size_t remaining = 0;  // subscribe: filters still waiting for a SUBACK
  std::optional<std::string> error;

  void complete(int reason = 0) {
    {
      std::lock_guard lock(mutex);
      if (done) return;
      reason_code = reason;
      done = true;
    }
    cv.notify_all();
  }
  void fail(std::string why) {
    {
      std::lock_guard lock(mutex);
      if (done) return;
      error = std::move(why);
      done = true;
    }
    cv.notify_all();
  }
  // Subscribe: the answer for filter `index`; completes after the last one.
  void grant(std::size_t index, int code) {
    bool finished = false;
    {
      std::lock_guard lock(mutex);
      if (done || index >= granted.size()) return;
      granted[index] = code;
      if (remaining > 0 && --remaining == 0) finished = done = true;
    }
    if (finished) cv.notify_all();
  }
};

}  // namespace iotbridge::mqtt::detail
