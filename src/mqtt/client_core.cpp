// ClientCore: see client_core.hpp for the threads and the locks.
//
// Packet ids are 16 bits and a transport may queue QoS 0 messages without
// bound, so ids repeat among QoS 0 messages waiting to be written (more than
// 65535 of them behind a stalled broker). QoS 0 tokens are therefore not keyed
// by id: the transport writes its queue in order, so they complete in publish
// order.
//
// QoS 1/2 ids can repeat too: the library draws every packet's id from one
// 16-bit counter, QoS 0 and SUBSCRIBE included, so a QoS 1 message that waits
// for its PUBACK (a stalled broker) while 65535 other packets go out shares
// its id with a newer one. The library then matches a PUBACK to the oldest
// message with that id, and so does the core: a repeated id waits in
// repeated_ids_ until the older one is acknowledged. (Fewer than 65536 QoS 1/2
// messages are ever unacknowledged at once: Options::max_queued.)
#include "mqtt/client_core.hpp"

#include <algorithm>
#include <iostream>
#include <random>

#include "iotbridge/error.hpp"
#include "iotbridge/topic.hpp"
#include "mqtt/options_check.hpp"
#include "mqtt/text.hpp"

namespace iotbridge::mqtt::detail {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long one serve() may sleep: bounds how late loop_stop() and requests
// from other threads are noticed when the socket is quiet.
constexpr milliseconds kLoopSlice{50};
// How long disconnect() waits for DISCONNECT to be written.
constexpr milliseconds kDisconnectWait{2000};
constexpr const char* kQos0Lost =
    "the connection closed before this QoS 0 message was written; QoS 0 is never sent again (use QoS 1)";

std::string generate_client_id() {
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd());
  std::string id = "iotbridge-";
  for (int i = 0; i < 16; ++i) id += alphabet[rng() % (sizeof alphabet - 1)];
  return id;
}

// The network thread of the client running on this thread, if any.
thread_local const void* t_network_owner = nullptr;
thread_local std::stop_token t_network_stop;

// Marks the calling thread as the network owner for its lifetime.
class OwnerScope {
 public:
  OwnerScope(const void* client, std::stop_token stop)
      : previous_(t_network_owner), previous_stop_(std::move(t_network_stop)) {
    t_network_owner = client;
    t_network_stop = std::move(stop);
  }
  ~OwnerScope() {
    t_network_owner = previous_;
    t_network_stop = std::move(previous_stop_);
  }
  OwnerScope(const OwnerScope&) = delete;
  OwnerScope& operator=(const OwnerScope&) = delete;

 private:
  const void* previous_;
  std::stop_token previous_stop_;
};

// What MQTT itself requires of properties, checked before anything is queued.
void check_properties(const Properties& p) {
  if (p.response_topic) {
    if (auto problem = topic_problem(*p.response_topic))
      throw Error(ErrorCategory::topic, "invalid response topic '" + printable(*p.response_topic) + "': " + *problem);
  }
  if (p.correlation_data && p.correlation_data->size() > 65535)
    throw Error(ErrorCategory::mqtt, "correlation data longer than 65535 bytes");
}

}  // namespace

ClientCore::ClientCore(Options options, const TransportFactory& make_transport)
    : options_(checked_options(std::move(options))),
      backoff_(options_.reconnect_delay_min, options_.reconnect_delay_max) {
  client_id_ = options_.client_id.empty() ? generate_client_id() : options_.client_id;
  addresses_.push_back(BrokerAddress{options_.host, options_.port});
  addresses_.insert(addresses_.end(), options_.failover.begin(), options_.failover.end());
  transport_ = make_transport(options_, client_id_, *this);
}

ClientCore::~ClientCore() {
  {
    std::lock_guard lock(dispatch_mutex_);
    if (queue_) queue_->close();
    consuming_ = false;
  }
  if (t_network_owner != this) {
    try {
      bool open;
      {
        std::lock_guard lock(state_mutex_);
        open = socket_open(link_);
      }
      if (open) disconnect();
    } catch (...) {
    }
    loop_stop();
  }
  {
    std::lock_guard lock(out_mutex_);
    closing_ = true;
  }
  room_cv_.notify_all();
  offline_cv_.notify_all();
  fail_all_pending("the MQTT client was destroyed before the broker answered");
}

// ---- connection -------------------------------------------------------------

ConnectResult ClientCore::connect() {
  if (t_network_owner == this)
    throw Error(ErrorCategory::config,
                "connect() cannot wait for the broker on the network thread (inside a callback); use connect_async()");
  std::unique_lock lock(state_mutex_);
  if (up(link_)) return last_connect_;
  // Each address once, in order, each for up to connect_timeout.
  std::string failures;
  for (std::size_t index = 0;; ++index) {
    address_ = index;
    Outcome outcome = attempt_locked(lock);
    if (outcome.done && outcome.ok) return outcome.result;
    // Failed: leave the client disconnected and not retrying.
    bool open = socket_open(link_);
    set_link_locked(open ? Link::closing : Link::idle);
    std::string why = outcome.done
                          ? outcome.error
                          : "no answer from the broker within " + std::to_string(options_.connect_timeout.count()) +
                                " ms (Options::connect_timeout)";
    int code = outcome.done ? outcome.code : kCodeTimeout;
    std::string where = endpoint(index);
    lock.unlock();
    if (open) transport_->disconnect();
    if (addresses_.size() == 1) throw Error(ErrorCategory::mqtt, "cannot connect to " + where + ": " + why, code);
    failures += (failures.empty() ? "" : "; ") + where + ": " + why;
    if (index + 1 == addresses_.size())
      throw Error(ErrorCategory::mqtt,
                  "cannot connect to any of the " + std::to_string(addresses_.size()) + " brokers: " + failures, code);
    say(LogLevel::warning, "cannot connect to " + where + ": " + why + "; trying " + endpoint(index + 1));
    lock.lock();
  }
}

