// mqtt::options_from_url and the option checks of make_mosquitto_client: no broker needed.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"
#include "iotbridge/mqtt/testing.hpp"

using namespace iotbridge;
using namespace iotbridge::mqtt;

TEST_CASE("options_from_url parses mqtt:// and mqtts:// URLs", "[mqtt][unit]") {
  struct Row {
    const char* url;
    const char* host;
    int port;
    const char* user;
    const char* password;  // nullptr: none
    bool tls;
  };
  const Row rows[] = {
      {"mqtt://localhost", "localhost", 1883, "", nullptr, false},
      {"mqtt://broker.example:1884", "broker.example", 1884, "", nullptr, false},
      {"mqtt://user:pass@10.0.0.1:1885", "10.0.0.1", 1885, "user", "pass", false},
      {"mqtt://user@host", "host", 1883, "user", nullptr, false},
      {"mqtt://user:@host", "host", 1883, "user", "", false},
      {"mqtts://host", "host", 8883, "", nullptr, true},
      {"mqtts://u:p@host:9999/", "host", 9999, "u", "p", true},
      {"ssl://host", "host", 8883, "", nullptr, true},
      {"tcp://host:1", "host", 1, "", nullptr, false},
      {"mqtt://us%40er:p%3Ass%2F@host", "host", 1883, "us@er", "p:ss/", false},
      {"mqtt://a:b@c@host", "host", 1883, "a", "b@c", false},
      {"mqtt://[::1]:1883", "::1", 1883, "", nullptr, false},
      {"mqtt://[::1]", "::1", 1883, "", nullptr, false},
  };
  for (const auto& row : rows) {
    INFO(row.url);
    Options o = options_from_url(row.url);
    CHECK(o.host == row.host);
    CHECK(o.port == row.port);
    CHECK(o.username == row.user);
    CHECK(o.password.has_value() == (row.password != nullptr));
    if (row.password) CHECK(*o.password == row.password);
    CHECK(o.tls.enabled == row.tls);
  }
}

TEST_CASE("options_from_url keeps the base options it does not mention", "[mqtt][unit]") {
  Options base;
  base.client_id = "keep-me";
  base.keepalive = std::chrono::seconds(17);
  base.tls.ca_file = "/ca.pem";
  Options o = options_from_url("mqtts://h:1", base);
  CHECK(o.client_id == "keep-me");
  CHECK(o.keepalive == std::chrono::seconds(17));
  CHECK(o.tls.ca_file == "/ca.pem");
  CHECK(o.tls.enabled);
}

TEST_CASE("options_from_url refuses malformed URLs with a reason", "[mqtt][unit]") {
  const char* bad[] = {"localhost:1883",    "http://host",      "mqtt://",      "mqtt://host:",     "mqtt://host:0",
                       "mqtt://host:65536", "mqtt://host:12ab", "mqtt://[::1",  "mqtt://host/path", "mqtt://:pw@host",
                       "mqtt://u:%zz@host", "mqtt://u:%4@host", "mqtt://[::1]x"};
  for (const char* url : bad) {
    INFO(url);
    try {
      options_from_url(url);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.category() == ErrorCategory::config);
      CHECK_THAT(e.what(), Catch::Contains("invalid MQTT URL"));
    }
  }
}

TEST_CASE("make_mosquitto_client refuses inconsistent options", "[mqtt][unit]") {
  auto refused = [](Options o, const char* words) {
    INFO(words);
    try {
      make_mosquitto_client(o);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.category() == ErrorCategory::config);
      CHECK_THAT(e.what(), Catch::Contains(words));
    }
  };
  Options o;
  o.clean_session = false;
  refused(o, "fixed client_id");
  o = {};
  o.keepalive = std::chrono::seconds(2);
  refused(o, "keepalive");
  o = {};
  o.will = Will{"a/+/b", "x", 0, false};
  refused(o, "will topic");
  o = {};
  o.will = Will{"a/b", "x", 3, false};
  refused(o, "will QoS");
  o = {};
  o.max_inflight = 100;
  o.max_queued = 10;
  refused(o, "max_queued");
  o = {};
  o.password = "secret";
  refused(o, "password needs a user name");
  o = {};
  o.tls.enabled = true;
  o.tls.ca_file = "/nonexistent/ca.pem";
  refused(o, "cannot be read");
  o = {};
  o.reconnect_delay_min = std::chrono::seconds(10);
  o.reconnect_delay_max = std::chrono::seconds(1);
  refused(o, "reconnect delays");
  o = {};
  o.connect_timeout = std::chrono::milliseconds(0);
  refused(o, "connect_timeout");
  o = {};
  o.max_offline_queue = 0;
  refused(o, "max_offline_queue");
  o = {};
  o.port = 70000;
  refused(o, "outside 1..65535");
  o = {};
  o.host = "";
  refused(o, "host is empty");
  o = {};
  o.tls.version = "sslv3";
  refused(o, "TLS version");
  o = {};
  o.tls.enabled = true;
  o.tls.ca_file = "/dev/null";
  o.tls.cert_file = "/dev/null";
  refused(o, "certificate and key must be given together");
}

