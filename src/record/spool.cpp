// Spool stage (spool.hpp), and the on-disk codecs of a reading and of a batch.
#include "spool.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "iotbridge/error.hpp"

namespace iotbridge::record {

// ---- a reading (declared in payload.hpp: tools and fuzzers use it) ----

namespace {

constexpr std::uint8_t kReadingVersion = 1;        // no route name
constexpr std::uint8_t kRoutedReadingVersion = 2;  // u16 length + route name after the version
constexpr std::size_t kFixedSize = 1 + 12 + 8 + 1 + 1 + 4 + 4;

void put_u32(std::string& out, std::uint32_t v) {
  char b[4];
  for (int k = 0; k < 4; ++k) b[k] = static_cast<char>((v >> (8 * k)) & 0xFF);
  out.append(b, 4);
}
void put_u64(std::string& out, std::uint64_t v) {
  char b[8];
  for (int k = 0; k < 8; ++k) b[k] = static_cast<char>((v >> (8 * k)) & 0xFF);
  out.append(b, 8);
}
std::uint64_t get_le(const unsigned char* p, int n) {
  std::uint64_t v = 0;
  for (int k = n - 1; k >= 0; --k) v = (v << 8) | p[k];
  return v;
}

}  // namespace

void encode_reading(const Reading& reading, std::string& out) {
  if (reading.topic.size() > 0xFFFFFFFFu || reading.payload.size() > 0xFFFFFFFFu)
    throw Error(ErrorCategory::config, "reading too large to encode");
  if (reading.route.size() > 0xFFFFu) throw Error(ErrorCategory::config, "route name too long to encode");
  out.reserve(out.size() + kFixedSize + 2 + reading.route.size() + reading.topic.size() + reading.payload.size());
  if (reading.route.empty()) {
    out.push_back(static_cast<char>(kReadingVersion));
  } else {
    out.push_back(static_cast<char>(kRoutedReadingVersion));
    out.push_back(static_cast<char>(reading.route.size() & 0xFF));
    out.push_back(static_cast<char>(reading.route.size() >> 8));
    out.append(reading.route);
  }
  out.append(reinterpret_cast<const char*>(reading.id.bytes.data()), reading.id.bytes.size());
  put_u64(out, static_cast<std::uint64_t>(reading.received.millis));
  out.push_back(static_cast<char>(reading.qos));
  out.push_back(static_cast<char>(reading.retain ? 1 : 0));
  put_u32(out, static_cast<std::uint32_t>(reading.topic.size()));
  out.append(reading.topic);
  put_u32(out, static_cast<std::uint32_t>(reading.payload.size()));
  out.append(reading.payload);
}

std::string encode_reading(const Reading& reading) {
  std::string out;
  encode_reading(reading, out);
  return out;
}

Reading decode_reading_prefix(std::string_view& bytes) {
  auto fail = [](const char* why) { return Error(ErrorCategory::io, std::string("malformed reading record: ") + why); };
  if (bytes.empty()) throw fail("truncated header");
  Reading r;
  const auto* version = reinterpret_cast<const unsigned char*>(bytes.data());
  std::size_t route_bytes = 0;  // the version byte and the route name before the fixed fields
  if (version[0] == kRoutedReadingVersion) {
    if (bytes.size() < 3) throw fail("truncated route name");
    std::size_t n = version[1] | (version[2] << 8);
    if (bytes.size() - 3 < n) throw fail("truncated route name");
    r.route.assign(bytes.data() + 3, n);
    route_bytes = 2 + n;
  } else if (version[0] != kReadingVersion) {
    throw fail("unknown version");
  }
  // From here on the layout is version 1's, starting at the version byte.
  std::string_view in = bytes.substr(route_bytes);
  if (in.size() < kFixedSize) throw fail("truncated header");
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  std::memcpy(r.id.bytes.data(), p + 1, 12);
  r.received.millis = static_cast<std::int64_t>(get_le(p + 13, 8));
  r.qos = p[21];
  if (r.qos > 2) throw fail("qos out of range");
  if (p[22] > 1) throw fail("bad retain flag");
  r.retain = p[22] == 1;
  std::size_t pos = 23;
  std::uint64_t topic_len = get_le(p + pos, 4);
  pos += 4;
  if (topic_len > in.size() - pos || in.size() - pos - topic_len < 4) throw fail("truncated topic");
  r.topic.assign(in.data() + pos, topic_len);
  pos += topic_len;
  std::uint64_t payload_len = get_le(p + pos, 4);
  pos += 4;
  if (payload_len > in.size() - pos) throw fail("truncated payload");
  r.payload.assign(in.data() + pos, payload_len);
  pos += payload_len;
  bytes.remove_prefix(route_bytes + pos);
  return r;
}

Reading decode_reading(std::string_view bytes) {
  Reading r = decode_reading_prefix(bytes);
  if (!bytes.empty()) throw Error(ErrorCategory::io, "malformed reading record: trailing bytes");
  return r;
}

}  // namespace iotbridge::record

