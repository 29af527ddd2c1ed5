/// @file
/// Everything of the iotbridge::mqtt component (link iotbridge::mqtt, or
/// pkg-config iotbridge-mqtt): errors, topics and TopicTree, BoundedQueue,
/// Worker, shutdown signals, Backoff, the MQTT client and its libmosquitto
/// backend, and the mosquitto_sub-style formatting. The test double
/// iotbridge/mqtt/testing.hpp is included on its own, by tests.
/// Thread-safety and throws: as each header says.
#pragma once

#include "iotbridge/backoff.hpp"
#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/client.hpp"
#include "iotbridge/mqtt/format.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"
#include "iotbridge/queue.hpp"
#include "iotbridge/shutdown.hpp"
#include "iotbridge/topic.hpp"
#include "iotbridge/topic_tree.hpp"
#include "iotbridge/worker.hpp"
