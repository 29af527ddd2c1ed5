/// @file
/// Everything of the iotbridge::store component (link iotbridge::store, or
/// pkg-config iotbridge-store): Document and Value, the DocumentStore and
/// Collection interfaces, and open_store() for SQLite and (when built with
/// it) MongoDB. Includes iotbridge/mqtt.hpp's error type only.
/// Thread-safety and throws: as each header says.
#pragma once

#include "iotbridge/error.hpp"
#include "iotbridge/store/document.hpp"
#include "iotbridge/store/open.hpp"
#include "iotbridge/store/store.hpp"
