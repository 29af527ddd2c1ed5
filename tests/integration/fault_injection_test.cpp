// Fault injection with real servers, each case ending with an exact
// accounting of every message the publisher got a PUBACK for:
//
//   published = distinct readings stored + rejected (reported by the recorder)
//               + lost in the documented PUBACK-before-callback window (SIGKILL only)
//   documents = distinct readings stored + redelivered copies (QoS 1
//               at-least-once: each one counted by the recorder as received)
//
// and every document has its own _id. A message that cannot be put in one of
// those boxes fails the test. The cases (record_faults_test.cpp has the
// shorter first versions of some):
//  a. the store (FerretDB) down for 10 s under a paced QoS 1 stream;
//  b. the broker (persistence on) restarted mid-stream, persistent sessions;
//  c. the recorder process SIGKILLed twice mid-stream and restarted
//     (write-ahead journal replay, MongoDB store);
//  d. the spool folder on a 2 MiB tmpfs filling up while the store is down:
//     intake slows (QoS 1 flow control), the spool files stay intact;
//  e. the store stalled with SIGSTOP, then SIGCONT.
// Case b once more with a dedup key (payloads {"seq": i}, dedup_key "/seq"):
// the redelivered copies are recognised as duplicates, and every reading is
// stored exactly once (documents = published, copies 0).
#include <sys/mount.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cli_helpers.hpp"
#include "iotbridge/record/journal.hpp"
#include "iotbridge/record/recorder.hpp"
#include "iotbridge/store/open.hpp"
#include "record_helpers.hpp"
#include "servers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;
using namespace std::chrono_literals;

namespace {

// Publishes "0", "1", ... (QoS 1, optionally padded with " xxx...", or as
// {"seq": 0}, {"seq": 1}, ... with `json_seq`) on
// iot/fault/<i % 4>, one message every `interval`, from its own thread,
// until stop(); then waits for every PUBACK. published() is the count the
// broker acknowledged: the left-hand side of every accounting here.
class PacedPublisher {
 public:
  PacedPublisher(const MosquittoServer& broker, std::chrono::microseconds interval, std::string client_id = {},
                 std::size_t pad = 0, bool json_seq = false)
      : thread_(
            [this, &broker, interval, client_id, pad, json_seq] { run(broker, interval, client_id, pad, json_seq); }) {}
  ~PacedPublisher() { stop(); }

  // Stops publishing, waits for every acknowledgement. Idempotent.
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int sent() const { return sent_; }
  int published() const { return acked_; }
  const std::string& error() const { return error_; }
  // Waits until `n` messages were handed to the client.
  bool wait_sent(int n, std::chrono::seconds timeout = 60s) const {
    return wait_until([&] { return sent_ >= n || !error_.empty(); }, timeout) && error_.empty();
  }

