/// @file
/// All of iotbridge (link iotbridge::iotbridge, or pkg-config iotbridge): the
/// mqtt, store and record components. A program that uses one component can
/// include its own umbrella instead (iotbridge/mqtt.hpp, iotbridge/store.hpp,
/// iotbridge/record.hpp) and link that component alone.
/// Thread-safety and throws: as each header says.
#pragma once

#include "iotbridge/mqtt.hpp"
#include "iotbridge/record.hpp"
#include "iotbridge/store.hpp"
