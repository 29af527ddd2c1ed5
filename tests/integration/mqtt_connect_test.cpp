// Connecting through a real Mosquitto, and failing to: refused, unknown host,
// no CONNACK (timeout), passwords, TLS with the right and a wrong CA, ACL.
// Each failure must be an Error with the reason in words, within the timeout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <mutex>

#include "iotbridge/error.hpp"
#include "mqtt_helpers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;
using namespace std::chrono_literals;

namespace {

std::string connect_error(mqtt::Options o) {
  auto c = mqtt::make_mosquitto_client(std::move(o));
  try {
    c->connect();
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::mqtt);
    CHECK_FALSE(c->connected());
    return e.what();
  }
  FAIL("connect() succeeded");
  return {};
}

// A TCP listener that never accepts: the kernel completes the handshake, but
// no CONNACK ever comes.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    REQUIRE(::listen(fd_, 8) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace

TEST_CASE("connect to a port where nothing listens: 'connection refused'", "[mqtt][integration]") {
  mqtt::Options o;
  o.host = "127.0.0.1";
  o.port = free_port();
  auto why = connect_error(o);
  CHECK_THAT(why, Catch::Contains("connection refused"));
  CHECK_THAT(why, Catch::Contains("mqtt://127.0.0.1:" + std::to_string(o.port)));
}

TEST_CASE("connect to an unknown host: a lookup error naming the host", "[mqtt][integration]") {
  mqtt::Options o;
  o.host = "no-such-host.invalid";
  o.port = 1883;
  o.connect_timeout = 5s;
  auto why = connect_error(o);
  CHECK_THAT(why, Catch::Contains("no-such-host.invalid"));
  CHECK_THAT(why, Catch::Contains("resolve") || Catch::Contains("no answer"));
}

TEST_CASE("connect to a server that never answers: timeout error", "[mqtt][integration]") {
  SilentListener silent;
  mqtt::Options o;
  o.host = "127.0.0.1";
  o.port = silent.port();
  o.connect_timeout = 300ms;
  auto why = connect_error(o);
  CHECK_THAT(why, Catch::Contains("no answer from the broker within 300 ms"));
}

TEST_CASE("connect timeout also holds while loop_start() runs the network", "[mqtt][integration]") {
  SilentListener silent;
  mqtt::Options o;
  o.host = "127.0.0.1";
  o.port = silent.port();
  o.connect_timeout = 300ms;
  auto c = mqtt::make_mosquitto_client(o);
  c->loop_start();
  CHECK_THROWS_WITH(c->connect(), Catch::Contains("no answer from the broker within 300 ms"));
  CHECK_FALSE(c->connected());
  c->loop_stop();
}

TEST_CASE("password file: the right password connects, a wrong one is 'not authorised'", "[mqtt][integration]") {
  MosquittoServer::Options bo;
  bo.users = {{"alice", "s3cret"}};
  MosquittoServer broker(bo);
  for (auto protocol : {mqtt::Protocol::v311, mqtt::Protocol::v5, mqtt::Protocol::v31}) {
    INFO("protocol " << static_cast<int>(protocol));
    auto o = broker_options(broker);
    o.protocol = protocol;
    o.username = "alice";
    o.password = "s3cret";
    auto good = mqtt::make_mosquitto_client(o);
    CHECK(good->connect().reason_code == 0);
    good->disconnect();

    o.password = "wrong";
    CHECK_THAT(connect_error(o), Catch::Contains("not authorised"));
    o.username = {};
    o.password = {};
    CHECK_THAT(connect_error(o), Catch::Contains("not authorised"));
  }
}

TEST_CASE("URL with user and password connects", "[mqtt][integration]") {
  MosquittoServer::Options bo;
  bo.users = {{"bob", "p@ss:w/rd"}};
  MosquittoServer broker(bo);
  auto o = mqtt::options_from_url("mqtt://bob:p%40ss%3Aw%2Frd@127.0.0.1:" + std::to_string(broker.port()));
  auto c = mqtt::make_mosquitto_client(o);
  CHECK(c->connect().reason_code == 0);
}

TEST_CASE("TLS: the fixture's CA connects and carries messages, another CA fails clearly", "[mqtt][integration]") {
  MosquittoServer::Options bo;
  bo.tls = true;
  MosquittoServer broker(bo);
  auto o = mqtt::options_from_url("mqtts://127.0.0.1:" + std::to_string(broker.tls_port()));
  o.tls.ca_file = broker.ca_file().string();
  {
    Collector got;
    auto c = mqtt::make_mosquitto_client(o);
    c->connect();
    c->loop_start();
    REQUIRE(c->subscribe("tls/#", 1, got.handler()).wait_for(5s));
    REQUIRE(c->publish("tls/hello", "over TLS", 1).wait_for(5s));
    REQUIRE(got.wait_for(1));
    CHECK(got.payloads() == std::vector<std::string>{"over TLS"});
  }
  {
    auto v5 = o;
    v5.protocol = mqtt::Protocol::v5;
    v5.tls.cert_file = broker.client_cert().string();
    v5.tls.key_file = broker.client_key().string();
    auto c = mqtt::make_mosquitto_client(v5);
    CHECK(c->connect().reason_code == 0);
  }
  auto wrong = o;
  wrong.tls.ca_file = broker.other_ca_file().string();
  auto why = connect_error(wrong);
  CHECK_THAT(why, Catch::Contains("TLS"));
  CHECK_THAT(why, Catch::Contains("certificate verify failed"));
}

