// The checks every client applies to its Options (in options.cpp).
#pragma once

#include <cstddef>

#include "iotbridge/mqtt/client.hpp"

namespace iotbridge::mqtt::detail {

/// The packet-id space: ids are 16 bits and never 0. A client never has more
/// QoS 1/2 messages unacknowledged than this, or ids would repeat among them
/// and an acknowledgement would complete the wrong message.
inline constexpr std::size_t kMaxUnacknowledged = 65535;

/// How many unacknowledged QoS 1/2 messages a publish() on the network thread
/// may reach: it cannot wait for acknowledgements only that thread reads, so
/// it goes past max_queued (up to twice), never past the packet-id space.
inline std::size_t network_thread_limit(const Options& options) {
  return options.max_queued < kMaxUnacknowledged / 2 ? 2 * options.max_queued : kMaxUnacknowledged;
}

/// The flow-control options (max_inflight, max_queued, max_offline_queue);
/// throws Error (config) naming the one out of range. Part of checked_options,
/// and what the test double (testing.cpp) checks as well.
void check_flow_control(const Options& options);

/// `options` with the defaults that depend on others filled in (the port).
/// Throws Error (config) naming the first option that is out of range.
Options checked_options(Options options);

}  // namespace iotbridge::mqtt::detail
