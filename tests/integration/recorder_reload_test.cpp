// SIGHUP reload under a live QoS 1 stream: the file gains a route, loses one
// and changes a mapping, three SIGHUPs to iotbridge-recorder, and every
// reading is accounted for, per route, by what the store holds.
#include <httplib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdio>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include "cli_helpers.hpp"
#include "iotbridge/store/open.hpp"
#include "record_helpers.hpp"
#include "servers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;
using namespace std::chrono_literals;

namespace {

std::string metrics(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  auto r = client.Get("/metrics");
  return r && r->status == 200 ? r->body : std::string();
}

// The value of `name{route="route"}` in a /metrics body, -1 when absent.
double route_value(const std::string& body, const std::string& name, const std::string& route) {
  std::regex line("^" + name + "\\{route=\"" + route + "\"\\} ([0-9.e+]+)$", std::regex::multiline);
  std::smatch m;
  return std::regex_search(body, m, line) ? std::stod(m[1]) : -1;
}

std::string config(const MosquittoServer& broker, const TempDir& dir, int metrics_port, const std::string& routes) {
  return "[mqtt]\nurl = \"mqtt://127.0.0.1:" + std::to_string(broker.port()) +
         "\"\nclient_id = \"reload-recorder\"\nclean_session = false\n[store]\nuri = \"sqlite:" +
         (dir / "readings.db").string() + "\"\n[durability]\ndir = \"" + (dir / "spool").string() +
         "\"\n[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port) + "\"\n" + routes;
}

const std::string kRouteA = "[[route]]\nname = \"a\"\nfilters = [\"s/a/#\"]\ncollection = \"a\"\n";
const std::string kRouteBt =
    "[[route]]\nname = \"b\"\nfilters = [\"s/b/#\"]\ncollection = \"b\"\ndecoder = \"json\"\nfields = { t = \"/t\" "
    "}\nkeep_payload = false\n";
const std::string kRouteBu =
    "[[route]]\nname = \"b\"\nfilters = [\"s/b/#\"]\ncollection = \"b\"\ndecoder = \"json\"\nfields = { u = \"/u\" "
    "}\nkeep_payload = false\n";
const std::string kRouteC = "[[route]]\nname = \"c\"\nfilters = [\"s/c/#\"]\ncollection = \"c\"\n";

}  // namespace

