#include "iotbridge/error.hpp"

namespace iotbridge {

std::string_view to_string(ErrorCategory category) noexcept {
  switch (category) {
    case ErrorCategory::mqtt: return "mqtt";
    case ErrorCategory::store: return "store";
    case ErrorCategory::topic: return "topic";
    case ErrorCategory::config: return "config";
    case ErrorCategory::io: return "io";
  }
  return "unknown";
}

Error::Error(ErrorCategory category, const std::string& message, int code)
    : std::runtime_error(message), category_(category), code_(code) {}

}  // namespace iotbridge