// One blocking attempt at address_: its outcome (not done: timed out).
// state_mutex_ held (released while this thread drives the network).
ClientCore::Outcome ClientCore::attempt_locked(std::unique_lock<std::mutex>& lock) {
  attempt_ = Outcome{};  // not emplace(): clang cannot use the default member initializers of a nested struct there
  attempt_started_ = false;
  auto deadline = Clock::now() + options_.connect_timeout;
  if (owner_ != Owner::none) {
    set_link_locked(Link::requested);
    state_cv_.notify_all();
    state_cv_.wait_until(lock, deadline, [&] { return attempt_->done; });
  } else {
    owner_ = Owner::manual;
    set_link_locked(Link::requested);
    lock.unlock();
    {
      OwnerScope scope(this, {});
      start_connection();
      while (true) {
        {
          std::lock_guard guard(state_mutex_);
          if (attempt_->done) break;
        }
        auto now = Clock::now();
        if (now >= deadline) break;
        step(std::min(kLoopSlice, std::chrono::duration_cast<milliseconds>(deadline - now) + milliseconds(1)));
      }
    }
    lock.lock();
    owner_ = Owner::none;
    state_cv_.notify_all();
  }
  Outcome outcome = std::move(*attempt_);
  attempt_.reset();
  return outcome;
}

void ClientCore::connect_async() {
  std::unique_lock lock(state_mutex_);
  if (link_ == Link::connected || link_ == Link::connecting) return;
  set_link_locked(Link::requested);
  if (owner_ != Owner::none) {
    state_cv_.notify_all();
    return;
  }
  owner_ = Owner::manual;
  lock.unlock();
  {
    OwnerScope scope(this, {});
    start_connection();
  }
  lock.lock();
  owner_ = Owner::none;
  state_cv_.notify_all();
}

ConnectResult ClientCore::reconnect() {
  // Checked before disconnecting: on the network thread connect() would
  // throw, and the connection must not be dropped for nothing.
  if (t_network_owner == this)
    throw Error(ErrorCategory::config,
                "reconnect() cannot wait for the broker on the network thread (inside a callback); call "
                "disconnect() and connect_async() there instead");
  disconnect();
  return connect();
}

// Stops wanting a connection: DISCONNECT if a socket is open. state_mutex_ held.
void ClientCore::drop_locked() {
  bool open = socket_open(link_);
  set_link_locked(up(link_) ? Link::disconnecting : open ? Link::closing : Link::idle);
  state_cv_.notify_all();
  if (open) transport_->disconnect();  // only queues the packet
}

void ClientCore::disconnect() {
  bool open;
  {
    std::lock_guard lock(state_mutex_);
    open = socket_open(link_);
    drop_locked();
  }
  if (!open || t_network_owner == this) return;  // on the network thread: written once the callback returns
  auto deadline = Clock::now() + kDisconnectWait;
  std::unique_lock lock(state_mutex_);
  if (owner_ != Owner::none) {
    state_cv_.wait_until(lock, deadline, [&] { return !socket_open(link_); });
    return;
  }
  owner_ = Owner::manual;
  lock.unlock();
  {
    OwnerScope scope(this, {});
    while (Clock::now() < deadline) {
      {
        std::lock_guard guard(state_mutex_);
        if (!socket_open(link_)) break;
      }
      step(kLoopSlice);
    }
  }
  lock.lock();
  owner_ = Owner::none;
  state_cv_.notify_all();
}

bool ClientCore::wait_connected(milliseconds timeout) const {
  std::unique_lock lock(state_mutex_);
  return state_cv_.wait_for(lock, timeout, [&] { return up(link_); });
}

void ClientCore::set_link_locked(Link link) {
  link_ = link;
  connected_flag_ = up(link);
}

// ---- network loop -------------------------------------------------------------

bool ClientCore::loop(milliseconds timeout) {
  if (t_network_owner == this) return connected();  // called from a callback: the loop is already running
  {
    std::lock_guard lock(state_mutex_);
    if (owner_ != Owner::none)
      throw Error(ErrorCategory::config, "loop() cannot run while loop_start() or loop_forever() runs the network");
    owner_ = Owner::manual;
  }
  {
    OwnerScope scope(this, {});
    step(timeout);
  }
  {
    std::lock_guard lock(state_mutex_);
    owner_ = Owner::none;
  }
  state_cv_.notify_all();
  return connected();
}

