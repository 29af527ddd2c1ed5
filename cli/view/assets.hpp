// The web page of `iotbridge-db serve` (cli/view/assets: index.html, app.js,
// style.css), embedded in the program at build time by embed_assets.cmake.
// Thread-safety: read-only data. Throws: nothing.
#pragma once

#include <string_view>
#include <vector>

namespace iotbridge::view {

struct Asset {
  std::string_view path;          ///< "/index.html"
  std::string_view content_type;  ///< "text/html; charset=utf-8"
  std::string_view body;
};

const std::vector<Asset>& page_assets();

}  // namespace iotbridge::view
