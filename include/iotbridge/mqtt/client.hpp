/// @file
/// mqtt::Client: an MQTT 3.1 / 3.1.1 / 5 client that is safe by default.
///  - connect() blocks until the broker answers and throws iotbridge::Error with
///    the broker's reason in words ("not authorised", "connection refused: ...").
///  - Subscriptions are remembered and restored after every reconnect (unless
///    the broker resumed a persistent session), with per-filter handlers.
///  - With a list of brokers (Options::failover), connects to the first that
///    answers and, when that one goes, moves on to the next (round robin).
///  - Publishing QoS 1/2 faster than the broker acknowledges blocks or fails
///    (Options::when_full): the number of unacknowledged messages is bounded.
///  - Callbacks run on the network thread with no lock of the client held, so
///    they may call any client method; an exception thrown by a callback is
///    caught and logged (on_log), never let into the network loop.
/// Thread-safety: every method may be called from any thread, including from
/// inside a callback, except that the setters of callbacks (on_connect ...)
/// should be called before connect(); they are still safe later, but a message
/// being dispatched at that moment may see the old callback. Destroy a client
/// from outside its callbacks.
/// Backends: make_mosquitto_client() in iotbridge/mqtt/mosquitto.hpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace iotbridge::mqtt {

enum class Protocol {
  v31,   ///< MQTT 3.1 ("MQIsdp")
  v311,  ///< MQTT 3.1.1 (the default)
  v5,    ///< MQTT 5.0: properties, reason codes
};

/// What publish() does when Options::max_queued unacknowledged QoS 1/2
/// messages are outstanding, or when a QoS 0 message meets no connection.
enum class WhenFull {
  block,  ///< wait for room (up to Options::publish_timeout), then fail
  fail,   ///< throw iotbridge::Error (mqtt) at once
};

/// A message the broker publishes on our behalf when we vanish without
/// DISCONNECT (network loss, crash, keepalive expiry).
struct Will {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retain = false;
};

struct TlsOptions {
  bool enabled = false;   ///< default false; true for mqtts:// URLs
  std::string ca_file;    ///< PEM file of trusted CAs; empty: ca_dir, else the system's
  std::string ca_dir;     ///< folder of hashed PEM CAs (c_rehash)
  std::string cert_file;  ///< client certificate (PEM), for brokers that require one
  std::string key_file;   ///< its private key (PEM, unencrypted)
  bool insecure = false;  ///< default false; true skips the host name check (never in production)
  std::string version;    ///< "tlsv1.3", "tlsv1.2", "tlsv1.1"; empty: the library's default
};

/// MQTT 5 properties of a message. Ignored (not sent) on 3.1 / 3.1.1.
struct Properties {
  std::optional<std::string> content_type;
  std::optional<std::string> response_topic;
  std::optional<std::string> correlation_data;                       ///< bytes
  std::optional<std::uint32_t> message_expiry_interval;              ///< seconds
  std::optional<bool> payload_format_utf8;                           ///< payload format indicator
  std::vector<std::pair<std::string, std::string>> user_properties;  ///< order kept, names may repeat

  bool empty() const noexcept {
    return !content_type && !response_topic && !correlation_data && !message_expiry_interval && !payload_format_utf8 &&
           user_properties.empty();
  }
};

/// One broker a client may connect to. The TLS settings and the credentials
/// are the client's (Options), the same for every address.
struct BrokerAddress {
  std::string host;  ///< a name, an IPv4 address or an IPv6 address (no brackets)
  int port = 0;      ///< 0: 1883, or 8883 with TLS

  bool operator==(const BrokerAddress&) const = default;
};

struct Options {
  std::string host = "localhost";  ///< default "localhost"
  int port = 0;                    ///< default 0: 1883, or 8883 with TLS
  /// Failover: brokers tried after host:port, in this order (the other nodes
  /// of a cluster, a standby). connect() tries each once, in order, each for
  /// up to connect_timeout, and throws only when all failed. With
  /// auto_reconnect, a connection that fails or is lost moves on to the next
  /// address at once (round robin); the reconnect delay below is waited only
  /// once every address failed in a row, so that a dead node costs no delay
  /// while a dead cluster is not hammered. The client stays on the address
  /// that works (it does not go back to host:port while that one is up).
  /// Subscriptions are restored on the new broker; a persistent session
  /// (clean_session false) is resumed where the brokers share it (a cluster)
  /// and started afresh where they do not. Default empty: host:port only.
  std::vector<BrokerAddress> failover;
  std::string client_id;                ///< default empty: generated (then clean_session must be true)
  bool clean_session = true;            ///< default true; "clean start" in MQTT 5
  std::chrono::seconds keepalive{60};   ///< default 60 s; at least 5 s
  std::string username;                 ///< default empty: no user name
  std::optional<std::string> password;  ///< default none
  Protocol protocol = Protocol::v311;   ///< default MQTT 3.1.1
  std::optional<Will> will;             ///< default none
  TlsOptions tls;                       ///< default off
  std::string bind_address;             ///< default empty: any local address
  /// MQTT 5 with clean_session false: seconds the broker keeps the session
  /// after a disconnect. 0 (default) means "as MQTT 3.1.1 does": never expires.
  std::uint32_t session_expiry_interval = 0;

