// Where `iotbridge-db serve` listens: "HOST:PORT" (IPv6 in brackets), parsed,
// and whether only this machine can reach it.
// Thread-safety: plain functions. Throws: parse_listen throws Error (config)
// naming the text and the accepted form.
#pragma once

#include <string>

namespace iotbridge::view {

struct ListenAddress {
  std::string host;  ///< without brackets: "127.0.0.1", "::1", "localhost", "0.0.0.0"
  int port = 0;      ///< 0: any free port (the start line says which)
  bool loopback = false;
  std::string url(int bound_port) const;  ///< "http://HOST:PORT/"
};

/// "127.0.0.1:8080", "[::1]:8080", "localhost:0", "0.0.0.0:8080".
ListenAddress parse_listen(const std::string& text);

}  // namespace iotbridge::view