namespace iotbridge::record::detail {

namespace fs = std::filesystem;

// ---- a batch ----

std::string encode_batch(const Batch& batch) {
  std::string out;
  std::uint32_t n = static_cast<std::uint32_t>(batch.size());
  for (int k = 0; k < 4; ++k) out.push_back(static_cast<char>((n >> (8 * k)) & 0xFF));
  for (const Item& item : batch) encode_reading(item.reading, out);
  return out;
}

std::vector<Reading> decode_batch(std::string_view bytes) {
  if (bytes.size() < 4) throw Error(ErrorCategory::io, "malformed spool record: too short");
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  std::uint32_t n = p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
  bytes.remove_prefix(4);
  std::vector<Reading> out;
  out.reserve(std::min<std::uint32_t>(n, 100000));
  for (std::uint32_t i = 0; i < n; ++i) out.push_back(decode_reading_prefix(bytes));
  if (!bytes.empty()) throw Error(ErrorCategory::io, "malformed spool record: trailing bytes");
  return out;
}

// ---- the spool ----

namespace {

JournalOptions spool_options(std::uint64_t max_bytes, std::shared_ptr<Fs> fs) {
  JournalOptions o;
  o.prefix = "spool";
  o.segment_bytes = 16ull << 20;  // drained segments are deleted sooner
  o.max_bytes = max_bytes;
  o.retire_consumed_bytes = 0;  // a drained spool is deleted, not kept for reuse
  o.fs = std::move(fs);
  return o;
}

std::string_view as_text(std::span<const std::byte> bytes) {
  return std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace

Spool::Spool(const fs::path& dir, std::uint64_t max_bytes, JournalProblemHandler on_problem, std::shared_ptr<Fs> fs)
    : journal_(dir, spool_options(max_bytes, std::move(fs)), std::move(on_problem)) {
  last_seq_of_earlier_run_ = journal_.stats().next_sequence - 1;
}

std::uint64_t Spool::bytes() const {
  auto st = journal_.stats();
  return st.pending_records ? st.bytes_on_disk : 0;
}

std::size_t Spool::migrate(Journal& wal, std::size_t chunk_size, const Log& log,
                           const std::function<void(const Reading&)>& counted) {
  std::uint64_t wal_last = 0;
  std::size_t migrated = 0;
  Batch chunk;
  auto flush = [&] {
    if (chunk.empty()) return;
    journal_.append(encode_batch(chunk));
    migrated += chunk.size();
    chunk.clear();
  };
  wal.replay([&](std::uint64_t seq, std::span<const std::byte> payload) {
    wal_last = seq;
    try {
      chunk.push_back(Item{0, nullptr, decode_reading(as_text(payload))});
      counted(chunk.back().reading);
    } catch (const std::exception& e) {
      log(mqtt::LogLevel::error, std::string("unreadable write-ahead record skipped: ") + e.what());
    }
    if (chunk.size() >= chunk_size) flush();
  });
  flush();
  if (migrated) journal_.sync();
  if (wal_last) wal.trim_through(wal_last);
  return migrated;
}

Spool::Spilled Spool::spill(std::deque<HeldBatch>& held, HandOff& queue, std::size_t chunk) {
  Spilled out;
  auto write = [&](const HeldBatch& b) {
    journal_.append(encode_batch(b.items));
    out.max_seq = std::max(out.max_seq, b.max_seq);
    out.readings += b.items.size();
  };
  try {
    while (!held.empty()) {
      write(held.front());
      held.pop_front();
      out.front_spilled = true;
    }
    std::size_t to_move = queue.size();
    while (to_move > 0) {
      HeldBatch b;
      std::size_t n = queue.take_now(b.items, std::min(to_move, chunk));
      if (n == 0) break;
      to_move -= std::min(to_move, n);
      for (const Item& item : b.items) b.max_seq = std::max(b.max_seq, item.seq);
      held.push_back(std::move(b));  // held while written: a failed write leaves it in hand, not lost
      write(held.back());
      held.pop_back();
    }
    journal_.sync();
  } catch (const std::exception& e) {
    out.error = e.what();
    // What went in stays (appends are whole records); the write-ahead journal
    // is trimmed behind it only once it is synced. A reading both spooled and
    // still held is stored once (same _id).
    try {
      journal_.sync();
    } catch (...) {
      out.synced = false;
    }
  }
  return out;
}

bool Spool::drain(const std::function<bool(std::vector<Reading>&, bool)>& store, const Log& log) {
  struct GiveUp {};
  try {
    journal_.replay([&](std::uint64_t seq, std::span<const std::byte> payload) {
      std::vector<Reading> readings;
      try {
        readings = decode_batch(as_text(payload));
      } catch (const std::exception& e) {
        log(mqtt::LogLevel::error, std::string("unreadable spool record skipped: ") + e.what());
        log.set_error(std::string("spool: ") + e.what());
      }
      if (!store(readings, seq <= last_seq_of_earlier_run_)) throw GiveUp{};
      try {
        journal_.trim_through(seq);
      } catch (const std::exception& e) {
        log(mqtt::LogLevel::warning, std::string("spool trim failed: ") + e.what());
      }
    });
  } catch (const GiveUp&) {
    return false;
  }
  if (!has_backlog()) log(mqtt::LogLevel::info, "spool drained");
  return true;
}

}  // namespace iotbridge::record::detail
