// The recorder's pipeline against a failing disk, with no broker and no root:
// a fault-injecting record::Fs (fault_fs.hpp) under the write-ahead journal
// runs out of space mid-batch, fails every fsync, or "crashes" leaving a torn
// record. Each case ends with every reading accounted for:
// received + replayed = stored + rejected + pending, and pending 0.
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "fake_mqtt_client.hpp"
#include "fault_fs.hpp"
#include "iotbridge/record/journal.hpp"
#include "iotbridge/record/recorder.hpp"
#include "iotbridge/store/open.hpp"
#include "servers.hpp"

using namespace iotbridge;
using namespace iotbridge::record;
using namespace std::chrono_literals;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

struct Logs {
  std::mutex mutex;
  std::vector<std::string> lines;
  bool any(const std::string& text) {
    std::lock_guard lock(mutex);
    for (const auto& l : lines)
      if (l.find(text) != std::string::npos) return true;
    return false;
  }
};

RecorderOptions options(const fs::path& spool, std::shared_ptr<test::FaultFs> faults, Logs& logs) {
  RecorderOptions o;
  o.filters = {"iot/#"};
  o.spool_dir = spool;
  o.batch_size = 50;
  o.flush_interval = 5ms;
  o.retry_delay_min = 10ms;
  o.retry_delay_max = 50ms;
  o.fs = std::move(faults);
  o.on_log = [&logs](mqtt::LogLevel, std::string_view text) {
    std::lock_guard lock(logs.mutex);
    logs.lines.emplace_back(text);
  };
  return o;
}

void check_exact(const RecorderStats& s, std::uint64_t expected_stored) {
  INFO(s.to_json());
  CHECK(s.received + s.replayed == s.stored + s.rejected + s.pending);
  CHECK(s.pending == 0);
  CHECK(s.rejected == 0);
  CHECK(s.stored == expected_stored);
}

Reading reading(int i) {
  Reading r;
  r.id = store::ObjectId::generate();
  r.received = store::DateTime::now();
  r.topic = "iot/old";
  r.payload = std::to_string(i);
  return r;
}

}  // namespace

TEST_CASE("faults: the write-ahead disk fills up mid-batch: intake pauses, nothing lost", "[record][journal]") {
  TempDir dir;
  auto faults = std::make_shared<test::FaultFs>("/wal/");
  faults->space_left = 2500;  // a few dozen records: full many times over 600 messages
  Logs logs;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store("sqlite::memory:"));
  auto client = std::make_shared<test::FakeMqttClient>();
  Recorder recorder(options(dir / "spool", faults, logs), db, client);
  recorder.start();
  // The network thread: each deliver() returns once its reading is journaled.
  for (int i = 0; i < 600; ++i) client->deliver("iot/x", std::to_string(i) + std::string(20, ' '));
  REQUIRE(recorder.wait_idle(30s));
  auto s = recorder.stats();
  recorder.stop();
  check_exact(s, 600);
  CHECK(s.journal_errors == 0);  // a full disk pauses, it is not an error
  CHECK(faults->appends_refused > 0);
  CHECK(logs.any("intake paused"));
  CHECK(db->collection("iot_service", "sensors")->count_documents() == 600);
}

TEST_CASE("faults: every fsync of the write-ahead journal fails: logged, everything stored", "[record][journal]") {
  TempDir dir;
  auto faults = std::make_shared<test::FaultFs>("/wal/");
  faults->fail_syncs = true;
  Logs logs;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store("sqlite::memory:"));
  auto client = std::make_shared<test::FakeMqttClient>();
  Recorder recorder(options(dir / "spool", faults, logs), db, client);
  recorder.start();
  for (int i = 0; i < 300; ++i) client->deliver("iot/x", std::to_string(i));
  REQUIRE(recorder.wait_idle(30s));
  auto s = recorder.stats();
  recorder.stop();
  check_exact(s, 300);
  CHECK(faults->syncs_failed > 0);
  CHECK(logs.any("write-ahead journal sync failed"));
  CHECK(logs.any("EIO"));
  CHECK(db->collection("iot_service", "sensors")->count_documents() == 300);
}

TEST_CASE("faults: a crash leaves a torn record: synced readings replayed, the tail reported", "[record][journal]") {
  TempDir dir;
  auto faults = std::make_shared<test::FaultFs>("/wal/");
  {
    JournalOptions jo;
    jo.prefix = "wal";
    jo.fs = faults;
    Journal wal(dir / "spool" / "wal", jo);
    for (int i = 0; i < 20; ++i) wal.append(encode_reading(reading(i)));
    wal.sync();
    for (int i = 20; i < 25; ++i) wal.append(encode_reading(reading(i)));  // never synced
    faults->crash(9);  // the first unsynced record keeps 9 bytes: torn
  }                    // the journal's closing sync fails: the process is "dead"
  faults->revive();
  Logs logs;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store("sqlite::memory:"));
  auto client = std::make_shared<test::FakeMqttClient>();
  Recorder recorder(options(dir / "spool", faults, logs), db, client);
  recorder.start();
  for (int i = 0; i < 10; ++i) client->deliver("iot/x", std::to_string(i));
  REQUIRE(recorder.wait_idle(30s));
  auto s = recorder.stats();
  recorder.stop();
  CHECK(s.replayed == 20);
  CHECK(s.received == 10);
  check_exact(s, 30);
  CHECK(logs.any("torn record"));
  auto sensors = db->collection("iot_service", "sensors");
  CHECK(sensors->count_documents(store::Document::from_json(R"({"topic": "iot/old"})")) == 20);
  CHECK(sensors->count_documents(store::Document::from_json(R"({"topic": "iot/x"})")) == 10);
}
