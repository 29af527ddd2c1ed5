/// @file
/// Quarantine: where a reading goes when the store refuses it as a document
/// (too large, refused by a validator or by a unique index other than _id)
/// or, with on_unmapped = "quarantine", when it lacks a mapped field. Nothing
/// accepted is dropped: the reading is kept, raw, in the route's quarantine
/// collection (default "<collection>_quarantine"), with why, until someone
/// fixes the cause and replays it (iotbridge-db quarantine replay).
///
/// A quarantine document:
///   {_id: the reading's _id, topic, payload: <binary, the bytes received>,
///    qos, retain, reg_date: receive time, route, reason: "too_large",
///    message: "the document is 5012 bytes; max_document_bytes is 1000",
///    code: <the store's error code, 0 when none>, quarantined_at}
/// Keeping the reading's _id makes a repeated quarantine write (a retry, a
/// replay of the journal) one document, and a replay stores the reading
/// under the _id it would have had.
///
/// Pure functions and plain values; safe from any thread. Throws: see each.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "iotbridge/record/payload.hpp"
#include "iotbridge/record/route.hpp"
#include "iotbridge/store/document.hpp"

namespace iotbridge::record {

enum class QuarantineReason {
  too_large,     ///< the document exceeds the route's max_document_bytes
  validator,     ///< the store's document validator refused it (MongoDB code 121)
  unique_index,  ///< a unique index other than _id refused it (code 11000)
  unmapped,      ///< a mapped field was missing and on_unmapped = "quarantine"
  refused,       ///< the store refused it as a document for another reason
};

/// "too_large", "validator", "unique_index", "unmapped", "refused": the
/// `reason` label of iotbridge_readings_quarantined_total and the document's
/// reason field.
std::string_view to_string(QuarantineReason reason) noexcept;
/// The reverse; nullopt for an unknown word.
std::optional<QuarantineReason> parse_quarantine_reason(std::string_view word) noexcept;

/// Why a store refused one document, from its error code: 121 validator,
/// 11000 unique index (a duplicate _id is never a refusal: the recorder
/// stores those once), 10334 / 2 with "too large" / BSONObjectTooLarge
/// too_large, anything else refused.
QuarantineReason classify_refusal(int code, std::string_view message) noexcept;

/// The route's quarantine collection: Route::quarantine, or
/// "<collection>_quarantine" when that is empty.
std::string quarantine_collection(const Route& route);

/// One quarantined reading, as stored and as read back.
struct QuarantinedReading {
  Reading reading;
  std::string route;
  QuarantineReason reason = QuarantineReason::refused;
  std::string message;  ///< the reason in words
  int code = 0;         ///< the store's code (0: none, e.g. too_large found before the store)
  store::DateTime quarantined_at;
};

/// The quarantine document of `q` (see the file comment).
store::Document to_document(const QuarantinedReading& q);

/// Reads a quarantine document back. Throws Error (store) naming the field
/// when `doc` is not one (a missing _id, topic, payload or reg_date).
QuarantinedReading quarantined_reading_from_document(const store::Document& doc);

}  // namespace iotbridge::record