 private:
  void run(const MosquittoServer& broker, std::chrono::microseconds interval, const std::string& client_id,
           std::size_t pad, bool json_seq) {
    try {
      auto o = broker_options(broker, client_id);
      if (!client_id.empty()) o.clean_session = false;  // in-flight messages are resent after a broker restart
      o.max_queued = 20000;                             // a broker restart must not block the pace
      o.max_inflight = 50;
      auto client = mqtt::make_mosquitto_client(o);
      client->connect();
      client->loop_start();
      std::vector<mqtt::DeliveryToken> tokens;
      auto next = std::chrono::steady_clock::now();
      for (int i = 0; !stop_; ++i) {
        std::string payload = std::to_string(i);
        if (pad) payload += " " + std::string(pad, 'x');
        if (json_seq) payload = "{\"seq\": " + std::to_string(i) + "}";
        tokens.push_back(client->publish("iot/fault/" + std::to_string(i % 4), payload, 1));
        sent_ = i + 1;
        next += interval;
        std::this_thread::sleep_until(next);  // the pace of the stream, not a wait for a condition
      }
      int acked = 0;
      for (auto& t : tokens) {
        if (!t.wait_for(120s)) throw std::runtime_error("a PUBACK did not come within 120 s");
        ++acked;
      }
      acked_ = acked;
      client->disconnect();
      client->loop_stop();
    } catch (const std::exception& e) {
      error_ = e.what();
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<int> sent_{0};
  std::atomic<int> acked_{0};
  std::string error_;
  std::thread thread_;
};

// What the collection holds for a stream of `published` messages.
struct Ledger {
  int published = 0;
  std::int64_t documents = 0;
  std::size_t distinct_ids = 0;
  std::size_t distinct_values = 0;  // readings 0..published-1 found
  std::int64_t copies = 0;          // documents beyond the first of a reading
  std::int64_t foreign = 0;         // documents that are not a reading of the stream (probes on iot/probe aside)
  std::vector<int> missing;
};

// The reading number of a stored value: 17.0, "17 xxx..." or {"seq": 17}.
std::optional<long> reading_number(const store::Value& v) {
  if (v.is_number()) return static_cast<long>(v.as_double());
  if (v.type() == store::Type::document) {
    auto seq = v.as_document().get_double("seq");
    return seq ? std::optional<long>(static_cast<long>(*seq)) : std::nullopt;
  }
  if (v.type() != store::Type::string) return std::nullopt;
  const std::string& s = v.as_string();
  std::size_t end = s.find(' ');
  try {
    return std::stol(s.substr(0, end));
  } catch (...) {
    return std::nullopt;
  }
}

Ledger tally(store::Collection& coll, int published) {
  Ledger l;
  l.published = published;
  std::vector<int> count(static_cast<std::size_t>(published), 0);
  std::set<std::string> ids;
  auto cursor = coll.find(store::Document());
  while (auto doc = cursor->next()) {
    if (doc->get_string("topic") == std::optional<std::string>("iot/probe")) continue;  // set-up, not the stream
    ++l.documents;
    if (auto id = doc->get_object_id("_id")) ids.insert(id->to_hex());
    auto value = doc->get("value");
    auto n = value ? reading_number(*value) : std::nullopt;
    if (!n || *n < 0 || *n >= published) {
      ++l.foreign;
      continue;
    }
    ++count[static_cast<std::size_t>(*n)];
  }
  l.distinct_ids = ids.size();
  for (int i = 0; i < published; ++i) {
    if (count[static_cast<std::size_t>(i)] == 0)
      l.missing.push_back(i);
    else {
      ++l.distinct_values;
      l.copies += count[static_cast<std::size_t>(i)] - 1;
    }
  }
  return l;
}

// Waits until every reading of the stream is in the collection (or timeout).
Ledger wait_complete(store::Collection& coll, int published, std::chrono::seconds timeout) {
  Ledger l;
  wait_until(
      [&] {
        try {
          l = tally(coll, published);
        } catch (...) {
          return false;
        }
        return l.missing.empty();
      },
      timeout);
  return l;
}

std::string missing_text(const Ledger& l) {
  std::string s;
  for (std::size_t k = 0; k < l.missing.size() && k < 10; ++k) s += std::to_string(l.missing[k]) + " ";
  return s;
}

constexpr std::uint64_t kUnknown = ~std::uint64_t{0};

// The accounting line every case prints (the report quotes them).
void print_accounting(const char* name, const Ledger& l, std::uint64_t rejected, std::uint64_t received,
                      std::size_t lost_window, const std::string& extra) {
  std::printf(
      "accounting[%s]: published %d = stored %zu + rejected %llu + lost-in-window %zu; documents %lld = %zu + "
      "redelivered %lld (received %s); missing %zu, foreign %lld; %s\n",
      name, l.published, l.distinct_values, static_cast<unsigned long long>(rejected), lost_window,
      static_cast<long long>(l.documents), l.distinct_values, static_cast<long long>(l.copies),
      received == kUnknown ? "n/a: the killed runs kept no stats" : std::to_string(received).c_str(), l.missing.size(),
      static_cast<long long>(l.foreign), extra.c_str());
  std::fflush(stdout);
}

// The checks shared by the in-process cases: the recorder's own counters and
// the collection agree, message for message.
void check_exact(const Ledger& l, const record::RecorderStats& s) {
  INFO("missing: " << missing_text(l) << "\nstats: " << s.to_json());
  CHECK(l.foreign == 0);
  CHECK(l.distinct_ids == static_cast<std::size_t>(l.documents));  // never one _id twice
  CHECK(s.pending == 0);
  CHECK(s.stored == s.received + s.replayed - s.rejected);
  // published = stored + rejected: no reading unaccounted for.
  CHECK(static_cast<std::uint64_t>(l.published) == l.distinct_values + s.rejected);
  CHECK(l.missing.size() == s.rejected);
  // Every document is one the recorder received (redelivered copies included).
  CHECK(static_cast<std::uint64_t>(l.documents) == s.received - s.rejected);
  CHECK(static_cast<std::uint64_t>(l.copies) == s.received - static_cast<std::uint64_t>(l.published));
}

// Ends a case: stops the stream, waits until the recorder has taken all of it
// and stored what it holds, stops the recorder, and tallies the store.
struct Outcome {
  int published = 0;
  record::RecorderStats stats;
  Ledger ledger;
};
Outcome finish_stream(PacedPublisher& pub, record::Recorder& recorder, store::Collection& coll) {
  pub.stop();
  REQUIRE(pub.error().empty());
  Outcome o;
  o.published = pub.published();
  REQUIRE(recorder.wait_received(static_cast<std::uint64_t>(o.published), 60s));
  REQUIRE(recorder.wait_idle(120s));
  o.stats = recorder.stats();
  recorder.stop();
  o.ledger = tally(coll, o.published);
  return o;
}

std::shared_ptr<store::DocumentStore> open_mongo(const std::string& uri) {
  // Short timeouts: a dead or stalled server is noticed in about a second.
  return std::shared_ptr<store::DocumentStore>(
      store::open_store(uri + "?serverSelectionTimeoutMS=1000&connectTimeoutMS=1000&socketTimeoutMS=1500"));
}

// A tmpfs of `size` mounted on `dir` for the test's life. Mounting needs
// root or CAP_SYS_ADMIN (CI and the dev container run as root).
class TmpfsMount {
 public:
  TmpfsMount(const fs::path& dir, const std::string& size) : dir_(dir) {
    fs::create_directories(dir);
    std::string data = "size=" + size + ",mode=0700";
    if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, data.c_str()) != 0) {
      error_ = std::string("cannot mount a tmpfs (") + data + ") on " + dir.string() + ": " + std::strerror(errno) +
               ". Run the tests as root or with CAP_SYS_ADMIN, or set IOTBRIDGE_SKIP_TMPFS=1 to opt out of this test.";
      return;
    }
    mounted_ = true;
  }
  ~TmpfsMount() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

