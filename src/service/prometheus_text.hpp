// The /metrics body. Interim: the counters of RecorderStats until the
// recorder's metrics table renders the Prometheus text itself.
#pragma once

#include <fmt/format.h>

#include <string>

#include "iotbridge/record/recorder.hpp"

namespace iotbridge::service {

inline std::string prometheus_text(const record::RecorderStats& s) {
  std::string out;
  auto add = [&out](const char* name, const char* type, const char* help, auto value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
  };
  add("iotbridge_readings_received_total", "counter", "Readings accepted from the broker in this run.", s.received);
  add("iotbridge_readings_stored_total", "counter", "Readings the store has confirmed.", s.stored);
  add("iotbridge_readings_pending", "gauge", "Readings accepted and not yet confirmed.", s.pending);
  add("iotbridge_store_up", "gauge", "1 when the last insert attempt succeeded.", s.store_ok ? 1 : 0);
  add("iotbridge_mqtt_connected", "gauge", "1 while connected to the broker.", s.connected ? 1 : 0);
  return out;
}

}  // namespace iotbridge::service
