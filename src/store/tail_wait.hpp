// The pause between two polls of Collection::tail, cut short by a stop
// request. Private to the library; thread-safe.
#pragma once

#include <chrono>
#include <stop_token>

namespace iotbridge::store::detail {

// Waits `interval`; false when `stop` was requested (at once, or meanwhile).
bool wait_for_stop(std::stop_token stop, std::chrono::milliseconds interval);

}  // namespace iotbridge::store::detail
