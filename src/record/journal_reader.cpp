// The journal's reading side: recovery at open (which segments are there,
// set aside, consumed or torn) and replay. Every disk access goes through
// record::Fs.
#include "journal_impl.hpp"

namespace iotbridge::record {

using namespace journal_format;

void Journal::Impl::list_segments() {
  std::vector<Segment> found;
  std::vector<Fs::Entry> entries;
  auto ec = fs->list(dir, entries);
  for (const auto& e : entries) {
    std::uint64_t base = parse_segment_name(options.prefix, e.name);
    if (base != 0) found.push_back({base, dir / e.name, e.size});
  }
  if (ec)
    throw Error(ErrorCategory::io, "journal " + dir.string() + ": cannot list the directory: " + ec.message(),
                ec.value());
  std::sort(found.begin(), found.end(), [](const Segment& a, const Segment& b) { return a.base < b.base; });

  // Headers: a short or all-zero header on the newest segment is a crash
  // between creating it and writing it; anything else is set aside, not deleted.
  std::vector<Segment> good;
  for (std::size_t i = 0; i < found.size(); ++i) {
    Segment& s = found[i];
    bool last = i + 1 == found.size();
    std::byte h[kHeaderBytes] = {};
    long n = -1;  // bytes of header read; -1: unreadable
    {
      std::unique_ptr<File> file;
      std::size_t got = 0;
      if (!fs->open(s.path, OpenMode::read_only, file) && !file->read_at(0, std::span(h, kHeaderBytes), got))
        n = static_cast<long>(got);
    }
    if (n == static_cast<long>(kHeaderBytes) && parse_header(std::span<const std::byte>(h, kHeaderBytes)) == s.base) {
      good.push_back(s);
      continue;
    }
    bool zero = std::all_of(h, h + kHeaderBytes, [](std::byte b) { return b == std::byte{0}; });
    if (last && n >= 0 && (n < static_cast<long>(kHeaderBytes) || zero) && s.bytes <= kHeaderBytes) {
      if (s.bytes > 0)
        report({JournalProblemKind::torn_tail, s.path, 0, s.bytes, 0,
                "journal segment " + s.path.string() + " has a torn header (" + std::to_string(s.bytes) +
                    " bytes, crash while creating it); removed"});
      fs->remove(s.path);
      continue;
    }
    std::filesystem::path aside = s.path.string() + ".corrupt";
    std::uint64_t lost = 0;
    if (!last && found[i + 1].base > std::max(s.base, consumed + 1))
      lost = found[i + 1].base - std::max(s.base, consumed + 1);
    fs->rename(s.path, aside);
    report({JournalProblemKind::bad_segment_header, s.path, 0, s.bytes, lost,
            "journal segment " + s.path.string() + " has a bad header at offset 0; moved aside to " +
                aside.filename().string() + (lost ? ", " + std::to_string(lost) + " records lost" : "")});
  }

  // Whole consumed segments (the trim that consumed them may have been
  // cut short before it deleted them).
  segments.clear();
  for (std::size_t i = 0; i < good.size(); ++i) {
    bool last = i + 1 == good.size();
    if (!last && good[i + 1].base - 1 <= consumed) {
      fs->remove(good[i].path);
      continue;
    }
    segments.push_back(good[i]);
  }
}

void Journal::Impl::recover_last_segment() {
  next_seq = consumed + 1;
  if (segments.empty()) return;
  Segment& s = segments.back();
  std::unique_ptr<File> file;
  if (auto ec = fs->open(s.path, OpenMode::append_existing, file)) throw_io(s.path, "cannot open", ec);
  FileSource src(*file, s.bytes, s.path);
  ScanResult r = scan(src, UINT64_MAX, {});
  if (!r.clean_end) {
    bool torn = r.torn || zeros_to_end(src, r.valid_end);
    std::uint64_t dropped = s.bytes - r.valid_end;
    if (auto ec = file->truncate(r.valid_end)) throw_io(s.path, "cannot truncate a torn tail", ec);
    if (options.fsync)
      if (auto ec = file->sync(true)) throw_io(s.path, "fdatasync failed", ec);
    s.bytes = r.valid_end;
    if (torn) {
      report({JournalProblemKind::torn_tail, s.path, r.valid_end, dropped, 0,
              "journal segment " + s.path.string() + ": torn record at offset " + std::to_string(r.valid_end) +
                  " (crash mid-write); " + std::to_string(dropped) + " bytes truncated, " + std::to_string(r.records) +
                  " good records kept"});
    } else {
      report({JournalProblemKind::corrupt_record, s.path, r.valid_end, dropped, 0,
              "journal segment " + s.path.string() + ": corrupt record at offset " + std::to_string(r.valid_end) +
                  " with data after it; " + std::to_string(dropped) +
                  " bytes truncated (the records in them cannot be told apart)"});
    }
  }
  std::uint64_t end = r.base + r.records;  // one past the last record
  if (end - 1 <= consumed && !(r.records == 0 && r.base == consumed + 1)) {
    // Fully consumed (or numbered below the checkpoint): not worth keeping.
    file.reset();
    fs->remove(s.path);
    segments.pop_back();
    return;
  }
  next_seq = std::max(end, consumed + 1);
  active = std::move(file);
}

std::uint64_t Journal::replay(const JournalVisitor& visit, std::uint64_t from) {
  std::vector<Impl::Segment> segments;
  std::uint64_t next_seq, start;
  {
    std::lock_guard lock(impl_->mutex);
    segments = impl_->segments;  // the last one's size is what was appended so far
    next_seq = impl_->next_seq;
    start = std::max(from, impl_->consumed + 1);
  }
  auto report = [&](JournalProblem p) {
    std::lock_guard lock(impl_->mutex);
    impl_->report(std::move(p));
  };
  std::uint64_t visited = 0;
  std::uint64_t expected = start;  // the next sequence number a record should carry
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const auto& s = segments[i];
    std::uint64_t limit = i + 1 < segments.size() ? segments[i + 1].base : next_seq;
    if (limit <= start) continue;
    std::unique_ptr<File> file;
    if (auto ec = impl_->fs->open(s.path, OpenMode::read_only, file)) {
      if (ec.value() == ENOENT) {  // deleted by a concurrent trim_through: consumed, not missing
        expected = std::max(expected, limit);
        continue;
      }
      throw_io(s.path, "cannot open for replay", ec);
    }
    std::uint64_t size = s.bytes;
    if (i + 1 < segments.size()) {
      std::uint64_t now = 0;
      if (!file->size(now)) size = now;
    }
    if (s.base > expected) {
      report({JournalProblemKind::missing_records, s.path, 0, 0, s.base - expected,
              "journal: records " + std::to_string(expected) + ".." + std::to_string(s.base - 1) +
                  " are missing before segment " + s.path.string()});
    }
    FileSource src(*file, size, s.path);
    ScanResult r = scan(src, limit, [&](std::uint64_t seq, std::span<const std::byte> payload) {
      if (seq < start) return;
      visit(seq, payload);
      ++visited;
    });
    if (!r.header_ok) {
      std::uint64_t lost = limit > std::max(s.base, start) ? limit - std::max(s.base, start) : 0;
      report({JournalProblemKind::bad_segment_header, s.path, 0, size, lost,
              "journal segment " + s.path.string() + " has a bad header at offset 0; skipped, " + std::to_string(lost) +
                  " records lost"});
      expected = std::max(expected, limit);
      continue;
    }
    std::uint64_t end = r.base + r.records;
    if (!r.clean_end && end < limit) {
      std::uint64_t lost = limit > std::max(end, start) ? limit - std::max(end, start) : 0;
      report({JournalProblemKind::corrupt_record, s.path, r.valid_end, size - r.valid_end, lost,
              "journal segment " + s.path.string() + ": corrupt record at offset " + std::to_string(r.valid_end) +
                  "; the rest of the segment (" + std::to_string(size - r.valid_end) + " bytes, " +
                  std::to_string(lost) + " unconsumed records) is skipped, later segments are replayed"});
      expected = std::max(expected, limit);
      continue;
    }
    if (end < limit && i + 1 < segments.size()) {
      std::uint64_t lost = limit - std::max(end, start);  // limit > start here
      if (lost)
        report({JournalProblemKind::missing_records, s.path, r.valid_end, 0, lost,
                "journal segment " + s.path.string() + " ends at record " + std::to_string(end - 1) +
                    " but the next starts at " + std::to_string(limit) + "; " + std::to_string(lost) +
                    " records missing"});
      expected = std::max(expected, limit);
      continue;
    }
    expected = std::max(expected, end);
  }
  return visited;
}

}  // namespace iotbridge::record
