// The smallest useful iotbridge publisher, linked against iotbridge::mqtt
// alone: its stripped size is the row in bench/README.md (bench/cpp_peer_compare.py).
//   mqtt_min_pub_iotbridge PORT TOPIC MESSAGE
#include <cstdio>
#include <cstdlib>

#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s PORT TOPIC MESSAGE\n", argv[0]);
    return 2;
  }
  try {
    iotbridge::mqtt::Options o;
    o.host = "127.0.0.1";
    o.port = std::atoi(argv[1]);
    auto client = iotbridge::mqtt::make_mosquitto_client(o);
    client->connect();
    client->loop_start();
    client->publish(argv[2], argv[3], 1).wait();
    client->disconnect();
  } catch (const iotbridge::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
