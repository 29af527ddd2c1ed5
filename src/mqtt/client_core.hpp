// ClientCore: the mqtt::Client every backend shares. It keeps the rules
// (validation, subscription memory and resubscribe, per-filter dispatch, flow
// control, delivery tokens, reconnect with backoff, who runs the network) and
// drives a Transport (transport.hpp) that speaks MQTT through a library.
//
// Threads. One thread at a time owns the network (owner_): the background
// thread of loop_start(), the caller of loop_forever(), or a caller of loop() /
// connect() / disconnect() driving it for a moment. Only the owner calls
// Transport::start_connect() and serve(); other threads hand it requests
// through state_mutex_ and state_cv_.
//
// Locks, never nested except where said, none held while user code runs:
//  - state_mutex_: the connection (link_, one state enum), the owner, a
//    blocking connect()'s outcome;
//  - out_mutex_: what goes out: the flow-control count, the delivery tokens,
//    the offline QoS 0 queue. Held across Transport::publish so that an
//    acknowledgement can never overtake its registration;
//  - dispatch_mutex_: what comes in: subscriptions, the handler tree, the
//    callbacks, the consumer queue. Held across Transport::subscribe, so a
//    SUBACK always finds its mid;
//  - log_mutex_: the log callback alone, as the library logs from inside
//    calls made under the locks above (a user's log handler must not call
//    subscribe() or publish()).
// The transport takes only its library's packet-queue locks in those calls,
// never the lock its network thread holds while it raises events.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "iotbridge/backoff.hpp"
#include "iotbridge/mqtt/client.hpp"
#include "iotbridge/queue.hpp"
#include "iotbridge/topic_tree.hpp"
#include "mqtt/token_state.hpp"
#include "mqtt/transport.hpp"

namespace iotbridge::mqtt::detail {

class ClientCore final : public Client, private TransportEvents {
 public:
  /// Throws Error (config) for invalid options, or what the factory throws.
  ClientCore(Options options, const TransportFactory& make_transport);
  ~ClientCore() override;

  const Options& options() const noexcept override { return options_; }
  const std::string& client_id() const noexcept override { return client_id_; }

  ConnectResult connect() override;
  void connect_async() override;
  ConnectResult reconnect() override;
  void disconnect() override;
  bool connected() const noexcept override { return connected_flag_.load(); }
  bool wait_connected(std::chrono::milliseconds timeout) const override;

  bool loop(std::chrono::milliseconds timeout) override;
  void loop_start() override;
  void loop_stop() override;
  void loop_forever(std::stop_token stop) override;

  DeliveryToken publish(std::string_view topic, std::string_view payload, int qos, bool retain,
                        const Properties& properties) override;
  using Client::publish;

  SubscribeToken subscribe(std::string_view filter, int qos, MessageHandler handler) override;
  SubscribeToken subscribe(const std::vector<Subscription>& subscriptions) override;
  SubscribeToken unsubscribe(std::string_view filter) override;
  std::vector<std::string> subscriptions() const override;

  void on_connect(ConnectHandler h) override { set_callback(connect_cb_, std::move(h)); }
  void on_disconnect(DisconnectHandler h) override { set_callback(disconnect_cb_, std::move(h)); }
  void on_message(MessageHandler h) override { set_callback(message_cb_, std::move(h)); }
  void on_subscribe(SubscribeHandler h) override { set_callback(subscribe_cb_, std::move(h)); }
  void on_publish(PublishHandler h) override { set_callback(publish_cb_, std::move(h)); }
  void on_log(LogHandler h) override;

  void start_consuming(std::size_t capacity) override;
  std::optional<Message> consume(std::chrono::milliseconds timeout) override;
  void stop_consuming() override;

  std::size_t unacknowledged() const override;

 private:
  using Clock = std::chrono::steady_clock;
  using milliseconds = std::chrono::milliseconds;