void ClientCore::loop_start() {
  if (t_network_owner == this) return;  // from a callback: the network already runs
  // A thread that loop_stop() (called from a callback) left to finish.
  if (thread_.joinable() && thread_.get_stop_token().stop_requested()) thread_.join();
  std::lock_guard lock(state_mutex_);
  if (owner_ == Owner::background) return;
  if (owner_ != Owner::none)
    throw Error(ErrorCategory::config, "loop_start(): the network is already run by loop_forever() or loop()");
  owner_ = Owner::background;
  thread_ = std::jthread([this](std::stop_token stop) {
    run(stop, nullptr);
    std::lock_guard guard(state_mutex_);
    owner_ = Owner::none;
    state_cv_.notify_all();
  });
}

void ClientCore::loop_stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  state_cv_.notify_all();
  if (t_network_owner == this) return;  // from a callback: cannot join ourselves; joined later
  thread_.join();
}

void ClientCore::loop_forever(std::stop_token stop) {
  {
    std::lock_guard lock(state_mutex_);
    if (owner_ != Owner::none)
      throw Error(ErrorCategory::config, "loop_forever(): the network is already run by loop_start() or loop()");
    if (link_ == Link::idle)
      throw Error(ErrorCategory::config, "loop_forever() needs connect() or connect_async() first");
    owner_ = Owner::forever;
  }
  {
    std::optional<Clock::time_point> stopped_at;  // this run's stop (state_mutex_)
    std::stop_callback on_stop(stop, [this, &stopped_at] {
      // Runs on the requesting thread (or here, if already requested).
      std::lock_guard lock(state_mutex_);
      stopped_at = Clock::now();
      drop_locked();
    });
    run(std::stop_token{}, &stopped_at);
  }
  std::lock_guard lock(state_mutex_);
  owner_ = Owner::none;
  state_cv_.notify_all();
}

// With stop_at (loop_forever): until no connection is wanted and the socket
// is closed, or 2 s after a stop that could not flush DISCONNECT (dead peer).
void ClientCore::run(std::stop_token stop, const std::optional<Clock::time_point>* stop_at) {
  OwnerScope scope(this, stop);
  while (!stop.stop_requested()) {
    if (stop_at) {
      std::lock_guard lock(state_mutex_);
      if (link_ == Link::idle) break;
      if (*stop_at && Clock::now() - **stop_at > kDisconnectWait) break;
    }
    step(kLoopSlice);
  }
}

// One round: start a requested or due connection, then serve the socket for
// up to `timeout` (or sleep until something is due).
void ClientCore::step(milliseconds timeout) {
  bool start = false;
  {
    std::lock_guard lock(state_mutex_);
    start = link_ == Link::requested || (link_ == Link::waiting && !attempt_ && Clock::now() >= next_attempt_);
  }
  if (start) start_connection();
  bool open;
  {
    std::lock_guard lock(state_mutex_);
    open = socket_open(link_);
  }
  if (open) {
    ServeResult served = transport_->serve(timeout);
    if (!served.result || served.closed) after_serve(served);
    return;
  }
  std::unique_lock lock(state_mutex_);
  auto until = Clock::now() + timeout;
  if (link_ == Link::waiting && next_attempt_ < until) until = next_attempt_;
  state_cv_.wait_until(lock, t_network_stop, until, [&] { return link_ == Link::requested; });
}

// Starts a connection; the CONNACK arrives through serve(). The owner thread.
void ClientCore::start_connection() {
  fail_unwritten_qos0(kQos0Lost);  // connecting clears the transport's packet queue
  connecting_logs_ = true;
  update_log_hook();
  std::size_t index;
  {
    std::lock_guard lock(state_mutex_);
    set_link_locked(Link::connecting);
    if (attempt_) attempt_started_ = true;
    index = address_.load();
  }
  TransportResult started = transport_->start_connect(addresses_[index]);
  if (started) return;
  std::optional<std::string> failed;
  std::optional<milliseconds> retry;
  {
    std::lock_guard lock(state_mutex_);
    if (attempt_pending_locked())
      *attempt_ = Outcome{true, false, {}, started.why, started.code};
    else
      failed = "cannot connect to " + endpoint(index) + ": " + started.why;
    if (socket_open(link_)) socket_gone_locked(retry);
  }
  state_cv_.notify_all();
  if (failed) say(LogLevel::warning, *failed);
  log_retry(retry);
}

// The socket is gone: what next. state_mutex_ held, link_ a socket-open state.
void ClientCore::socket_gone_locked(std::optional<milliseconds>& retry) {
  if (!wanted(link_))
    set_link_locked(Link::idle);
  else if (attempt_ || !options_.auto_reconnect)
    set_link_locked(Link::lost);  // a blocking connect() decides, or nothing retries
  else
    retry = schedule_reconnect_locked();
}

// The next address at once while this round has untried ones: a dead node of
// a cluster costs no delay. Once every address failed in a row, the jittered
// delay (Backoff), so that clients that lost their brokers together do not
// all come back in the same instant.
milliseconds ClientCore::schedule_reconnect_locked() {
  milliseconds delay{0};
  if (++failed_in_round_ >= addresses_.size()) {
    failed_in_round_ = 0;
    delay = backoff_.next();
  }
  address_ = (address_.load() + 1) % addresses_.size();
  set_link_locked(Link::waiting);
  next_attempt_ = Clock::now() + delay;
  return delay;
}

