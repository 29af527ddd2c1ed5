/// @file
/// open_store: the factory for a DocumentStore from a URI.
///
///   mongodb://[user:pass@]host[:port][,...]/[?options]   libmongoc client pool
///   mongodb+srv://...                                     (same, DNS seed list)
///   sqlite:path/to/file.db                                embedded, one file for all databases
///   sqlite::memory:                                       embedded, private to this store object
///
/// MongoDB: serverSelectionTimeoutMS defaults to kDefaultServerSelectionTimeoutMs
/// (so a server that is down is reported in seconds) unless the URI sets it;
/// open_store itself does not contact the server (ping() does), except for the
/// DNS SRV lookup of a mongodb+srv:// name.
/// A bad URI throws Error (category config) saying what is wrong with it.
/// Credentials never appear in messages: see redact_uri().
///
/// Thread-safety: open_store may be called from any thread; the returned store
/// is thread-safe (see store.hpp).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "iotbridge/store/store.hpp"

namespace iotbridge::store {

inline constexpr int kDefaultServerSelectionTimeoutMs = 5000;

struct OpenOptions {
  /// Only read: nothing is created or written, so a typo in a path never
  /// leaves an empty store behind (iotbridge-db's reading verbs open this
  /// way). SQLite: the file must exist and be an iotbridge store, and writes
  /// throw Error. MongoDB: no difference (reads create nothing on a server).
  bool read_only = false;
};

/// Opens the store a URI names (the forms above).
/// @param uri  `mongodb://...`, `mongodb+srv://...`, `sqlite:PATH` or `sqlite::memory:`
/// @return the store; MongoDB is not contacted yet (call ping() to check it answers)
/// @throws Error (config) for a malformed or unknown URI (a mongodb:// host
///         that is no host name, address or socket path is refused here, before
///         any connection); (store) when an SQLite file cannot be opened or
///         created (its folder is missing, the path is a folder, or read_only
///         and the file does not exist: each says so), or a mongodb+srv://
///         name does not resolve
std::unique_ptr<DocumentStore> open_store(const std::string& uri, const OpenOptions& options = {});

/// "mongodb://user:secret@host/?authSource=x" -> "mongodb://user:***@host/?authSource=x";
/// also hides password=/tlsCertificateKeyFilePassword= options. Other URIs unchanged.
std::string redact_uri(std::string_view uri);

}  // namespace iotbridge::store