  /// Reconnect after a lost connection (with failover: after every address
  /// failed in a row): the delay starts at reconnect_delay_min
  /// and doubles up to reconnect_delay_max while attempts fail, each delay a
  /// random time in [cap/2, cap] (iotbridge::Backoff) so that a fleet that lost
  /// its broker does not retry in one instant.
  bool auto_reconnect = true;                            ///< default true
  std::chrono::milliseconds reconnect_delay_min{500};    ///< default 0.5 s
  std::chrono::milliseconds reconnect_delay_max{30000};  ///< default 30 s

  std::chrono::milliseconds connect_timeout{10000};  ///< default 10 s: connect() gives up after this

  /// Flow control. max_inflight QoS 1/2 messages are on the wire unacknowledged
  /// at once (libmosquitto's send maximum); at most max_queued QoS 1/2 messages
  /// are accepted and not yet acknowledged in all (on the wire, waiting behind
  /// the window, or waiting for a connection). Past that, publish() blocks or
  /// fails per when_full. Both are at most 65535, the 16-bit packet-id space
  /// (more unacknowledged messages would share ids): larger values are refused
  /// (Error config), not clamped, so that no bound applies that was not asked
  /// for. A publish() on the network thread (in a callback) cannot wait; it
  /// may exceed max_queued up to twice that, never 65535.
  std::size_t max_inflight = 20;                     ///< default 20
  std::size_t max_queued = 1000;                     ///< default 1000; at least max_inflight, at most 65535
  WhenFull when_full = WhenFull::block;              ///< default block
  std::chrono::milliseconds publish_timeout{60000};  ///< default 60 s: the longest publish() blocks

  /// QoS 0 while disconnected: queue up to max_offline_queue messages (sent on
  /// reconnect) when queue_qos0_offline, else throw.
  bool queue_qos0_offline = false;       ///< default false: publish() throws "not connected"
  std::size_t max_offline_queue = 1000;  ///< default 1000

  /// Payloads larger than this are refused before anything is sent. The MQTT
  /// limit is 268435455 bytes; brokers usually enforce less (message_size_limit).
  std::size_t max_payload_size = 268435455;  ///< default: the protocol's limit

  /// Send each packet at once instead of letting Nagle's algorithm coalesce
  /// small writes. Lower latency; lower throughput of small QoS 0 messages
  /// (the broker then reads one segment per message). Turn it on in a client
  /// that mostly receives QoS 1/2: Nagle holds its small PUBACKs back while
  /// the broker waits for them, and a broker at its default queue limit then
  /// drops a burst (measured: bench/README.md, the QoS 1 burst row).
  bool tcp_nodelay = false;  ///< default false
};

/// Options from "mqtt://[user[:password]@]host[:port]" or "mqtts://..." (TLS on,
/// default port 8883); also "tcp://" and "ssl://". Percent-escapes in the user
/// name and password are decoded; "[::1]" brackets an IPv6 host. Fields the URL
/// does not mention are taken from `base`.
/// @param url   e.g. `mqtt://localhost:1883`, `mqtts://user:pw@broker.example`
/// @param base  the other options (client id, keepalive, ...)
/// @throws Error (config) when the URL is malformed
Options options_from_url(std::string_view url, Options base = {});

/// Options from a failover list of URLs: the first gives host and port, the
/// others Options::failover, in order. All must use the same scheme (TLS on or
/// off for all); a later URL may leave out the user name and password or
/// repeat the first's, not name others (credentials are the client's).
/// @throws Error (config) for an empty list, an empty or malformed URL (named
///         with its place in the list), or URLs that disagree
Options options_from_urls(const std::vector<std::string>& urls, Options base = {});