void ClientCore::log_retry(std::optional<milliseconds> delay) {
  if (!delay) return;
  if (delay->count() == 0)
    say(LogLevel::info, "trying " + endpoint() + " next");
  else
    say(LogLevel::info, "next attempt to connect to " + endpoint() + " in " + std::to_string(delay->count()) + " ms");
}

// After serve() failed or the socket closed under it.
void ClientCore::after_serve(const ServeResult& served) {
  bool lost_unreported = false;
  std::optional<milliseconds> retry;
  std::string where = endpoint();  // before a reconnect moves on
  {
    std::lock_guard lock(state_mutex_);
    if (attempt_pending_locked() && !served.result)
      *attempt_ = Outcome{true, false, {}, served.result.why, served.result.code};
    // Some failures (a TLS handshake error) close the socket without closed().
    if (served.closed && socket_open(link_)) {
      lost_unreported = up(link_);
      socket_gone_locked(retry);
    }
  }
  state_cv_.notify_all();
  if (served.closed) fail_unwritten_qos0(kQos0Lost);
  if (lost_unreported) report_disconnect(served.result, where);
  log_retry(retry);
  if (!served.result && !served.closed) {
    // An error that left the socket open; do not spin on it.
    std::this_thread::sleep_for(milliseconds(1));
  }
}

void ClientCore::connack(const ConnectResult& answer) {
  ConnectResult result = answer;
  std::size_t index = address_.load();
  result.address = endpoint(index);
  if (result.reason_code == 0) {
    bool same_broker;
    {
      std::lock_guard lock(state_mutex_);
      if (wanted(link_)) set_link_locked(Link::connected);
      backoff_.reset();
      failed_in_round_ = 0;
      // A session another broker says it has is not the one whose
      // subscriptions this client confirmed: subscribe again there.
      same_broker = session_address_ == index;
      session_address_ = index;
      last_connect_ = result;
      if (attempt_pending_locked()) *attempt_ = Outcome{true, true, result, {}, 0};
    }
    state_cv_.notify_all();
    connecting_logs_ = false;
    update_log_hook();
    // On a standby address, say so where warnings are seen.
    if (addresses_.size() > 1) say(index == 0 ? LogLevel::info : LogLevel::warning, "connected to " + result.address);
    restore_subscriptions(result.session_present && same_broker);
    flush_offline();
  } else {
    {
      std::lock_guard lock(state_mutex_);
      if (attempt_pending_locked())
        *attempt_ = Outcome{
            true, false, result,
            "the broker refused the connection: " + result.reason + " (CONNACK code " +
                (result.reason_code >= 0x80 ? hex_code(result.reason_code) : std::to_string(result.reason_code)) + ")",
            result.reason_code};
    }
    state_cv_.notify_all();
  }
  call_user("on_connect", get_callback(connect_cb_), result);
}

void ClientCore::closed(const TransportResult& why) {
  bool was_connected;
  std::optional<milliseconds> retry;
  std::string where = endpoint();  // before a reconnect moves on
  {
    std::lock_guard lock(state_mutex_);
    was_connected = up(link_);
    if (attempt_pending_locked()) *attempt_ = Outcome{true, false, {}, why ? "connection closed" : why.why, why.code};
    if (socket_open(link_)) socket_gone_locked(retry);
  }
  state_cv_.notify_all();
  fail_unwritten_qos0(kQos0Lost);
  if (was_connected) report_disconnect(why, where);
  log_retry(retry);
}

void ClientCore::report_disconnect(const TransportResult& why, const std::string& where) {
  DisconnectInfo info;
  info.unexpected = why.code != 0;
  info.reason_code = why.code;
  info.reason = why.code == 0 ? "disconnected by the client" : why.why;
  if (info.unexpected) say(LogLevel::warning, "connection to " + where + " lost: " + info.reason);
  call_user("on_disconnect", get_callback(disconnect_cb_), info);
}

// The library's log lines cost a formatted line per packet: on only while
// connecting (to catch TLS and socket errors in words) and while the user
// wants logs.
void ClientCore::update_log_hook() { transport_->set_library_log(user_logs_.load() || connecting_logs_.load()); }

std::string ClientCore::endpoint(std::size_t index) const {
  const BrokerAddress& a = addresses_[index];
  std::string text = std::string(options_.tls.enabled ? "mqtts://" : "mqtt://") +
                     (a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host) + ":" +
                     std::to_string(a.port);
  if (addresses_.size() > 1)
    text += " (address " + std::to_string(index + 1) + " of " + std::to_string(addresses_.size()) + ")";
  return text;
}

// ---- publish ------------------------------------------------------------------

