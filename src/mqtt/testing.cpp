// The in-process fake broker and its clients (iotbridge/mqtt/testing.hpp).
//
// Packets. A client hands its packets (CONNECT, PUBLISH, SUBSCRIBE, ...) to
// the BrokerCore by a direct call; the broker answers (CONNACK, PUBACK,
// SUBACK, messages, a lost connection) by posting events to the client's
// inbox, which the client's network owner (loop_start's thread, loop_forever,
// loop, or a blocking connect/disconnect) runs in order. So callbacks run on
// a network thread as with libmosquitto, and per-client order is the order the
// broker posted in.
//
// Connections. Each accepted CONNECT gets a connection number; a packet that
// arrives for a connection the broker no longer holds is ignored (it was
// "on the wire" when the connection dropped). Unacknowledged QoS 1/2 messages
// stay with the client and are sent again on the next connection.
//
// Locks. Order: a client's subs_mutex_ or flow_mutex_ -> the broker's mutex ->
// a client's inbox mutex_. The broker only ever posts to clients (a leaf
// lock); no lock is held while user code runs.
#include "iotbridge/mqtt/testing.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <stop_token>
#include <thread>
#include <unordered_map>

#include "iotbridge/error.hpp"
#include "iotbridge/queue.hpp"
#include "iotbridge/topic.hpp"
#include "iotbridge/topic_tree.hpp"
#include "mqtt/options_check.hpp"
#include "mqtt/token_state.hpp"

namespace iotbridge::mqtt::testing {
namespace detail {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using TokenPtr = std::shared_ptr<mqtt::detail::TokenState>;

// How long disconnect() waits for its own DISCONNECT to be handled when
// another thread runs the network.
constexpr milliseconds kDisconnectWait{2000};

// Text safe to show in an error message (topics may hold invalid UTF-8).
std::string shown(std::string_view text) {
  std::string out;
  for (unsigned char c : text.substr(0, 200)) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > 200) out += "...";
  return out;
}

std::string hex(int code) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%02X", code);
  return buf;
}

// CONNACK / PUBACK codes in words (MQTT 3.1.1 has 1..5; MQTT 5 uses >= 0x80).
std::string reason_words(int code) {
  switch (code) {
    case 0: return "success";
    case 1: return "unacceptable protocol version";
    case 2: return "client identifier rejected";
    case 3: return "broker unavailable";
    case 4:
    case 0x86: return "bad user name or password (not authorised)";
    case 5:
    case 0x87: return "not authorised";
    case 0x80: return "unspecified error";
    case 0x84: return "unsupported protocol version";
    case 0x85: return "client identifier not valid";
    case 0x88: return "server unavailable";
    case 0x8E: return "session taken over";
    case 0x90: return "topic name invalid";
    case 0x97: return "quota exceeded";
    default: return "refused";
  }
}

// A CONNACK code as the client's protocol carries it.
int connack_code(int code, Protocol protocol) {
  static const std::pair<int, int> pairs[] = {{1, 0x84}, {2, 0x85}, {3, 0x88}, {4, 0x86}, {5, 0x87}};
  bool v5 = protocol == Protocol::v5;
  for (auto [v3, v5code] : pairs) {
    if (v5 && code == v3) return v5code;
    if (!v5 && code == v5code) return v3;
  }
  if (!v5 && code >= 0x80) return 5;
  return code;
}

void check_qos(int qos) {
  if (qos < 0 || qos > 2) throw Error(ErrorCategory::config, "QoS must be 0, 1 or 2, not " + std::to_string(qos));
}

// The option checks of the real client that do not concern the network.
void check_options(const Options& o) {
  auto bad = [](const std::string& why) { throw Error(ErrorCategory::config, "invalid MQTT options: " + why); };
  if (o.client_id.empty() && !o.clean_session)
    bad("a persistent session (clean_session = false) needs a fixed client_id");
  if (o.client_id.size() > 65535) bad("client_id is longer than 65535 bytes");
  if (o.password && o.username.empty()) bad("a password needs a user name");
  if (o.will) {
    if (auto problem = topic_problem(o.will->topic)) bad("will topic '" + shown(o.will->topic) + "': " + *problem);
    if (o.will->qos < 0 || o.will->qos > 2) bad("will QoS must be 0, 1 or 2");
  }
  mqtt::detail::check_flow_control(o);
  if (o.max_payload_size > 268435455) bad("max_payload_size exceeds the MQTT limit of 268435455 bytes");
}

// The network owner of the fake client running on this thread, if any.
thread_local const void* t_owner = nullptr;
thread_local std::stop_token t_owner_stop;

class OwnerScope {
 public:
  OwnerScope(const void* client, std::stop_token stop) : previous_(t_owner), previous_stop_(std::move(t_owner_stop)) {
    t_owner = client;
    t_owner_stop = std::move(stop);
  }
  ~OwnerScope() {
    t_owner = previous_;
    t_owner_stop = std::move(previous_stop_);
  }
  OwnerScope(const OwnerScope&) = delete;
  OwnerScope& operator=(const OwnerScope&) = delete;

 private:
  const void* previous_;
  std::stop_token previous_stop_;
};

}  // namespace

class FakeClient;

// ---------------------------------------------------------------------------
// The broker: sessions, subscriptions, retained messages, routing.
// ---------------------------------------------------------------------------
class BrokerCore {
 public:
  enum class Attach { accepted, refused, down };
  struct AttachResult {
    Attach status = Attach::down;
    std::uint64_t connack_event = 0;  // the client's inbox event that carries the CONNACK
  };

  void add_client(FakeClient* c) {
    std::lock_guard lock(mutex_);
    clients_.insert(c);
  }
  void remove_client(FakeClient* c);
  AttachResult attach(FakeClient* c);
  // A clean DISCONNECT; returns the inbox event of the client's on_disconnect, 0 when not connected.
  std::uint64_t detach(FakeClient* c, std::uint64_t conn);
  void publish_from(FakeClient* c, std::uint64_t conn, Message m, std::uint64_t ack_key);
  void subscribe_from(FakeClient* c, std::uint64_t conn, int mid, std::vector<std::string> filters, int qos);
  void unsubscribe_from(FakeClient* c, std::uint64_t conn, int mid, std::string filter);

