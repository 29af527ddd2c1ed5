// JSON -> Document (store/document.hpp), and BSON bytes -> Document.
//
// Checks on every input:
//  - Document::from_json throws only Error; when it accepts the text, the
//    canonical Extended JSON of the result parses back to a byte-identical
//    Document (canonical JSON keeps every type: int32 vs int64 vs double;
//    only a NaN's sign and payload are not kept, as Extended JSON has one NaN),
//    the relaxed JSON and the pretty JSON parse back, and the document's own
//    BSON bytes copy through from_bson unchanged;
//  - every top-level field can be read back with get() and printed;
//  - Document::from_bson on the raw bytes throws only Error, and a document it
//    accepts prints as JSON.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "iotbridge/error.hpp"
#include "iotbridge/store/document.hpp"

using namespace iotbridge;
using namespace iotbridge::store;

namespace {
[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_document: %s\n  %s\n", what, detail.c_str());
  std::abort();
}

void exercise(const Document& doc) {
  for (const auto& [key, value] : doc.fields()) {
    (void)value.to_json(JsonMode::canonical);
    (void)compare(value, value);
    if (key.find('.') == std::string::npos && !key.empty() && !doc.get(key)) fail("get() misses a field", key);
  }
  (void)doc.to_pretty_json();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  try {
    Document doc = Document::from_json(input);
    exercise(doc);
    std::string canonical = doc.to_json(JsonMode::canonical);
    Document again;
    try {
      again = Document::from_json(canonical);
    } catch (const Error& e) {
      fail("canonical JSON of a parsed document does not parse", canonical + " : " + e.what());
    }
    // Byte-identical, except that Extended JSON has one NaN: a NaN with its
    // sign bit or another payload (libbson reads "-NaN..." as one) prints as
    // "NaN" and comes back as the plain NaN, as with MongoDB's own tools.
    if (!(again == doc) &&
        !(canonical.find("\"NaN\"") != std::string::npos && again.to_json(JsonMode::canonical) == canonical))
      fail("canonical JSON round trip changed the document", canonical + " -> " + again.to_json(JsonMode::canonical));
    std::string relaxed = doc.to_json();
    try {
      (void)Document::from_json(relaxed);
      (void)Document::from_json(doc.to_pretty_json());
    } catch (const Error& e) {
      fail("relaxed or pretty JSON of a parsed document does not parse", relaxed + " : " + e.what());
    }
    if (!(Document::from_bson(doc.data(), doc.size()) == doc)) fail("from_bson(data()) differs", canonical);
  } catch (const Error&) {
  }
  try {
    Document doc = Document::from_bson(data, size);
    exercise(doc);
    (void)doc.to_json();
  } catch (const Error&) {
  }
  return 0;
}
