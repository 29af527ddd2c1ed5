// The chart as a PNG file, drawn with cairo (Debian's libcairo2) from the same
// layout as the SVG writer. cairo stays inside this file: no cairo type leaves it.
// Thread-safety: a pure function (its own surface). Throws: iotbridge::Error
// (io) naming the file and cairo's reason when it cannot be written.
#pragma once

#include <string>

#include "chart.hpp"

namespace iotbridge::view {

void write_png(const Chart& chart, const std::string& path);

}  // namespace iotbridge::view
