/// @file
/// Backoff: the delay before the next attempt after a run of failures, one
/// rule for every retry loop in iotbridge (the recorder's store writes, the
/// MQTT client's reconnects). Capped exponential with "full jitter": the n-th
/// consecutive failure waits a random time in [cap/2, cap], where cap is
/// min * 2^(n-1) bounded by max. The random half keeps a fleet of recorders
/// that lost their broker at the same instant from all coming back at the same
/// instant; the fixed half keeps the delay from collapsing to nothing.
///
/// Thread-safety: one Backoff belongs to one retry loop (not thread-safe).
/// Throws: the constructor throws Error (config) for min <= 0 or max < min.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace iotbridge {

class Backoff {
 public:
  using Duration = std::chrono::milliseconds;

  /// `seed` fixes the jitter (tests); 0 draws one from std::random_device.
  Backoff(Duration min, Duration max, std::uint64_t seed = 0);

  /// Counts one more failure and returns how long to wait before the next try.
  Duration next();
  /// The upper bound next() would use now, without counting a failure
  /// (min after reset(), doubling per failure, never above max).
  Duration ceiling() const;
  /// A success: the next failure starts again from min.
  void reset() { failures_ = 0; }
  /// Consecutive failures counted since the last reset().
  int failures() const { return failures_; }

  Duration min() const { return min_; }
  Duration max() const { return max_; }

 private:
  Duration min_;
  Duration max_;
  int failures_ = 0;
  std::mt19937_64 random_;
};

}  // namespace iotbridge
