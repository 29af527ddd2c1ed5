// The smallest useful paho.mqtt.cpp publisher, the peer of
// mqtt_min_pub_iotbridge.cpp (same steps: connect, one QoS 1 message, wait
// for its PUBACK, disconnect).
//   mqtt_min_pub_paho PORT TOPIC MESSAGE
#include <mqtt/async_client.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s PORT TOPIC MESSAGE\n", argv[0]);
    return 2;
  }
  try {
    mqtt::async_client client(std::string("tcp://127.0.0.1:") + argv[1], "");
    client.connect()->wait();
    client.publish(argv[2], argv[3], std::char_traits<char>::length(argv[3]), 1, false)->wait();
    client.disconnect()->wait();
  } catch (const mqtt::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
