// The libmosquitto-backed mqtt::Client.
//
// Threads. One thread at a time "owns" the network: the background thread of
// loop_start(), the caller of loop_forever(), or a caller of loop() / connect()
// / disconnect() driving it for a moment. Only the owner calls
// mosquitto_loop() and starts connections; other threads hand it requests
// through state_mutex_ and state_cv_. libmosquitto runs in threaded mode, so
// publish/subscribe from any thread only queue packets and wake the owner.
//
// Locks. No lock of ours is held while user code runs. subs_mutex_ is held
// across mosquitto_subscribe/unsubscribe so that the SUBACK, handled on the
// network thread, always finds the mid registered; those calls take only
// libmosquitto's packet-queue lock, never the callback lock the network thread
// holds while it calls us. tokens_mutex_ is held across mosquitto_publish_v5 for
// the same reason: an acknowledgement cannot overtake its registration.
//
// Packet ids are 16 bits and libmosquitto queues QoS 0 messages without bound,
// so ids repeat among QoS 0 messages waiting to be written (more than 65535 of
// them behind a stalled broker). QoS 0 tokens are therefore not keyed by id:
// libmosquitto writes its queue in order, so they complete in publish order.
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netdb.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <stop_token>
#include <thread>
#include <unordered_map>

#include "iotbridge/backoff.hpp"
#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"
#include "iotbridge/queue.hpp"
#include "iotbridge/topic.hpp"
#include "iotbridge/topic_tree.hpp"
#include "mqtt/token_state.hpp"

namespace iotbridge::mqtt {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long one mosquitto_loop() call may sleep: bounds how late loop_stop()
// and requests from other threads are noticed when the socket is quiet.
constexpr milliseconds kLoopSlice{50};
// How long disconnect() waits for DISCONNECT to be written.
constexpr milliseconds kDisconnectWait{2000};
constexpr const char* kQos0Lost =
    "the connection closed before this QoS 0 message was written; QoS 0 is never sent again (use QoS 1)";

std::once_flag g_lib_once;
void ensure_lib_init() {
  // Cleanup is left to process exit: clients may live in static objects.
  std::call_once(g_lib_once, [] { mosquitto_lib_init(); });
}

struct MosquittoDeleter {
  void operator()(mosquitto* m) const noexcept { mosquitto_destroy(m); }
};
struct PropertyDeleter {
  void operator()(mosquitto_property* p) const noexcept { mosquitto_property_free_all(&p); }
};
using PropertyList = std::unique_ptr<mosquitto_property, PropertyDeleter>;

// Text safe to show in an error message (topics may hold invalid UTF-8).
std::string printable(std::string_view text) {
  std::string out;
  for (unsigned char c : text.substr(0, 200)) {
    if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > 200) out += "...";
  return out;
}

std::string hex_code(int code) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%02X", code);
  return buf;
}

