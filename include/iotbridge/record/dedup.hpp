/// @file
/// Dedup key: a route option that makes a reading's _id a function of what
/// the reading is, not of when it arrived, so that the same reading delivered
/// twice (a QoS 1 redelivery after a reconnect, a replay, both recorders of a
/// $share group) is stored once: the store keeps one document per _id.
///
///   dedup_key = "/seq"                  a JSON Pointer into the decoded payload
///   dedup_key = "user_property:msg-id"  an MQTT 5 user property of the message
///   dedup_key = "payload"               the payload bytes themselves
///
/// The _id is the first 12 bytes of SHA-256 over (route, topic, key), each
/// length-prefixed: the same on every machine and in every version, so two
/// recorders agree. It is a valid ObjectId, but its first 4 bytes are not a
/// creation time (ObjectId::time() of it means nothing). A reading that lacks
/// its key keeps the _id generated when it was accepted (the recorder counts
/// those).
///
/// DedupKey is a plain value: copy it, use it from any thread. The
/// constructor throws Error (config); the rest never throws but
/// std::bad_alloc.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "iotbridge/mqtt/client.hpp"
#include "iotbridge/record/route.hpp"
#include "iotbridge/store/document.hpp"

namespace iotbridge::record {

class DedupKey {
 public:
  enum class Source {
    none,           ///< no dedup key: _ids are generated
    json_pointer,   ///< a member of the decoded payload (needs the decoder first)
    user_property,  ///< an MQTT 5 user property (needs the message: read at intake)
    payload,        ///< the raw payload bytes
  };

  DedupKey() = default;  ///< none
  /// "/seq", "user_property:NAME" or "payload"; "" is none. Throws Error
  /// (config) naming the accepted forms for anything else.
  explicit DedupKey(std::string_view spec);

  Source source() const noexcept { return source_; }
  bool empty() const noexcept { return source_ == Source::none; }
  const std::string& spec() const noexcept { return spec_; }

  /// The key from the message itself: the payload bytes, or the first user
  /// property of that name. nullopt for json_pointer (use from_value), none,
  /// or when the message lacks the property.
  std::optional<std::string> from_message(std::string_view payload, const mqtt::Properties& properties) const;
  /// The key from the decoded payload (json_pointer): the value the pointer
  /// reaches, as text that keeps types apart ("7" the string and 7 the number
  /// are different keys; 7 and 7.0 are the same number). nullopt when the
  /// member is missing or null, or for the other sources.
  std::optional<std::string> from_value(const store::Value& decoded) const;

 private:
  Source source_ = Source::none;
  std::string spec_;
  std::string property_;
  JsonPointer pointer_;
};

/// The deterministic _id of (route, topic, key); see the file comment.
store::ObjectId dedup_id(std::string_view route, std::string_view topic, std::string_view key);

}  // namespace iotbridge::record