TEST_CASE(
    "reload: three SIGHUPs under a QoS 1 stream (a route added, one removed, a mapping changed): exact "
    "accounting per route",
    "[service][reload]") {
  MosquittoServer broker;
  TempDir dir("iotbridge-reload");
  const int metrics_port = free_port();
  auto file = dir / "recorder.toml";
  spit(file, config(broker, dir, metrics_port, kRouteA + kRouteBt));
  auto out = dir / "recorder.out";
  auto recorder = start_tool({cli_tool("iotbridge-recorder"), "--config", file.string(), "--quiet"}, out);
  auto err = [&] { return slurp(out.string() + ".err"); };
  REQUIRE(wait_until([&] { return contains(metrics(metrics_port), "iotbridge_mqtt_connected 1"); }, 30s));

  // The stream: message i goes to s/a, s/b or s/c by i % 3, payload {"t": i, "u": i}.
  constexpr int kMessages = 6000;
  std::atomic<int> sent{0};
  std::thread stream([&] {
    Publisher publisher(broker);
    const char* topics[] = {"s/a/x", "s/b/x", "s/c/x"};
    for (int i = 0; i < kMessages; ++i) {
      publisher.publish(topics[i % 3], "{\"t\": " + std::to_string(i) + ", \"u\": " + std::to_string(i) + "}");
      if (i % 100 == 99) {
        publisher.flush();
        sent = i + 1;
        std::this_thread::sleep_for(5ms);  // a steady stream across the reloads, not a wait for a condition
      }
    }
    // A last one to s/b, after the last to s/c: once the recorder has it, it has everything the broker
    // delivers to it (one connection, in order).
    publisher.publish("s/b/x", "{\"t\": " + std::to_string(kMessages) + ", \"u\": " + std::to_string(kMessages) + "}");
    publisher.flush();
    sent = kMessages;
  });
  struct Join {
    std::thread& t;
    ~Join() {
      if (t.joinable()) t.join();
    }
  } join{stream};

  auto reload = [&](const std::string& routes, int after, int nth) {
    REQUIRE(wait_until([&] { return sent.load() >= after; }, 60s));
    spit(file, config(broker, dir, metrics_port, routes));
    recorder->signal(SIGHUP);
    REQUIRE(wait_until(
        [&] {
          std::string text = err();
          std::size_t n = 0;
          for (auto at = text.find("reloaded"); at != std::string::npos; at = text.find("reloaded", at + 1)) ++n;
          return n >= static_cast<std::size_t>(nth);
        },
        30s));
    CHECK_THAT(err(), !Catch::Contains("refused"));
  };
  reload(kRouteA + kRouteBt + kRouteC, kMessages / 4, 1);  // gains c
  reload(kRouteBt + kRouteC, kMessages / 2, 2);            // loses a
  reload(kRouteBu + kRouteC, 3 * kMessages / 4, 3);        // b maps u instead of t
  stream.join();

  // Everything received is stored before the stop; SIGTERM then exits 0.
  REQUIRE(wait_until(
      [&] {
        auto body = metrics(metrics_port);
        return route_value(body, "iotbridge_readings_stored_total", "b") == kMessages / 3 + 1 &&
               route_value(body, "iotbridge_readings_pending", "b") == 0 &&
               route_value(body, "iotbridge_readings_pending", "c") == 0;
      },
      60s));
  CHECK(recorder->terminate() == 0);
  INFO(err());

  auto store = store::open_store("sqlite:" + (dir / "readings.db").string());
  std::map<std::string, std::multiset<int>> seen;  // collection -> the i of each document
  int b_t = 0, b_u = 0, last_t = -1, first_u = kMessages;
  for (const char* name : {"a", "b", "c"}) {
    for (const auto& doc : store->collection("iot_service", name)->find(store::Document{})) {
      auto json = doc.to_json();
      std::smatch m;
      if (std::string(name) == "b") {
        bool has_t = std::regex_search(json, m, std::regex(R"("t" : (\d+))"));
        int i = has_t ? std::stoi(m[1]) : -1;
        bool has_u = std::regex_search(json, m, std::regex(R"("u" : (\d+))"));
        if (has_u) i = std::stoi(m[1]);
        CHECK(has_t != has_u);  // one mapping or the other, never both, never neither
        if (has_t) ++b_t, last_t = std::max(last_t, i);
        if (has_u) ++b_u, first_u = std::min(first_u, i);
        seen[name].insert(i);
      } else {
        REQUIRE(std::regex_search(json, m, std::regex(R"("value" : \{ "t" : (\d+))")));
        seen[name].insert(std::stoi(m[1]));
      }
    }
  }
  // Route b existed throughout: each of its messages stored exactly once; the
  // mapping changed once, between two messages.
  CHECK(seen["b"].size() == kMessages / 3 + 1);
  for (int i = 1; i < kMessages; i += 3) CHECK(seen["b"].count(i) == 1);
  CHECK(seen["b"].count(kMessages) == 1);
  CHECK(b_t > 0);
  CHECK(b_u > 0);
  CHECK(last_t < first_u);
  // a until it was removed, c from when it was added: each stored once, a
  // prefix of a's messages and a suffix of c's, and what fell outside both
  // was counted as unrouted, not lost.
  auto once = [](const std::multiset<int>& s) {
    for (int i : s)
      if (s.count(i) != 1) return false;
    return true;
  };
  CHECK(once(seen["a"]));
  CHECK(once(seen["c"]));
  CHECK(!seen["a"].empty());
  CHECK(!seen["c"].empty());
  CHECK(*seen["a"].rbegin() / 3 + 1 == static_cast<int>(seen["a"].size()));  // a: 0, 3, 6 ... none missing
  CHECK((kMessages - 1 - *seen["c"].begin()) / 3 + 1 == static_cast<int>(seen["c"].size()));
  CHECK(seen["c"].count(kMessages - 1) == 1);  // c: ... to the end
  std::string text = err();
  std::string summary = text.substr(text.rfind("stopped after"));
  CHECK_THAT(summary, Catch::Contains("pending 0"));
  std::printf("reload: a %zu (0..%d), b %zu (%d mapped t, %d mapped u), c %zu (%d..), of %d messages\n",
              seen["a"].size(), seen["a"].empty() ? -1 : *seen["a"].rbegin(), seen["b"].size(), b_t, b_u,
              seen["c"].size(), seen["c"].empty() ? -1 : *seen["c"].begin(), kMessages);
}
