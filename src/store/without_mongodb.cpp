// open_mongo() of a build without the MongoDB backend (IOTBRIDGE_WITH_MONGODB
// off, or libmongoc not found): the URI is understood, and refused in words.
#include "iotbridge/error.hpp"
#include "iotbridge/store/open.hpp"
#include "store/backends.hpp"

namespace iotbridge::store::detail {

std::unique_ptr<DocumentStore> open_mongo(const std::string& uri) {
  throw Error(ErrorCategory::config,
              "cannot open '" + redact_uri(uri) +
                  "': this build of iotbridge has no MongoDB support (it was configured with "
                  "IOTBRIDGE_WITH_MONGODB=OFF, or without libmongoc-dev); use a sqlite: store, or rebuild with "
                  "libmongoc-dev installed and IOTBRIDGE_WITH_MONGODB=AUTO or ON");
}

}  // namespace iotbridge::store::detail