TEST_CASE("ACL: a denied subscription is granted by Mosquitto 2.0.11, but its messages never arrive",
          "[mqtt][integration]") {
  MosquittoServer::Options bo;
  bo.users = {{"sensor", "pw"}, {"admin", "pw"}};
  bo.acl = "user sensor\ntopic readwrite allowed/#\n\nuser admin\ntopic readwrite #\n";
  MosquittoServer broker(bo);
  for (auto protocol : {mqtt::Protocol::v311, mqtt::Protocol::v5}) {
    INFO("protocol " << static_cast<int>(protocol));
    auto o = broker_options(broker);
    o.username = "sensor";
    o.password = "pw";
    o.protocol = protocol;
    // Everything the callbacks touch is declared before the clients that call them.
    std::mutex mutex;
    std::vector<mqtt::SubscribeResult> results;
    Collector allowed, denied;
    auto c = mqtt::make_mosquitto_client(o);
    c->on_subscribe([&](const mqtt::SubscribeResult& r) {
      std::lock_guard lock(mutex);
      results.push_back(r);
    });
    c->connect();
    c->loop_start();
    auto ok = c->subscribe("allowed/x", 1, allowed.handler()).wait();
    auto no = c->subscribe("secret/x", 1, denied.handler()).wait();
    CHECK(ok == std::vector<int>{1});
    {
      std::lock_guard lock(mutex);
      REQUIRE(results.size() == 2);
      CHECK(results[1].filters == std::vector<std::string>{"secret/x"});
      CHECK(results[1].granted_qos == no);
    }
    // The truth for Mosquitto 2.0.11 with an acl_file, on 3.1.1 and on 5 alike:
    // its default ACL check does not apply to SUBSCRIBE ("not implemented"),
    // so the SUBACK grants the QoS (no 0x80, no 0x87) and on_subscribe
    // reports a grant; the ACL is applied to each message instead.
    CHECK(no == std::vector<int>{1});
    {
      std::lock_guard lock(mutex);
      CHECK(results[1].all_granted());
    }
    // Either way no message on the denied topic arrives; an allowed marker
    // published afterwards proves the pipe is flowing.
    auto ao = broker_options(broker);
    ao.username = "admin";
    ao.password = "pw";
    auto publisher = mqtt::make_mosquitto_client(ao);
    publisher->connect();
    publisher->loop_start();
    publisher->publish("secret/x", "must not arrive", 1).wait_for(5s);
    REQUIRE(publisher->publish("allowed/x", "marker", 1).wait_for(5s));
    REQUIRE(allowed.wait_for(1));
    CHECK(denied.size() == 0);
  }
}