DeliveryToken ClientCore::publish(std::string_view topic, std::string_view payload, int qos, bool retain,
                                  const Properties& properties) {
  if (auto problem = topic_problem(topic))
    throw Error(ErrorCategory::topic, "cannot publish to '" + printable(topic) + "': " + *problem);
  if (qos < 0 || qos > 2) throw Error(ErrorCategory::config, "QoS must be 0, 1 or 2, not " + std::to_string(qos));
  if (payload.size() > options_.max_payload_size)
    throw Error(ErrorCategory::mqtt,
                "payload of " + std::to_string(payload.size()) + " bytes exceeds the limit of " +
                    std::to_string(options_.max_payload_size) + " bytes (Options::max_payload_size); nothing was sent",
                kCodePayloadSize);
  check_properties(properties);

  if (qos == 0 && !connected()) return publish_offline(topic, payload, retain, properties);

  std::unique_lock lock(out_mutex_);
  if (qos > 0) acquire_slot_locked(lock);
  int mid = 0;
  TransportResult sent;
  try {
    sent = transport_->publish(topic, payload, qos, retain, properties, &mid);
  } catch (...) {
    if (qos > 0 && release_slot_locked()) room_cv_.notify_all();
    throw;
  }
  // QoS 1/2 while disconnected: the transport keeps the message and sends it
  // after the next CONNACK, so that counts as accepted.
  if (sent || (sent.no_connection && qos > 0 && mid != 0)) {
    auto state = std::make_shared<TokenState>();
    register_delivery_locked(mid, qos, state);
    return DeliveryToken(std::move(state));
  }
  if (qos > 0 && release_slot_locked()) room_cv_.notify_all();
  lock.unlock();
  if (sent.no_connection && qos == 0) return publish_offline(topic, payload, retain, properties);
  throw Error(ErrorCategory::mqtt, "cannot publish to '" + printable(topic) + "': " + sent.why, sent.code);
}

void ClientCore::acquire_slot_locked(std::unique_lock<std::mutex>& lock) {
  if (unacked_ < options_.max_queued) {
    ++unacked_;
    return;
  }
  auto full = [&] {
    return Error(ErrorCategory::mqtt,
                 std::to_string(unacked_) +
                     " QoS 1/2 messages already wait for the broker's acknowledgement (Options::max_queued); "
                     "publish refused",
                 kCodeNoMemory);
  };
  if (options_.when_full == WhenFull::fail) throw full();
  if (t_network_owner == this) {
    // Blocking here would wait for acknowledgements only this thread can read.
    if (unacked_ < network_thread_limit(options_)) {
      ++unacked_;
      return;
    }
    throw full();
  }
  ++flow_waiters_;
  bool room =
      room_cv_.wait_for(lock, options_.publish_timeout, [&] { return unacked_ < options_.max_queued || closing_; });
  --flow_waiters_;
  if (!room)
    throw Error(ErrorCategory::mqtt,
                "timed out after " + std::to_string(options_.publish_timeout.count()) +
                    " ms waiting for the broker to acknowledge earlier messages (Options::publish_timeout)",
                kCodeTimeout);
  if (closing_) throw Error(ErrorCategory::mqtt, "the MQTT client is being destroyed");
  ++unacked_;
}

// True when blocked publishers should be woken: once a quarter of the window
// is free, not on every acknowledgement, so that one wake-up publishes a burst.
bool ClientCore::release_slot_locked() {
  if (unacked_ > 0) --unacked_;
  std::size_t low_water = options_.max_queued - std::max<std::size_t>(1, options_.max_queued / 4);
  return flow_waiters_ > 0 && unacked_ <= low_water;
}

void ClientCore::register_delivery_locked(int mid, int qos, std::shared_ptr<TokenState> state) {
  state->mid = mid;
  if (qos == 0)
    unwritten_qos0_.push_back(Delivery{std::move(state), 0});
  else if (auto [it, added] = deliveries_.try_emplace(mid); added)
    it->second = Delivery{std::move(state), qos};
  else
    repeated_ids_.emplace_back(mid, Delivery{std::move(state), qos});
}

void ClientCore::published(int mid, int reason_code) {
  Delivery d;
  {
    std::lock_guard lock(out_mutex_);
    if (!unwritten_qos0_.empty() && unwritten_qos0_.front().state->mid == mid) {
      d = std::move(unwritten_qos0_.front());
      unwritten_qos0_.pop_front();
    } else if (auto it = deliveries_.find(mid); it != deliveries_.end()) {
      d = std::move(it->second);
      deliveries_.erase(it);
      auto next =
          std::find_if(repeated_ids_.begin(), repeated_ids_.end(), [mid](const auto& r) { return r.first == mid; });
      if (next != repeated_ids_.end()) {
        deliveries_.emplace(mid, std::move(next->second));
        repeated_ids_.erase(next);
      }
    }
  }
  if (auto cb = get_callback(publish_cb_)) call_user("on_publish", cb, PublishResult{mid, reason_code});
  // After on_publish, so that a waiter sees its effects.
  if (d.state) finish_delivery(d, reason_code);
}

void ClientCore::finish_delivery(const Delivery& d, int reason) {
  if (d.qos > 0) {
    bool wake;
    {
      std::lock_guard lock(out_mutex_);
      wake = release_slot_locked();
    }
    if (wake) room_cv_.notify_all();
  }
  if (reason >= 0x80)
    d.state->fail("the broker refused message " + std::to_string(d.state->mid) + ": " +
                  transport_->reason_words(reason) + " (reason " + hex_code(reason) + ")");
  else
    d.state->complete(reason);
}

