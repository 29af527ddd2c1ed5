/// @file
/// Everything of the iotbridge::record component (link iotbridge::record, or
/// pkg-config iotbridge-record): the recorder, its payload rules and its
/// journal, with the mqtt and store components it builds on.
/// Thread-safety and throws: as each header says.
#pragma once

#include "iotbridge/mqtt.hpp"
#include "iotbridge/record/journal.hpp"
#include "iotbridge/record/payload.hpp"
#include "iotbridge/record/recorder.hpp"
#include "iotbridge/store.hpp"
