// The chart as an SVG document written by the project (no library). Readers
// can map the drawing back to the data: the root element carries the data
// range of the plot area (data-x-min/-max in ms, data-y-min/-max), the plot
// area is <rect class="plot-area">, and each series is one
// <polyline data-series="NAME" points="x,y ...">.
// Thread-safety: a pure function. Throws: nothing beyond std::bad_alloc.
#pragma once

#include <string>

#include "chart.hpp"

namespace iotbridge::view {

std::string to_svg(const Chart& chart);

/// `text` with &, <, >, " and ' escaped for XML/HTML.
std::string xml_escape(std::string_view text);

}  // namespace iotbridge::view