  // FakeBroker's API.
  std::optional<Message> retained(std::string_view topic) const {
    std::lock_guard lock(mutex_);
    auto it = retained_.find(topic);
    if (it == retained_.end()) return std::nullopt;
    return it->second;
  }
  std::size_t retained_count() const {
    std::lock_guard lock(mutex_);
    return retained_.size();
  }
  std::vector<std::string> connected_clients() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [id, s] : sessions_)
      if (s.client) out.push_back(id);
    return out;
  }
  std::vector<std::string> subscriptions(std::string_view client_id) const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    if (auto it = sessions_.find(client_id); it != sessions_.end())
      for (const auto& [filter, qos] : it->second.subscriptions) out.push_back(filter);
    return out;
  }
  std::vector<Message> published() const {
    std::lock_guard lock(mutex_);
    return published_;
  }
  bool wait_published(std::size_t count, milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    return published_cv_.wait_for(lock, timeout, [&] { return published_.size() >= count; });
  }
  void publish_external(Message m) {
    std::lock_guard lock(mutex_);
    hold_or_run([this, m = std::move(m)] { route(m); });
  }
  bool drop(std::string_view client_id);
  void stop();
  void start();
  bool running() const {
    std::lock_guard lock(mutex_);
    return running_;
  }
  void refuse_connections(int code) {
    std::lock_guard lock(mutex_);
    refuse_connect_ = code;
  }
  void accept_connections();
  void refuse_subscriptions(std::string filter, int code) {
    std::lock_guard lock(mutex_);
    refuse_subscribe_[std::move(filter)] = code;
  }
  void refuse_publications(std::string filter, int code) {
    validate_filter(filter);
    std::lock_guard lock(mutex_);
    refuse_publish_.emplace_back(std::move(filter), code);
  }
  void clear_refusals() {
    std::lock_guard lock(mutex_);
    refuse_subscribe_.clear();
    refuse_publish_.clear();
  }
  void set_max_qos(int qos) {
    check_qos(qos);
    std::lock_guard lock(mutex_);
    max_qos_ = qos;
  }
  void pause() {
    std::lock_guard lock(mutex_);
    paused_ = true;
  }
  void resume() {
    std::lock_guard lock(mutex_);
    paused_ = false;
    while (!held_.empty()) {
      auto packet = std::move(held_.front());
      held_.pop_front();
      packet();
    }
  }

 private:
  struct Entry {  // one subscription in the tree, keyed by its (inner) filter
    std::string client_id;
    std::string filter;  // as subscribed, "$share/..." included
    std::string group;   // empty: not shared
    int qos = 0;
  };
  struct Session {
    FakeClient* client = nullptr;  // the live connection, if any
    std::uint64_t conn = 0;
    bool persistent = false;
    Protocol protocol = Protocol::v311;
    std::optional<Will> will;
    std::map<std::string, int> subscriptions;  // filter as subscribed -> granted QoS
    std::deque<Message> queued;                // QoS 1/2 that arrived while away (persistent)
    int next_mid = 0;
  };

  void hold_or_run(std::function<void()> packet) {
    if (paused_)
      held_.push_back(std::move(packet));
    else
      packet();
  }
  Session* live(FakeClient* c, std::uint64_t conn);
  void route(const Message& m);
  void deliver(Session& s, Message m, int qos, bool retain);
  void lose(const std::string& id, Session& s, int reason_code, const std::string& reason, bool may_reconnect);
  void end_session(const std::string& id);
  void forget_subscription(const std::string& id, const std::string& filter);
  void poke_all();

  mutable std::mutex mutex_;
  mutable std::condition_variable published_cv_;
  std::set<FakeClient*> clients_;
  std::map<std::string, Session, std::less<>> sessions_;
  TopicTree<std::vector<Entry>> tree_;
  std::map<std::string, Message, std::less<>> retained_;
  std::vector<Message> published_;
  std::map<std::string, std::size_t> share_turn_;  // round robin per "group/filter"
  bool running_ = true;
  std::optional<int> refuse_connect_;
  std::map<std::string, int> refuse_subscribe_;
  std::vector<std::pair<std::string, int>> refuse_publish_;
  int max_qos_ = 2;
  bool paused_ = false;
  std::deque<std::function<void()>> held_;
  std::uint64_t next_conn_ = 0;
};

// ---------------------------------------------------------------------------
// The client.
// ---------------------------------------------------------------------------
class FakeClient final : public Client {
 public:
  FakeClient(std::shared_ptr<BrokerCore> broker, Options options)
      : broker_(std::move(broker)), options_(std::move(options)) {
    check_options(options_);
    static std::atomic<std::uint64_t> counter{0};
    client_id_ = options_.client_id.empty() ? "fake-client-" + std::to_string(++counter) : options_.client_id;
    broker_->add_client(this);
  }

  ~FakeClient() override {
    {
      std::lock_guard lock(cb_mutex_);
      if (queue_) queue_->close();
      consuming_ = false;
    }
    if (t_owner != this) {
      try {
        disconnect();
      } catch (...) {
      }
      loop_stop();
    }
    broker_->remove_client(this);  // no event is posted to us after this
    {
      std::lock_guard lock(flow_mutex_);
      closing_ = true;
    }
    flow_cv_.notify_all();
    fail_all_pending("the MQTT client was destroyed before the broker answered");
  }

  const Options& options() const noexcept override { return options_; }
  const std::string& client_id() const noexcept override { return client_id_; }

  // ---- what the broker calls ----

  // Appends an event to the inbox; returns its number.
  std::uint64_t post(std::function<void()> event) {
    std::uint64_t number;
    {
      std::lock_guard lock(mutex_);
      number = ++posted_;
      inbox_.push_back({number, std::move(event)});
    }
    cv_.notify_all();
    return number;
  }
  Protocol protocol() const noexcept { return options_.protocol; }
  bool clean_session() const noexcept { return options_.clean_session; }
  const std::optional<Will>& will() const noexcept { return options_.will; }

  void handle_connack(const ConnectResult& result, std::uint64_t conn) {
    if (result.reason_code == 0) {
      {
        std::lock_guard lock(mutex_);
        connected_ = true;
        connecting_ = false;
        last_connect_ = result;
        live_conn_ = conn;
      }
      cv_.notify_all();
      restore_subscriptions(result.session_present, conn);
      send_unacknowledged(conn);
    } else {
      std::lock_guard lock(mutex_);
      connecting_ = false;
    }
    call_user("on_connect", get(connect_cb_), result);
  }