struct Message {
  std::string topic;
  std::string payload;  ///< bytes (may hold NUL and non-UTF-8 data)
  int qos = 0;
  bool retain = false;
  int mid = 0;            ///< the packet id (0 for QoS 0)
  Properties properties;  ///< MQTT 5 properties, where present
};

enum class LogLevel { debug, info, notice, warning, error };

struct ConnectResult {
  int reason_code = 0;           ///< 0 success; CONNACK return code (3.1.1) or reason code (5)
  bool session_present = false;  ///< the broker resumed a persistent session
  std::string reason;            ///< in words, e.g. "success", "not authorised"
  /// The broker that answered, e.g. "mqtt://127.0.0.1:1884 (address 2 of 2)"
  /// (the place in the list only with Options::failover).
  std::string address;
};

struct DisconnectInfo {
  bool unexpected = false;  ///< false: disconnect() was called; true: lost, refused, or the broker closed it
  int reason_code = 0;      ///< libmosquitto's error code, or the broker's MQTT 5 reason
  std::string reason;       ///< in words
};

struct SubscribeResult {
  int mid = 0;
  std::vector<std::string> filters;  ///< what was asked, in order
  /// One per filter: the QoS the broker granted (0..2), or a failure code
  /// (0x80 on MQTT 3.1.1; 0x80..0xA2 reason codes on MQTT 5, e.g. 0x87 not authorised).
  std::vector<int> granted_qos;

  static bool is_failure(int code) noexcept { return code >= 0x80; }
  bool all_granted() const noexcept {
    for (int code : granted_qos)
      if (is_failure(code)) return false;
    return !granted_qos.empty();
  }
};

struct PublishResult {
  int mid = 0;
  int reason_code = 0;  ///< MQTT 5 PUBACK/PUBREC reason (0 success, >= 0x80 failure); 0 on 3.1.1
};

/// One subscription for the list form of subscribe().
using MessageHandler = std::function<void(const Message&)>;
struct Subscription {
  std::string filter;
  int qos = 0;
  MessageHandler handler;  ///< may be empty: the default on_message gets the messages
};

namespace detail {
struct TokenState;
}  // namespace detail

/// The handle publish() returns. Completes when the broker acknowledged the
/// message (PUBACK for QoS 1, PUBCOMP for QoS 2) or, for QoS 0, when the
/// message was written to the socket. Copyable; all copies share one state.
/// Thread-safe.
class DeliveryToken {
 public:
  DeliveryToken();  ///< an already-completed token (mid 0)
  explicit DeliveryToken(std::shared_ptr<detail::TokenState> state);

  int mid() const noexcept;
  bool done() const;
  /// Blocks until complete. Throws Error (mqtt) when the delivery failed
  /// (the broker refused it on MQTT 5, a QoS 0 message was still unwritten when
  /// the connection closed, or the client was destroyed first).
  void wait() const;
  /// true when complete within `timeout` (throws as wait() on failure).
  bool wait_for(std::chrono::milliseconds timeout) const;
  /// After completion: the MQTT 5 reason code (0 on 3.1.1).
  int reason_code() const;

 private:
  std::shared_ptr<detail::TokenState> state_;
};

/// The handle subscribe() / unsubscribe() return: completes on SUBACK / UNSUBACK.
class SubscribeToken {
 public:
  SubscribeToken();  ///< an already-completed token
  explicit SubscribeToken(std::shared_ptr<detail::TokenState> state);

  int mid() const noexcept;
  bool done() const;
  /// Blocks until the broker answered; returns the granted QoS (or failure
  /// codes, see SubscribeResult) per filter. Throws Error when the client was
  /// destroyed first.
  std::vector<int> wait() const;
  bool wait_for(std::chrono::milliseconds timeout) const;
  /// After completion: what wait() returns.
  std::vector<int> granted_qos() const;

 private:
  std::shared_ptr<detail::TokenState> state_;
};

using ConnectHandler = std::function<void(const ConnectResult&)>;
using DisconnectHandler = std::function<void(const DisconnectInfo&)>;
using SubscribeHandler = std::function<void(const SubscribeResult&)>;
using PublishHandler = std::function<void(const PublishResult&)>;
using LogHandler = std::function<void(LogLevel, std::string_view)>;

class Client {
 public:
  virtual ~Client() = default;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  virtual const Options& options() const noexcept = 0;
  /// The client id in use (the generated one when Options::client_id was empty).
  virtual const std::string& client_id() const noexcept = 0;