// The transport drops the QoS 0 packets it has not written when the socket
// closes (and clears its queue on the next connect): their tokens fail now.
void ClientCore::fail_unwritten_qos0(const std::string& why) {
  std::deque<Delivery> lost;
  {
    std::lock_guard lock(out_mutex_);
    lost.swap(unwritten_qos0_);
  }
  for (auto& d : lost) d.state->fail(why);
}

DeliveryToken ClientCore::publish_offline(std::string_view topic, std::string_view payload, bool retain,
                                          const Properties& properties) {
  if (!options_.queue_qos0_offline)
    throw Error(ErrorCategory::mqtt,
                "cannot publish QoS 0 to '" + printable(topic) + "': not connected to " + endpoint() +
                    " (set Options::queue_qos0_offline to queue it)",
                kCodeNoConnection);
  auto state = std::make_shared<TokenState>();
  {
    std::unique_lock lock(out_mutex_);
    if (offline_.size() >= options_.max_offline_queue) {
      auto full = [&] {
        return Error(ErrorCategory::mqtt,
                     "offline queue full (" + std::to_string(offline_.size()) +
                         " QoS 0 messages wait for a connection; Options::max_offline_queue)",
                     kCodeNoConnection);
      };
      if (options_.when_full == WhenFull::fail || t_network_owner == this) throw full();
      if (!offline_cv_.wait_for(lock, options_.publish_timeout,
                                [&] { return offline_.size() < options_.max_offline_queue || closing_; }) ||
          closing_)
        throw full();
    }
    offline_.push_back({std::string(topic), std::string(payload), retain, properties, state});
  }
  // The connection may have come back meanwhile.
  if (connected()) flush_offline();
  return DeliveryToken(state);
}

void ClientCore::flush_offline() {
  std::lock_guard lock(out_mutex_);
  while (!offline_.empty() && connected()) {
    OfflineMessage m = std::move(offline_.front());
    offline_.pop_front();
    offline_cv_.notify_one();
    int mid = 0;
    TransportResult sent;
    try {
      sent = transport_->publish(m.topic, m.payload, 0, m.retain, m.properties, &mid);
    } catch (const Error& e) {
      m.state->fail(e.what());
      continue;
    }
    if (sent) {
      register_delivery_locked(mid, 0, m.state);
    } else if (sent.no_connection) {
      offline_.push_front(std::move(m));
      return;
    } else {
      m.state->fail("cannot publish to '" + printable(m.topic) + "': " + sent.why);
    }
  }
}

std::size_t ClientCore::unacknowledged() const {
  std::lock_guard lock(out_mutex_);
  return unacked_;
}

void ClientCore::fail_all_pending(const std::string& why) {
  std::unordered_map<int, Delivery> deliveries;
  std::deque<Delivery> unwritten;
  std::deque<OfflineMessage> offline;
  {
    std::lock_guard lock(out_mutex_);
    deliveries.swap(deliveries_);
    unwritten.swap(unwritten_qos0_);
    for (auto& r : repeated_ids_) unwritten.push_back(std::move(r.second));  // failed alike
    repeated_ids_.clear();
    offline.swap(offline_);
  }
  for (auto& [mid, d] : deliveries) d.state->fail(why);
  for (auto& d : unwritten) d.state->fail(why);
  for (auto& m : offline) m.state->fail(why);
  std::lock_guard lock(dispatch_mutex_);
  for (auto& [filter, record] : subs_)
    for (auto& w : record.waiters) w.state->fail(why);
  for (auto& [mid, state] : pending_unsubs_) state->fail(why);
}

// ---- subscribe ----------------------------------------------------------------

SubscribeToken ClientCore::subscribe(std::string_view filter, int qos, MessageHandler handler) {
  return subscribe(std::vector<Subscription>{Subscription{std::string(filter), qos, std::move(handler)}});
}

SubscribeToken ClientCore::subscribe(const std::vector<Subscription>& subscriptions) {
  if (subscriptions.empty()) throw Error(ErrorCategory::config, "subscribe() needs at least one filter");
  for (const auto& s : subscriptions) {
    if (auto problem = filter_problem(s.filter))
      throw Error(ErrorCategory::topic, "cannot subscribe to '" + printable(s.filter) + "': " + *problem);
    if (s.qos < 0 || s.qos > 2)
      throw Error(ErrorCategory::config, "QoS must be 0, 1 or 2, not " + std::to_string(s.qos));
  }
  auto state = std::make_shared<TokenState>();
  state->granted.assign(subscriptions.size(), 0x80);
  state->remaining = subscriptions.size();
  std::vector<std::string> failures;
  {
    std::lock_guard lock(dispatch_mutex_);
    for (std::size_t i = 0; i < subscriptions.size(); ++i) {
      const auto& s = subscriptions[i];
      auto& record = subs_[s.filter];
      record.qos = s.qos;
      record.confirmed = false;
      record.waiters.push_back({state, i});
      set_handler_locked(s.filter, s.handler ? std::make_shared<const MessageHandler>(s.handler) : nullptr);
    }
    if (connected()) {
      // One SUBSCRIBE per QoS level (a packet carries one option byte for all).
      std::map<int, std::vector<std::string>> by_qos;
      for (const auto& s : subscriptions) by_qos[s.qos].push_back(s.filter);
      for (auto& [q, filters] : by_qos)
        if (auto failure = send_subscribe_locked(filters, q)) failures.push_back(std::move(*failure));
    }
    // Otherwise sent with every other remembered subscription on connect.
  }
  for (const auto& f : failures) say(LogLevel::error, f);
  return SubscribeToken(state);
}