TEST_CASE("ACL (dynamic security plugin): a denied subscription is reported through on_subscribe and the token",
          "[mqtt][integration]") {
  // Mosquitto's acl_file does not apply to SUBSCRIBE (see the test above); its
  // dynamic security plugin does: it denies "secret/#" to anonymous clients.
  TempDir dir("iotbridge-dynsec");
  const fs::path dynsec = dir / "dynamic-security.json";
  {
    std::ofstream out(dynsec);
    out << R"({"defaultACLAccess": {"publishClientSend": true, "publishClientReceive": true,)"
        << R"( "subscribe": true, "unsubscribe": true}, "clients": [],)"
        << R"( "groups": [{"groupname": "anonymous", "roles": [{"rolename": "limited"}]}],)"
        << R"( "roles": [{"rolename": "limited", "acls": [{"acltype": "subscribePattern", "topic": "secret/#",)"
        << R"( "priority": 0, "allow": false}]}], "anonymousGroup": "anonymous"})";
  }
  // Part of Debian's mosquitto package, in the multiarch library folder.
  fs::path plugin;
  for (const auto& entry : fs::directory_iterator("/usr/lib"))
    if (fs::exists(entry.path() / "mosquitto_dynamic_security.so"))
      plugin = entry.path() / "mosquitto_dynamic_security.so";
  INFO("mosquitto_dynamic_security.so not found under /usr/lib/*/ (Debian's mosquitto package has it)");
  REQUIRE_FALSE(plugin.empty());
  MosquittoServer::Options bo;
  bo.extra_config = "plugin " + plugin.string() + "\nplugin_opt_config_file " + dynsec.string() + "\n";
  MosquittoServer broker(bo);
  for (auto protocol : {mqtt::Protocol::v311, mqtt::Protocol::v5}) {
    INFO("protocol " << static_cast<int>(protocol));
    // 0x80 "failure" on MQTT 3.1.1; reason code 0x87 "not authorized" on MQTT 5.
    const int refused = protocol == mqtt::Protocol::v5 ? 0x87 : 0x80;
    auto o = broker_options(broker);
    o.protocol = protocol;
    std::mutex mutex;
    std::vector<mqtt::SubscribeResult> results;
    std::vector<std::string> warnings;
    Collector allowed, denied;
    auto c = mqtt::make_mosquitto_client(o);
    c->on_subscribe([&](const mqtt::SubscribeResult& r) {
      std::lock_guard lock(mutex);
      results.push_back(r);
    });
    c->on_log([&](mqtt::LogLevel level, std::string_view text) {
      std::lock_guard lock(mutex);
      if (level == mqtt::LogLevel::warning) warnings.emplace_back(text);
    });
    c->connect();
    c->loop_start();
    // One SUBSCRIBE packet with both filters: the SUBACK answers each.
    auto granted = c->subscribe({{"allowed/x", 1, allowed.handler()}, {"secret/x", 1, denied.handler()}}).wait();
    CHECK(granted == std::vector<int>{1, refused});
    {
      std::lock_guard lock(mutex);
      REQUIRE(results.size() == 1);
      CHECK(results[0].filters == std::vector<std::string>{"allowed/x", "secret/x"});
      CHECK(results[0].granted_qos == std::vector<int>{1, refused});
      CHECK_FALSE(results[0].all_granted());
      CHECK_FALSE(mqtt::SubscribeResult::is_failure(results[0].granted_qos[0]));
      CHECK(mqtt::SubscribeResult::is_failure(results[0].granted_qos[1]));
      bool named = false;
      for (const auto& w : warnings)
        named = named || w.find("refused the subscription to 'secret/x'") != std::string::npos;
      CHECK(named);
    }
    // The refusal does not cost the connection: the allowed filter works.
    CHECK(c->connected());
    auto publisher = mqtt::make_mosquitto_client(broker_options(broker));
    publisher->connect();
    publisher->loop_start();
    REQUIRE(publisher->publish("secret/x", "must not arrive", 1).wait_for(5s));
    REQUIRE(publisher->publish("allowed/x", "marker", 1).wait_for(5s));
    REQUIRE(allowed.wait_for(1));
    CHECK(allowed.payloads() == std::vector<std::string>{"marker"});
    CHECK(denied.size() == 0);
  }
}

TEST_CASE("bind_address: the connection leaves from that local address, one not on this host fails clearly",
          "[mqtt][integration]") {
  MosquittoServer broker;
  auto o = broker_options(broker, "bound-client");
  o.bind_address = "127.0.0.2";  // all of 127/8 is the loopback interface on Linux
  auto c = mqtt::make_mosquitto_client(o);
  REQUIRE(c->connect().reason_code == 0);
  // Mosquitto logs each CONNECT (notice level) before it answers with CONNACK.
  CHECK_THAT(broker.log(), Catch::Contains("New client connected from 127.0.0.2:"));
  c->disconnect();

  o.client_id = {};
  o.bind_address = "192.0.2.1";  // TEST-NET-1: no interface here has it
  auto why = connect_error(o);
  CHECK_THAT(why, Catch::Contains("192.0.2.1"));
  CHECK_THAT(why, Catch::Contains("Options::bind_address"));
}

TEST_CASE("TLS: a CA folder (ca_dir, hashed) and a fixed TLS version connect", "[mqtt][integration]") {
  MosquittoServer::Options bo;
  bo.tls = true;
  MosquittoServer broker(bo);
  TempDir dir("iotbridge-cadir");
  fs::copy_file(broker.ca_file(), dir / "ca.pem");
  // OpenSSL looks CAs up in a folder by subject hash: "openssl rehash" makes the links.
  REQUIRE(run_command({"openssl", "rehash", dir.path().string()}) == 0);
  auto o = broker_options(broker);
  o.port = broker.tls_port();
  o.tls.enabled = true;
  o.tls.ca_dir = dir.path().string();
  o.tls.version = "tlsv1.2";
  Collector got;
  auto c = mqtt::make_mosquitto_client(o);
  REQUIRE(c->connect().reason_code == 0);
  c->loop_start();
  REQUIRE(c->subscribe("tls/dir", 1, got.handler()).wait_for(5s));
  REQUIRE(c->publish("tls/dir", "via ca_dir", 1).wait_for(5s));
  REQUIRE(got.wait_for(1));
  CHECK(got.payloads() == std::vector<std::string>{"via ca_dir"});
  c->disconnect();

  // A folder without the broker's CA: the chain check fails in words.
  TempDir empty("iotbridge-cadir-empty");
  o.tls.ca_dir = empty.path().string();
  auto why = connect_error(o);
  CHECK_THAT(why, Catch::Contains("TLS"));
  CHECK_THAT(why, Catch::Contains("certificate verify failed"));
}