TEST_CASE("max_inflight and max_queued stop at the packet-id space (65535), refused beyond", "[mqtt][unit]") {
  // Beyond 65535 unacknowledged QoS 1/2 messages, ids would repeat among them.
  for (bool fake : {false, true}) {
    INFO((fake ? "fake client" : "mosquitto client"));
    testing::FakeBroker broker;
    auto make = [&](const Options& o) { return fake ? broker.make_client(o) : make_mosquitto_client(o); };
    Options o;
    o.max_queued = 65535;
    o.max_inflight = 65535;
    CHECK_NOTHROW(make(o));
    o.max_queued = 65536;
    o.max_inflight = 20;
    CHECK_THROWS_WITH(make(o), Catch::Contains("max_queued is 65536") && Catch::Contains("65535 or less"));
    o.max_queued = 100000;
    o.max_inflight = 70000;
    CHECK_THROWS_WITH(make(o), Catch::Contains("max_inflight is 70000"));
  }
}

TEST_CASE("options_from_urls makes a failover list: the first URL, then the others in order", "[mqtt][unit]") {
  Options base;
  base.client_id = "keep-me";
  Options o = options_from_urls({"mqtt://u:p@10.0.0.1:1884", "mqtt://10.0.0.2", "mqtt://u:p@[::1]:1999/"}, base);
  CHECK(o.client_id == "keep-me");
  CHECK(o.host == "10.0.0.1");
  CHECK(o.port == 1884);
  CHECK(o.username == "u");
  CHECK(o.password == std::optional<std::string>("p"));
  CHECK_FALSE(o.tls.enabled);
  CHECK(o.failover == std::vector<BrokerAddress>{{"10.0.0.2", 1883}, {"::1", 1999}});

  Options single = options_from_urls({"mqtts://h"});
  CHECK(single.host == "h");
  CHECK(single.port == 8883);
  CHECK(single.tls.enabled);
  CHECK(single.failover.empty());
  CHECK(options_from_urls({"mqtts://a", "ssl://b"}).failover == std::vector<BrokerAddress>{{"b", 8883}});
}

TEST_CASE("options_from_urls refuses empty, malformed and disagreeing entries, naming the place", "[mqtt][unit]") {
  struct Row {
    std::vector<std::string> urls;
    const char* words;
  };
  const Row rows[] = {
      {{}, "no URL"},
      {{""}, "URL 1 of 1 is empty"},
      {{"mqtt://a", ""}, "URL 2 of 2 is empty"},
      {{"mqtt://a", "b:1883"}, "URL 2 of 2: invalid MQTT URL"},
      {{"mqtt://a", "mqtt://b", "mqtt://c:0"}, "URL 3 of 3: invalid MQTT URL"},
      {{"http://a", "mqtt://b"}, "URL 1 of 2: invalid MQTT URL"},
      {{"mqtt://a", "mqtts://b"}, "URL 2 of 2 and URL 1 differ in TLS"},
      {{"mqtts://a", "mqtt://b"}, "differ in TLS"},
      {{"mqtt://u:p@a", "mqtt://v:p@b"}, "URL 2 of 2 names other credentials"},
      {{"mqtt://u:p@a", "mqtt://u:q@b"}, "other credentials"},
      {{"mqtt://a", "mqtt://u@b"}, "other credentials"},
  };
  for (const auto& row : rows) {
    INFO(row.words);
    try {
      options_from_urls(row.urls);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.category() == ErrorCategory::config);
      CHECK_THAT(e.what(), Catch::StartsWith("invalid MQTT failover list: "));
      CHECK_THAT(e.what(), Catch::Contains(row.words));
    }
  }
  // A password is never echoed: entries are named by their place.
  try {
    options_from_urls({"mqtt://u:s3cret@a", "mqtt://u:s3cret@b:x"});
    FAIL("accepted");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("URL 2 of 2"));
  }
}