 private:
  fs::path dir_;
  bool mounted_ = false;
  std::string error_;
};

// Scans every segment file of a journal folder with scan_segment. A record
// may be in the middle of being written only at the end of the newest file
// (`live`); anything else that does not scan clean is corruption.
struct FolderScan {
  std::size_t files = 0;
  std::uint64_t records = 0;
  std::vector<std::string> problems;
};

FolderScan scan_folder(const fs::path& dir, bool live) {
  FolderScan out;
  if (!fs::exists(dir)) return out;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".log") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (std::size_t k = 0; k < files.size(); ++k) {
    std::string bytes = slurp(files[k]);
    auto scan = record::scan_segment(std::as_bytes(std::span(bytes.data(), bytes.size())));
    ++out.files;
    out.records += scan.records;
    bool newest = k + 1 == files.size();
    if (!scan.header_ok && !(bytes.empty() && newest))
      out.problems.push_back(files[k].string() + ": bad header");
    else if (!scan.clean_end && !(live && newest && scan.torn))
      out.problems.push_back(files[k].string() + ": bad record at offset " + std::to_string(scan.valid_end) + " of " +
                             std::to_string(bytes.size()));
  }
  return out;
}

}  // namespace

TEST_CASE("fault: the store down for 10 s under a steady QoS 1 stream: exact accounting", "[fault][mongo]") {
  IOTBRIDGE_REQUIRE_MONGO();
  MongoServer mongo;  // our own: this test stops it
  MosquittoServer broker;
  TempDir dir;
  auto db = open_mongo(mongo.uri());
  auto opts = recorder_options(broker, dir / "spool");
  opts.database = "outage10";
  opts.queue_capacity = 5000;
  opts.spill_threshold = 500;  // the outage outgrows memory: the spool carries it
  record::Recorder recorder(opts, db);
  recorder.start();
  auto coll = db->collection("outage10", "sensors");

  PacedPublisher pub(broker, 2ms);  // 500 readings/s, before, during and after the outage
  REQUIRE(wait_for_count(*coll, 500, 60s));
  mongo.stop();
  REQUIRE(wait_until([&] { return !recorder.stats().store_ok; }, 30s));
  auto at_down = recorder.stats();
  // The outage: 10 s of stream with no store (the scenario's length, not a wait for a condition).
  auto until = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(100ms);
  auto during = recorder.stats();
  mongo.start();
  int sent_at_up = pub.sent();
  // The stream goes on after the outage while the backlog drains.
  REQUIRE(pub.wait_sent(sent_at_up + 1500));
  auto [published, s, l] = finish_stream(pub, recorder, *coll);
  print_accounting("store outage 10 s", l, s.rejected, s.received, 0,
                   "received during the outage " + std::to_string(during.received - at_down.received) + ", spooled " +
                       std::to_string(s.spooled) + ", retries " + std::to_string(s.retries) + ", duplicates(by _id) " +
                       std::to_string(s.duplicates));
  // Intake went on while the store was down, and the spool carried it.
  CHECK(during.received > at_down.received + 2000);
  CHECK_FALSE(during.store_ok);
  CHECK(s.spooled > 0);
  CHECK(s.unspooled == s.spooled);
  CHECK(s.spool_bytes == 0);
  CHECK(s.journal_errors == 0);
  CHECK(s.spool_errors == 0);
  CHECK(s.rejected == 0);
  CHECK(s.received == static_cast<std::uint64_t>(published));  // one connection, no redelivery
  check_exact(l, s);
  CHECK(l.missing.empty());
  CHECK(l.copies == 0);
}

