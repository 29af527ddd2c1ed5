// The decoder registry and the built-in decoders (decoder.hpp says what each does).
#include "iotbridge/record/decoder.hpp"

#include <algorithm>
#include <map>
#include <mutex>

#include "iotbridge/error.hpp"

namespace iotbridge::record {

namespace {

DecodedItem item(DecodedPayload decoded) {
  DecodedItem out;
  out.value = std::move(decoded.value);
  out.kind = to_string(decoded.kind);
  return out;
}

store::Value binary(std::string_view payload) {
  store::Binary bin;
  bin.data.assign(reinterpret_cast<const std::uint8_t*>(payload.data()),
                  reinterpret_cast<const std::uint8_t*>(payload.data()) + payload.size());
  return store::Value(std::move(bin));
}

// One built-in: decode_payload() with some of its rules forced on or off.
class RulesDecoder final : public PayloadDecoder {
 public:
  RulesDecoder(std::string_view name, bool numbers, bool json) : name_(name), numbers_(numbers), json_(json) {}
  std::string_view name() const noexcept override { return name_; }
  void decode(const DecodeInput& in, std::vector<DecodedItem>& out) const override {
    if (name_ == "auto") {
      out.push_back(item(decode_payload(in.payload, in.options)));
      return;
    }
    DecodeOptions options = in.options;
    options.numbers = numbers_;
    options.json = json_;
    DecodedItem decoded = item(decode_payload(in.payload, options));
    if (name_ == "json" && decoded.kind == "number") decoded.kind = "json";  // a number is a JSON value
    out.push_back(std::move(decoded));
  }

 private:
  std::string_view name_;
  bool numbers_;
  bool json_;
};

class BinaryDecoder final : public PayloadDecoder {
 public:
  std::string_view name() const noexcept override { return "binary"; }
  void decode(const DecodeInput& in, std::vector<DecodedItem>& out) const override {
    DecodedItem decoded;
    if (in.payload.empty()) {
      decoded.value = store::Value(nullptr);
      decoded.kind = "null";
    } else {
      decoded.value = binary(in.payload);
      decoded.kind = "binary";
    }
    out.push_back(std::move(decoded));
  }
};

struct Registry {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<const PayloadDecoder>, std::less<>> decoders;

  Registry() {
    for (auto d : std::initializer_list<std::shared_ptr<const PayloadDecoder>>{
             std::make_shared<RulesDecoder>("auto", true, true), std::make_shared<RulesDecoder>("number", true, false),
             std::make_shared<RulesDecoder>("json", true, true), std::make_shared<RulesDecoder>("text", false, false),
             std::make_shared<BinaryDecoder>()})
      decoders.emplace(std::string(d->name()), d);
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

std::string known_names(const Registry& r) {
  std::string out;
  for (const auto& [name, d] : r.decoders) out += (out.empty() ? "" : ", ") + name;
  return out;
}

}  // namespace

void register_decoder(std::shared_ptr<const PayloadDecoder> decoder) {
  if (!decoder) throw Error(ErrorCategory::config, "register_decoder: the decoder is null");
  std::string name(decoder->name());
  if (name.empty()) throw Error(ErrorCategory::config, "register_decoder: a decoder needs a name");
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  if (!r.decoders.emplace(name, std::move(decoder)).second)
    throw Error(ErrorCategory::config, "a decoder named '" + name + "' is registered already; choose another name");
}

std::shared_ptr<const PayloadDecoder> find_decoder(std::string_view name) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.decoders.find(name);
  if (it == r.decoders.end())
    throw Error(ErrorCategory::config, "unknown decoder '" + std::string(name) + "'; known: " + known_names(r) +
                                           " (register your own with register_decoder)");
  return it->second;
}

std::vector<std::string> decoder_names() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<std::string> out;
  for (const auto& [name, d] : r.decoders) out.push_back(name);
  return out;
}

}  // namespace iotbridge::record