  void handle_lost(const DisconnectInfo& info, bool may_reconnect) {
    bool was;
    {
      std::lock_guard lock(mutex_);
      was = connected_ || connecting_;
      connected_ = connecting_ = false;
      if (info.reason_code == 0x8E) want_connected_ = false;  // taken over: do not fight for the id
      live_conn_ = 0;
    }
    cv_.notify_all();
    if (!was) return;
    if (info.unexpected) log(LogLevel::warning, "connection to the fake broker lost: " + info.reason);
    call_user("on_disconnect", get(disconnect_cb_), info);
    if (may_reconnect && options_.auto_reconnect) try_connect();
  }

  // The broker takes connections again, or connect_async() asked for one.
  void handle_poke(bool retry) {
    if (retry && !options_.auto_reconnect) return;
    try_connect();
  }

  void handle_message(const Message& m) {
    std::vector<std::shared_ptr<const MessageHandler>> handlers;
    {
      std::lock_guard lock(subs_mutex_);
      if (!tree_.empty())
        tree_.match(m.topic, [&](std::vector<HandlerEntry>& entries) {
          for (auto& e : entries)
            if (e.handler) handlers.push_back(e.handler);
        });
    }
    if (!handlers.empty()) {
      for (const auto& h : handlers) call_user("message handler", h, m);
      return;
    }
    std::shared_ptr<BoundedQueue<Message>> queue;
    std::shared_ptr<const MessageHandler> fallback;
    {
      std::lock_guard lock(cb_mutex_);
      if (consuming_)
        queue = queue_;
      else
        fallback = message_cb_;
    }
    if (queue) {
      if (!queue->push(m, t_owner_stop))
        log(LogLevel::warning, "consumer queue closed or loop stopped: a message was not queued");
      return;
    }
    call_user("on_message", fallback, m);
  }

  void handle_puback(std::uint64_t key, int reason) {
    Outgoing out;
    {
      std::lock_guard lock(flow_mutex_);
      auto it = outgoing_.find(key);
      if (it == outgoing_.end()) return;
      out = std::move(it->second);
      outgoing_.erase(it);
      if (out.qos > 0) --unacked_;
    }
    if (out.qos > 0) flow_cv_.notify_all();
    call_user("on_publish", get(publish_cb_), PublishResult{out.mid, reason});
    // After on_publish, so that a waiter sees its effects.
    if (reason >= 0x80)
      out.state->fail("the broker refused message " + std::to_string(out.mid) + ": " + reason_words(reason) +
                      " (reason " + hex(reason) + ")");
    else
      out.state->complete(reason);
  }

  void handle_suback(int mid, const std::vector<std::string>& filters, const std::vector<int>& codes) {
    SubscribeResult result{mid, filters, codes};
    std::vector<std::pair<Waiter, int>> answers;
    {
      std::lock_guard lock(subs_mutex_);
      pending_subs_.erase(mid);
      for (std::size_t i = 0; i < filters.size(); ++i) {
        auto rec = subs_.find(filters[i]);
        if (rec == subs_.end()) continue;
        rec->second.confirmed = !SubscribeResult::is_failure(codes[i]);
        for (auto& w : rec->second.waiters) answers.emplace_back(std::move(w), codes[i]);
        rec->second.waiters.clear();
      }
    }
    for (std::size_t i = 0; i < filters.size(); ++i)
      if (SubscribeResult::is_failure(codes[i]))
        log(LogLevel::warning,
            "the broker refused the subscription to '" + filters[i] + "' (code " + hex(codes[i]) + ")");
    call_user("on_subscribe", get(subscribe_cb_), result);
    for (auto& [w, code] : answers) w.state->grant(w.index, code);
  }

  void handle_unsuback(int mid) {
    TokenPtr state;
    {
      std::lock_guard lock(subs_mutex_);
      if (auto it = pending_unsubs_.find(mid); it != pending_unsubs_.end()) {
        state = std::move(it->second);
        pending_unsubs_.erase(it);
      }
    }
    if (state) state->complete();
  }

  // ---- connection ----

  ConnectResult connect() override {
    if (t_owner == this)
      throw Error(
          ErrorCategory::config,
          "connect() cannot wait for the broker on the network thread (inside a callback); use connect_async()");
    {
      std::unique_lock lock(mutex_);
      if (connecting_) {  // connect_async() or a reconnect is under way: let it finish first
        std::uint64_t last = posted_;
        lock.unlock();
        run_until(last, options_.connect_timeout);
        lock.lock();
      }
      if (connected_) return last_connect_;
      want_connected_ = true;
      connecting_ = true;
    }
    auto attached = broker_->attach(this);
    if (attached.status == BrokerCore::Attach::down) {
      {
        std::lock_guard lock(mutex_);
        want_connected_ = connecting_ = false;
      }
      throw Error(ErrorCategory::mqtt,
                  "cannot connect to the fake broker: connection refused: nothing accepts connections there (is the "
                  "broker running? FakeBroker::stop() was called)");
    }
    if (!run_until(attached.connack_event, options_.connect_timeout)) {
      std::lock_guard lock(mutex_);
      want_connected_ = false;
      throw Error(ErrorCategory::mqtt, "cannot connect to the fake broker: no answer within " +
                                           std::to_string(options_.connect_timeout.count()) +
                                           " ms (Options::connect_timeout): no thread ran the client's network loop");
    }
    std::lock_guard lock(mutex_);
    if (attached.status == BrokerCore::Attach::accepted) return last_connect_;
    want_connected_ = false;
    int code = refused_code_;
    throw Error(ErrorCategory::mqtt,
                "cannot connect to the fake broker: the broker refused the connection: " + reason_words(code) +
                    " (CONNACK code " + (code >= 0x80 ? hex(code) : std::to_string(code)) + ")",
                code);
  }

  void connect_async() override {
    {
      std::lock_guard lock(mutex_);
      want_connected_ = true;
      if (connected_ || connecting_) return;
    }
    post([this] { handle_poke(false); });
  }

  ConnectResult reconnect() override {
    if (t_owner == this)
      throw Error(ErrorCategory::config,
                  "reconnect() cannot wait for the broker on the network thread (inside a callback); call "
                  "disconnect() and connect_async() there instead");
    disconnect();
    return connect();
  }

  void disconnect() override {
    {
      std::lock_guard lock(mutex_);
      want_connected_ = false;
    }
    std::uint64_t event = broker_->detach(this, live_conn_.load());
    cv_.notify_all();
    if (event == 0 || t_owner == this) return;  // from a callback: the loop runs it once the callback returns
    run_until(event, kDisconnectWait);
  }