TEST_CASE("fault: the broker restarted mid-stream (persistence, sessions, QoS 1): exact accounting", "[fault][mongo]") {
  IOTBRIDGE_REQUIRE_MONGO();
  MosquittoServer::Options bo;
  bo.persistence = true;
  MosquittoServer broker(bo);
  TempDir dir;
  auto db = open_mongo(test_mongo_uri());
  const std::string dbname = unique_db_name("brokerrestart");
  auto opts = recorder_options(broker, dir / "spool");
  opts.database = dbname;
  opts.mqtt.client_id = "fault-recorder-broker";
  opts.mqtt.clean_session = false;
  record::Recorder recorder(opts, db);
  recorder.start();
  auto coll = db->collection(dbname, "sensors");

  PacedPublisher pub(broker, 1ms, "fault-publisher-broker");
  REQUIRE(wait_for_count(*coll, 1000, 60s));
  broker.restart();  // SIGTERM (mosquitto saves its sessions), then the same port again
  REQUIRE(wait_until([&] { return recorder.stats().reconnects >= 1 && recorder.stats().connected; }, 30s));
  int sent_at_up = pub.sent();
  REQUIRE(pub.wait_sent(sent_at_up + 1000));
  pub.stop();
  REQUIRE(pub.error().empty());
  const int published = pub.published();
  auto l = wait_complete(*coll, published, 60s);
  REQUIRE(recorder.wait_idle(60s));
  auto s = recorder.stats();
  recorder.stop();
  l = tally(*coll, published);
  print_accounting("broker restart", l, s.rejected, s.received, 0, "reconnects " + std::to_string(s.reconnects));
  CHECK(s.reconnects >= 1);
  CHECK(s.rejected == 0);
  check_exact(l, s);
  CHECK(l.missing.empty());
  db->drop_database(dbname);
}

