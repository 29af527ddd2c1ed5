// iotbridge-db plot: readings -> chart -> a PNG or SVG file.
// Thread-safety: plain functions. Throws: iotbridge::Error; (config) for a
// bad filter, --since, output name or field, (io) when the file cannot be
// written, (store) when the range holds no readings or the store fails.
#pragma once

#include <string>

#include "series.hpp"

namespace iotbridge::view {

struct PlotRequest {
  std::string filter_text = "{}";
  std::string since;   ///< a duration ("1h"); empty: every reading
  std::string output;  ///< NAME.png or NAME.svg
  std::string title;   ///< empty: "<field> by <by>, <db>.<collection>"
  int width = 960;
  int height = 480;
  SeriesQuery query;  ///< field, by, time_field; filter and since are filled from the texts above
};

/// Checks what can be checked before the store is opened: the filter's JSON,
/// --since, the output's extension and folder.
void check_plot_request(const PlotRequest& request);

/// Queries, lays out and writes the chart; returns the summary line.
std::string run_plot(store::Collection& collection, PlotRequest request);

}  // namespace iotbridge::view