TEST_CASE("make_mosquitto_client checks every failover address", "[mqtt][unit]") {
  auto refused = [](std::vector<BrokerAddress> failover, const char* words) {
    INFO(words);
    Options o;
    o.failover = std::move(failover);
    try {
      make_mosquitto_client(o);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.category() == ErrorCategory::config);
      CHECK_THAT(e.what(), Catch::Contains(words));
    }
  };
  refused({{"", 1883}}, "failover address 1 has an empty host");
  refused({{"a", 1883}, {"", 0}}, "failover address 2 has an empty host");
  refused({{"a", 70000}}, "failover address 1 port 70000 is outside 1..65535");
  refused({{"a", -1}}, "failover address 1 port -1");
  refused({{"mqtt://b:1883", 0}}, "is not a host name or address");
  refused({{"[::1]", 0}}, "is not a host name or address");
  refused({{"a b", 0}}, "is not a host name or address");

  Options o;
  o.failover = {{"b", 0}, {"::1", 1999}};
  auto client = make_mosquitto_client(o);
  CHECK(client->options().failover == std::vector<BrokerAddress>{{"b", 1883}, {"::1", 1999}});
  o.tls.enabled = true;
  o.tls.ca_file = "/dev/null";
  CHECK(make_mosquitto_client(o)->options().failover.front().port == 8883);
}

TEST_CASE("a client is made without connecting and generates a client id", "[mqtt][unit]") {
  auto a = make_mosquitto_client(Options{});
  auto b = make_mosquitto_client(Options{});
  CHECK_FALSE(a->connected());
  CHECK(a->client_id().rfind("iotbridge-", 0) == 0);
  CHECK(a->client_id() != b->client_id());
  CHECK(a->options().port == 1883);
  CHECK(a->unacknowledged() == 0);
  CHECK(std::string(mosquitto_library_version()).find('.') != std::string::npos);
}

TEST_CASE("publish and subscribe validate topics and filters before sending", "[mqtt][unit]") {
  auto c = make_mosquitto_client(Options{});
  auto topic_error = [](auto&& f, const char* words) {
    try {
      f();
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.category() == ErrorCategory::topic);
      CHECK_THAT(e.what(), Catch::Contains(words));
    }
  };
  topic_error([&] { c->publish("a/+/b", "x"); }, "cannot publish to 'a/+/b'");
  topic_error([&] { c->publish("a/#", "x"); }, "cannot publish");
  topic_error([&] { c->publish("", "x"); }, "cannot publish");
  topic_error([&] { c->publish(std::string("a/\xff/b"), "x"); }, "cannot publish");
  topic_error([&] { c->subscribe("a/#/b"); }, "cannot subscribe to 'a/#/b'");
  topic_error([&] { c->subscribe("a/b+"); }, "cannot subscribe");
  topic_error([&] { c->subscribe("$share//a"); }, "cannot subscribe");
  topic_error([&] { c->unsubscribe("a/##"); }, "cannot unsubscribe");
  CHECK_THROWS_AS(c->publish("a/b", "x", 3), Error);
  // Valid but not connected: QoS 0 fails clearly instead of vanishing.
  try {
    c->publish("a/b", "x", 0);
    FAIL("accepted");
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::mqtt);
    CHECK_THAT(e.what(), Catch::Contains("not connected"));
  }
  Options small;
  small.max_payload_size = 10;
  auto d = make_mosquitto_client(small);
  try {
    d->publish("a/b", std::string(11, 'x'), 1);
    FAIL("accepted");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("exceeds the limit of 10 bytes"));
  }
  CHECK(d->unacknowledged() == 0);
}

TEST_CASE("no libmosquitto name or header appears in a public header", "[mqtt][unit]") {
  // The C library is an implementation detail (pimpl): users of the headers
  // need neither mosquitto.h nor its types.
  const std::regex leak(R"((#\s*include\s*[<"](mosquitto|mqtt_protocol)\.h)|(struct\s+mosquitto\b)|)"
                        R"((\bmosquitto\s*\*)|(\bmosquitto_(message|property)\b)|(\bMOSQ_))");
  std::size_t headers = 0;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(std::filesystem::path(IOTBRIDGE_SOURCE_DIR) / "include")) {
    if (entry.path().extension() != ".hpp") continue;
    ++headers;
    std::ifstream in(entry.path());
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      if (auto comment = line.find("//"); comment != std::string::npos) line.erase(comment);  // prose may name them
      INFO(entry.path().string() << ":" << number << ": " << line);
      CHECK_FALSE(std::regex_search(line, leak));
    }
  }
  CHECK(headers >= 3);  // at least client.hpp, format.hpp, mosquitto.hpp
}

TEST_CASE("clients made from many threads at once (mosquitto_lib_init runs once, thread-safely)", "[mqtt][unit]") {
  // Run under TSan in scripts/test; a racy initialisation would be reported.
  constexpr int kThreads = 8;
  std::vector<std::string> ids(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kThreads; ++i)
      threads.emplace_back([&ids, i] { ids[i] = make_mosquitto_client(Options{})->client_id(); });
  }
  std::sort(ids.begin(), ids.end());
  CHECK(std::unique(ids.begin(), ids.end()) == ids.end());
  CHECK(ids.front().rfind("iotbridge-", 0) == 0);
}