TEST_CASE("fault: the broker restarted mid-stream with dedup_key \"/seq\": every reading stored exactly once",
          "[fault][mongo][dedup]") {
  IOTBRIDGE_REQUIRE_MONGO();
  MosquittoServer::Options bo;
  bo.persistence = true;
  MosquittoServer broker(bo);
  TempDir dir;
  auto db = open_mongo(test_mongo_uri());
  const std::string dbname = unique_db_name("brokerdedup");
  auto opts = recorder_options(broker, dir / "spool");
  opts.filters.clear();
  record::Route route;
  route.name = "seq";
  route.filters = {"iot/#"};
  route.database = dbname;
  route.dedup_key = "/seq";
  opts.routes = {route};
  opts.mqtt.client_id = "fault-recorder-dedup";
  opts.mqtt.clean_session = false;
  record::Recorder recorder(opts, db);
  recorder.start();
  auto coll = db->collection(dbname, "sensors");

  PacedPublisher pub(broker, 1ms, "fault-publisher-dedup", 0, true);
  REQUIRE(wait_for_count(*coll, 1000, 60s));
  broker.restart();  // SIGTERM (mosquitto saves its sessions), then the same port again
  REQUIRE(wait_until([&] { return recorder.stats().reconnects >= 1 && recorder.stats().connected; }, 30s));
  int sent_at_up = pub.sent();
  REQUIRE(pub.wait_sent(sent_at_up + 1000));
  auto o = finish_stream(pub, recorder, *coll);
  const auto& l = o.ledger;
  const auto& s = o.stats;
  print_accounting("broker restart, dedup_key /seq", l, s.rejected, s.received, 0,
                   "duplicates " + std::to_string(s.duplicates) + ", reconnects " + std::to_string(s.reconnects));
  INFO("missing: " << missing_text(l) << "\nstats: " << s.to_json());
  CHECK(s.reconnects >= 1);
  CHECK(s.rejected == 0);
  CHECK(s.pending == 0);
  CHECK(s.without_dedup_key == 0);
  CHECK(l.foreign == 0);
  CHECK(l.missing.empty());
  // Exactly once: one document per reading, whatever was redelivered.
  CHECK(l.copies == 0);
  CHECK(l.documents == o.published);
  CHECK(l.distinct_ids == static_cast<std::size_t>(o.published));
  CHECK(coll->count_documents() == o.published);
  // Every copy the broker redelivered is received, confirmed, and counted as
  // a duplicate. So is a batch retried after an insert that went in but
  // answered with a timeout (the store slow under load): its documents are
  // found stored already. Without a retry the two counts are equal.
  const std::uint64_t redelivered = s.received - static_cast<std::uint64_t>(o.published);
  CHECK(s.stored == s.received);
  CHECK(s.received >= static_cast<std::uint64_t>(o.published));
  CHECK(s.duplicates >= redelivered);
  if (s.retries == 0) CHECK(s.duplicates == redelivered);
  db->drop_database(dbname);
}

TEST_CASE("fault: the recorder SIGKILLed twice mid-stream and restarted: journal replay, exact accounting",
          "[fault][mongo]") {
  IOTBRIDGE_REQUIRE_MONGO();
  MosquittoServer broker;
  TempDir dir;
  const std::string uri = test_mongo_uri();
  const std::string dbname = unique_db_name("sigkill");
  auto db = open_mongo(uri);
  auto coll = db->collection(dbname, "sensors");
  auto argv = [&](int run) {
    return record_child_argv(
        broker, uri, dir / "spool", "fault-recorder-kill",
        {"--database", dbname, "--batch", "100000",  // readings wait in the journal for the flush ...
         "--flush-ms", "300",                        // ... so a kill always leaves some to replay
         "--stats", (dir / ("stats" + std::to_string(run) + ".json")).string()});
  };
  // The first run makes the persistent session; readings published while a
  // recorder is dead wait in it.
  auto child = std::make_unique<Process>(argv(1), dir / "child1.log");
  {
    Publisher probe(broker);
    REQUIRE(wait_until(
        [&] {
          probe.publish("iot/probe", "probe");
          probe.flush();
          return coll->count_documents() > 0;
        },
        30s));
  }

  PacedPublisher pub(broker, 1ms);
  const int kKills = 2;
  for (int k = 0; k < kKills; ++k) {
    std::int64_t before = coll->count_documents();
    REQUIRE(wait_until([&] { return coll->count_documents() >= before + 500; }, 60s));
    // Readings after the last flush are only in the journal when the kill lands.
    int sent = pub.sent();
    REQUIRE(pub.wait_sent(sent + 100));
    child->kill_hard();
    // Dead while the stream goes on: the broker queues for the session.
    REQUIRE(pub.wait_sent(pub.sent() + 300));
    child = std::make_unique<Process>(argv(k + 2), dir / ("child" + std::to_string(k + 2) + ".log"));
  }
  int sent = pub.sent();
  REQUIRE(pub.wait_sent(sent + 500));
  pub.stop();
  REQUIRE(pub.error().empty());
  const int published = pub.published();
  auto l = wait_complete(*coll, published, 90s);
  CHECK(child->terminate(30s) == 0);
  std::string last_stats = slurp(dir / ("stats" + std::to_string(kKills + 1) + ".json"));
  INFO("child logs: " << slurp(dir / "child1.log") << slurp(dir / "child2.log") << slurp(dir / "child3.log"));
  REQUIRE_FALSE(last_stats.empty());
  auto stats = store::Document::from_json(last_stats);
  l = tally(*coll, published);
  // What the killed runs left in the journal was replayed by the next run
  // (each restart replays the journal; the last run's own count is in its stats).
  std::int64_t replayed = stats.get_int64("replayed").value_or(-1);
  std::int64_t pending = stats.get_int64("pending").value_or(-1);
  // The one window: libmosquitto sends the PUBACK before the callback that
  // writes the journal runs; a reading killed there is lost, at most one per
  // kill. It is stated in the accounting, never hidden.
  print_accounting("SIGKILL x2", l, 0, kUnknown, l.missing.size(),
                   "last run: replayed " + std::to_string(replayed) + ", pending " + std::to_string(pending) +
                       " (copies: QoS 1 redelivery of what was in flight at each kill)");
  INFO("missing: " << missing_text(l) << "\nlast stats: " << last_stats);
  CHECK(l.foreign == 0);
  CHECK(l.distinct_ids == static_cast<std::size_t>(l.documents));
  CHECK(pending == 0);
  CHECK(static_cast<std::size_t>(published) == l.distinct_values + l.missing.size());
  CHECK(l.missing.size() <= static_cast<std::size_t>(kKills));  // the documented window, once per kill at most
  // Redelivered copies: what the broker had in flight to the killed session
  // (Mosquitto's max_inflight_messages, 20) each time.
  CHECK(l.copies <= 20 * kKills);
  db->drop_database(dbname);
}

