/// @file
/// iotbridge::Error: the one exception type the library throws. It says which
/// part failed (category), in words, and carries the backend's own error code
/// (libmosquitto's MOSQ_ERR_*, libmongoc's error code, SQLite's result code,
/// errno) where there is one. Immutable after construction; safe to share.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace iotbridge {

enum class ErrorCategory {
  mqtt,    ///< the broker or the MQTT client
  store,   ///< a document store backend
  topic,   ///< an invalid topic or filter
  config,  ///< a bad option, URI or argument
  io,      ///< files, sockets, processes
};

/// "mqtt", "store", "topic", "config", "io".
std::string_view to_string(ErrorCategory category) noexcept;

class Error : public std::runtime_error {
 public:
  /// code is the backend's code; 0 when the backend gave none.
  Error(ErrorCategory category, const std::string& message, int code = 0);

  ErrorCategory category() const noexcept { return category_; }
  int code() const noexcept { return code_; }

 private:
  ErrorCategory category_;
  int code_;
};

}  // namespace iotbridge
