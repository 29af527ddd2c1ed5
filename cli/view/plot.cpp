#include "plot.hpp"

#include <fmt/core.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "chart.hpp"
#include "duration.hpp"
#include "png.hpp"
#include "svg.hpp"

namespace iotbridge::view {

namespace fs = std::filesystem;

namespace {

enum class Format { png, svg };

Format output_format(const std::string& output) {
  auto ext = fs::path(output).extension().string();
  for (auto& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (ext == ".png") return Format::png;
  if (ext == ".svg") return Format::svg;
  throw Error(ErrorCategory::config,
              fmt::format("-o {}: the chart is written as PNG or SVG; name the file NAME.png or NAME.svg", output));
}

store::Document parse_filter(const std::string& text) {
  try {
    return store::Document::from_json(text);
  } catch (const Error& e) {
    throw Error(ErrorCategory::config, fmt::format("the filter is not a JSON object ({}): {}", e.what(), text));
  }
}

void write_file(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (out) out << data;
  if (!out || !out.flush())
    throw Error(ErrorCategory::io, fmt::format("cannot write the chart to {}: {}", path, std::strerror(errno)));
}

}  // namespace

void check_plot_request(const PlotRequest& request) {
  parse_filter(request.filter_text);
  if (!request.since.empty()) parse_duration(request.since);
  output_format(request.output);
  fs::path folder = fs::path(request.output).parent_path();
  if (folder.empty()) folder = ".";
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    throw Error(ErrorCategory::io, fmt::format("cannot write the chart to {}: the folder {} does not exist",
                                               request.output, folder.string()));
  if (::access(folder.c_str(), W_OK) != 0 ||
      (fs::exists(request.output, ec) && ::access(request.output.c_str(), W_OK) != 0))
    throw Error(ErrorCategory::io, fmt::format("cannot write the chart to {}: {} (choose another -o)", request.output,
                                               std::strerror(errno)));
  if (fs::is_directory(request.output, ec))
    throw Error(ErrorCategory::io, fmt::format("cannot write the chart to {}: it is a folder", request.output));
}

std::string run_plot(store::Collection& collection, PlotRequest request) {
  check_plot_request(request);
  request.query.filter = parse_filter(request.filter_text);
  if (!request.since.empty()) {
    auto now = store::DateTime::now();
    request.query.since = store::DateTime{now.millis - parse_duration(request.since).count()};
  }
  auto result = query_series(collection, request.query);

  ChartStyle style;
  style.width = request.width;
  style.height = request.height;
  style.y_label = request.query.field;
  style.title = !request.title.empty() ? request.title
                : request.query.by.empty()
                    ? fmt::format("{}, {}.{}", request.query.field, collection.database_name(), collection.name())
                    : fmt::format("{} by {}, {}.{}", request.query.field, request.query.by, collection.database_name(),
                                  collection.name());
  Chart chart = layout_chart(result.series, style);
  if (output_format(request.output) == Format::svg)
    write_file(request.output, to_svg(chart));
  else
    write_png(chart, request.output);

  std::int64_t first = chart.x_max, last = chart.x_min;
  for (const auto& s : result.series) {
    first = std::min(first, s.points.front().millis);
    last = std::max(last, s.points.back().millis);
  }
  std::error_code ec;
  auto bytes = fs::file_size(request.output, ec);
  return fmt::format("plotted {} reading{} in {} line{} ({} to {}{}) to {} ({} bytes)", result.readings,
                     result.readings == 1 ? "" : "s", result.series.size(), result.series.size() == 1 ? "" : "s",
                     iso_time(first), iso_time(last),
                     result.skipped
                         ? fmt::format("; {} without a numeric {} skipped", result.skipped, request.query.field)
                         : std::string(),
                     request.output, ec ? 0 : bytes);
}

}  // namespace iotbridge::view
