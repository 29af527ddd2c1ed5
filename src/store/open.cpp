#include "iotbridge/store/open.hpp"

#include <algorithm>

#include "iotbridge/error.hpp"
#include "store/backends.hpp"

namespace iotbridge::store {

std::string redact_uri(std::string_view uri_in) {
  std::string uri(uri_in);
  auto scheme_end = uri.find("://");
  if (scheme_end != std::string::npos) {
    auto host_start = scheme_end + 3;
    // userinfo ends at the last '@' before the path ('/'), so passwords holding
    // a raw '@' are still hidden whole.
    auto path_start = uri.find('/', host_start);
    auto at = uri.rfind('@', path_start == std::string::npos ? std::string::npos : path_start);
    if (at == std::string::npos || at < host_start) {
      // No '@' before the first '/': the password may hold a raw '/' (libmongoc
      // refuses such a URI, and the message quoting it must not show it), so
      // look for the userinfo's '@' up to the query string.
      auto query = uri.find('?', host_start);
      at = uri.rfind('@', query == std::string::npos ? std::string::npos : query);
    }
    if (at != std::string::npos && at >= host_start) {
      auto colon = uri.find(':', host_start);
      if (colon != std::string::npos && colon < at)
        uri.replace(colon + 1, at - colon - 1, "***");
      else if (colon == std::string::npos || colon > at) {
        // user only (x509 / kerberos): nothing secret, keep it
      }
    }
  }
  // Secret-bearing query options.
  for (const char* key : {"password=", "tlsCertificateKeyFilePassword=", "sslclientcertificatekeypassword=",
                          "authMechanismProperties="}) {
    std::string lower = uri;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string k = key;
    std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return std::tolower(c); });
    std::size_t pos = 0;
    while ((pos = lower.find(k, pos)) != std::string::npos) {
      if (pos > 0 && lower[pos - 1] != '?' && lower[pos - 1] != '&') {
        pos += k.size();
        continue;
      }
      auto start = pos + k.size();
      auto end = uri.find('&', start);
      if (end == std::string::npos) end = uri.size();
      uri.replace(start, end - start, "***");
      lower.replace(start, end - start, "***");
      pos = start + 3;
    }
  }
  return uri;
}

std::unique_ptr<DocumentStore> open_store(const std::string& uri, const OpenOptions& options) {
  if (uri.empty())
    throw Error(ErrorCategory::config,
                "empty store URI: use mongodb://host:port/, sqlite:path/to/file.db or sqlite::memory:");
  if (uri.rfind("mongodb://", 0) == 0 || uri.rfind("mongodb+srv://", 0) == 0) return detail::open_mongo(uri);
  if (uri.rfind("sqlite:", 0) == 0) {
    std::string path = uri.substr(7);
    if (path.rfind("//", 0) == 0) path = path.substr(2);  // sqlite://file.db is accepted too
    if (path.empty())
      throw Error(ErrorCategory::config,
                  "store URI '" + uri + "' names no file: use sqlite:path/to/file.db or sqlite::memory:");
    return detail::open_sqlite(path, uri, options.read_only);
  }
  auto colon = uri.find(':');
  std::string shown = redact_uri(uri);
  if (colon == std::string::npos)
    throw Error(ErrorCategory::config, "store URI '" + shown +
                                           "' has no scheme: use mongodb://host:port/, sqlite:path/to/file.db or "
                                           "sqlite::memory:");
  throw Error(ErrorCategory::config, "unsupported store URI scheme '" + uri.substr(0, colon) + "' in '" + shown +
                                         "': use mongodb://, mongodb+srv:// or sqlite:");
}

namespace detail {

void check_database_name(const std::string& db) {
  if (db.empty()) throw Error(ErrorCategory::config, "database name is empty");
  if (db.size() > 63) throw Error(ErrorCategory::config, "database name '" + db + "' is longer than 63 bytes");
  for (char c : db)
    if (std::string_view("/\\. \"$*<>:|?").find(c) != std::string_view::npos || c == '\0')
      throw Error(ErrorCategory::config,
                  "database name '" + db + "' contains '" + std::string(1, c) + "', which MongoDB does not allow");
}

void check_collection_name(const std::string& name) {
  if (name.empty()) throw Error(ErrorCategory::config, "collection name is empty");
  if (name.find('$') != std::string::npos || name.find('\0') != std::string::npos)
    throw Error(ErrorCategory::config, "collection name '" + name + "' contains '$', which MongoDB does not allow");
  if (name.rfind("system.", 0) == 0)
    throw Error(ErrorCategory::config, "collection name '" + name + "' is reserved (system.*)");
}

std::string default_index_name(const std::vector<std::pair<std::string, int>>& keys) {
  std::string name;
  for (const auto& [path, dir] : keys) {
    if (!name.empty()) name += '_';
    name += path + "_" + std::to_string(dir);
  }
  return name;
}

}  // namespace detail
}  // namespace iotbridge::store
