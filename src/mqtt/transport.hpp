// Transport: what the client core needs from an MQTT library, and nothing of
// the rules the core keeps (validation, subscriptions, dispatch, flow control,
// tokens, reconnects). libmosquitto is the one implementation
// (mosquitto_transport.cpp).
//
// Threads. The core calls start_connect(), serve() and disconnect() from the
// thread that owns the network at that moment; publish(), subscribe() and
// unsubscribe() from any thread: they only queue packets and wake serve().
// Events arrive on the thread inside serve(), with no lock of the core held;
// an event handler must not throw (the transport catches and logs anyway).
// Throws: the factory throws Error (config / mqtt) for options the library
// refuses; the other methods report failures in their results.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "iotbridge/mqtt/client.hpp"

namespace iotbridge::mqtt::detail {

// Codes the core puts in the Errors it raises itself (libmosquitto's values,
// the backend whose codes Error carries; checked in mosquitto_transport.cpp).
inline constexpr int kCodeNoMemory = 1;
inline constexpr int kCodeNoConnection = 4;
inline constexpr int kCodePayloadSize = 9;
inline constexpr int kCodeTimeout = 27;

// An outcome: code 0 is success; otherwise the backend's code and, in words,
// what went wrong ("connection refused: nothing accepts connections there").
struct TransportResult {
  int code = 0;
  std::string why;
  bool no_connection = false;  // failed only because no connection is up
  explicit operator bool() const noexcept { return code == 0; }
};

// What serve() saw: the socket closed under it, or a failure that left it open.
struct ServeResult {
  TransportResult result;
  bool closed = false;
};

class TransportEvents {
 public:
  virtual ~TransportEvents() = default;
  virtual void connack(const ConnectResult& result) = 0;
  /// The socket closed. code 0: after our DISCONNECT; otherwise why.
  virtual void closed(const TransportResult& why) = 0;
  virtual void message(Message& message) = 0;
  /// A PUBACK / PUBCOMP (QoS 1/2), or a QoS 0 message written to the socket.
  virtual void published(int mid, int reason_code) = 0;
  virtual void subscribed(int mid, std::vector<int> granted) = 0;
  virtual void unsubscribed(int mid) = 0;
  /// from_library: a line of the library's own log (sent only while
  /// set_library_log(true)); otherwise the transport's own complaint.
  virtual void log(LogLevel level, std::string_view text, bool from_library) = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  /// Starts a TCP (and TLS) connection to `address` (the port filled in) and
  /// queues CONNECT; the CONNACK comes as TransportEvents::connack from
  /// serve(). Closes an earlier socket without an event, and drops packets
  /// still queued from it; unacknowledged QoS 1/2 messages are kept (resent
  /// after the CONNACK, whichever broker it comes from).
  virtual TransportResult start_connect(const BrokerAddress& address) = 0;
  /// Reads and writes for up to `timeout`; events fire from here.
  virtual ServeResult serve(std::chrono::milliseconds timeout) = 0;
  /// Queues DISCONNECT; serve() writes it and closes the socket.
  virtual void disconnect() = 0;

  /// Queues a PUBLISH and sets *mid. QoS 1/2 without a connection are kept
  /// and sent after the next CONNACK: then the result is no_connection with
  /// *mid set (non-zero). Throws Error for properties the library refuses.
  virtual TransportResult publish(std::string_view topic, std::string_view payload, int qos, bool retain,
                                  const Properties& properties, int* mid) = 0;
  virtual TransportResult subscribe(const std::vector<std::string>& filters, int qos, int* mid) = 0;
  virtual TransportResult unsubscribe(const std::string& filter, int* mid) = 0;

  /// Whether the library's log lines reach TransportEvents::log (they cost a
  /// formatted line per packet).
  virtual void set_library_log(bool on) = 0;
  /// A CONNACK / PUBACK reason code in words ("not authorised").
  virtual std::string reason_words(int code) const = 0;

 protected:
  Transport() = default;
};

using TransportFactory =
    std::function<std::unique_ptr<Transport>(const Options& options, const std::string& client_id, TransportEvents&)>;

std::unique_ptr<Transport> make_mosquitto_transport(const Options& options, const std::string& client_id,
                                                    TransportEvents& events);

}  // namespace iotbridge::mqtt::detail
