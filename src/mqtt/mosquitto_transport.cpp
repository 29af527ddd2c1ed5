// The libmosquitto Transport, and make_mosquitto_client(): the client core
// over it. libmosquitto runs in threaded mode: publish/subscribe from any
// thread only queue packets (and wake the socket), and only serve() writes.
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netdb.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"
#include "mqtt/client_core.hpp"
#include "mqtt/text.hpp"
#include "mqtt/transport.hpp"

namespace iotbridge::mqtt {
namespace detail {
namespace {

static_assert(kCodeNoMemory == MOSQ_ERR_NOMEM && kCodeNoConnection == MOSQ_ERR_NO_CONN &&
              kCodePayloadSize == MOSQ_ERR_PAYLOAD_SIZE && kCodeTimeout == MOSQ_ERR_TIMEOUT);

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

// The core has validated what MQTT requires; libmosquitto may still refuse.
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
  if (in.response_topic)
    check(mosquitto_property_add_string(&list, MQTT_PROP_RESPONSE_TOPIC, in.response_topic->c_str()), "response topic");
  if (in.correlation_data)
    check(mosquitto_property_add_binary(&list, MQTT_PROP_CORRELATION_DATA, in.correlation_data->data(),
                                        static_cast<uint16_t>(in.correlation_data->size())),
          "correlation data");
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

void must(int rc, const char* what) {
  if (rc != MOSQ_ERR_SUCCESS)
    throw Error(ErrorCategory::mqtt, std::string("libmosquitto refused the ") + what + ": " + mosquitto_strerror(rc),
                rc);
}

class MosquittoTransport final : public Transport {
 public:
  MosquittoTransport(const Options& options, const std::string& client_id, TransportEvents& events)
      : options_(options), events_(events) {
    ensure_lib_init();
    mosq_.reset(mosquitto_new(client_id.c_str(), options_.clean_session, this));
    if (!mosq_) throw Error(ErrorCategory::mqtt, std::string("mosquitto_new failed: ") + std::strerror(errno), errno);
    configure();
  }

  TransportResult start_connect(const BrokerAddress& address) override {
    host_ = address.host;
    {
      std::lock_guard lock(log_mutex_);
      last_error_log_.clear();
    }
    int rc;
    const char* bind = options_.bind_address.empty() ? nullptr : options_.bind_address.c_str();
    int keepalive = static_cast<int>(options_.keepalive.count());
    if (options_.protocol == Protocol::v5 && !options_.clean_session) {
      // MQTT 5 ends a session at disconnect unless CONNECT says otherwise, and
      // only the blocking connect carries CONNECT properties.
      mosquitto_property* list = nullptr;
      uint32_t expiry = options_.session_expiry_interval ? options_.session_expiry_interval : 0xFFFFFFFFu;
      mosquitto_property_add_int32(&list, MQTT_PROP_SESSION_EXPIRY_INTERVAL, expiry);
      PropertyList props(list);
      rc = mosquitto_connect_bind_v5(mosq_.get(), host_.c_str(), address.port, keepalive, bind, props.get());
    } else {
      rc = mosquitto_connect_bind_async(mosq_.get(), host_.c_str(), address.port, keepalive, bind);
    }
    int err = errno;
    return result(rc, err);
  }

  ServeResult serve(std::chrono::milliseconds timeout) override {
    int rc = mosquitto_loop(mosq_.get(), static_cast<int>(timeout.count()), 1);
    int err = errno;
    ServeResult out;
    out.closed = mosquitto_socket(mosq_.get()) == -1;
    if (rc != MOSQ_ERR_SUCCESS) out.result = result(rc, err);
    return out;
  }

  void disconnect() override { mosquitto_disconnect(mosq_.get()); }

  TransportResult publish(std::string_view topic, std::string_view payload, int qos, bool retain,
                          const Properties& properties, int* mid) override {
    PropertyList props;
    if (options_.protocol == Protocol::v5 && !properties.empty()) props = make_properties(properties);
    std::string topic_z(topic);
    int rc = mosquitto_publish_v5(mosq_.get(), mid, topic_z.c_str(), static_cast<int>(payload.size()), payload.data(),
                                  qos, retain, props.get());
    if (rc == MOSQ_ERR_SUCCESS) return {};
    TransportResult out{rc, {}, rc == MOSQ_ERR_NO_CONN};
    switch (rc) {
      case MOSQ_ERR_PAYLOAD_SIZE:
      case MOSQ_ERR_OVERSIZE_PACKET:
        out.why = "a payload of " + std::to_string(payload.size()) +
                  " bytes is larger than the broker accepts (its maximum packet size)";
        break;
      case MOSQ_ERR_NO_CONN: out.why = "not connected"; break;
      default: out.why = lowercase_first(mosquitto_strerror(rc));
    }
    return out;
  }

  TransportResult subscribe(const std::vector<std::string>& filters, int qos, int* mid) override {
    std::vector<char*> list;
    for (const auto& f : filters) list.push_back(const_cast<char*>(f.c_str()));
    int rc =
        mosquitto_subscribe_multiple(mosq_.get(), mid, static_cast<int>(list.size()), list.data(), qos, 0, nullptr);
    return plain(rc);
  }

  TransportResult unsubscribe(const std::string& filter, int* mid) override {
    return plain(mosquitto_unsubscribe_v5(mosq_.get(), mid, filter.c_str(), nullptr));
  }

