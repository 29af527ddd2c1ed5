// The start and summary lines of a recording tool (see report.hpp).
#include "iotbridge/record/report.hpp"

#include <fmt/format.h>

#include "iotbridge/store/open.hpp"

namespace iotbridge::record {

std::string start_line(const RecorderOptions& o, const std::vector<Route>& configured) {
  const auto& m = o.mqtt;
  std::string broker = std::string(m.tls.enabled ? "mqtts://" : "mqtt://") +
                       (m.host.find(':') != std::string::npos ? "[" + m.host + "]" : m.host) +
                       (m.port ? ":" + std::to_string(m.port) : "");
  std::vector<Route> routes = configured;
  if (routes.empty()) routes = o.routes;
  if (routes.empty()) {
    Route single;
    single.filters = o.filters;
    single.database = o.database;
    single.collection = o.collection;
    routes.push_back(single);
  }
  std::string text;
  for (const auto& r : routes) {
    std::string filters;
    for (const auto& f : r.filters) filters += (filters.empty() ? "" : " ") + f;
    text += fmt::format("{}{} ({} -> {}.{})", text.empty() ? "" : ", ", r.name, filters, r.database, r.collection);
  }
  return fmt::format("recording {} -> {}, route{} {}, durability {}", broker, store::redact_uri(o.store_uri),
                     routes.size() == 1 ? "" : "s", text,
                     o.spool_dir.empty() ? std::string("none (memory only)") : o.spool_dir.string());
}

std::string summary_line(const RecorderStats& s) {
  std::string line = fmt::format("stopped after {:.1f} s: received {}, stored {}, pending {}, spooled {}",
                                 s.uptime_seconds, s.received, s.stored, s.pending, s.spooled);
  if (s.replayed) line += fmt::format(", replayed {}", s.replayed);
  if (s.duplicates) line += fmt::format(", duplicates {}", s.duplicates);
  if (s.rejected) line += fmt::format(", rejected {}", s.rejected);
  if (s.suppressed) line += fmt::format(", suppressed {}", s.suppressed);
  if (s.quarantined) line += fmt::format(", quarantined {}", s.quarantined);
  if (s.routes.size() > 1) {
    line += ";";
    for (std::size_t i = 0; i < s.routes.size(); ++i) {
      const auto& r = s.routes[i];
      line += fmt::format("{} {} {}/{}", i ? "," : "", r.name, r.stored, r.received);
      if (r.pending) line += fmt::format(" ({} pending)", r.pending);
    }
  }
  return line;
}

}  // namespace iotbridge::record