std::string lowercase_first(std::string s) {
  if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') s[0] = static_cast<char>(s[0] - 'A' + 'a');
  while (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// CONNACK codes in words. MQTT 3.1.1 has six; MQTT 5 reason codes are >= 0x80.
std::string connack_words(int rc) {
  switch (rc) {
    case 0: return "success";
    case 1: return "unacceptable protocol version";
    case 2: return "client identifier rejected";
    case 3: return "broker unavailable";
    case 4: return "bad user name or password (not authorised)";
    case 5: return "not authorised";
    case MQTT_RC_BAD_USERNAME_OR_PASSWORD: return "bad user name or password (not authorised)";
    case MQTT_RC_NOT_AUTHORIZED: return "not authorised";
    default: return lowercase_first(mosquitto_reason_string(rc));
  }
}

LogLevel log_level(int mosq_level) {
  switch (mosq_level) {
    case MOSQ_LOG_ERR: return LogLevel::error;
    case MOSQ_LOG_WARNING: return LogLevel::warning;
    case MOSQ_LOG_NOTICE: return LogLevel::notice;
    case MOSQ_LOG_INFO: return LogLevel::info;
    default: return LogLevel::debug;
  }
}

Properties read_properties(const mosquitto_property* props) {
  Properties out;
  for (const mosquitto_property* p = props; p; p = mosquitto_property_next(p)) {
    int id = mosquitto_property_identifier(p);
    switch (id) {
      case MQTT_PROP_CONTENT_TYPE:
      case MQTT_PROP_RESPONSE_TOPIC: {
        char* value = nullptr;
        if (mosquitto_property_read_string(p, id, &value, false) && value) {
          (id == MQTT_PROP_CONTENT_TYPE ? out.content_type : out.response_topic) = value;
          std::free(value);
        }
        break;
      }
      case MQTT_PROP_CORRELATION_DATA: {
        void* value = nullptr;
        uint16_t len = 0;
        if (mosquitto_property_read_binary(p, id, &value, &len, false)) {
          out.correlation_data = std::string(static_cast<const char*>(value), len);
          std::free(value);
        }
        break;
      }
      case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL: {
        uint32_t value = 0;
        if (mosquitto_property_read_int32(p, id, &value, false)) out.message_expiry_interval = value;
        break;
      }
      case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR: {
        uint8_t value = 0;
        if (mosquitto_property_read_byte(p, id, &value, false)) out.payload_format_utf8 = value != 0;
        break;
      }
      case MQTT_PROP_USER_PROPERTY: {
        char* name = nullptr;
        char* value = nullptr;
        if (mosquitto_property_read_string_pair(p, id, &name, &value, false)) {
          out.user_properties.emplace_back(name ? name : "", value ? value : "");
        }
        std::free(name);
        std::free(value);
        break;
      }
      default: break;
    }
  }
  return out;
}

PropertyList make_properties(const Properties& in) {
  mosquitto_property* list = nullptr;
  PropertyList guard;
  auto check = [&](int rc, const char* what) {
    guard.reset(list);
    if (rc != MOSQ_ERR_SUCCESS)
      throw Error(ErrorCategory::mqtt, std::string("invalid MQTT 5 property ") + what + ": " + mosquitto_strerror(rc),
                  rc);
    guard.release();
  };
  if (in.content_type)
    check(mosquitto_property_add_string(&list, MQTT_PROP_CONTENT_TYPE, in.content_type->c_str()), "content type");
  if (in.response_topic) {
    if (auto problem = topic_problem(*in.response_topic))
      throw Error(ErrorCategory::topic, "invalid response topic '" + printable(*in.response_topic) + "': " + *problem);
    check(mosquitto_property_add_string(&list, MQTT_PROP_RESPONSE_TOPIC, in.response_topic->c_str()), "response topic");
  }
  if (in.correlation_data) {
    if (in.correlation_data->size() > 65535)
      throw Error(ErrorCategory::mqtt, "correlation data longer than 65535 bytes");
    check(mosquitto_property_add_binary(&list, MQTT_PROP_CORRELATION_DATA, in.correlation_data->data(),
                                        static_cast<uint16_t>(in.correlation_data->size())),
          "correlation data");
  }
  if (in.message_expiry_interval)
    check(mosquitto_property_add_int32(&list, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, *in.message_expiry_interval),
          "message expiry interval");
  if (in.payload_format_utf8)
    check(mosquitto_property_add_byte(&list, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, *in.payload_format_utf8 ? 1 : 0),
          "payload format indicator");
  for (const auto& [name, value] : in.user_properties)
    check(mosquitto_property_add_string_pair(&list, MQTT_PROP_USER_PROPERTY, name.c_str(), value.c_str()),
          "user property");
  return PropertyList(list);
}

std::string generate_client_id() {
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd());
  std::string id = "iotbridge-";
  for (int i = 0; i < 16; ++i) id += alphabet[rng() % (sizeof alphabet - 1)];
  return id;
}

Options check_options(Options o) {
  auto bad = [](const std::string& why) { throw Error(ErrorCategory::config, "invalid MQTT options: " + why); };
  if (o.host.empty()) bad("host is empty");
  if (o.port == 0) o.port = o.tls.enabled ? 8883 : 1883;
  if (o.port < 1 || o.port > 65535) bad("port " + std::to_string(o.port) + " is outside 1..65535");
  if (o.client_id.empty() && !o.clean_session)
    bad("a persistent session (clean_session = false) needs a fixed client_id");
  if (o.client_id.size() > 65535) bad("client_id is longer than 65535 bytes");
  if (o.keepalive < std::chrono::seconds(5) || o.keepalive > std::chrono::seconds(65535))
    bad("keepalive must be between 5 and 65535 seconds");
  if (o.password && o.username.empty()) bad("a password needs a user name");
  if (o.will) {
    if (auto problem = topic_problem(o.will->topic)) bad("will topic '" + printable(o.will->topic) + "': " + *problem);
    if (o.will->qos < 0 || o.will->qos > 2) bad("will QoS must be 0, 1 or 2");
  }
  if (o.max_inflight < 1 || o.max_inflight > 65535) bad("max_inflight must be between 1 and 65535");
  if (o.max_queued < o.max_inflight) bad("max_queued must be at least max_inflight");
  if (o.max_offline_queue < 1) bad("max_offline_queue must be at least 1");
  if (o.reconnect_delay_min < milliseconds(1) || o.reconnect_delay_max < o.reconnect_delay_min)
    bad("reconnect delays must be positive and min <= max");
  if (o.connect_timeout < milliseconds(1)) bad("connect_timeout must be positive");
  if (o.max_payload_size > 268435455) bad("max_payload_size exceeds the MQTT limit of 268435455 bytes");
  if (!o.tls.version.empty() && o.tls.version != "tlsv1.3" && o.tls.version != "tlsv1.2" && o.tls.version != "tlsv1.1")
    bad("TLS version must be tlsv1.3, tlsv1.2 or tlsv1.1");
  return o;
}

// The network thread of the client running on this thread, if any.
thread_local const void* t_network_owner = nullptr;
thread_local std::stop_token t_network_stop;

class MosquittoClient final : public Client {
 public:
  explicit MosquittoClient(Options options)
      : options_(check_options(std::move(options))),
        backoff_(options_.reconnect_delay_min, options_.reconnect_delay_max) {
    ensure_lib_init();
    client_id_ = options_.client_id.empty() ? generate_client_id() : options_.client_id;
    mosq_.reset(mosquitto_new(client_id_.c_str(), options_.clean_session, this));
    if (!mosq_) throw Error(ErrorCategory::mqtt, std::string("mosquitto_new failed: ") + std::strerror(errno), errno);
    configure();
  }

  ~MosquittoClient() override {
    {
      std::lock_guard lock(cb_mutex_);
      if (queue_) queue_->close();
      consuming_ = false;
    }
    bool on_network_thread = t_network_owner == this;
    if (!on_network_thread) {
      try {
        bool open;
        {
          std::lock_guard lock(state_mutex_);
          open = socket_open_;
        }
        if (open) disconnect();
      } catch (...) {
      }
      loop_stop();
    }
    closing_ = true;
    flow_cv_.notify_all();
    offline_cv_.notify_all();
    fail_all_pending("the MQTT client was destroyed before the broker answered");
  }

  const Options& options() const noexcept override { return options_; }
  const std::string& client_id() const noexcept override { return client_id_; }

  // ---- connection ---------------------------------------------------------

  ConnectResult connect() override {
    if (t_network_owner == this)
      throw Error(
          ErrorCategory::config,
          "connect() cannot wait for the broker on the network thread (inside a callback); use connect_async()");
    std::unique_lock lock(state_mutex_);
    if (connected_) return last_connect_;
    ++attempt_;
    attempt_active_ = true;
    outcome_ = Outcome{};
    want_connected_ = true;
    reconnect_due_ = false;
    auto deadline = Clock::now() + options_.connect_timeout;
    if (owner_ != Owner::none) {
      connect_requested_ = true;
      state_cv_.notify_all();
      state_cv_.wait_until(lock, deadline, [&] { return outcome_.done; });
    } else {
      owner_ = Owner::manual;
      lock.unlock();
      {
        OwnerScope scope(this, {});
        start_connection();
        while (true) {
          {
            std::lock_guard guard(state_mutex_);
            if (outcome_.done) break;
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
    attempt_active_ = false;
    if (outcome_.done && outcome_.ok) return outcome_.result;
    // Failed: leave the client disconnected and not retrying.
    want_connected_ = false;
    reconnect_due_ = false;
    std::string why = outcome_.done
                          ? outcome_.error
                          : "no answer from the broker within " + std::to_string(options_.connect_timeout.count()) +
                                " ms (Options::connect_timeout)";
    int code = outcome_.done ? outcome_.code : MOSQ_ERR_TIMEOUT;
    bool open = socket_open_;
    lock.unlock();
    if (open) mosquitto_disconnect(mosq_.get());
    throw Error(ErrorCategory::mqtt, "cannot connect to " + endpoint() + ": " + why, code);
  }

  void connect_async() override {
    std::unique_lock lock(state_mutex_);
    want_connected_ = true;
    if (connected_ || socket_open_) return;
    if (owner_ != Owner::none) {
      connect_requested_ = true;
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

  ConnectResult reconnect() override {
    // Checked before disconnecting: on the network thread connect() would
    // throw, and the connection must not be dropped for nothing.
    if (t_network_owner == this)
      throw Error(ErrorCategory::config,
                  "reconnect() cannot wait for the broker on the network thread (inside a callback); call "
                  "disconnect() and connect_async() there instead");
    disconnect();
    return connect();
  }

  void disconnect() override {
    bool open;
    {
      std::lock_guard lock(state_mutex_);
      want_connected_ = false;
      connect_requested_ = false;
      reconnect_due_ = false;
      open = socket_open_;
    }
    state_cv_.notify_all();
    if (!open) return;
    mosquitto_disconnect(mosq_.get());
    if (t_network_owner == this) return;  // the loop writes it once the callback returns
    auto deadline = Clock::now() + kDisconnectWait;
    std::unique_lock lock(state_mutex_);
    if (owner_ != Owner::none) {
      state_cv_.wait_until(lock, deadline, [&] { return !socket_open_; });
      return;
    }
    owner_ = Owner::manual;
    lock.unlock();
    {
      OwnerScope scope(this, {});
      while (Clock::now() < deadline) {
        {
          std::lock_guard guard(state_mutex_);
          if (!socket_open_) break;
        }
        step(kLoopSlice);
      }
    }
    lock.lock();
    owner_ = Owner::none;
    state_cv_.notify_all();
  }

  bool connected() const noexcept override { return connected_flag_.load(); }

  bool wait_connected(milliseconds timeout) const override {
    std::unique_lock lock(state_mutex_);
    return state_cv_.wait_for(lock, timeout, [&] { return connected_; });
  }

  // ---- network loop -------------------------------------------------------

  bool loop(milliseconds timeout) override {
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

  void loop_start() override {
    if (t_network_owner == this) return;  // from a callback: the network already runs
    // A thread that loop_stop() (called from a callback) left to finish.
    if (thread_.joinable() && thread_.get_stop_token().stop_requested()) thread_.join();
    std::lock_guard lock(state_mutex_);
    if (owner_ == Owner::background) return;
    if (owner_ != Owner::none)
      throw Error(ErrorCategory::config, "loop_start(): the network is already run by loop_forever() or loop()");
    owner_ = Owner::background;
    thread_ = std::jthread([this](std::stop_token stop) {
      run(stop, /*until_disconnected=*/false);
      std::lock_guard guard(state_mutex_);
      owner_ = Owner::none;
      state_cv_.notify_all();
    });
  }

  void loop_stop() override {
    if (!thread_.joinable()) return;
    thread_.request_stop();
    state_cv_.notify_all();
    if (t_network_owner == this) return;  // from a callback: cannot join ourselves; joined later
    thread_.join();
  }

  void loop_forever(std::stop_token stop) override {
    {
      std::lock_guard lock(state_mutex_);
      if (owner_ != Owner::none)
        throw Error(ErrorCategory::config, "loop_forever(): the network is already run by loop_start() or loop()");
      if (!want_connected_ && !socket_open_)
        throw Error(ErrorCategory::config, "loop_forever() needs connect() or connect_async() first");
      owner_ = Owner::forever;
      stop_forever_at_.reset();  // a stop that ended an earlier run is not this run's
    }
    {
      std::stop_callback on_stop(stop, [this] {
        // Runs on the requesting thread (or here, if already requested).
        std::lock_guard lock(state_mutex_);
        want_connected_ = false;
        connect_requested_ = false;
        reconnect_due_ = false;
        stop_forever_at_ = Clock::now();
        if (socket_open_) mosquitto_disconnect(mosq_.get());
        state_cv_.notify_all();
      });
      run(std::stop_token{}, /*until_disconnected=*/true);
    }
    std::lock_guard lock(state_mutex_);
    owner_ = Owner::none;
    state_cv_.notify_all();
  }

  // ---- publish ------------------------------------------------------------

  DeliveryToken publish(std::string_view topic, std::string_view payload, int qos, bool retain,
                        const Properties& properties) override {
    if (auto problem = topic_problem(topic))
      throw Error(ErrorCategory::topic, "cannot publish to '" + printable(topic) + "': " + *problem);
    if (qos < 0 || qos > 2) throw Error(ErrorCategory::config, "QoS must be 0, 1 or 2, not " + std::to_string(qos));
    if (payload.size() > options_.max_payload_size)
      throw Error(ErrorCategory::mqtt,
                  "payload of " + std::to_string(payload.size()) + " bytes exceeds the limit of " +
                      std::to_string(options_.max_payload_size) +
                      " bytes (Options::max_payload_size); nothing was sent",
                  MOSQ_ERR_PAYLOAD_SIZE);
    PropertyList props;
    if (options_.protocol == Protocol::v5 && !properties.empty()) props = make_properties(properties);

    if (qos == 0 && !connected()) return publish_offline(topic, payload, retain, properties);

    if (qos > 0) acquire_slot();
    std::string topic_z(topic);
    auto state = std::make_shared<detail::TokenState>();
    int rc;
    bool accepted;
    {
      std::lock_guard lock(tokens_mutex_);
      int mid = 0;
      rc = mosquitto_publish_v5(mosq_.get(), &mid, topic_z.c_str(), static_cast<int>(payload.size()), payload.data(),
                                qos, retain, props.get());
      // QoS 1/2 while disconnected: libmosquitto keeps the message and sends it
      // after the next CONNACK, so that counts as accepted.
      accepted = rc == MOSQ_ERR_SUCCESS || (rc == MOSQ_ERR_NO_CONN && qos > 0 && mid != 0);
      if (accepted) register_delivery_locked(mid, qos, state);
    }
    if (!accepted) {
      if (qos > 0) release_slot();
      if (rc == MOSQ_ERR_NO_CONN && qos == 0) return publish_offline(topic, payload, retain, properties);
      throw publish_error(rc, topic, payload.size());
    }
    return DeliveryToken(state);
  }

  // ---- subscribe ----------------------------------------------------------

  SubscribeToken subscribe(std::string_view filter, int qos, MessageHandler handler) override {
    return subscribe(std::vector<Subscription>{Subscription{std::string(filter), qos, std::move(handler)}});
  }

  SubscribeToken subscribe(const std::vector<Subscription>& subscriptions) override {
    if (subscriptions.empty()) throw Error(ErrorCategory::config, "subscribe() needs at least one filter");
    for (const auto& s : subscriptions) {
      if (auto problem = filter_problem(s.filter))
        throw Error(ErrorCategory::topic, "cannot subscribe to '" + printable(s.filter) + "': " + *problem);
      if (s.qos < 0 || s.qos > 2)
        throw Error(ErrorCategory::config, "QoS must be 0, 1 or 2, not " + std::to_string(s.qos));
    }
    auto state = std::make_shared<detail::TokenState>();
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
    if (connected()) {
      // One SUBSCRIBE per QoS level (a packet carries one option byte for all).
      std::map<int, std::vector<std::string>> by_qos;
      for (const auto& s : subscriptions) by_qos[s.qos].push_back(s.filter);
      for (auto& [q, filters] : by_qos) send_subscribe_locked(filters, q);
    }
    // Otherwise sent with every other remembered subscription on connect.
    return SubscribeToken(state);
  }

  SubscribeToken unsubscribe(std::string_view filter) override {
    if (auto problem = filter_problem(filter))
      throw Error(ErrorCategory::topic, "cannot unsubscribe from '" + printable(filter) + "': " + *problem);
    std::string f(filter);
    std::lock_guard lock(subs_mutex_);
    if (auto it = subs_.find(f); it != subs_.end()) {
      for (auto& w : it->second.waiters) w.state->fail("unsubscribed from '" + f + "' before the broker answered");
      subs_.erase(it);
    }
    set_handler_locked(f, nullptr);
    if (!connected()) return SubscribeToken();
    auto state = std::make_shared<detail::TokenState>();
    int mid = 0;
    int rc = mosquitto_unsubscribe_v5(mosq_.get(), &mid, f.c_str(), nullptr);
    if (rc != MOSQ_ERR_SUCCESS) {
      if (rc == MOSQ_ERR_NO_CONN) return SubscribeToken();
      throw Error(ErrorCategory::mqtt, "cannot unsubscribe from '" + printable(f) + "': " + mosquitto_strerror(rc), rc);
    }
    state->mid = mid;
    pending_unsubs_[mid] = state;
    return SubscribeToken(state);
  }

  std::vector<std::string> subscriptions() const override {
    std::lock_guard lock(subs_mutex_);
    std::vector<std::string> out;
    for (const auto& [filter, record] : subs_) out.push_back(filter);
    return out;
  }

  // ---- callbacks ----------------------------------------------------------

  void on_connect(ConnectHandler h) override { set_callback(connect_cb_, std::move(h)); }
  void on_disconnect(DisconnectHandler h) override { set_callback(disconnect_cb_, std::move(h)); }
  void on_message(MessageHandler h) override { set_callback(message_cb_, std::move(h)); }
  void on_subscribe(SubscribeHandler h) override { set_callback(subscribe_cb_, std::move(h)); }
  void on_publish(PublishHandler h) override { set_callback(publish_cb_, std::move(h)); }
  void on_log(LogHandler h) override {
    bool has = static_cast<bool>(h);
    set_callback(log_cb_, std::move(h));
    user_logs_ = has;
    update_log_hook();
  }

  // ---- consuming ----------------------------------------------------------

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

 private:
  enum class Owner { none, background, forever, manual };

  struct Outcome {
    bool done = false;
    bool ok = false;
    ConnectResult result;
    std::string error;
    int code = 0;
  };

  struct Waiter {
    std::shared_ptr<detail::TokenState> state;
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
    std::shared_ptr<detail::TokenState> state;
    int qos;
  };
  struct OfflineMessage {
    std::string topic;
    std::string payload;
    bool retain;
    Properties properties;
    std::shared_ptr<detail::TokenState> state;
  };

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

  // ---- setup ----

  void configure() {
    mosquitto* m = mosq_.get();
    int protocol = options_.protocol == Protocol::v31  ? MQTT_PROTOCOL_V31
                   : options_.protocol == Protocol::v5 ? MQTT_PROTOCOL_V5
                                                       : MQTT_PROTOCOL_V311;
    must(mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, protocol), "protocol version");
    must(mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, static_cast<int>(options_.max_inflight)), "max inflight");
    must(mosquitto_threaded_set(m, true), "threaded mode");
    if (options_.tcp_nodelay) must(mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1), "TCP_NODELAY");
    if (!options_.username.empty())
      must(mosquitto_username_pw_set(m, options_.username.c_str(),
                                     options_.password ? options_.password->c_str() : nullptr),
           "user name and password");
    if (options_.will) {
      const Will& w = *options_.will;
      must(
          mosquitto_will_set(m, w.topic.c_str(), static_cast<int>(w.payload.size()), w.payload.data(), w.qos, w.retain),
          "will");
    }
    if (options_.tls.enabled) configure_tls();
    mosquitto_connect_v5_callback_set(m, &MosquittoClient::on_connect_cb);
    mosquitto_disconnect_v5_callback_set(m, &MosquittoClient::on_disconnect_cb);
    mosquitto_message_v5_callback_set(m, &MosquittoClient::on_message_cb);
    mosquitto_publish_v5_callback_set(m, &MosquittoClient::on_publish_cb);
    mosquitto_subscribe_v5_callback_set(m, &MosquittoClient::on_subscribe_cb);
    mosquitto_unsubscribe_v5_callback_set(m, &MosquittoClient::on_unsubscribe_cb);
  }

  void configure_tls() {
    const TlsOptions& t = options_.tls;
    mosquitto* m = mosq_.get();
    for (const std::string* file : {&t.ca_file, &t.cert_file, &t.key_file}) {
      if (!file->empty() && ::access(file->c_str(), R_OK) != 0)
        throw Error(ErrorCategory::config, "TLS file '" + *file + "' cannot be read: " + std::strerror(errno), errno);
    }
    if (t.cert_file.empty() != t.key_file.empty())
      throw Error(ErrorCategory::config, "TLS client certificate and key must be given together");
    if (t.ca_file.empty() && t.ca_dir.empty()) {
      // Verified against the system's CAs: mosquitto_tls_set() refuses to be
      // called without a CA (EINVAL), so it is not called, and a client
      // certificate needs a CA named (as mosquitto_pub asks for --cafile).
      if (!t.cert_file.empty())
        throw Error(ErrorCategory::config,
                    "a TLS client certificate needs the broker's CA too: give a CA file or folder");
      must(mosquitto_int_option(m, MOSQ_OPT_TLS_USE_OS_CERTS, 1), "system CAs");
    } else {
      must(mosquitto_tls_set(m, t.ca_file.empty() ? nullptr : t.ca_file.c_str(),
                             t.ca_dir.empty() ? nullptr : t.ca_dir.c_str(),
                             t.cert_file.empty() ? nullptr : t.cert_file.c_str(),
                             t.key_file.empty() ? nullptr : t.key_file.c_str(), nullptr),
           "TLS files");
    }
    must(mosquitto_tls_opts_set(m, 1, t.version.empty() ? nullptr : t.version.c_str(), nullptr), "TLS options");
    if (t.insecure) must(mosquitto_tls_insecure_set(m, true), "TLS insecure mode");
  }

  static void must(int rc, const char* what) {
    if (rc != MOSQ_ERR_SUCCESS)
      throw Error(ErrorCategory::mqtt, std::string("libmosquitto refused the ") + what + ": " + mosquitto_strerror(rc),
                  rc);
  }

  std::string endpoint() const {
    return std::string(options_.tls.enabled ? "mqtts://" : "mqtt://") + options_.host + ":" +
           std::to_string(options_.port);
  }

  // libmosquitto formats a log line per packet once a log callback is set, so
  // it is set only while connecting (to catch TLS and socket errors in words)
  // and while the user wants logs.
  void update_log_hook() {
    bool want = user_logs_.load() || connecting_logs_.load();
    mosquitto_log_callback_set(mosq_.get(), want ? &MosquittoClient::on_log_cb : nullptr);
  }

  // ---- the network owner ----

  void run(std::stop_token stop, bool until_disconnected) {
    OwnerScope scope(this, stop);
    while (!stop.stop_requested()) {
      if (until_disconnected) {
        std::lock_guard lock(state_mutex_);
        if (!want_connected_ && !socket_open_ && !connect_requested_) break;
        // A stop that could not flush DISCONNECT (dead peer) still ends the loop.
        if (stop_forever_at_ && Clock::now() - *stop_forever_at_ > kDisconnectWait) break;
      }
      step(kLoopSlice);
    }
  }

  // One round: start a requested or due connection, then serve the socket for
  // up to `timeout` (or sleep until something is due).
  void step(milliseconds timeout) {
    bool start = false;
    {
      std::lock_guard lock(state_mutex_);
      if (connect_requested_) {
        connect_requested_ = false;
        start = true;
      } else if (reconnect_due_ && want_connected_ && !attempt_active_ && !socket_open_ &&
                 Clock::now() >= next_attempt_) {
        reconnect_due_ = false;
        start = true;
      }
    }
    if (start) start_connection();
    bool open;
    {
      std::lock_guard lock(state_mutex_);
      open = socket_open_;
    }
    if (open) {
      int rc = mosquitto_loop(mosq_.get(), static_cast<int>(timeout.count()), 1);
      int err = errno;
      if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(mosq_.get()) == -1) after_loop(rc, err);
      return;
    }
    std::unique_lock lock(state_mutex_);
    auto until = Clock::now() + timeout;
    if (reconnect_due_ && next_attempt_ < until) until = next_attempt_;
    state_cv_.wait_until(lock, t_network_stop, until, [&] { return connect_requested_; });
  }

  // Starts a TCP (and TLS) connection and queues CONNECT; the CONNACK arrives
  // through the loop. Runs on the owner thread.
  void start_connection() {
    fail_unwritten_qos0(kQos0Lost);  // connecting clears libmosquitto's packet queue
    connecting_logs_ = true;
    update_log_hook();
    {
      std::lock_guard lock(log_mutex_);
      last_error_log_.clear();
    }
    int rc;
    bool persistent_v5 = options_.protocol == Protocol::v5 && !options_.clean_session;
    const char* bind = options_.bind_address.empty() ? nullptr : options_.bind_address.c_str();
    int keepalive = static_cast<int>(options_.keepalive.count());
    if (persistent_v5) {
      // MQTT 5 ends a session at disconnect unless CONNECT says otherwise, and
      // only the blocking connect carries CONNECT properties.
      mosquitto_property* list = nullptr;
      uint32_t expiry = options_.session_expiry_interval ? options_.session_expiry_interval : 0xFFFFFFFFu;
      mosquitto_property_add_int32(&list, MQTT_PROP_SESSION_EXPIRY_INTERVAL, expiry);
      PropertyList props(list);
      rc = mosquitto_connect_bind_v5(mosq_.get(), options_.host.c_str(), options_.port, keepalive, bind, props.get());
    } else {
      rc = mosquitto_connect_bind_async(mosq_.get(), options_.host.c_str(), options_.port, keepalive, bind);
    }
    int err = errno;
    std::optional<std::string> failed;
    std::optional<milliseconds> retry;
    {
      std::lock_guard lock(state_mutex_);
      if (rc == MOSQ_ERR_SUCCESS) {
        socket_open_ = true;
        return;
      }
      socket_open_ = false;
      std::string why = describe(rc, err);
      if (attempt_active_ && !outcome_.done) {
        outcome_ = Outcome{true, false, {}, why, rc};
      } else {
        failed = "cannot connect to " + endpoint() + ": " + why;
        if (want_connected_ && options_.auto_reconnect) retry = schedule_reconnect_locked();
      }
    }
    state_cv_.notify_all();
    if (failed) log(LogLevel::warning, *failed);
    log_retry(retry);
  }

  // After mosquitto_loop() failed or the socket closed under it.
  void after_loop(int rc, int err) {
    bool closed = mosquitto_socket(mosq_.get()) == -1;
    bool lost_unreported = false;
    std::optional<milliseconds> retry;
    {
      std::lock_guard lock(state_mutex_);
      if (attempt_active_ && !outcome_.done && rc != MOSQ_ERR_SUCCESS) {
        outcome_ = Outcome{true, false, {}, describe(rc, err), rc};
      }
      if (closed) {
        socket_open_ = false;
        // Some failures (a TLS handshake error) close the socket without on_disconnect.
        if (connected_) {
          connected_ = false;
          connected_flag_ = false;
          lost_unreported = true;
        }
        if (!attempt_active_ && want_connected_ && options_.auto_reconnect && !reconnect_due_)
          retry = schedule_reconnect_locked();
      }
      state_cv_.notify_all();
    }
    if (closed) fail_unwritten_qos0(kQos0Lost);
    if (lost_unreported) report_disconnect(rc, err);
    log_retry(retry);
    if (rc != MOSQ_ERR_SUCCESS && !closed) {
      // An error that left the socket open; do not spin on it.
      std::this_thread::sleep_for(milliseconds(1));
    }
  }

  // Jittered (Backoff), so that clients that lost one broker together do not
  // all come back in the same instant. Returns the delay.
  milliseconds schedule_reconnect_locked() {
    milliseconds delay = backoff_.next();
    reconnect_due_ = true;
    next_attempt_ = Clock::now() + delay;
    return delay;
  }

  void log_retry(std::optional<milliseconds> delay) {
    if (delay)
      log(LogLevel::info, "next attempt to connect to " + endpoint() + " in " + std::to_string(delay->count()) + " ms");
  }

  std::string describe(int rc, int err) {
    std::string detail;
    {
      std::lock_guard lock(log_mutex_);
      detail = last_error_log_;
    }
    switch (rc) {
      case MOSQ_ERR_ERRNO:
        if (err == ECONNREFUSED)
          return "connection refused: nothing accepts connections there (is the broker running?)";
        // libmosquitto binds before it connects; EADDRNOTAVAIL comes from bind().
        if (err == EADDRNOTAVAIL && !options_.bind_address.empty())
          return "cannot bind to the local address '" + options_.bind_address +
                 "' (Options::bind_address): " + std::strerror(err);
        if (err == 0) return "connection closed" + (detail.empty() ? std::string() : " (" + detail + ")");
        return std::string(std::strerror(err)) + (detail.empty() ? "" : " (" + detail + ")");
      case MOSQ_ERR_EAI:
        // Both the broker's name and the bind address are looked up.
        if (!options_.bind_address.empty())
          return "cannot resolve host name '" + options_.host + "' or the local address '" + options_.bind_address +
                 "' (Options::bind_address): " + gai_strerror(err);
        return "cannot resolve host name '" + options_.host + "': " + gai_strerror(err);
      case MOSQ_ERR_TLS:
      case MOSQ_ERR_TLS_HANDSHAKE:
        return "TLS handshake failed: " + (detail.empty() ? std::string("no detail from OpenSSL") : detail);
      case MOSQ_ERR_CONN_LOST:
        return "the broker closed the connection" + (detail.empty() ? std::string() : " (" + detail + ")");
      case MOSQ_ERR_KEEPALIVE: return "no answer from the broker within the keepalive interval";
      default:
        if (rc >= 0x80) return connack_words(rc) + " (reason " + hex_code(rc) + ")";
        return lowercase_first(mosquitto_strerror(rc)) + (detail.empty() ? "" : " (" + detail + ")");
    }
  }

  // ---- callbacks from libmosquitto (network thread) ----

  static MosquittoClient* self(void* obj) { return static_cast<MosquittoClient*>(obj); }

  static void on_connect_cb(mosquitto*, void* obj, int rc, int flags, const mosquitto_property*) noexcept {
    guard("on_connect", obj, [&] { self(obj)->handle_connect(rc, (flags & 1) != 0); });
  }
  static void on_disconnect_cb(mosquitto*, void* obj, int rc, const mosquitto_property*) noexcept {
    int err = errno;
    guard("on_disconnect", obj, [&] { self(obj)->handle_disconnect(rc, err); });
  }
  static void on_message_cb(mosquitto*, void* obj, const mosquitto_message* m, const mosquitto_property* p) noexcept {
    guard("on_message", obj, [&] { self(obj)->handle_message(m, p); });
  }
  static void on_publish_cb(mosquitto*, void* obj, int mid, int reason, const mosquitto_property*) noexcept {
    guard("on_publish", obj, [&] { self(obj)->handle_puback(mid, reason); });
  }
  static void on_subscribe_cb(mosquitto*, void* obj, int mid, int count, const int* granted,
                              const mosquitto_property*) noexcept {
    guard("on_subscribe", obj, [&] { self(obj)->handle_suback(mid, count, granted); });
  }
  static void on_unsubscribe_cb(mosquitto*, void* obj, int mid, const mosquitto_property*) noexcept {
    guard("on_unsubscribe", obj, [&] { self(obj)->handle_unsuback(mid); });
  }
  static void on_log_cb(mosquitto*, void* obj, int level, const char* text) noexcept {
    guard("on_log", obj, [&] { self(obj)->handle_log(level, text ? text : ""); });
  }

  // Nothing may unwind into C code.
  template <typename F>
  static void guard(const char* where, void* obj, F&& f) noexcept {
    try {
      f();
    } catch (const std::exception& e) {
      try {
        self(obj)->log(LogLevel::error, std::string("internal error in ") + where + ": " + e.what());
      } catch (...) {
      }
    } catch (...) {
    }
  }

  // Calls user code: exceptions are caught and logged, never passed on.
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

  void handle_connect(int rc, bool session_present) {
    ConnectResult result{rc, session_present, connack_words(rc)};
    if (rc == 0) {
      {
        std::lock_guard lock(state_mutex_);
        connected_ = true;
        connected_flag_ = true;
        backoff_.reset();
        last_connect_ = result;
        if (attempt_active_ && !outcome_.done) outcome_ = Outcome{true, true, result, {}, 0};
      }
      state_cv_.notify_all();
      connecting_logs_ = false;
      update_log_hook();
      restore_subscriptions(session_present);
      flush_offline();
    } else {
      std::lock_guard lock(state_mutex_);
      if (attempt_active_ && !outcome_.done)
        outcome_ = Outcome{true, false, result,
                           "the broker refused the connection: " + result.reason + " (CONNACK code " +
                               (rc >= 0x80 ? hex_code(rc) : std::to_string(rc)) + ")",
                           rc};
      state_cv_.notify_all();
    }
    call_user("on_connect", get_callback(connect_cb_), result);
  }

  void handle_disconnect(int rc, int err) {
    bool was_connected;
    std::optional<milliseconds> retry;
    {
      std::lock_guard lock(state_mutex_);
      was_connected = connected_;
      connected_ = false;
      connected_flag_ = false;
      socket_open_ = false;
      if (attempt_active_ && !outcome_.done) outcome_ = Outcome{true, false, {}, describe(rc, err), rc};
      if (!attempt_active_ && want_connected_ && options_.auto_reconnect) retry = schedule_reconnect_locked();
    }
    state_cv_.notify_all();
    fail_unwritten_qos0(kQos0Lost);
    if (was_connected) report_disconnect(rc, err);
    log_retry(retry);
  }

  void report_disconnect(int rc, int err) {
    DisconnectInfo info;
    info.unexpected = rc != 0;
    info.reason_code = rc;
    info.reason = rc == 0 ? "disconnected by the client" : describe(rc, err);
    if (info.unexpected) log(LogLevel::warning, "connection to " + endpoint() + " lost: " + info.reason);
    call_user("on_disconnect", get_callback(disconnect_cb_), info);
  }

  void handle_message(const mosquitto_message* m, const mosquitto_property* props) {
    Message msg;
    msg.topic = m->topic ? m->topic : "";
    if (m->payloadlen > 0)
      msg.payload.assign(static_cast<const char*>(m->payload), static_cast<std::size_t>(m->payloadlen));
    msg.qos = m->qos;
    msg.retain = m->retain;
    msg.mid = m->mid;
    if (props) msg.properties = read_properties(props);

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
    {
      std::lock_guard lock(subs_mutex_);
      if (!tree_.empty()) {
        tree_.match(msg.topic, [&](std::vector<HandlerEntry>& entries) {
          for (auto& e : entries)
            if (e.handler) handlers.push_back(e.handler);
        });
      }
    }
    if (!handlers.empty()) {
      for (const auto& h : handlers) call_user("message handler", h, msg);
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
      if (!queue->push(std::move(msg), t_network_stop))
        log(LogLevel::warning, "consumer queue closed or loop stopped: a message was not queued");
      return;
    }
    call_user("on_message", fallback, msg);
  }

  // A PUBACK / PUBCOMP (QoS 1/2), or a QoS 0 message written to the socket.
  void handle_puback(int mid, int reason) {
    Delivery d;
    {
      std::lock_guard lock(tokens_mutex_);
      if (!unwritten_qos0_.empty() && unwritten_qos0_.front().state->mid == mid) {
        d = std::move(unwritten_qos0_.front());
        unwritten_qos0_.pop_front();
      } else if (auto it = deliveries_.find(mid); it != deliveries_.end()) {
        d = std::move(it->second);
        deliveries_.erase(it);
      }
    }
    if (auto cb = get_callback(publish_cb_)) call_user("on_publish", cb, PublishResult{mid, reason});
    // After on_publish, so that a waiter sees its effects.
    if (d.state) finish_delivery(d, reason);
  }

  void handle_suback(int mid, int count, const int* granted) {
    SubscribeResult result;
    result.mid = mid;
    result.granted_qos.assign(granted, granted + std::max(count, 0));
    std::vector<std::pair<Waiter, int>> answers;
    {
      std::lock_guard lock(subs_mutex_);
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
        log(LogLevel::warning, "the broker refused the subscription to '" + result.filters[i] + "' (code " +
                                   hex_code(result.granted_qos[i]) + ")");
    }
    call_user("on_subscribe", get_callback(subscribe_cb_), result);
    // Tokens complete after on_subscribe ran, so a waiter sees its effects.
    for (auto& [w, code] : answers) w.state->grant(w.index, code);
  }

  void handle_unsuback(int mid) {
    std::shared_ptr<detail::TokenState> state;
    {
      std::lock_guard lock(subs_mutex_);
      if (auto it = pending_unsubs_.find(mid); it != pending_unsubs_.end()) {
        state = std::move(it->second);
        pending_unsubs_.erase(it);
      }
    }
    if (state) state->complete();
  }

  void handle_log(int level, const char* text) {
    if (level == MOSQ_LOG_ERR) {
      std::lock_guard lock(log_mutex_);
      last_error_log_ = text;
    }
    if (user_logs_) call_user("on_log", get_callback(log_cb_), log_level(level), std::string_view(text));
  }

  void log(LogLevel level, const std::string& text) {
    auto handler = get_callback(log_cb_);
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

  // ---- subscriptions ----

  void set_handler_locked(const std::string& filter, std::shared_ptr<const MessageHandler> handler) {
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

  // subs_mutex_ held.
  void send_subscribe_locked(const std::vector<std::string>& filters, int qos) {
    std::vector<char*> list;
    for (const auto& f : filters) list.push_back(const_cast<char*>(f.c_str()));
    int mid = 0;
    int rc =
        mosquitto_subscribe_multiple(mosq_.get(), &mid, static_cast<int>(list.size()), list.data(), qos, 0, nullptr);
    if (rc == MOSQ_ERR_SUCCESS) {
      pending_subs_[mid] = filters;
      // A token whose filters went out in several packets shows the first one's mid.
      for (const auto& f : filters)
        if (auto it = subs_.find(f); it != subs_.end())
          for (auto& w : it->second.waiters) {
            int none = 0;
            w.state->mid.compare_exchange_strong(none, mid);
          }
    } else if (rc != MOSQ_ERR_NO_CONN) {
      for (const auto& f : filters) {
        if (auto it = subs_.find(f); it != subs_.end()) {
          for (auto& w : it->second.waiters)
            w.state->fail("cannot subscribe to '" + f + "': " + mosquitto_strerror(rc));
          it->second.waiters.clear();
        }
      }
      log(LogLevel::error, std::string("SUBSCRIBE failed: ") + mosquitto_strerror(rc));
    }
    // NO_CONN: the connection dropped meanwhile; sent again on connect.
  }

  void restore_subscriptions(bool session_present) {
    std::lock_guard lock(subs_mutex_);
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
        send_subscribe_locked(chunk, qos);
      }
    }
  }

  // ---- publishing ----

  void acquire_slot() {
    std::unique_lock lock(flow_mutex_);
    if (unacked_ < options_.max_queued) {
      ++unacked_;
      return;
    }
    auto full = [&] {
      return Error(ErrorCategory::mqtt,
                   std::to_string(unacked_) +
                       " QoS 1/2 messages already wait for the broker's acknowledgement (Options::max_queued); "
                       "publish refused",
                   MOSQ_ERR_NOMEM);
    };
    if (options_.when_full == WhenFull::fail) throw full();
    if (t_network_owner == this) {
      // Blocking here would wait for acknowledgements only this thread can read.
      if (unacked_ < 2 * options_.max_queued) {
        ++unacked_;
        return;
      }
      throw full();
    }
    ++flow_waiters_;
    bool room = flow_cv_.wait_for(lock, options_.publish_timeout,
                                  [&] { return unacked_ < options_.max_queued || closing_.load(); });
    --flow_waiters_;
    if (!room)
      throw Error(ErrorCategory::mqtt,
                  "timed out after " + std::to_string(options_.publish_timeout.count()) +
                      " ms waiting for the broker to acknowledge earlier messages (Options::publish_timeout)",
                  MOSQ_ERR_TIMEOUT);
    if (closing_) throw Error(ErrorCategory::mqtt, "the MQTT client is being destroyed");
    ++unacked_;
  }

  void release_slot() {
    bool wake;
    {
      std::lock_guard lock(flow_mutex_);
      if (unacked_ > 0) --unacked_;
      // Wake blocked publishers once a quarter of the window is free, not on
      // every acknowledgement: one wake-up then publishes a burst.
      std::size_t low_water = options_.max_queued - std::max<std::size_t>(1, options_.max_queued / 4);
      wake = flow_waiters_ > 0 && unacked_ <= low_water;
    }
    if (wake) flow_cv_.notify_all();
  }

  // tokens_mutex_ held, across the mosquitto_publish_v5 that gave `mid`.
  void register_delivery_locked(int mid, int qos, std::shared_ptr<detail::TokenState> state) {
    state->mid = mid;
    if (qos == 0)
      unwritten_qos0_.push_back(Delivery{std::move(state), 0});
    else
      deliveries_[mid] = Delivery{std::move(state), qos};
  }

  // libmosquitto drops the QoS 0 packets it has not written when the socket
  // closes (and clears its queue on the next connect): their tokens fail now.
  void fail_unwritten_qos0(const std::string& why) {
    std::deque<Delivery> lost;
    {
      std::lock_guard lock(tokens_mutex_);
      lost.swap(unwritten_qos0_);
    }
    for (auto& d : lost) d.state->fail(why);
  }

  void finish_delivery(const Delivery& d, int reason) {
    if (d.qos > 0) release_slot();
    if (reason >= 0x80)
      d.state->fail("the broker refused message " + std::to_string(d.state->mid) + ": " + connack_words(reason) +
                    " (reason " + hex_code(reason) + ")");
    else
      d.state->complete(reason);
  }

  Error publish_error(int rc, std::string_view topic, std::size_t size) {
    std::string what = "cannot publish to '" + printable(topic) + "': ";
    switch (rc) {
      case MOSQ_ERR_PAYLOAD_SIZE:
      case MOSQ_ERR_OVERSIZE_PACKET:
        return Error(ErrorCategory::mqtt,
                     what + "a payload of " + std::to_string(size) +
                         " bytes is larger than the broker accepts (its maximum packet size)",
                     rc);
      case MOSQ_ERR_NO_CONN: return Error(ErrorCategory::mqtt, what + "not connected", rc);
      case MOSQ_ERR_QOS_NOT_SUPPORTED:
      case MOSQ_ERR_RETAIN_NOT_SUPPORTED:
      case MOSQ_ERR_MALFORMED_UTF8:
      default: return Error(ErrorCategory::mqtt, what + lowercase_first(mosquitto_strerror(rc)), rc);
    }
  }

  DeliveryToken publish_offline(std::string_view topic, std::string_view payload, bool retain,
                                const Properties& properties) {
    if (!options_.queue_qos0_offline)
      throw Error(ErrorCategory::mqtt,
                  "cannot publish QoS 0 to '" + printable(topic) + "': not connected to " + endpoint() +
                      " (set Options::queue_qos0_offline to queue it)",
                  MOSQ_ERR_NO_CONN);
    auto state = std::make_shared<detail::TokenState>();
    std::unique_lock lock(offline_mutex_);
    if (offline_.size() >= options_.max_offline_queue) {
      auto full = [&] {
        return Error(ErrorCategory::mqtt,
                     "offline queue full (" + std::to_string(offline_.size()) +
                         " QoS 0 messages wait for a connection; Options::max_offline_queue)",
                     MOSQ_ERR_NO_CONN);
      };
      if (options_.when_full == WhenFull::fail || t_network_owner == this) throw full();
      if (!offline_cv_.wait_for(lock, options_.publish_timeout,
                                [&] { return offline_.size() < options_.max_offline_queue || closing_.load(); }) ||
          closing_)
        throw full();
    }
    offline_.push_back({std::string(topic), std::string(payload), retain, properties, state});
    lock.unlock();
    // The connection may have come back meanwhile.
    if (connected()) flush_offline();
    return DeliveryToken(state);
  }

  void flush_offline() {
    while (true) {
      OfflineMessage m;
      {
        std::lock_guard lock(offline_mutex_);
        if (offline_.empty() || !connected()) return;
        m = std::move(offline_.front());
        offline_.pop_front();
      }
      offline_cv_.notify_one();
      PropertyList props;
      if (options_.protocol == Protocol::v5 && !m.properties.empty()) props = make_properties(m.properties);
      int rc;
      {
        std::lock_guard lock(tokens_mutex_);
        int mid = 0;
        rc = mosquitto_publish_v5(mosq_.get(), &mid, m.topic.c_str(), static_cast<int>(m.payload.size()),
                                  m.payload.data(), 0, m.retain, props.get());
        if (rc == MOSQ_ERR_SUCCESS) register_delivery_locked(mid, 0, m.state);
      }
      if (rc == MOSQ_ERR_NO_CONN) {
        std::lock_guard lock(offline_mutex_);
        offline_.push_front(std::move(m));
        return;
      }
      if (rc != MOSQ_ERR_SUCCESS) m.state->fail(publish_error(rc, m.topic, m.payload.size()).what());
    }
  }

  void fail_all_pending(const std::string& why) {
    std::unordered_map<int, Delivery> deliveries;
    {
      std::lock_guard lock(tokens_mutex_);
      deliveries.swap(deliveries_);
    }
    for (auto& [mid, d] : deliveries) d.state->fail(why);
    fail_unwritten_qos0(why);
    std::deque<OfflineMessage> offline;
    {
      std::lock_guard lock(offline_mutex_);
      offline.swap(offline_);
    }
    for (auto& m : offline) m.state->fail(why);
    std::lock_guard lock(subs_mutex_);
    for (auto& [filter, record] : subs_)
      for (auto& w : record.waiters) w.state->fail(why);
    for (auto& [mid, state] : pending_unsubs_) state->fail(why);
  }

  // ---- callback storage ----

  template <typename F>
  void set_callback(std::shared_ptr<const F>& slot, F handler) {
    auto value = handler ? std::make_shared<const F>(std::move(handler)) : nullptr;
    std::lock_guard lock(cb_mutex_);
    slot = std::move(value);
  }
  template <typename F>
  std::shared_ptr<const F> get_callback(const std::shared_ptr<const F>& slot) const {
    std::lock_guard lock(cb_mutex_);
    return slot;
  }

  Options options_;
  std::string client_id_;
  std::unique_ptr<mosquitto, MosquittoDeleter> mosq_;

  // Connection state.
  mutable std::mutex state_mutex_;
  mutable std::condition_variable_any state_cv_;
  Owner owner_ = Owner::none;
  bool want_connected_ = false;     // the user wants a connection (reconnect when lost)
  bool connect_requested_ = false;  // the owner should start a connection now
  bool socket_open_ = false;        // libmosquitto holds a socket (connecting or connected)
  bool connected_ = false;          // CONNACK success seen, not lost since
  std::atomic<bool> connected_flag_{false};
  bool reconnect_due_ = false;
  Clock::time_point next_attempt_{};
  Backoff backoff_;  // reconnect delays
  std::uint64_t attempt_ = 0;
  bool attempt_active_ = false;  // a blocking connect() waits for its outcome
  Outcome outcome_;
  ConnectResult last_connect_;
  std::optional<Clock::time_point> stop_forever_at_;
  std::jthread thread_;

  std::mutex log_mutex_;
  std::string last_error_log_;
  std::atomic<bool> user_logs_{false};
  std::atomic<bool> connecting_logs_{false};

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

  // Subscriptions (handlers keyed by the filter they match, "$share/g/" removed).
  mutable std::mutex subs_mutex_;
  std::map<std::string, SubRecord> subs_;
  TopicTree<std::vector<HandlerEntry>> tree_;
  std::unordered_map<int, std::vector<std::string>> pending_subs_;
  std::unordered_map<int, std::shared_ptr<detail::TokenState>> pending_unsubs_;

  // Deliveries.
  std::mutex tokens_mutex_;
  std::unordered_map<int, Delivery> deliveries_;  // QoS 1/2, by packet id
  std::deque<Delivery> unwritten_qos0_;           // QoS 0, in the order libmosquitto writes them

  // Flow control.
  mutable std::mutex flow_mutex_;
  std::condition_variable flow_cv_;
  std::size_t unacked_ = 0;
  std::size_t flow_waiters_ = 0;
  std::atomic<bool> closing_{false};

  std::mutex offline_mutex_;
  std::condition_variable offline_cv_;
  std::deque<OfflineMessage> offline_;
};

}  // namespace

std::unique_ptr<Client> make_mosquitto_client(Options options) {
  return std::make_unique<MosquittoClient>(std::move(options));
}

const char* mosquitto_library_version() {
  static const std::string version = [] {
    int major = 0, minor = 0, revision = 0;
    mosquitto_lib_version(&major, &minor, &revision);
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(revision);
  }();
  return version.c_str();
}

}  // namespace iotbridge::mqtt