SubscribeToken ClientCore::unsubscribe(std::string_view filter) {
  if (auto problem = filter_problem(filter))
    throw Error(ErrorCategory::topic, "cannot unsubscribe from '" + printable(filter) + "': " + *problem);
  std::string f(filter);
  std::lock_guard lock(dispatch_mutex_);
  if (auto it = subs_.find(f); it != subs_.end()) {
    for (auto& w : it->second.waiters) w.state->fail("unsubscribed from '" + f + "' before the broker answered");
    subs_.erase(it);
  }
  set_handler_locked(f, nullptr);
  if (!connected()) return SubscribeToken();
  auto state = std::make_shared<TokenState>();
  int mid = 0;
  TransportResult sent = transport_->unsubscribe(f, &mid);
  if (!sent) {
    if (sent.no_connection) return SubscribeToken();
    throw Error(ErrorCategory::mqtt, "cannot unsubscribe from '" + printable(f) + "': " + sent.why, sent.code);
  }
  state->mid = mid;
  pending_unsubs_[mid] = state;
  return SubscribeToken(state);
}

std::vector<std::string> ClientCore::subscriptions() const {
  std::lock_guard lock(dispatch_mutex_);
  std::vector<std::string> out;
  for (const auto& [filter, record] : subs_) out.push_back(filter);
  return out;
}