  bool connected() const noexcept override { return live_conn_.load() != 0; }

  bool wait_connected(milliseconds timeout) const override {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return connected_; });
  }

  // ---- network loop ----

  bool loop(milliseconds timeout) override {
    if (t_owner == this) return connected();
    std::unique_lock lock(mutex_);
    if (owner_ != Owner::none)
      throw Error(ErrorCategory::config, "loop() cannot run while loop_start() or loop_forever() runs the network");
    owner_ = Owner::manual;
    {
      OwnerScope scope(this, {});
      cv_.wait_for(lock, timeout, [&] { return !inbox_.empty(); });
      std::uint64_t last = posted_;
      while (!inbox_.empty() && inbox_.front().number <= last) run_one(lock);
    }
    owner_ = Owner::none;
    lock.unlock();
    cv_.notify_all();
    return connected();
  }

  void loop_start() override {
    if (t_owner == this) return;
    if (thread_.joinable() && thread_.get_stop_token().stop_requested()) thread_.join();
    std::lock_guard lock(mutex_);
    if (owner_ == Owner::background) return;
    if (owner_ != Owner::none)
      throw Error(ErrorCategory::config, "loop_start(): the network is already run by loop_forever() or loop()");
    owner_ = Owner::background;
    thread_ = std::jthread([this](std::stop_token stop) {
      std::unique_lock guard(mutex_);
      {
        OwnerScope scope(this, stop);
        while (!stop.stop_requested()) {
          cv_.wait(guard, stop, [&] { return !inbox_.empty(); });
          if (stop.stop_requested()) break;
          run_one(guard);
        }
      }
      owner_ = Owner::none;
      guard.unlock();
      cv_.notify_all();
    });
  }

  void loop_stop() override {
    if (!thread_.joinable()) return;
    thread_.request_stop();
    if (t_owner == this) return;  // from a callback: joined later
    thread_.join();
  }

  void loop_forever(std::stop_token stop) override {
    std::unique_lock lock(mutex_);
    if (owner_ != Owner::none)
      throw Error(ErrorCategory::config, "loop_forever(): the network is already run by loop_start() or loop()");
    if (!want_connected_ && !connected_ && !connecting_)
      throw Error(ErrorCategory::config, "loop_forever() needs connect() or connect_async() first");
    owner_ = Owner::forever;
    lock.unlock();
    {
      // The scope first: a stop already requested runs disconnect() here, on the network thread.
      OwnerScope scope(this, {});
      std::stop_callback on_stop(stop, [this] { disconnect(); });
      lock.lock();
      auto finished = [&] { return !want_connected_ && !connected_ && !connecting_ && inbox_.empty(); };
      while (!finished()) {
        cv_.wait(lock, [&] { return !inbox_.empty() || finished(); });
        if (!inbox_.empty()) run_one(lock);
      }
      owner_ = Owner::none;
      lock.unlock();
    }
    cv_.notify_all();
  }

  // ---- publish ----

  DeliveryToken publish(std::string_view topic, std::string_view payload, int qos, bool retain,
                        const Properties& properties) override {
    if (auto problem = topic_problem(topic))
      throw Error(ErrorCategory::topic, "cannot publish to '" + shown(topic) + "': " + *problem);
    check_qos(qos);
    if (payload.size() > options_.max_payload_size)
      throw Error(ErrorCategory::mqtt, "payload of " + std::to_string(payload.size()) + " bytes exceeds the limit of " +
                                           std::to_string(options_.max_payload_size) +
                                           " bytes (Options::max_payload_size); nothing was sent");
    Message m{std::string(topic), std::string(payload), qos, retain, 0, {}};
    if (options_.protocol == Protocol::v5) {
      if (properties.response_topic)
        if (auto problem = topic_problem(*properties.response_topic))
          throw Error(ErrorCategory::topic,
                      "invalid response topic '" + shown(*properties.response_topic) + "': " + *problem);
      m.properties = properties;
    }
    auto state = std::make_shared<mqtt::detail::TokenState>();
    std::uint64_t key, conn;
    {
      std::unique_lock lock(flow_mutex_);
      if (qos > 0) wait_for_room(lock);
      conn = live_conn_.load();
      bool offline = qos == 0 && conn == 0;
      if (offline) {
        if (!options_.queue_qos0_offline)
          throw Error(ErrorCategory::mqtt, "cannot publish QoS 0 to '" + shown(topic) +
                                               "': not connected to the fake broker (set "
                                               "Options::queue_qos0_offline to queue it)");
        if (offline_count_ >= options_.max_offline_queue)
          throw Error(ErrorCategory::mqtt, "offline queue full (" + std::to_string(offline_count_) +
                                               " QoS 0 messages wait for a connection; Options::max_offline_queue)");
        ++offline_count_;
      }
      m.mid = state->mid = next_mid();
      key = ++next_key_;
      outgoing_[key] = Outgoing{m, state, qos, m.mid, conn, offline};
    }
    if (conn != 0) broker_->publish_from(this, conn, std::move(m), key);
    return DeliveryToken(state);
  }

  // ---- subscribe ----

  SubscribeToken subscribe(std::string_view filter, int qos, MessageHandler handler) override {
    return subscribe(std::vector<Subscription>{Subscription{std::string(filter), qos, std::move(handler)}});
  }

  SubscribeToken subscribe(const std::vector<Subscription>& subscriptions) override {
    if (subscriptions.empty()) throw Error(ErrorCategory::config, "subscribe() needs at least one filter");
    for (const auto& s : subscriptions) {
      if (auto problem = filter_problem(s.filter))
        throw Error(ErrorCategory::topic, "cannot subscribe to '" + shown(s.filter) + "': " + *problem);
      check_qos(s.qos);
    }
    auto state = std::make_shared<mqtt::detail::TokenState>();
    state->granted.assign(subscriptions.size(), 0x80);
    state->remaining = subscriptions.size();
    std::lock_guard lock(subs_mutex_);
    for (std::size_t i = 0; i < subscriptions.size(); ++i) {
      const auto& s = subscriptions[i];
      auto& record = subs_[s.filter];
      record.qos = s.qos;
      record.confirmed = false;
      record.waiters.push_back({state, i});
      set_handler_locked(s.filter, s.handler ? std::make_shared<const MessageHandler>(s.handler) : nullptr);
    }
    if (std::uint64_t conn = live_conn_.load()) {
      std::map<int, std::vector<std::string>> by_qos;
      for (const auto& s : subscriptions) by_qos[s.qos].push_back(s.filter);
      for (auto& [q, filters] : by_qos) send_subscribe_locked(conn, filters, q);
    }
    return SubscribeToken(state);
  }

  SubscribeToken unsubscribe(std::string_view filter) override {
    if (auto problem = filter_problem(filter))
      throw Error(ErrorCategory::topic, "cannot unsubscribe from '" + shown(filter) + "': " + *problem);
    std::string f(filter);
    std::lock_guard lock(subs_mutex_);
    if (auto it = subs_.find(f); it != subs_.end()) {
      for (auto& w : it->second.waiters) w.state->fail("unsubscribed from '" + f + "' before the broker answered");
      subs_.erase(it);
    }
    set_handler_locked(f, nullptr);
    std::uint64_t conn = live_conn_.load();
    if (conn == 0) return SubscribeToken();
    auto state = std::make_shared<mqtt::detail::TokenState>();
    state->mid = next_mid();
    pending_unsubs_[state->mid] = state;
    broker_->unsubscribe_from(this, conn, state->mid, f);
    return SubscribeToken(state);
  }

  std::vector<std::string> subscriptions() const override {
    std::lock_guard lock(subs_mutex_);
    std::vector<std::string> out;
    for (const auto& [filter, record] : subs_) out.push_back(filter);
    return out;
  }

  // ---- callbacks ----

  void on_connect(ConnectHandler h) override { set(connect_cb_, std::move(h)); }
  void on_disconnect(DisconnectHandler h) override { set(disconnect_cb_, std::move(h)); }
  void on_message(MessageHandler h) override { set(message_cb_, std::move(h)); }
  void on_subscribe(SubscribeHandler h) override { set(subscribe_cb_, std::move(h)); }
  void on_publish(PublishHandler h) override { set(publish_cb_, std::move(h)); }
  void on_log(LogHandler h) override { set(log_cb_, std::move(h)); }

  // ---- consuming ----

  void start_consuming(std::size_t capacity) override {
    auto queue = std::make_shared<BoundedQueue<Message>>(capacity, OverflowPolicy::block);
    std::lock_guard lock(cb_mutex_);
    if (queue_) queue_->close();
    queue_ = std::move(queue);
    consuming_ = true;
  }

  std::optional<Message> consume(milliseconds timeout) override {
    std::shared_ptr<BoundedQueue<Message>> queue;
    {
      std::lock_guard lock(cb_mutex_);
      queue = queue_;
    }
    if (!queue) throw Error(ErrorCategory::config, "consume() needs start_consuming() first");
    return queue->try_pop_for(timeout);
  }

  void stop_consuming() override {
    std::lock_guard lock(cb_mutex_);
    consuming_ = false;
    if (queue_) queue_->close();
  }

  std::size_t unacknowledged() const override {
    std::lock_guard lock(flow_mutex_);
    return unacked_;
  }

  // The CONNACK code of the last refused CONNECT (set by the broker).
  void set_refused_code(int code) {
    std::lock_guard lock(mutex_);
    refused_code_ = code;
  }

 private:
  enum class Owner { none, background, forever, manual };
  struct Event {
    std::uint64_t number;
    std::function<void()> run;
  };
  struct Waiter {
    TokenPtr state;
    std::size_t index;
  };
  struct SubRecord {
    int qos = 0;
    bool confirmed = false;
    std::vector<Waiter> waiters;
  };
  struct HandlerEntry {
    std::string filter;  // as subscribed (may be "$share/...")
    std::shared_ptr<const MessageHandler> handler;
  };
  struct Outgoing {
    Message message;
    TokenPtr state;
    int qos = 0;
    int mid = 0;
    std::uint64_t sent_on = 0;  // the connection it went out on (0: not sent yet)
    bool offline = false;       // QoS 0 counted in offline_count_
  };

  // Runs the front event with the lock released. mutex_ held on entry and exit.
  void run_one(std::unique_lock<std::mutex>& lock) {
    Event event = std::move(inbox_.front());
    inbox_.pop_front();
    lock.unlock();
    try {
      event.run();
    } catch (const std::exception& e) {
      log(LogLevel::error, std::string("internal error in the fake client: ") + e.what());
    }
    lock.lock();
    done_ = event.number;
    cv_.notify_all();
  }

  // Waits until event `number` ran, running the network on this thread when
  // no one else does. false after `timeout`.
  bool run_until(std::uint64_t number, milliseconds timeout) {
    std::unique_lock lock(mutex_);
    auto deadline = Clock::now() + timeout;
    while (done_ < number) {
      if (owner_ == Owner::none) {
        owner_ = Owner::manual;
        {
          OwnerScope scope(this, {});
          while (done_ < number && !inbox_.empty()) run_one(lock);
        }
        owner_ = Owner::none;
        cv_.notify_all();
        continue;
      }
      if (cv_.wait_until(lock, deadline, [&] { return done_ >= number || owner_ == Owner::none; })) continue;
      return false;
    }
    return true;
  }

  // On the network thread: connect unless connected, connecting or unwanted.
  void try_connect() {
    {
      std::lock_guard lock(mutex_);
      if (!want_connected_ || connected_ || connecting_) return;
      connecting_ = true;
    }
    if (broker_->attach(this).status == BrokerCore::Attach::down) {
      {
        std::lock_guard lock(mutex_);
        connecting_ = false;
      }
      log(LogLevel::warning,
          "cannot connect to the fake broker: connection refused (FakeBroker::stop() was called); retrying on start()");
    }
  }

  void restore_subscriptions(bool session_present, std::uint64_t conn) {
    std::lock_guard lock(subs_mutex_);
    std::map<int, std::vector<std::string>> by_qos;
    for (auto& [filter, record] : subs_) {
      if (session_present && record.confirmed) continue;
      record.confirmed = false;
      by_qos[record.qos].push_back(filter);
    }
    for (auto& [qos, filters] : by_qos) send_subscribe_locked(conn, filters, qos);
  }

  // subs_mutex_ held.
  void send_subscribe_locked(std::uint64_t conn, const std::vector<std::string>& filters, int qos) {
    int mid = next_mid();
    pending_subs_[mid] = filters;
    broker_->subscribe_from(this, conn, mid, filters, qos);
  }

  // Sends, in order, what was published and not sent on this connection.
  // QoS 0 that went out on a connection since lost is gone, as from a socket.
  void send_unacknowledged(std::uint64_t conn) {
    std::vector<std::pair<std::uint64_t, Message>> out;
    std::vector<TokenPtr> written;
    {
      std::lock_guard lock(flow_mutex_);
      for (auto it = outgoing_.begin(); it != outgoing_.end();) {
        Outgoing& o = it->second;
        if (o.qos == 0 && o.sent_on != 0 && o.sent_on != conn) {
          written.push_back(o.state);
          it = outgoing_.erase(it);
          continue;
        }
        if (o.sent_on != conn) {
          if (o.offline) --offline_count_;
          o.offline = false;
          o.sent_on = conn;
          out.emplace_back(it->first, o.message);
        }
        ++it;
      }
    }
    for (auto& state : written) state->complete();
    for (auto& [key, m] : out) broker_->publish_from(this, conn, std::move(m), key);
  }

  // flow_mutex_ held: a QoS 1/2 slot under Options::max_queued.
  void wait_for_room(std::unique_lock<std::mutex>& lock) {
    auto full = [&] {
      return Error(ErrorCategory::mqtt,
                   std::to_string(unacked_) +
                       " QoS 1/2 messages already wait for the broker's acknowledgement (Options::max_queued); "
                       "publish refused");
    };
    if (unacked_ >= options_.max_queued) {
      if (options_.when_full == WhenFull::fail) throw full();
      // On the network thread, waiting would wait for acknowledgements only it can run.
      if (t_owner == this) {
        if (unacked_ >= mqtt::detail::network_thread_limit(options_)) throw full();
      } else if (!flow_cv_.wait_for(lock, options_.publish_timeout,
                                    [&] { return unacked_ < options_.max_queued || closing_; })) {
        throw Error(ErrorCategory::mqtt,
                    "timed out after " + std::to_string(options_.publish_timeout.count()) +
                        " ms waiting for the broker to acknowledge earlier messages (Options::publish_timeout)");
      }
      if (closing_) throw Error(ErrorCategory::mqtt, "the MQTT client is being destroyed");
    }
    ++unacked_;
  }

  int next_mid() {
    int mid = mid_counter_.fetch_add(1) % 65535 + 1;
    return mid;
  }

  void set_handler_locked(const std::string& filter, std::shared_ptr<const MessageHandler> handler) {
    std::string key = filter;
    if (auto shared = parse_shared(filter)) key = shared->filter;
    std::vector<HandlerEntry>* entries = tree_.find(key);
    if (entries) std::erase_if(*entries, [&](const HandlerEntry& e) { return e.filter == filter; });
    if (handler) {
      if (!entries) {
        tree_.insert(key, {});
        entries = tree_.find(key);
      }
      entries->push_back({filter, std::move(handler)});
    } else if (entries && entries->empty()) {
      tree_.remove(key);
    }
  }

  void fail_all_pending(const std::string& why) {
    std::map<std::uint64_t, Outgoing> outgoing;
    {
      std::lock_guard lock(flow_mutex_);
      outgoing.swap(outgoing_);
    }
    for (auto& [key, o] : outgoing) o.state->fail(why);
    std::lock_guard lock(subs_mutex_);
    for (auto& [filter, record] : subs_)
      for (auto& w : record.waiters) w.state->fail(why);
    for (auto& [mid, state] : pending_unsubs_) state->fail(why);
  }

  template <typename Handler, typename... Args>
  void call_user(const char* name, const std::shared_ptr<const Handler>& handler, Args&&... args) {
    if (!handler || !*handler) return;
    try {
      (*handler)(std::forward<Args>(args)...);
    } catch (const std::exception& e) {
      log(LogLevel::error, std::string("exception from the ") + name + " callback (caught): " + e.what());
    } catch (...) {
      log(LogLevel::error, std::string("unknown exception from the ") + name + " callback (caught)");
    }
  }

  void log(LogLevel level, const std::string& text) {
    auto handler = get(log_cb_);
    if (handler && *handler) {
      try {
        (*handler)(level, text);
      } catch (...) {
      }
      return;
    }
    if (level == LogLevel::error || level == LogLevel::warning)
      std::cerr << "iotbridge mqtt fake [" << client_id_ << "]: " << text << "\n";
  }

  template <typename F>
  void set(std::shared_ptr<const F>& slot, F handler) {
    auto value = handler ? std::make_shared<const F>(std::move(handler)) : nullptr;
    std::lock_guard lock(cb_mutex_);
    slot = std::move(value);
  }
  template <typename F>
  std::shared_ptr<const F> get(const std::shared_ptr<const F>& slot) const {
    std::lock_guard lock(cb_mutex_);
    return slot;
  }

  const std::shared_ptr<BrokerCore> broker_;
  const Options options_;
  std::string client_id_;

  // Connection state and the inbox.
  mutable std::mutex mutex_;
  mutable std::condition_variable_any cv_;
  std::deque<Event> inbox_;
  std::uint64_t posted_ = 0;  // number of the last event posted
  std::uint64_t done_ = 0;    // number of the last event run
  Owner owner_ = Owner::none;
  bool want_connected_ = false;
  bool connecting_ = false;  // CONNECT sent, CONNACK not run yet
  bool connected_ = false;
  ConnectResult last_connect_;
  int refused_code_ = 0;
  std::atomic<std::uint64_t> live_conn_{0};  // the connection in use, 0 when none
  std::jthread thread_;

  // Callbacks and the consumer queue.
  mutable std::mutex cb_mutex_;
  std::shared_ptr<const ConnectHandler> connect_cb_;
  std::shared_ptr<const DisconnectHandler> disconnect_cb_;
  std::shared_ptr<const MessageHandler> message_cb_;
  std::shared_ptr<const SubscribeHandler> subscribe_cb_;
  std::shared_ptr<const PublishHandler> publish_cb_;
  std::shared_ptr<const LogHandler> log_cb_;
  std::shared_ptr<BoundedQueue<Message>> queue_;
  bool consuming_ = false;

  // Subscriptions.
  mutable std::mutex subs_mutex_;
  std::map<std::string, SubRecord> subs_;
  TopicTree<std::vector<HandlerEntry>> tree_;
  std::unordered_map<int, std::vector<std::string>> pending_subs_;
  std::unordered_map<int, TokenPtr> pending_unsubs_;

  // Publications not acknowledged yet, in the order published.
  mutable std::mutex flow_mutex_;
  std::condition_variable flow_cv_;
  std::map<std::uint64_t, Outgoing> outgoing_;
  std::uint64_t next_key_ = 0;
  std::size_t unacked_ = 0;        // QoS 1/2 in outgoing_
  std::size_t offline_count_ = 0;  // QoS 0 in outgoing_ waiting for a connection
  bool closing_ = false;
  std::atomic<int> mid_counter_{0};
};

