/// @file
/// A test double for unit tests of code that uses mqtt::Client: an in-process
/// FakeBroker and the clients it makes, which implement mqtt::Client, so that
/// an application's handlers, publishers and pipelines are tested without
/// starting Mosquitto (paho.mqtt.cpp's mock_async_client serves the same need).
///
/// What the fake broker does as Mosquitto does: wildcard subscriptions (`+`,
/// `#`, `$`-topics not matched by a leading wildcard, one copy per client at
/// the highest granted QoS), `$share/{group}/{filter}` (each message to one
/// member), retained messages (kept per topic, cleared by an empty payload,
/// sent with the retain flag on subscribe, never to a shared subscription),
/// QoS acknowledgements (a DeliveryToken completes once the broker routed the
/// message), persistent sessions (clean_session false: subscriptions kept and
/// QoS 1/2 messages queued while away), and the will (published when a
/// connection is lost, not on disconnect()).
///
/// What the client does as the libmosquitto-backed one does: the same
/// validation and error messages, callbacks on a network thread (loop_start,
/// loop_forever, loop or a blocking connect drive it), subscriptions
/// remembered and restored after a reconnect, per-filter handlers, consume(),
/// flow control (Options::max_queued, when_full), QoS 0 queued offline when
/// asked, exceptions from callbacks caught and logged.
///
/// Faults on demand: drop() a connection (the will is published, the client
/// reconnects at once when Options::auto_reconnect), stop() / start() the
/// whole broker, refuse connections, subscriptions or publications, cap the
/// granted QoS, pause() the broker so that it acknowledges nothing.
///
/// Differences from a real broker, on purpose: there is no network, so host,
/// port, TLS, keepalive and the reconnect delays are ignored (a client
/// reconnects as soon as the broker takes connections again); broker limits
/// (max_queued_messages, packet sizes) are not modelled; a client whose session
/// was taken over by another connection with its client id does not reconnect;
/// QoS 2 is acknowledged as QoS 1 is (once routed); a full offline QoS 0 queue
/// refuses at once rather than blocking.
///
/// Integration tests of iotbridge itself use the real Mosquitto; this is for
/// unit tests (users' and ours). Linked with iotbridge::mqtt.
///
/// Thread-safety: FakeBroker and its clients may be used from any thread, as
/// mqtt::Client documents; the broker may be destroyed before its clients
/// (they then see a stopped broker). Throws: iotbridge::Error, as mqtt::Client
/// documents; the broker's own methods throw Error (topic / config) only for
/// an invalid filter, topic or QoS.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "iotbridge/mqtt/client.hpp"

namespace iotbridge::mqtt::testing {

namespace detail {
class BrokerCore;
}  // namespace detail

class FakeBroker {
 public:
  FakeBroker();
  ~FakeBroker();
  FakeBroker(const FakeBroker&) = delete;
  FakeBroker& operator=(const FakeBroker&) = delete;

  /// A client of this broker, not connected yet. Everything in `options`
  /// applies except the network (host, port, TLS, bind address, keepalive,
  /// reconnect delays). Throws Error (config) for the options the real client
  /// refuses (a persistent session without a client id, max_queued below
  /// max_inflight, an invalid will, ...).
  std::unique_ptr<Client> make_client(Options options = {});

  // ---- what the broker holds ----
  /// The retained message of `topic`, if any (retain flag set).
  std::optional<Message> retained(std::string_view topic) const;
  std::size_t retained_count() const;
  /// Client ids with a live connection, sorted.
  std::vector<std::string> connected_clients() const;
  /// The filters the broker holds for a client id (its session), sorted.
  std::vector<std::string> subscriptions(std::string_view client_id) const;
  /// Every message the broker accepted for routing (wills and publish() too),
  /// in order, as published (retain flag as sent).
  std::vector<Message> published() const;
  /// Waits until the broker accepted at least `count` messages in all.
  bool wait_published(std::size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  /// Publishes as a device that is not one of our clients would (no
  /// acknowledgement to wait for). Throws Error (topic / config) when the
  /// topic or the QoS is invalid.
  void publish(const Message& message);

  // ---- faults on demand ----
  /// Drops the connection of `client_id` as a network failure would: its will
  /// is published, the client sees on_disconnect with unexpected = true and
  /// reconnects at once when Options::auto_reconnect. Returns false when no
  /// such client is connected.
  bool drop(std::string_view client_id);
  /// Drops every connection (wills published) and refuses new ones ("connection
  /// refused") until start(). Sessions of clean clients end; persistent
  /// sessions and retained messages are kept, as Mosquitto with persistence.
  void stop();
  /// Accepts connections again; clients that want a connection reconnect.
  void start();
  bool running() const;

  /// Refuses every CONNECT with this CONNACK code (3.1.1: 1..5, e.g. 5 not
  /// authorised; MQTT 5: >= 0x80, e.g. 0x87) until accept_connections().
  void refuse_connections(int code = 5);
  void accept_connections();
  /// A SUBSCRIBE to exactly `filter` is answered with the failure `code`
  /// (0x80 on 3.1.1; MQTT 5 reason codes such as 0x87 not authorised).
  void refuse_subscriptions(std::string filter, int code = 0x80);
  /// Publications to topics that match `filter` are not routed. MQTT 5
  /// publishers get the PUBACK reason `code` (their token fails); 3.1.1
  /// publishers are acknowledged and the message is dropped, as Mosquitto
  /// does with a denied publish.
  void refuse_publications(std::string filter, int code = 0x87);
  /// Forgets the subscription and publication refusals.
  void clear_refusals();
  /// Grants at most this QoS to any subscription (Mosquitto's max_qos).
  void set_max_qos(int qos);

  /// Holds every PUBLISH, SUBSCRIBE and UNSUBSCRIBE packet unanswered (as a
  /// broker stopped with SIGSTOP would) until resume(), which then handles
  /// them in order. Connections come and go meanwhile.
  void pause();
  void resume();

 private:
  std::shared_ptr<detail::BrokerCore> core_;
};

}  // namespace iotbridge::mqtt::testing