  // The connection: one state at a time (state_mutex_).
  enum class Link {
    idle,           // no socket and none wanted: not connected yet, disconnect(), or a failed connect()
    requested,      // wanted: the network owner starts a connection at its next round
    connecting,     // socket open, CONNECT sent, no CONNACK yet
    connected,      // CONNACK success, not lost since
    waiting,        // lost or refused: the next attempt is due at next_attempt_ (auto_reconnect)
    lost,           // lost with nothing retrying (auto_reconnect off, or a connect() deciding)
    disconnecting,  // connected, DISCONNECT queued; the socket closes once it is written
    closing,        // a connection attempt abandoned: DISCONNECT queued, the socket still open
  };
  static bool wanted(Link s) noexcept { return s != Link::idle && s != Link::disconnecting && s != Link::closing; }
  static bool socket_open(Link s) noexcept {
    return s == Link::connecting || s == Link::connected || s == Link::disconnecting || s == Link::closing;
  }
  // A session is up (connected() is true) until the socket closes.
  static bool up(Link s) noexcept { return s == Link::connected || s == Link::disconnecting; }

  enum class Owner { none, background, forever, manual };

  struct Outcome {  // of a blocking connect()
    bool done = false;
    bool ok = false;
    ConnectResult result;
    std::string error;
    int code = 0;
  };

  struct Waiter {
    std::shared_ptr<TokenState> state;
    std::size_t index;
  };
  struct SubRecord {
    int qos = 0;
    bool confirmed = false;  // the broker granted it on the current session
    std::vector<Waiter> waiters;
  };
  struct HandlerEntry {
    std::string filter;  // as subscribed (may be "$share/...")
    std::shared_ptr<const MessageHandler> handler;
  };
  struct Delivery {
    std::shared_ptr<TokenState> state;
    int qos = 0;
  };
  struct OfflineMessage {
    std::string topic;
    std::string payload;
    bool retain = false;
    Properties properties;
    std::shared_ptr<TokenState> state;
  };

  // TransportEvents (the network thread)
  void connack(const ConnectResult& result) override;
  void closed(const TransportResult& why) override;
  void message(Message& message) override;
  void published(int mid, int reason_code) override;
  void subscribed(int mid, std::vector<int> granted) override;
  void unsubscribed(int mid) override;
  void log(LogLevel level, std::string_view text, bool from_library) override;

  // the network owner
  void run(std::stop_token stop, const std::optional<Clock::time_point>* stop_at);
  void step(milliseconds timeout);
  void start_connection();
  void after_serve(const ServeResult& served);
  void set_link_locked(Link link);
  void socket_gone_locked(std::optional<milliseconds>& retry);
  milliseconds schedule_reconnect_locked();
  void drop_locked();
  Outcome attempt_locked(std::unique_lock<std::mutex>& lock);
  bool attempt_pending_locked() const { return attempt_ && attempt_started_ && !attempt_->done; }
  void log_retry(std::optional<milliseconds> delay);
  void report_disconnect(const TransportResult& why, const std::string& where);
  void update_log_hook();
  // "mqtt://host:port", with "(address i of n)" when there is a failover list.
  std::string endpoint(std::size_t index) const;
  std::string endpoint() const { return endpoint(address_.load()); }

  // subscriptions (dispatch_mutex_ held for the _locked ones)
  void set_handler_locked(const std::string& filter, std::shared_ptr<const MessageHandler> handler);
  std::optional<std::string> send_subscribe_locked(const std::vector<std::string>& filters, int qos);
  void restore_subscriptions(bool session_present);

  // publishing (out_mutex_ held for the _locked ones)
  void acquire_slot_locked(std::unique_lock<std::mutex>& lock);
  bool release_slot_locked();
  void register_delivery_locked(int mid, int qos, std::shared_ptr<TokenState> state);
  void finish_delivery(const Delivery& d, int reason);
  void fail_unwritten_qos0(const std::string& why);
  DeliveryToken publish_offline(std::string_view topic, std::string_view payload, bool retain,
                                const Properties& properties);
  void flush_offline();
  void fail_all_pending(const std::string& why);

