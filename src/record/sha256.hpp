// SHA-256 (FIPS 180-4), for ids that must be the same on every machine and in
// every version (the dedup _id): std::hash promises neither. Private.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace iotbridge::detail {

class Sha256 {
 public:
  Sha256();
  void update(std::string_view bytes);
  std::array<std::uint8_t, 32> finish();

 private:
  void block(const std::uint8_t* p);
  std::array<std::uint32_t, 8> h_;
  std::array<std::uint8_t, 64> buffer_{};
  std::size_t buffered_ = 0;
  std::uint64_t length_ = 0;  // bytes
};

}  // namespace iotbridge::detail
