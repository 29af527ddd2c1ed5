// The service's /metrics scraped by a real Prometheus (Debian's), on free
// loopback ports, every second: what Prometheus' own HTTP API answers after N
// readings, and during and after a FerretDB outage; /readyz alongside.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <optional>
#include <regex>
#include <stop_token>
#include <string>
#include <thread>

#include "cli_helpers.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"
#include "iotbridge/service/config.hpp"
#include "iotbridge/service/service.hpp"
#include "record_helpers.hpp"
#include "servers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;
using namespace std::chrono_literals;

namespace {

// Prometheus on a free loopback port, scraping one target every second.
class Prometheus {
 public:
  Prometheus(const TempDir& dir, int target_port) {
    std::string binary = find_program("prometheus");
    REQUIRE_FALSE(binary.empty());  // scripts/install-deps installs Debian's prometheus
    spit(dir / "prometheus.yml",
         "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
         "scrape_configs:\n  - job_name: iotbridge\n    static_configs:\n"
         "      - targets: ['127.0.0.1:" +
             std::to_string(target_port) + "']\n");
    port_ = free_port();
    process_ = std::make_unique<Process>(
        std::vector<std::string>{binary, "--config.file=" + (dir / "prometheus.yml").string(),
                                 "--storage.tsdb.path=" + (dir / "tsdb").string(),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"},
        dir / "prometheus.log");
    REQUIRE(wait_until([&] { return get("/-/ready").first == 200; }, 60s));
  }
  ~Prometheus() { process_->terminate(); }

  std::pair<int, std::string> get(const std::string& path) const {
    httplib::Client client("127.0.0.1", port_);
    client.set_connection_timeout(2);
    auto r = client.Get(path.c_str());
    if (!r) return {0, ""};
    return {r->status, r->body};
  }
  // The value of an instant query with one result, or nullopt.
  std::optional<double> query(const std::string& promql) const {
    auto [status, body] = get("/api/v1/query?query=" + httplib::detail::encode_query_param(promql));
    static const std::regex value(R"re("value":\[[0-9.e+]+,"([^"]+)"\])re");
    std::smatch m;
    if (status != 200 || !std::regex_search(body, m, value)) return std::nullopt;
    return std::stod(m[1]);
  }
  bool wait_for(const std::string& promql, double expected, std::chrono::seconds timeout = 60s) const {
    return wait_until([&] { return query(promql) == expected; }, timeout);
  }

 private:
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

std::pair<int, std::string> http_get(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  auto r = client.Get(path.c_str());
  if (!r) return {0, ""};
  return {r->status, r->body};
}

void publish(const MosquittoServer& broker, int from, int count) {
  Publisher publisher(broker);
  for (int i = from; i < from + count; ++i) publisher.publish("iot/home1/dev/temp", std::to_string(i));
  publisher.flush();
}

}  // namespace

TEST_CASE("Prometheus scrapes the recorder: stored = N, store_up 0 during an outage, /readyz follows",
          "[service][prometheus][mongo]") {
  IOTBRIDGE_REQUIRE_MONGO();
  MongoServer mongo;  // our own: this test stops it
  MosquittoServer broker;
  TempDir dir("iotbridge-prometheus");
  const int metrics_port = free_port();
  spit(dir / "recorder.toml", "[mqtt]\nurl = \"mqtt://127.0.0.1:" + std::to_string(broker.port()) +
                                  "\"\n[store]\nuri = \"" + mongo.uri() + "\"\ndatabase = \"prom\"\n" +
                                  "[durability]\ndir = \"" + (dir / "spool").string() + "\"\n" +
                                  "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port) + "\"\n" +
                                  "[[route]]\nname = \"climate\"\nfilters = [\"iot/#\"]\n");
  service::ServiceOptions so;
  so.status_interval = 0ms;
  so.reload_on_sighup = false;
  service::Service svc(service::load_config(dir / "recorder.toml"), so);
  std::stop_source stop;
  std::string run_error;
  std::thread runner([&] {
    try {
      svc.run(stop.get_token());
    } catch (const std::exception& e) {
      run_error = e.what();
    }
  });
  struct Join {
    std::stop_source& stop;
    std::thread& t;
    ~Join() {
      stop.request_stop();
      t.join();
    }
  } join{stop, runner};
  REQUIRE(wait_until([&] { return http_get(metrics_port, "/readyz").first == 200; }, 30s));
  REQUIRE(run_error.empty());
  CHECK(http_get(metrics_port, "/healthz").first == 200);
  auto metrics = http_get(metrics_port, "/metrics");
  CHECK_THAT(metrics.second, Catch::Contains("# TYPE iotbridge_readings_stored_total counter"));

  Prometheus prometheus(dir, metrics_port);
  const std::string stored = "iotbridge_readings_stored_total{route=\"climate\"}";
  constexpr int kReadings = 250;
  publish(broker, 0, kReadings);
  REQUIRE(prometheus.wait_for(stored, kReadings));
  CHECK(prometheus.query("iotbridge_store_up") == 1.0);
  CHECK(prometheus.query("up{job=\"iotbridge\"}") == 1.0);

  // The outage: a reading arrives, the store does not answer.
  mongo.stop();
  publish(broker, kReadings, 1);
  REQUIRE(wait_until([&] { return !svc.stats().store_ok; }, 60s));
  CHECK(prometheus.wait_for("iotbridge_store_up", 0));
  auto not_ready = http_get(metrics_port, "/readyz");
  CHECK(not_ready.first == 503);
  CHECK_THAT(not_ready.second, Catch::Contains("the last store write failed"));
  CHECK(http_get(metrics_port, "/healthz").first == 200);  // alive, just not ready

  mongo.start();
  REQUIRE(prometheus.wait_for("iotbridge_store_up", 1));
  CHECK(prometheus.wait_for(stored, kReadings + 1));
  CHECK(http_get(metrics_port, "/readyz").first == 200);
  CHECK(svc.stats().pending == 0);
}
