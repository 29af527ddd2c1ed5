/// @file
/// The lines a recording tool prints around a run, so that iotbridge-sub
/// --store and iotbridge-recorder say the same thing the same way: one line
/// at the start (broker, store with the password hidden, routes, durability
/// folder) and one at the stop (received, stored, pending, spooled, per
/// route). The status line in between is RecorderStats::status_line().
///
/// Pure functions; safe from any thread; throw only std::bad_alloc.
#pragma once

#include <string>
#include <vector>

#include "iotbridge/record/recorder.hpp"

namespace iotbridge::record {

/// "recording mqtt://127.0.0.1:1883 -> sqlite:readings.db, routes climate
/// (iot/+/+/temp), durability /var/lib/iotbridge/spool". `routes` are the
/// routes as configured (empty: the single-route options of `options`).
std::string start_line(const RecorderOptions& options, const std::vector<Route>& routes = {});

/// "stopped after 12.3 s: received 120, stored 120, pending 0, spooled 0;
/// climate 100/100, power 20/20" (per route: stored/received). Never says
/// anything about the broker connection, which a clean stop closes.
std::string summary_line(const RecorderStats& stats);

}  // namespace iotbridge::record