void ClientCore::set_handler_locked(const std::string& filter, std::shared_ptr<const MessageHandler> handler) {
  std::string key = filter;
  if (auto shared = parse_shared(filter)) key = shared->filter;
  std::vector<HandlerEntry>* entries = tree_.find(key);
  if (entries) {
    std::erase_if(*entries, [&](const HandlerEntry& e) { return e.filter == filter; });
  }
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

// Returns a line to log (after unlocking) when the SUBSCRIBE could not be queued.
std::optional<std::string> ClientCore::send_subscribe_locked(const std::vector<std::string>& filters, int qos) {
  int mid = 0;
  TransportResult sent = transport_->subscribe(filters, qos, &mid);
  if (sent) {
    pending_subs_[mid] = filters;
    // A token whose filters went out in several packets shows the first one's mid.
    for (const auto& f : filters)
      if (auto it = subs_.find(f); it != subs_.end())
        for (auto& w : it->second.waiters) {
          int none = 0;
          w.state->mid.compare_exchange_strong(none, mid);
        }
    return std::nullopt;
  }
  if (sent.no_connection) return std::nullopt;  // the connection dropped meanwhile; sent again on connect
  for (const auto& f : filters) {
    if (auto it = subs_.find(f); it != subs_.end()) {
      for (auto& w : it->second.waiters) w.state->fail("cannot subscribe to '" + f + "': " + sent.why);
      it->second.waiters.clear();
    }
  }
  return "SUBSCRIBE failed: " + sent.why;
}

void ClientCore::restore_subscriptions(bool session_present) {
  std::vector<std::string> failures;
  {
    std::lock_guard lock(dispatch_mutex_);
    std::map<int, std::vector<std::string>> by_qos;
    for (auto& [filter, record] : subs_) {
      // A resumed session still holds what the broker granted before.
      if (session_present && record.confirmed) continue;
      record.confirmed = false;
      by_qos[record.qos].push_back(filter);
    }
    for (auto& [qos, filters] : by_qos) {
      // Keep packets modest: brokers cap their size.
      for (std::size_t i = 0; i < filters.size(); i += 64) {
        std::vector<std::string> chunk(filters.begin() + static_cast<std::ptrdiff_t>(i),
                                       filters.begin() + static_cast<std::ptrdiff_t>(std::min(filters.size(), i + 64)));
        if (auto failure = send_subscribe_locked(chunk, qos)) failures.push_back(std::move(*failure));
      }
    }
  }
  for (const auto& f : failures) say(LogLevel::error, f);
}

void ClientCore::subscribed(int mid, std::vector<int> granted) {
  SubscribeResult result;
  result.mid = mid;
  result.granted_qos = std::move(granted);
  std::vector<std::pair<Waiter, int>> answers;
  {
    std::lock_guard lock(dispatch_mutex_);
    if (auto it = pending_subs_.find(mid); it != pending_subs_.end()) {
      result.filters = std::move(it->second);
      pending_subs_.erase(it);
    }
    for (std::size_t i = 0; i < result.filters.size() && i < result.granted_qos.size(); ++i) {
      auto rec = subs_.find(result.filters[i]);
      if (rec == subs_.end()) continue;
      int code = result.granted_qos[i];
      rec->second.confirmed = !SubscribeResult::is_failure(code);
      for (auto& w : rec->second.waiters) answers.emplace_back(std::move(w), code);
      rec->second.waiters.clear();
    }
  }
  for (std::size_t i = 0; i < result.filters.size() && i < result.granted_qos.size(); ++i) {
    if (SubscribeResult::is_failure(result.granted_qos[i]))
      say(LogLevel::warning, "the broker refused the subscription to '" + result.filters[i] + "' (code " +
                                 hex_code(result.granted_qos[i]) + ")");
  }
  call_user("on_subscribe", get_callback(subscribe_cb_), result);
  // Tokens complete after on_subscribe ran, so a waiter sees its effects.
  for (auto& [w, code] : answers) w.state->grant(w.index, code);
}

void ClientCore::unsubscribed(int mid) {
  std::shared_ptr<TokenState> state;
  {
    std::lock_guard lock(dispatch_mutex_);
    if (auto it = pending_unsubs_.find(mid); it != pending_unsubs_.end()) {
      state = std::move(it->second);
      pending_unsubs_.erase(it);
    }
  }
  if (state) state->complete();
}

// ---- receive ------------------------------------------------------------------

void ClientCore::message(Message& msg) {
  // Copied out so that handlers run with no lock held (they may subscribe).
  // The vector's storage is reused from message to message.
  thread_local std::vector<std::shared_ptr<const MessageHandler>> t_handlers;
  std::vector<std::shared_ptr<const MessageHandler>> handlers = std::move(t_handlers);
  handlers.clear();
  struct Recycle {
    std::vector<std::shared_ptr<const MessageHandler>>& v;
    ~Recycle() {
      v.clear();
      t_handlers = std::move(v);
    }
  } recycle{handlers};
  std::shared_ptr<BoundedQueue<Message>> queue;
  std::shared_ptr<const MessageHandler> fallback;
  {
    std::lock_guard lock(dispatch_mutex_);
    if (!tree_.empty()) {
      tree_.match(msg.topic, [&](std::vector<HandlerEntry>& entries) {
        for (auto& e : entries)
          if (e.handler) handlers.push_back(e.handler);
      });
    }
    if (handlers.empty()) {
      if (consuming_)
        queue = queue_;
      else
        fallback = message_cb_;
    }
  }
  if (!handlers.empty()) {
    for (const auto& h : handlers) call_user("message handler", h, msg);
    return;
  }
  if (queue) {
    if (!queue->push(std::move(msg), t_network_stop))
      say(LogLevel::warning, "consumer queue closed or loop stopped: a message was not queued");
    return;
  }
  call_user("on_message", fallback, msg);
}

void ClientCore::start_consuming(std::size_t capacity) {
  auto queue = std::make_shared<BoundedQueue<Message>>(capacity, OverflowPolicy::block);
  std::lock_guard lock(dispatch_mutex_);
  if (queue_) queue_->close();
  queue_ = std::move(queue);
  consuming_ = true;
}

std::optional<Message> ClientCore::consume(milliseconds timeout) {
  std::shared_ptr<BoundedQueue<Message>> queue;
  {
    std::lock_guard lock(dispatch_mutex_);
    queue = queue_;
  }
  if (!queue) throw Error(ErrorCategory::config, "consume() needs start_consuming() first");
  return queue->try_pop_for(timeout);
}

void ClientCore::stop_consuming() {
  std::lock_guard lock(dispatch_mutex_);
  consuming_ = false;
  if (queue_) queue_->close();
}

// ---- logs and user code -------------------------------------------------------

void ClientCore::on_log(LogHandler h) {
  bool has = static_cast<bool>(h);
  auto value = has ? std::make_shared<const LogHandler>(std::move(h)) : nullptr;
  {
    std::lock_guard lock(log_mutex_);
    log_cb_ = std::move(value);
  }
  user_logs_ = has;
  update_log_hook();
}

void ClientCore::log(LogLevel level, std::string_view text, bool from_library) {
  if (!from_library) {
    say(level, std::string(text));
  } else if (user_logs_) {
    call_user("on_log", log_callback(), level, text);
  }
}

void ClientCore::say(LogLevel level, const std::string& text) {
  auto handler = log_callback();
  if (handler && *handler) {
    try {
      (*handler)(level, text);
    } catch (...) {
    }
    return;
  }
  if (level == LogLevel::error || level == LogLevel::warning)
    std::cerr << "iotbridge mqtt [" << client_id_ << "]: " << text << "\n";
}

// Calls user code: exceptions are caught and logged, never passed on.
template <typename Handler, typename... Args>
void ClientCore::call_user(const char* name, const std::shared_ptr<const Handler>& handler, Args&&... args) {
  if (!handler || !*handler) return;
  try {
    (*handler)(std::forward<Args>(args)...);
  } catch (const std::exception& e) {
    say(LogLevel::error, std::string("exception from the ") + name + " callback (caught): " + e.what());
  } catch (...) {
    say(LogLevel::error, std::string("unknown exception from the ") + name + " callback (caught)");
  }
}

}  // namespace iotbridge::mqtt::detail