// ---------------------------------------------------------------------------
// BrokerCore, the parts that need FakeClient.
// ---------------------------------------------------------------------------

void BrokerCore::remove_client(FakeClient* c) {
  std::lock_guard lock(mutex_);
  clients_.erase(c);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    auto& [id, s] = *it;
    ++it;
    if (s.client != c) continue;
    s.client = nullptr;
    if (!s.persistent) end_session(id);
  }
}

BrokerCore::AttachResult BrokerCore::attach(FakeClient* c) {
  std::lock_guard lock(mutex_);
  if (!running_) return {};
  const std::string& id = c->client_id();
  std::uint64_t conn = ++next_conn_;
  if (refuse_connect_) {
    int code = connack_code(*refuse_connect_, c->protocol());
    c->set_refused_code(code);
    ConnectResult r{code, false, reason_words(code), {}};
    return {Attach::refused, c->post([c, r, conn] { c->handle_connack(r, conn); })};
  }
  if (auto it = sessions_.find(id); it != sessions_.end() && it->second.client && it->second.client != c) {
    lose(id, it->second, 0x8E, "session taken over by another connection with client id '" + id + "'", false);
  }
  if (c->clean_session()) end_session(id);
  auto [it, created] = sessions_.try_emplace(id);
  Session& s = it->second;
  s.client = c;
  s.conn = conn;
  s.persistent = !c->clean_session();
  s.protocol = c->protocol();
  s.will = c->will();
  ConnectResult r{0, !created, "success", {}};
  AttachResult result{Attach::accepted, c->post([c, r, conn] { c->handle_connack(r, conn); })};
  while (!s.queued.empty()) {
    Message m = std::move(s.queued.front());
    s.queued.pop_front();
    deliver(s, std::move(m), -1, false);
  }
  return result;
}

