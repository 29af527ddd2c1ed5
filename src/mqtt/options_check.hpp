// The checks every client applies to its Options (in options.cpp).
#pragma once

#include "iotbridge/mqtt/client.hpp"

namespace iotbridge::mqtt::detail {

/// `options` with the defaults that depend on others filled in (the port).
/// Throws Error (config) naming the first option that is out of range.
Options checked_options(Options options);

}  // namespace iotbridge::mqtt::detail