  void set_library_log(bool on) override {
    mosquitto_log_callback_set(mosq_.get(), on ? &MosquittoTransport::on_log_cb : nullptr);
  }

  std::string reason_words(int code) const override { return connack_words(code); }

 private:
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
    mosquitto_connect_v5_callback_set(m, &MosquittoTransport::on_connect_cb);
    mosquitto_disconnect_v5_callback_set(m, &MosquittoTransport::on_disconnect_cb);
    mosquitto_message_v5_callback_set(m, &MosquittoTransport::on_message_cb);
    mosquitto_publish_v5_callback_set(m, &MosquittoTransport::on_publish_cb);
    mosquitto_subscribe_v5_callback_set(m, &MosquittoTransport::on_subscribe_cb);
    mosquitto_unsubscribe_v5_callback_set(m, &MosquittoTransport::on_unsubscribe_cb);
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

  static TransportResult plain(int rc) {
    if (rc == MOSQ_ERR_SUCCESS) return {};
    return TransportResult{rc, lowercase_first(mosquitto_strerror(rc)), rc == MOSQ_ERR_NO_CONN};
  }

  TransportResult result(int rc, int err) {
    if (rc == MOSQ_ERR_SUCCESS) return {};
    return TransportResult{rc, describe(rc, err), rc == MOSQ_ERR_NO_CONN};
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
          return "cannot resolve host name '" + host_ + "' or the local address '" + options_.bind_address +
                 "' (Options::bind_address): " + gai_strerror(err);
        return "cannot resolve host name '" + host_ + "': " + gai_strerror(err);
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

  // ---- callbacks from libmosquitto (the thread inside serve()) ----

  static MosquittoTransport* self(void* obj) { return static_cast<MosquittoTransport*>(obj); }

  static void on_connect_cb(mosquitto*, void* obj, int rc, int flags, const mosquitto_property*) noexcept {
    guard("on_connect", obj, [&] {
      self(obj)->events_.connack(ConnectResult{rc, (flags & 1) != 0, connack_words(rc), {}});
    });
  }
  static void on_disconnect_cb(mosquitto*, void* obj, int rc, const mosquitto_property*) noexcept {
    int err = errno;
    guard("on_disconnect", obj, [&] {
      auto* t = self(obj);
      t->events_.closed(rc == 0 ? TransportResult{} : TransportResult{rc, t->describe(rc, err), false});
    });
  }
  static void on_message_cb(mosquitto*, void* obj, const mosquitto_message* m, const mosquitto_property* p) noexcept {
    guard("on_message", obj, [&] {
      Message msg;
      msg.topic = m->topic ? m->topic : "";
      if (m->payloadlen > 0)
        msg.payload.assign(static_cast<const char*>(m->payload), static_cast<std::size_t>(m->payloadlen));
      msg.qos = m->qos;
      msg.retain = m->retain;
      msg.mid = m->mid;
      if (p) msg.properties = read_properties(p);
      self(obj)->events_.message(msg);
    });
  }
  static void on_publish_cb(mosquitto*, void* obj, int mid, int reason, const mosquitto_property*) noexcept {
    guard("on_publish", obj, [&] { self(obj)->events_.published(mid, reason); });
  }
  static void on_subscribe_cb(mosquitto*, void* obj, int mid, int count, const int* granted,
                              const mosquitto_property*) noexcept {
    guard("on_subscribe", obj,
          [&] { self(obj)->events_.subscribed(mid, std::vector<int>(granted, granted + std::max(count, 0))); });
  }
  static void on_unsubscribe_cb(mosquitto*, void* obj, int mid, const mosquitto_property*) noexcept {
    guard("on_unsubscribe", obj, [&] { self(obj)->events_.unsubscribed(mid); });
  }
  static void on_log_cb(mosquitto*, void* obj, int level, const char* text) noexcept {
    guard("on_log", obj, [&] {
      auto* t = self(obj);
      const char* line = text ? text : "";
      if (level == MOSQ_LOG_ERR) {
        std::lock_guard lock(t->log_mutex_);
        t->last_error_log_ = line;
      }
      t->events_.log(log_level(level), line, true);
    });
  }

  // Nothing may unwind into C code.
  template <typename F>
  static void guard(const char* where, void* obj, F&& f) noexcept {
    try {
      f();
    } catch (const std::exception& e) {
      try {
        self(obj)->events_.log(LogLevel::error, std::string("internal error in ") + where + ": " + e.what(), false);
      } catch (...) {
      }
    } catch (...) {
    }
  }

  const Options& options_;
  TransportEvents& events_;
  std::string host_;  // of the address being connected to (the network owner's)
  std::unique_ptr<mosquitto, MosquittoDeleter> mosq_;
  std::mutex log_mutex_;
  std::string last_error_log_;  // libmosquitto's last error line: the detail of the next failure
};

}  // namespace

std::unique_ptr<Transport> make_mosquitto_transport(const Options& options, const std::string& client_id,
                                                    TransportEvents& events) {
  return std::make_unique<MosquittoTransport>(options, client_id, events);
}

}  // namespace detail

std::unique_ptr<Client> make_mosquitto_client(Options options) {
  return std::make_unique<detail::ClientCore>(std::move(options), &detail::make_mosquitto_transport);
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
