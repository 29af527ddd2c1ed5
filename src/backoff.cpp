#include "iotbridge/backoff.hpp"

#include "iotbridge/error.hpp"

namespace iotbridge {

Backoff::Backoff(Duration min, Duration max, std::uint64_t seed)
    : min_(min), max_(max), random_(seed != 0 ? seed : std::random_device{}()) {
  if (min_.count() <= 0 || max_ < min_)
    throw Error(ErrorCategory::config, "backoff: the minimum delay must be > 0 and the maximum >= the minimum");
}

Backoff::Duration Backoff::ceiling() const {
  Duration d = min_;
  for (int i = 0; i < failures_ && d < max_; ++i) d *= 2;
  return d < max_ ? d : max_;
}

Backoff::Duration Backoff::next() {
  const Duration cap = ceiling();
  ++failures_;
  std::uniform_int_distribution<Duration::rep> jitter(cap.count() - cap.count() / 2, cap.count());
  return Duration(jitter(random_));
}

}  // namespace iotbridge