  // user code
  void say(LogLevel level, const std::string& text);
  template <typename Handler, typename... Args>
  void call_user(const char* name, const std::shared_ptr<const Handler>& handler, Args&&... args);
  template <typename F>
  void set_callback(std::shared_ptr<const F>& slot, F handler) {
    auto value = handler ? std::make_shared<const F>(std::move(handler)) : nullptr;
    std::lock_guard lock(dispatch_mutex_);
    slot = std::move(value);
  }
  template <typename F>
  std::shared_ptr<const F> get_callback(const std::shared_ptr<const F>& slot) const {
    std::lock_guard lock(dispatch_mutex_);
    return slot;
  }
  std::shared_ptr<const LogHandler> log_callback() const {
    std::lock_guard lock(log_mutex_);
    return log_cb_;
  }

  Options options_;
  std::string client_id_;

  // The connection.
  mutable std::mutex state_mutex_;
  mutable std::condition_variable_any state_cv_;
  Link link_ = Link::idle;
  std::atomic<bool> connected_flag_{false};  // up(link_), for connected() without the lock
  Owner owner_ = Owner::none;
  Clock::time_point next_attempt_{};
  Backoff backoff_;  // reconnect delays, once every address failed in a row
  // host:port, then Options::failover: fixed at construction.
  std::vector<BrokerAddress> addresses_;
  // The address being tried or used: written by the network owner (or a
  // blocking connect()) under state_mutex_, read anywhere for messages.
  std::atomic<std::size_t> address_{0};
  std::size_t failed_in_round_ = 0;             // attempts failed in a row since the last success
  std::optional<std::size_t> session_address_;  // where the last session was (its subscriptions)
  std::optional<Outcome> attempt_;              // present while a blocking connect() waits
  // The owner started a connection for attempt_: events before that belong
  // to the socket of an earlier attempt (the previous failover address).
  bool attempt_started_ = false;
  ConnectResult last_connect_;
  std::jthread thread_;
  std::atomic<bool> user_logs_{false};
  std::atomic<bool> connecting_logs_{false};

  // What goes out.
  mutable std::mutex out_mutex_;
  std::condition_variable room_cv_;     // flow control: room for a QoS 1/2 message
  std::condition_variable offline_cv_;  // room in the offline queue
  std::size_t unacked_ = 0;
  std::size_t flow_waiters_ = 0;
  std::atomic<bool> closing_{false};
  std::unordered_map<int, Delivery> deliveries_;  // QoS 1/2, by packet id
  // QoS 1/2 whose id an older unacknowledged one still holds, oldest first
  // (see the top of client_core.cpp); normally empty.
  std::deque<std::pair<int, Delivery>> repeated_ids_;
  std::deque<Delivery> unwritten_qos0_;  // QoS 0, in the order the transport writes them
  std::deque<OfflineMessage> offline_;

  // What comes in (handlers keyed by the filter they match, "$share/g/" removed).
  mutable std::mutex dispatch_mutex_;
  std::map<std::string, SubRecord> subs_;
  TopicTree<std::vector<HandlerEntry>> tree_;
  std::unordered_map<int, std::vector<std::string>> pending_subs_;
  std::unordered_map<int, std::shared_ptr<TokenState>> pending_unsubs_;
  std::shared_ptr<const ConnectHandler> connect_cb_;
  std::shared_ptr<const DisconnectHandler> disconnect_cb_;
  std::shared_ptr<const MessageHandler> message_cb_;
  std::shared_ptr<const SubscribeHandler> subscribe_cb_;
  std::shared_ptr<const PublishHandler> publish_cb_;
  std::shared_ptr<BoundedQueue<Message>> queue_;
  bool consuming_ = false;

  // Its own lock: the library logs from inside calls made under the others.
  mutable std::mutex log_mutex_;
  std::shared_ptr<const LogHandler> log_cb_;

  // Last: built once the state above exists, destroyed before it.
  std::unique_ptr<Transport> transport_;
};

}  // namespace iotbridge::mqtt::detail