TEST_CASE("fault: the spool on a 2 MiB tmpfs fills while the store is down: intake slows, spool intact, all stored",
          "[fault][mongo][tmpfs]") {
  IOTBRIDGE_REQUIRE_MONGO();
  // Opting out (a developer machine where mounting is not allowed) is refused
  // in CI, as IOTBRIDGE_SKIP_MONGO is: there the test must run.
  if (const char* skip = std::getenv("IOTBRIDGE_SKIP_TMPFS"); skip && std::string(skip) == "1") {
    const char* ci = std::getenv("CI");
    if (ci && (std::string(ci) == "true" || std::string(ci) == "1")) {
      std::fprintf(stderr, "IOTBRIDGE_SKIP_TMPFS=1 is ignored in CI: the tmpfs spool test must run\n");
    } else {
      std::puts("IOTBRIDGE-SKIPPED: tmpfs spool test opted out (IOTBRIDGE_SKIP_TMPFS=1)");
      return;
    }
  }
  MongoServer mongo;
  MosquittoServer broker;
  TempDir dir;
  TmpfsMount quota(dir / "small", "2m");
  if (!quota.mounted()) FAIL(quota.error());
  auto db = open_mongo(mongo.uri());
  auto coll = db->collection("tmpfs", "sensors");
  auto opts = recorder_options(broker, dir / "small" / "spool");
  opts.database = "tmpfs";
  opts.queue_capacity = 1000;
  opts.spill_threshold = 200;
  opts.retry_delay_max = 300ms;
  record::Recorder recorder(opts, db);
  recorder.start();
  mongo.stop();

  // 1 KiB readings: 4000 of them are twice the quota.
  constexpr int kCount = 4000;
  int published = 0;
  {
    PacedPublisher pub(broker, 100us, {}, 1000);
    REQUIRE(pub.wait_sent(kCount));
    pub.stop();
    REQUIRE(pub.error().empty());
    published = pub.published();
  }
  // The disk fills: the write-ahead journal pauses the intake (or the spool
  // fails and the queue fills), either way holding up the network thread, so
  // the broker keeps the rest (QoS 1 flow control) instead of the recorder
  // keeping readings in memory only or dropping anything.
  REQUIRE(wait_until(
      [&] {
        auto s = recorder.stats();
        return s.intake_paused || (s.spool_errors > 0 && s.queue_depth == s.queue_capacity);
      },
      60s));
  auto full = recorder.stats();
  std::printf("tmpfs full: %s\n", full.to_json().c_str());
  CHECK(full.received < static_cast<std::uint64_t>(published));  // the intake slowed down
  CHECK_FALSE(full.last_error.empty());
  CHECK(full.spooled > 0);
  // The files on the full disk scan clean: whole records only.
  auto wal_scan = scan_folder(dir / "small" / "spool" / "wal", true);
  auto spool_scan = scan_folder(dir / "small" / "spool" / "spool", true);
  {
    std::string problems;
    for (auto& p : wal_scan.problems) problems += p + "\n";
    for (auto& p : spool_scan.problems) problems += p + "\n";
    INFO(problems);
    CHECK(wal_scan.problems.empty());
    CHECK(spool_scan.problems.empty());
  }
  CHECK(spool_scan.records > 0);

  mongo.start();
  REQUIRE(recorder.wait_received(published, 120s));
  REQUIRE(recorder.wait_idle(120s));
  auto s = recorder.stats();
  recorder.stop();
  auto l = tally(*coll, published);
  print_accounting("tmpfs spool full", l, s.rejected, s.received, 0,
                   std::string("paused when full ") + (full.intake_paused ? "yes" : "no") + ", spool errors " +
                       std::to_string(s.spool_errors) + ", journal errors " + std::to_string(s.journal_errors) +
                       ", spooled " + std::to_string(s.spooled) + ", spool records seen on the full disk " +
                       std::to_string(spool_scan.records) + ", received when full " + std::to_string(full.received));
  CHECK(s.received == static_cast<std::uint64_t>(published));
  CHECK(s.journal_errors == 0);  // every accepted reading was on disk: none in memory only
  CHECK_FALSE(s.intake_paused);
  check_exact(l, s);
  CHECK(l.missing.empty());
  CHECK(l.copies == 0);
  // After a clean stop every file left scans clean.
  CHECK(scan_folder(dir / "small" / "spool" / "wal", false).problems.empty());
  CHECK(scan_folder(dir / "small" / "spool" / "spool", false).problems.empty());
}