std::uint64_t BrokerCore::detach(FakeClient* c, std::uint64_t conn) {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(c->client_id());
  if (it == sessions_.end() || it->second.client != c || (conn != 0 && it->second.conn != conn)) {
    // Not connected (or only connecting): the CONNACK, if any, still runs first.
    return c->post([c] { c->handle_lost(DisconnectInfo{false, 0, "disconnected by the client"}, false); });
  }
  it->second.client = nullptr;
  if (!it->second.persistent) end_session(it->first);
  return c->post([c] { c->handle_lost(DisconnectInfo{false, 0, "disconnected by the client"}, false); });
}

BrokerCore::Session* BrokerCore::live(FakeClient* c, std::uint64_t conn) {
  if (!clients_.contains(c)) return nullptr;  // destroyed while its packet was held
  auto it = sessions_.find(c->client_id());
  if (it == sessions_.end() || it->second.client != c || it->second.conn != conn) return nullptr;
  return &it->second;
}

void BrokerCore::publish_from(FakeClient* c, std::uint64_t conn, Message m, std::uint64_t ack_key) {
  std::lock_guard lock(mutex_);
  hold_or_run([this, c, conn, m = std::move(m), ack_key] {
    Session* s = live(c, conn);
    if (!s) return;  // lost with its connection; the client sends it again
    int reason = 0;
    for (const auto& [filter, code] : refuse_publish_)
      if (topic_matches(filter, m.topic)) reason = s->protocol == Protocol::v5 ? code : -1;
    if (reason == 0) route(m);
    c->post([c, ack_key, reason] { c->handle_puback(ack_key, std::max(reason, 0)); });
  });
}

