/// @file
/// Payload decoders: how a route turns a message's bytes into the values it
/// stores. A decoder gets the topic and the payload and produces one or more
/// decoded items (one per document: a Sparkplug-like payload may carry many
/// readings), each either a value (stored under "value") or a set of
/// top-level fields, and says which kind it decoded (a short word such as
/// "number" or "json"; the recorder counts stored readings per kind).
///
/// Built in, registered under their names:
///  - "auto": decode_payload()'s rules (number, JSON, text, binary, null)
///  - "number": a number, else what "auto" would do with a non-number
///    (text or binary; null for an empty payload)
///  - "json": a JSON value, else text or binary
///  - "text": the payload as text (binary when it is not UTF-8)
///  - "binary": the payload as BSON binary, always
///
/// Your own: derive from PayloadDecoder and register_decoder() it before a
/// Recorder names it (examples/custom_decoder.cpp decodes "k=v;k=v" lines).
///
/// Thread-safety: decode() is called from the recorder's writer thread while
/// other threads may use the same decoder: it must not modify shared state.
/// The registry is thread-safe. Throws: see each function.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "iotbridge/record/payload.hpp"
#include "iotbridge/store/document.hpp"

namespace iotbridge::record {

/// One document's worth of a decoded payload.
struct DecodedItem {
  /// Stored under "value" (unless `fields` is used).
  store::Value value;
  /// When not empty: stored as top-level fields instead of "value" (names
  /// must be safe keys: not "_id", "topic", "reg_date", no '$' or '.').
  std::vector<std::pair<std::string, store::Value>> fields;
  /// What was decoded ("number", "json", "text", "binary", "null", or your
  /// word). Must point at storage that outlives the decoder (a literal).
  std::string_view kind = "null";
};

struct DecodeInput {
  std::string_view topic;
  std::string_view payload;
  const DecodeOptions& options;  ///< the route's DocumentOptions::decode
};

class PayloadDecoder {
 public:
  virtual ~PayloadDecoder() = default;
  PayloadDecoder() = default;
  PayloadDecoder(const PayloadDecoder&) = delete;
  PayloadDecoder& operator=(const PayloadDecoder&) = delete;

  /// The name routes use to pick it ("auto", "kv", ...).
  virtual std::string_view name() const noexcept = 0;
  /// Appends the decoded items to `out` (empty on entry). Appending nothing
  /// stores nothing for this message (counted as stored, kind "empty"). An
  /// exception is caught by the recorder: the payload is then stored as
  /// "auto" decodes it, so a reading is never lost to a decoder's bug.
  virtual void decode(const DecodeInput& in, std::vector<DecodedItem>& out) const = 0;
};

/// Makes `decoder` available to routes under decoder->name(). Throws Error
/// (config) when the name is empty or taken (the built-ins included).
void register_decoder(std::shared_ptr<const PayloadDecoder> decoder);

/// The decoder registered under `name`; throws Error (config) naming the
/// known decoders when there is none.
std::shared_ptr<const PayloadDecoder> find_decoder(std::string_view name);

/// The registered names, sorted.
std::vector<std::string> decoder_names();

}  // namespace iotbridge::record