  // ---- connection ----
  /// Connects and waits for the broker's CONNACK, driving the network itself
  /// when no loop is running. Throws Error (mqtt) with the reason in words on
  /// refusal, network failure, TLS failure or connect_timeout; Error (config)
  /// inside a callback, where it would wait for its own thread.
  virtual ConnectResult connect() = 0;
  /// Starts connecting and returns; on_connect / on_disconnect tell the outcome.
  /// A loop (loop_start, loop_forever or loop) must run for it to progress.
  virtual void connect_async() = 0;
  /// Drops the connection (if any) and connects again, blocking like connect().
  /// Like connect(), throws Error (config) inside a callback (on the network
  /// thread), before dropping anything: use disconnect() + connect_async() there.
  virtual ConnectResult reconnect() = 0;
  /// Sends DISCONNECT and stops reconnecting. The will is not published.
  virtual void disconnect() = 0;
  virtual bool connected() const noexcept = 0;
  /// Waits until connected (true) or `timeout` passed (false).
  virtual bool wait_connected(std::chrono::milliseconds timeout) const = 0;

  // ---- network loop ----
  /// One round of network work, waiting up to `timeout` for traffic; also
  /// reconnects when due. Returns connected(). Not while loop_start runs.
  virtual bool loop(std::chrono::milliseconds timeout = std::chrono::milliseconds(1000)) = 0;
  /// Runs the network on a background thread (reconnecting as needed).
  virtual void loop_start() = 0;
  /// Stops and joins that thread (does not disconnect). Safe when not started.
  virtual void loop_stop() = 0;
  /// Runs the network on the calling thread until disconnect() is called or
  /// `stop` fires (which disconnects). Reconnects by itself meanwhile.
  virtual void loop_forever(std::stop_token stop = {}) = 0;

  // ---- publish ----
  /// Validates the topic (no wildcards, valid UTF-8, not empty), qos (0..2) and
  /// payload size, then sends. Throws Error (topic / mqtt) before sending
  /// anything when invalid, when not connected (QoS 0, queue_qos0_offline
  /// off), or when the flow-control bound is reached (see Options::when_full).
  /// QoS 1/2 published while disconnected are kept (bounded) and sent on reconnect.
  virtual DeliveryToken publish(std::string_view topic, std::string_view payload, int qos = 0, bool retain = false,
                                const Properties& properties = {}) = 0;
  DeliveryToken publish(const Message& message) {
    return publish(message.topic, message.payload, message.qos, message.retain, message.properties);
  }

  // ---- subscribe ----
  /// Validates the filter (Error topic), remembers the subscription (restored
  /// after reconnects) and sends it now if connected, else on connect. With a
  /// handler, messages that match this filter go to the handler (for
  /// "$share/group/f", messages matching f); messages no handler takes go to
  /// on_message. Subscribing again to the same filter replaces qos and handler.
  virtual SubscribeToken subscribe(std::string_view filter, int qos = 0, MessageHandler handler = {}) = 0;
  virtual SubscribeToken subscribe(const std::vector<Subscription>& subscriptions) = 0;
  /// Forgets the subscription and its handler; sends UNSUBSCRIBE if connected.
  virtual SubscribeToken unsubscribe(std::string_view filter) = 0;
  /// The filters currently subscribed (as given).
  virtual std::vector<std::string> subscriptions() const = 0;

  // ---- callbacks (run on the network thread) ----
  virtual void on_connect(ConnectHandler handler) = 0;
  virtual void on_disconnect(DisconnectHandler handler) = 0;
  virtual void on_message(MessageHandler handler) = 0;  ///< the default handler
  virtual void on_subscribe(SubscribeHandler handler) = 0;
  virtual void on_publish(PublishHandler handler) = 0;
  virtual void on_log(LogHandler handler) = 0;  ///< library and client log lines; none: errors to stderr

  // ---- pull-style consumption ----
  /// From now on, messages no per-filter handler takes go into a BoundedQueue
  /// of `capacity` instead of on_message. When it is full the network thread
  /// waits (back-pressure on the broker), so consume() promptly.
  virtual void start_consuming(std::size_t capacity = 10000) = 0;
  /// The next message, or nullopt after `timeout` (or once stop_consuming()
  /// was called and the queue is drained).
  virtual std::optional<Message> consume(std::chrono::milliseconds timeout) = 0;
  /// Back to on_message; messages already queued can still be consumed.
  virtual void stop_consuming() = 0;

  // ---- flow control state ----
  /// QoS 1/2 messages accepted by publish() and not yet acknowledged.
  virtual std::size_t unacknowledged() const = 0;

 protected:
  Client() = default;
};

}  // namespace iotbridge::mqtt