void BrokerCore::subscribe_from(FakeClient* c, std::uint64_t conn, int mid, std::vector<std::string> filters, int qos) {
  std::lock_guard lock(mutex_);
  hold_or_run([this, c, conn, mid, filters = std::move(filters), qos] {
    Session* s = live(c, conn);
    if (!s) return;
    const std::string& id = c->client_id();
    std::vector<int> codes;
    for (const auto& filter : filters) {
      if (auto refused = refuse_subscribe_.find(filter); refused != refuse_subscribe_.end()) {
        codes.push_back(s->protocol == Protocol::v5 ? refused->second : 0x80);
        continue;
      }
      int granted = std::min(qos, max_qos_);
      codes.push_back(granted);
      auto shared = parse_shared(filter);
      std::string key = shared ? shared->filter : filter;
      forget_subscription(id, filter);
      s->subscriptions[filter] = granted;
      if (!tree_.find(key)) tree_.insert(key, {});
      tree_.find(key)->push_back(Entry{id, filter, shared ? shared->group : std::string(), granted});
    }
    c->post([c, mid, filters, codes] { c->handle_suback(mid, filters, codes); });
    // Retained messages follow the SUBACK; a shared subscription gets none.
    for (std::size_t i = 0; i < filters.size(); ++i) {
      if (SubscribeResult::is_failure(codes[i]) || filters[i].starts_with("$share/")) continue;
      for (const auto& [topic, m] : retained_)
        if (topic_matches(filters[i], topic)) deliver(*s, m, std::min(m.qos, codes[i]), true);
    }
  });
}

void BrokerCore::unsubscribe_from(FakeClient* c, std::uint64_t conn, int mid, std::string filter) {
  std::lock_guard lock(mutex_);
  hold_or_run([this, c, conn, mid, filter = std::move(filter)] {
    Session* s = live(c, conn);
    if (!s) return;
    forget_subscription(c->client_id(), filter);
    s->subscriptions.erase(filter);
    c->post([c, mid] { c->handle_unsuback(mid); });
  });
}

