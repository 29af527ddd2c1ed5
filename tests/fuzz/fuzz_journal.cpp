// The journal/spool segment reader (record/journal.hpp scan_segment) on
// arbitrary bytes, as the recorder reads a damaged or hostile spool file.
//
// The first byte picks a mode: odd = the bytes as they are; even = "repair":
// the header CRC and every frame CRC are recomputed (following the lengths)
// before scanning, so the fuzzer gets past the checksums and reaches the
// record payloads, which are then decoded with decode_reading as replay does.
// Checks: scan_segment never throws or crashes; valid_end <= size; clean_end
// means valid_end == size; the visitor sees exactly `records` records with
// consecutive sequences from base_sequence; a repaired segment with a good
// header is read to its end or to a frame that runs past the end (torn).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "iotbridge/error.hpp"
#include "iotbridge/record/journal.hpp"
#include "iotbridge/record/payload.hpp"

using namespace iotbridge;
using namespace iotbridge::record;

namespace {
[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_journal: %s\n", what);
  std::abort();
}

// The segment format of docs/journal.md: a 32-byte header, then frames of
// [u32 length][u32 masked crc32c(seq || length || payload)][payload], little endian.
std::uint32_t get32(const std::byte* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<std::uint32_t>(p[i]);
  return v;
}
std::uint64_t get64(const std::byte* p) { return get32(p) | (std::uint64_t{get32(p + 4)} << 32); }
void put32(std::byte* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
void put64(std::byte* p, std::uint64_t v) {
  put32(p, static_cast<std::uint32_t>(v));
  put32(p + 4, static_cast<std::uint32_t>(v >> 32));
}
std::uint32_t mask(std::uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

void repair(std::vector<std::byte>& b) {
  if (b.size() < 32) return;
  std::memcpy(b.data(), "IOTBJRNL", 8);
  put32(b.data() + 8, 1);
  put32(b.data() + 28, mask(crc32c(std::span<const std::byte>(b.data(), 28))));
  std::uint64_t seq = get64(b.data() + 16);
  std::size_t offset = 32;
  while (b.size() - offset >= 8) {
    std::uint32_t length = get32(b.data() + offset);
    if (length > b.size() - offset - 8) break;
    std::byte prefix[12];
    put64(prefix, seq);
    put32(prefix + 8, length);
    std::uint32_t crc = crc32c(std::span<const std::byte>(b.data() + offset + 8, length), crc32c(prefix));
    put32(b.data() + offset + 4, mask(crc));
    offset += 8 + length;
    ++seq;
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool repaired = (data[0] & 1) == 0;
  std::vector<std::byte> bytes(size - 1);
  if (size > 1) std::memcpy(bytes.data(), data + 1, size - 1);
  if (repaired) repair(bytes);

  std::uint64_t visited = 0, expected_seq = 0;
  bool first = true;
  SegmentScan scan = scan_segment(bytes, [&](std::uint64_t seq, std::span<const std::byte> payload) {
    if (first) expected_seq = seq;
    first = false;
    if (seq != expected_seq++) fail("sequences are not consecutive");
    ++visited;
    try {
      std::string_view view(reinterpret_cast<const char*>(payload.data()), payload.size());
      (void)decode_reading(view);
      while (!view.empty()) (void)decode_reading_prefix(view);
    } catch (const Error&) {
    }
  });
  if (scan.valid_end > bytes.size()) fail("valid_end past the end");
  if (scan.records != visited) fail("records differs from the records visited");
  if (scan.clean_end && scan.valid_end != bytes.size()) fail("clean_end before the end");
  if (!scan.header_ok && scan.records != 0) fail("records without a header");
  if (scan.header_ok && visited && expected_seq - visited != scan.base_sequence) fail("first sequence is not the base");
  // (scan_segment stops, neither clean nor torn, when the sequence would pass
  // UINT64_MAX, which the reader treats as the next segment's start.)
  if (repaired && scan.header_ok && !scan.clean_end && !scan.torn && scan.base_sequence + scan.records != UINT64_MAX)
    fail("a repaired segment stopped on a frame that is neither clean nor torn");
  return 0;
}
