/// @file
/// The libmosquitto-backed mqtt::Client. libmosquitto's own header stays in
/// src/; nothing of it shows here. mosquitto_lib_init runs once per process
/// (thread-safely) the first time a client is made; cleanup is left to process
/// exit, so clients may be made and destroyed from any thread at any time.
#pragma once

#include <memory>

#include "iotbridge/mqtt/client.hpp"

namespace iotbridge::mqtt {

/// Throws Error (config) when the options are inconsistent (a generated client
/// id with clean_session off, qos outside 0..2 in the will, keepalive < 5 s,
/// max_queued < max_inflight, ...) and Error (mqtt) when libmosquitto refuses
/// them (e.g. unreadable TLS files). Does not connect.
std::unique_ptr<Client> make_mosquitto_client(Options options);

/// libmosquitto's version, e.g. "2.0.11".
const char* mosquitto_library_version();

}  // namespace iotbridge::mqtt