// mutex_ held.
void BrokerCore::route(const Message& m) {
  published_.push_back(m);
  published_cv_.notify_all();
  if (m.retain) {
    if (m.payload.empty())
      retained_.erase(m.topic);
    else
      retained_.insert_or_assign(m.topic, m);
  }
  std::map<std::string, int> direct;                                       // client id -> highest QoS
  std::map<std::string, std::vector<std::pair<std::string, int>>> shared;  // "group/filter" -> members
  tree_.match(m.topic, [&](std::vector<Entry>& entries) {
    for (const auto& e : entries) {
      if (e.group.empty()) {
        auto [it, added] = direct.try_emplace(e.client_id, e.qos);
        if (!added) it->second = std::max(it->second, e.qos);
      } else {
        shared[e.group + "/" + e.filter].emplace_back(e.client_id, e.qos);
      }
    }
  });
  for (const auto& [id, qos] : direct) deliver(sessions_.at(id), m, std::min(m.qos, qos), false);
  for (auto& [key, members] : shared) {
    // One member: a connected one if any, in turn.
    std::vector<std::pair<std::string, int>> online;
    for (const auto& member : members)
      if (sessions_.at(member.first).client) online.push_back(member);
    auto& pool = online.empty() ? members : online;
    const auto& [id, qos] = pool[share_turn_[key]++ % pool.size()];
    deliver(sessions_.at(id), m, std::min(m.qos, qos), false);
  }
}

// mutex_ held. qos -1: as the message has it (queued while away).
void BrokerCore::deliver(Session& s, Message m, int qos, bool retain) {
  if (qos >= 0) m.qos = qos;
  m.retain = retain;
  m.mid = 0;
  if (s.protocol != Protocol::v5) m.properties = {};
  if (!s.client) {
    if (s.persistent && m.qos > 0) s.queued.push_back(std::move(m));
    return;
  }
  if (m.qos > 0) m.mid = s.next_mid = s.next_mid % 65535 + 1;
  FakeClient* c = s.client;
  c->post([c, m = std::move(m)] { c->handle_message(m); });
}

// mutex_ held: the connection of `s` is lost (not a DISCONNECT): the will goes out.
void BrokerCore::lose(const std::string& id, Session& s, int reason_code, const std::string& reason,
                      bool may_reconnect) {
  FakeClient* c = s.client;
  s.client = nullptr;
  DisconnectInfo info{true, reason_code, reason};
  c->post([c, info, may_reconnect] { c->handle_lost(info, may_reconnect); });
  std::optional<Will> will = s.will;
  if (!s.persistent) end_session(id);  // `s` is gone from here on
  if (will) route(Message{will->topic, will->payload, will->qos, will->retain, 0, {}});
}

// mutex_ held.
void BrokerCore::end_session(const std::string& id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  for (const auto& [filter, qos] : it->second.subscriptions) forget_subscription(id, filter);
  sessions_.erase(it);
}

// mutex_ held: the tree entry of one subscription.
void BrokerCore::forget_subscription(const std::string& id, const std::string& filter) {
  auto shared = parse_shared(filter);
  std::string key = shared ? shared->filter : filter;
  auto* entries = tree_.find(key);
  if (!entries) return;
  std::erase_if(*entries, [&](const Entry& e) { return e.client_id == id && e.filter == filter; });
  if (entries->empty()) tree_.remove(key);
}

bool BrokerCore::drop(std::string_view client_id) {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(client_id);
  if (it == sessions_.end() || !it->second.client) return false;
  std::string id(it->first);  // lose() may end the session
  lose(id, it->second, 7, "the broker closed the connection (FakeBroker::drop)", true);
  return true;
}

void BrokerCore::stop() {
  std::lock_guard lock(mutex_);
  running_ = false;
  std::vector<std::string> ids;
  for (const auto& [id, s] : sessions_)
    if (s.client) ids.push_back(id);
  for (const auto& id : ids) {
    auto it = sessions_.find(id);
    if (it != sessions_.end() && it->second.client)
      lose(id, it->second, 7, "the broker closed the connection (FakeBroker::stop)", true);
  }
  held_.clear();  // packets in a stopped broker's buffers are lost
}

void BrokerCore::start() {
  std::lock_guard lock(mutex_);
  running_ = true;
  poke_all();
}

void BrokerCore::accept_connections() {
  std::lock_guard lock(mutex_);
  refuse_connect_.reset();
  poke_all();
}

// mutex_ held: clients that want a connection try again.
void BrokerCore::poke_all() {
  for (FakeClient* c : clients_) c->post([c] { c->handle_poke(true); });
}

}  // namespace detail

// ---------------------------------------------------------------------------
// FakeBroker
// ---------------------------------------------------------------------------

FakeBroker::FakeBroker() : core_(std::make_shared<detail::BrokerCore>()) {}
FakeBroker::~FakeBroker() { core_->stop(); }

std::unique_ptr<Client> FakeBroker::make_client(Options options) {
  return std::make_unique<detail::FakeClient>(core_, std::move(options));
}

std::optional<Message> FakeBroker::retained(std::string_view topic) const { return core_->retained(topic); }
std::size_t FakeBroker::retained_count() const { return core_->retained_count(); }
std::vector<std::string> FakeBroker::connected_clients() const { return core_->connected_clients(); }
std::vector<std::string> FakeBroker::subscriptions(std::string_view client_id) const {
  return core_->subscriptions(client_id);
}
std::vector<Message> FakeBroker::published() const { return core_->published(); }
bool FakeBroker::wait_published(std::size_t count, std::chrono::milliseconds timeout) const {
  return core_->wait_published(count, timeout);
}

void FakeBroker::publish(const Message& message) {
  validate_topic(message.topic);
  detail::check_qos(message.qos);
  core_->publish_external(message);
}

bool FakeBroker::drop(std::string_view client_id) { return core_->drop(client_id); }
void FakeBroker::stop() { core_->stop(); }
void FakeBroker::start() { core_->start(); }
bool FakeBroker::running() const { return core_->running(); }
void FakeBroker::refuse_connections(int code) { core_->refuse_connections(code); }
void FakeBroker::accept_connections() { core_->accept_connections(); }
void FakeBroker::refuse_subscriptions(std::string filter, int code) {
  core_->refuse_subscriptions(std::move(filter), code);
}
void FakeBroker::refuse_publications(std::string filter, int code) {
  core_->refuse_publications(std::move(filter), code);
}
void FakeBroker::clear_refusals() { core_->clear_refusals(); }
void FakeBroker::set_max_qos(int qos) { core_->set_max_qos(qos); }
void FakeBroker::pause() { core_->pause(); }
void FakeBroker::resume() { core_->resume(); }

}  // namespace iotbridge::mqtt::testing
