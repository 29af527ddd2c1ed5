// Payload decoding (record/payload.hpp) on arbitrary bytes.
//
// The first byte picks the DecodeOptions (numbers, json, reject_unsafe_keys,
// a small or the default max_json_depth); the rest is the payload. Checks:
//  - decode_payload never throws, and its PayloadKind agrees with the value:
//    null <=> empty payload; number -> a double equal to parse_number(payload);
//    text -> a string equal to the payload, which is valid UTF-8; binary -> the
//    payload's bytes;
//  - build_document stores a document with the contract's fields whose
//    "value" is what decode_payload returned;
//  - encode_reading/decode_reading round-trip a Reading holding the bytes, and
//    decode_reading on the raw bytes throws only Error;
//  - TopicPattern on the bytes throws only Error; parse_timestamp never throws.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "iotbridge/error.hpp"
#include "iotbridge/record/payload.hpp"

using namespace iotbridge;
using namespace iotbridge::record;

namespace {
[[noreturn]] void fail(const char* what, std::string_view payload) {
  std::fprintf(stderr, "fuzz_payload: %s (payload of %zu bytes)\n", what, payload.size());
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t flags = data[0];
  std::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);
  DecodeOptions options;
  options.numbers = !(flags & 1);
  options.json = !(flags & 2);
  options.reject_unsafe_keys = !(flags & 4);
  if (flags & 8) options.max_json_depth = flags >> 4;

  DecodedPayload decoded = decode_payload(payload, options);
  switch (decoded.kind) {
    case PayloadKind::null:
      if (!payload.empty() || !decoded.value.is_null()) fail("null kind for a non-empty payload", payload);
      break;
    case PayloadKind::number: {
      auto n = parse_number(payload);
      const double* d = decoded.value.get_if<double>();
      if (!options.numbers || !n || !d || !(*d == *n)) fail("number kind disagrees with parse_number", payload);
      if (!std::isfinite(*d)) fail("a non-finite number was stored", payload);
      break;
    }
    case PayloadKind::json:
      if (!options.json) fail("json kind with json decoding off", payload);
      (void)decoded.value.to_json();
      break;
    case PayloadKind::text: {
      const std::string* s = decoded.value.get_if<std::string>();
      if (!s || *s != payload || !is_valid_utf8(payload)) fail("text kind is not the payload as valid UTF-8", payload);
      break;
    }
    case PayloadKind::binary: {
      const store::Binary* b = decoded.value.get_if<store::Binary>();
      if (!b || std::string_view(reinterpret_cast<const char*>(b->data.data()), b->data.size()) != payload)
        fail("binary kind does not hold the payload bytes", payload);
      if (payload.empty()) fail("binary kind for an empty payload", payload);
      break;
    }
  }
  if (payload.empty() != (decoded.kind == PayloadKind::null)) fail("empty payload not null", payload);
  (void)parse_timestamp(decoded.value);

  Reading reading;
  reading.id = store::ObjectId::from_hex("65a1b2c3d4e5f60718293a4b");
  reading.received = store::DateTime{1700000000000};
  reading.topic = "iot/home/boiler/temp";
  reading.payload = std::string(payload);
  reading.qos = flags % 3;
  reading.retain = flags & 16;
  DocumentOptions doc_options;
  doc_options.decode = options;
  doc_options.include_qos = true;
  doc_options.timestamp_field = "ts";
  doc_options.topic_fields = TopicPattern("iot/{home}/{device}/{sensor}");
  BuildInfo info;
  store::Document doc = build_document(reading, doc_options, &info);
  auto value = doc.get("value");
  if (!value || !(*value == decoded.value) || info.kind != decoded.kind)
    fail("build_document stored another value", payload);
  if (doc.get_string("topic") != reading.topic || !doc.has("_id") || !doc.has("reg_date") || !info.topic_matched)
    fail("build_document lost a contract field", payload);
  (void)doc.to_json();

  std::string encoded = encode_reading(reading);
  Reading back = decode_reading(encoded);
  if (back.id != reading.id || back.received != reading.received || back.topic != reading.topic ||
      back.payload != reading.payload || back.qos != reading.qos || back.retain != reading.retain)
    fail("encode_reading/decode_reading do not round-trip", payload);

  try {
    (void)decode_reading(payload);
  } catch (const Error&) {
  }
  try {
    TopicPattern pattern(payload);
    (void)pattern.match("iot/home/boiler/temp");
    (void)pattern.match(payload);
  } catch (const Error&) {
  }
  return 0;
}
