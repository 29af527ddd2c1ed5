// Interop on one broker: this client with mosquitto_pub / mosquitto_sub and
// with paho-mqtt (Debian's python3-paho-mqtt under /usr/bin/python3), in both
// directions, with binary payloads compared byte for byte.
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "mqtt_helpers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;
using namespace std::chrono_literals;

namespace {

std::string tricky_payload() {
  std::string p;
  for (int round = 0; round < 4; ++round)
    for (int b = 0; b < 256; ++b) p += static_cast<char>(b);
  p += "caf\xc3\xa9 \xe2\x82\xac 24.5\n\r\t";
  return p;
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<mqtt::Client> started(mqtt::Options o) {
  auto c = mqtt::make_mosquitto_client(std::move(o));
  c->connect();
  c->loop_start();
  return c;
}

const char* kPython = "/usr/bin/python3";

}  // namespace

TEST_CASE("interop: mosquitto_pub -> this client and this client -> mosquitto_sub, byte-identical",
          "[mqtt][integration]") {
  MosquittoServer broker;
  TempDir dir("iotbridge-interop");
  const std::string payload = tricky_payload();
  write_bytes(dir / "payload.bin", payload);
  const std::string port = std::to_string(broker.port());

  Collector got;
  auto c = started(broker_options(broker));
  REQUIRE(c->subscribe("interop/from-cli", 1, got.handler()).wait_for(5s));
  REQUIRE(run_command({"mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-q", "1", "-t", "interop/from-cli", "-f",
                       (dir / "payload.bin").string()}) == 0);
  REQUIRE(got.wait_for(1));
  CHECK(got.messages()[0].payload == payload);
  CHECK(got.messages()[0].qos == 1);

  // Retained, so that mosquitto_sub receives it whenever it subscribes.
  REQUIRE(c->publish("interop/to-cli", payload, 1, true).wait_for(5s));
  std::string out;
  REQUIRE(run_command({"mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-q", "1", "-t", "interop/to-cli", "-C", "1",
                       "-N", "-W", "10"},
                      &out) == 0);
  CHECK(out == payload);
}

TEST_CASE("interop: paho-mqtt (Python) -> this client and this client -> paho-mqtt, byte-identical",
          "[mqtt][integration]") {
  MosquittoServer broker;
  TempDir dir("iotbridge-interop");
  const std::string payload = tricky_payload();
  write_bytes(dir / "payload.bin", payload);
  const std::string port = std::to_string(broker.port());
  REQUIRE(run_command({kPython, "-c", "import paho.mqtt.client"}) == 0);

  Collector got;
  auto c = started(broker_options(broker));
  REQUIRE(c->subscribe("interop/from-paho", 2, got.handler()).wait_for(5s));
  const std::string publish_script =
      "import sys\n"
      "import paho.mqtt.publish as publish\n"
      "data = open(sys.argv[1], 'rb').read()\n"
      "publish.single('interop/from-paho', data, qos=2, hostname='127.0.0.1', port=int(sys.argv[2]))\n";
  REQUIRE(run_command({"timeout", "60", kPython, "-c", publish_script, (dir / "payload.bin").string(), port}) == 0);
  REQUIRE(got.wait_for(1));
  CHECK(got.messages()[0].payload == payload);
  CHECK(got.messages()[0].qos == 2);

  REQUIRE(c->publish("interop/to-paho", payload, 1, true).wait_for(5s));
  const std::string subscribe_script =
      "import sys\n"
      "import paho.mqtt.subscribe as subscribe\n"
      "m = subscribe.simple('interop/to-paho', qos=1, msg_count=1, retained=True, hostname='127.0.0.1',\n"
      "                     port=int(sys.argv[2]))\n"
      "open(sys.argv[1], 'wb').write(m.payload)\n";
  REQUIRE(run_command({"timeout", "60", kPython, "-c", subscribe_script, (dir / "received.bin").string(), port}) == 0);
  CHECK(read_bytes(dir / "received.bin") == payload);
}