TEST_CASE("fault: the store stalled with SIGSTOP, then SIGCONT, under a stream: exact accounting", "[fault][mongo]") {
  IOTBRIDGE_REQUIRE_MONGO();
  MongoServer mongo;
  MosquittoServer broker;
  TempDir dir;
  auto db = open_mongo(mongo.uri());
  auto coll = db->collection("stall", "sensors");
  auto opts = recorder_options(broker, dir / "spool");
  opts.database = "stall";
  opts.queue_capacity = 5000;
  opts.spill_threshold = 500;
  record::Recorder recorder(opts, db);
  recorder.start();

  PacedPublisher pub(broker, 1ms);
  REQUIRE(wait_for_count(*coll, 500, 60s));
  mongo.pause();  // the connection stays open, nothing answers
  REQUIRE(wait_until([&] { return !recorder.stats().store_ok; }, 30s));
  auto at_stall = recorder.stats();
  // Stalled while 1500 more readings come in.
  REQUIRE(recorder.wait_received(at_stall.received + 1500, 60s));
  auto during = recorder.stats();
  mongo.resume();
  REQUIRE(wait_until([&] { return recorder.stats().store_ok; }, 60s));
  REQUIRE(pub.wait_sent(pub.sent() + 1000));
  auto [published, s, l] = finish_stream(pub, recorder, *coll);
  // An insert the stalled server took before the client timed out lands
  // after SIGCONT as well as in the retry: the same _id, stored once and
  // counted as a duplicate.
  print_accounting("store SIGSTOP", l, s.rejected, s.received, 0,
                   "retries " + std::to_string(s.retries) + ", duplicates(by _id, stored once) " +
                       std::to_string(s.duplicates) + ", spooled " + std::to_string(s.spooled));
  CHECK_FALSE(during.store_ok);
  CHECK(s.retries > 0);
  CHECK(s.rejected == 0);
  CHECK(s.received == static_cast<std::uint64_t>(published));
  check_exact(l, s);
  CHECK(l.missing.empty());
  CHECK(l.copies == 0);
}
