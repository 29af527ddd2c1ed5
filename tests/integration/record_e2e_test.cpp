// The recorder end to end with a real Mosquitto and real stores (an SQLite
// file, the MongoDB-compatible server): every published reading becomes one
// document, field by field; the options of the document contract; replay of
// what an earlier run left; clean stop; start-up errors.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "iotbridge/error.hpp"
#include "iotbridge/record/journal.hpp"
#include "iotbridge/record/recorder.hpp"
#include "iotbridge/store/open.hpp"
#include "record_helpers.hpp"
#include "servers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;
using namespace std::chrono_literals;
using store::Document;
using store::Value;

namespace {

struct Sample {
  std::string topic;
  std::string payload;
  Value expected;
  record::PayloadKind kind;
};

std::vector<Sample> samples() {
  std::string bin("\x00\x01\xfe\xff", 4);
  store::Binary b;
  b.data.assign(bin.begin(), bin.end());
  return {
      {"iot/home1/boiler/temp", "24.5", Value(24.5), record::PayloadKind::number},
      {"iot/home1/boiler/hum", "-3", Value(-3.0), record::PayloadKind::number},
      {"iot/home1/kitchen/state", R"({"on": true, "level": 3})",
       Value(Document().append("on", true).append("level", 3)), record::PayloadKind::json},
      {"iot/home1/kitchen/list", "[1, \"two\"]", Value(store::Array{1, "two"}), record::PayloadKind::json},
      {"iot/home2/door/state", "open", Value("open"), record::PayloadKind::text},
      {"iot/home2/door/note", "온도 높음", Value("온도 높음"), record::PayloadKind::text},
      {"iot/home2/cam/raw", bin, Value(b), record::PayloadKind::binary},
      {"iot/home2/cam/empty", "", Value(nullptr), record::PayloadKind::null},
  };
}

// Publishes every sample, waits until the recorder stored them, and checks
// each document field by field.
void check_field_by_field(std::shared_ptr<store::DocumentStore> db, const std::string& database) {
  MosquittoServer broker;
  TempDir dir;
  auto opts = recorder_options(broker, dir / "spool");
  opts.database = database;
  opts.document.include_qos = true;
  opts.document.include_retain = true;
  opts.document.topic_fields = record::TopicPattern("iot/{home}/{device}/{sensor}");
  record::Recorder recorder(opts, db);
  recorder.start();

  auto before = store::DateTime::now();
  const auto all = samples();
  {
    Publisher pub(broker);
    for (const auto& s : all) pub.publish(s.topic, s.payload, 1);
    pub.flush();
  }
  REQUIRE(recorder.wait_received(all.size(), 10s));
  REQUIRE(recorder.wait_idle(20s));
  auto after = store::DateTime::now();
  auto stats = recorder.stats();
  recorder.stop();

  CHECK(stats.received == all.size());
  CHECK(stats.stored == all.size());
  CHECK(stats.pending == 0);
  CHECK(stats.text_fallbacks == 2);
  CHECK(stats.binary_fallbacks == 1);
  CHECK(stats.numbers == 2);
  CHECK(stats.json == 2);
  CHECK(stats.nulls == 1);

  auto coll = db->collection(database, "sensors");
  REQUIRE(coll->count_documents() == static_cast<std::int64_t>(all.size()));
  for (const auto& s : all) {
    INFO("topic " << s.topic);
    auto doc = coll->find_one(Document().append("topic", s.topic));
    REQUIRE(doc);
    CHECK(doc->get_object_id("_id").has_value());
    CHECK(doc->at("value") == s.expected);
    auto reg = doc->get_datetime("reg_date");
    REQUIRE(reg);
    CHECK(reg->millis >= before.millis - 1000);
    CHECK(reg->millis <= after.millis + 1000);
    CHECK(doc->at("qos") == Value(1));
    CHECK(doc->get_bool("retain") == false);
    auto levels = record::TopicPattern("iot/{home}/{device}/{sensor}").match(s.topic);
    REQUIRE(levels);
    for (const auto& [name, level] : *levels) CHECK(doc->get_string(name) == level);
  }
  // The tutorials' query works as they wrote it.
  store::FindOptions fo;
  fo.projection = Document().append("_id", 0).append("topic", 1).append("value", 1);
  fo.sort = Document().append("value", 1);
  auto hot = coll->find(Document().append("value", Document().append("$gt", 24.1)), fo)->to_vector();
  REQUIRE(hot.size() == 1);
  CHECK(hot[0].get_double("value") == 24.5);
  CHECK_FALSE(hot[0].has("_id"));
}

}  // namespace

TEST_CASE("recorder: every payload kind stored field by field into an SQLite file", "[record][sqlite]") {
  TempDir dir;
  std::shared_ptr<store::DocumentStore> db = store::open_store("sqlite:" + (dir / "readings.db").string());
  check_field_by_field(db, "iot_service");
}

TEST_CASE("recorder: every payload kind stored field by field into MongoDB", "[record][mongo]") {
  IOTBRIDGE_REQUIRE_MONGO();
  std::shared_ptr<store::DocumentStore> db = store::open_store(test_mongo_uri());
  auto name = unique_db_name("iotb_record");
  check_field_by_field(db, name);
  db->drop_database(name);
}

TEST_CASE("recorder: a retained reading and a timestamp read from the JSON payload through the broker",
          "[record][sqlite]") {
  MosquittoServer broker;
  TempDir dir;
  // Retained before the recorder subscribes: it arrives with retain set.
  {
    Publisher pub(broker);
    pub.publish("iot/home1/meter/power", R"({"w": 230.5, "meta": {"time": "2024-05-01T12:00:00.250Z"}})", 1, true);
    pub.flush();
  }
  auto opts = recorder_options(broker, dir / "spool");
  opts.document.include_retain = true;
  opts.document.timestamp_field = "meta.time";
  opts.document.timestamp_key = "measured_at";
  std::shared_ptr<store::DocumentStore> db = store::open_store("sqlite:" + (dir / "ts.db").string());
  record::Recorder recorder(opts, db);
  recorder.start();
  REQUIRE(recorder.wait_received(1, 10s));
  {
    Publisher pub(broker);
    pub.publish("iot/home1/meter/power", R"({"w": 231, "meta": {"time": 1714564801}})", 1);
    pub.publish("iot/home1/meter/power", R"({"w": 232, "meta": {"time": "not a time"}})", 1);
    pub.publish("iot/home1/meter/power", "233", 1);
    pub.flush();
  }
  REQUIRE(recorder.wait_received(4, 10s));
  REQUIRE(recorder.wait_idle(20s));
  recorder.stop();

  auto coll = db->collection("iot_service", "sensors");
  REQUIRE(coll->count_documents() == 4);
  auto by_w = [&](double w) {
    auto doc = coll->find_one(Document().append("value.w", w));
    REQUIRE(doc);
    return *doc;
  };
  auto retained = by_w(230.5);
  CHECK(retained.get_bool("retain") == true);
  CHECK(retained.get_datetime("measured_at")->millis == 1714564800250);
  CHECK(retained.get_datetime("reg_date").has_value());                         // the receive time stays
  CHECK(retained.get_string("value.meta.time") == "2024-05-01T12:00:00.250Z");  // the value is unchanged

  auto fresh = by_w(231);
  CHECK(fresh.get_bool("retain") == false);
  CHECK(fresh.get_datetime("measured_at")->millis == 1714564801000);  // epoch seconds
  // An unreadable or missing timestamp: stored all the same, without the field.
  CHECK_FALSE(by_w(232).has("measured_at"));
  auto number = coll->find_one(Document().append("value", 233.0));
  REQUIRE(number);
  CHECK_FALSE(number->has("measured_at"));
}

TEST_CASE("recorder: N published -> N stored, store opened from its URI", "[record][sqlite]") {
  MosquittoServer broker;
  TempDir dir;
  auto opts = recorder_options(broker, dir / "spool");
  opts.store_uri = "sqlite:" + (dir / "r.db").string();
  opts.batch_size = 64;
  constexpr int kCount = 3000;
  record::Recorder recorder(opts);
  recorder.start();
  {
    Publisher pub(broker);
    for (int i = 0; i < kCount; ++i) pub.publish("iot/bulk/" + std::to_string(i % 7), std::to_string(i), 1);
    pub.flush();
  }
  REQUIRE(recorder.wait_received(kCount, 30s));
  REQUIRE(recorder.wait_idle(30s));
  auto stats = recorder.stats();
  recorder.stop();
  CHECK(stats.stored == kCount);
  CHECK(stats.batches >= kCount / 64);
  CHECK(stats.duplicates == 0);
  CHECK(stats.spooled == 0);

  auto coll = store::open_store(opts.store_uri)->collection("iot_service", "sensors");
  auto acc = account(*coll);
  CHECK(acc.documents == kCount);
  CHECK(acc.distinct_ids.size() == static_cast<std::size_t>(kCount));
  CHECK(acc.per_payload.size() == static_cast<std::size_t>(kCount));
  CHECK(acc.duplicate_documents() == 0);
  // The journal and spool are empty after a clean stop.
  record::Journal wal(dir / "spool" / "wal", {});
  CHECK(wal.stats().pending_records == 0);
}

TEST_CASE("recorder: stop() stores everything accepted, then max_messages stops run()", "[record][sqlite]") {
  MosquittoServer broker;
  TempDir dir;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store("sqlite:" + (dir / "r.db").string()));
  auto coll = db->collection("iot_service", "sensors");

  SECTION("stop right after the last message arrives") {
    auto opts = recorder_options(broker, dir / "spool");
    opts.batch_size = 100000;  // nothing is stored before stop()
    opts.flush_interval = std::chrono::hours(1);
    record::Recorder recorder(opts, db);
    recorder.start();
    Publisher pub(broker);
    for (int i = 0; i < 500; ++i) pub.publish("iot/s", std::to_string(i));
    pub.flush();
    REQUIRE(recorder.wait_received(500, 10s));
    CHECK(coll->count_documents() == 0);
    recorder.stop();
    CHECK(recorder.stats().stored == 500);
    CHECK(coll->count_documents() == 500);
  }
  SECTION("max_messages") {
    auto opts = recorder_options(broker, dir / "spool");
    opts.max_messages = 50;
    record::Recorder recorder(opts, db);
    std::stop_source never;
    std::thread publisher([&] {
      Publisher pub(broker);
      // Wait until the recorder subscribed, then publish more than it takes.
      for (int tries = 0; tries < 200 && !recorder.running(); ++tries) std::this_thread::sleep_for(20ms);
      std::this_thread::sleep_for(100ms);
      for (int i = 0; i < 80; ++i) pub.publish("iot/m", std::to_string(i));
      pub.flush();
    });
    auto stats = recorder.run(never.get_token());
    publisher.join();
    // run() returned after the 50th; what arrived while it disconnected was
    // acknowledged already, so it is stored too, never dropped.
    CHECK(stats.received >= 50);
    CHECK(stats.received <= 80);
    CHECK(stats.ignored == 0);
    CHECK(stats.pending == 0);
    CHECK(stats.stored == stats.received);
    CHECK(coll->count_documents() == static_cast<std::int64_t>(stats.received));
  }
}

TEST_CASE("recorder: replays its write-ahead journal at start, each reading once", "[record][sqlite]") {
  MosquittoServer broker;
  TempDir dir;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store("sqlite:" + (dir / "r.db").string()));
  auto coll = db->collection("iot_service", "sensors");

  // An earlier run accepted 300 readings and died before storing the last
  // 200: its journal still has all 300 (trims are lazy), the store 100.
  std::vector<record::Reading> readings;
  {
    record::Journal wal(dir / "spool" / "wal", {});
    for (int i = 0; i < 300; ++i) {
      record::Reading r;
      r.id = store::ObjectId::generate();
      r.received = store::DateTime::now();
      r.topic = "iot/replay";
      r.payload = std::to_string(i);
      r.qos = 1;
      wal.append(record::encode_reading(r));
      readings.push_back(r);
    }
    wal.sync();
  }
  std::vector<Document> first;
  for (int i = 0; i < 100; ++i) first.push_back(record::build_document(readings[i]));
  coll->insert_many(first);

  auto opts = recorder_options(broker, dir / "spool");
  record::Recorder recorder(opts, db);
  recorder.start();
  REQUIRE(recorder.wait_idle(20s));
  auto stats = recorder.stats();
  recorder.stop();
  CHECK(stats.replayed == 300);
  CHECK(stats.stored == 300);
  CHECK(stats.duplicates == 100);
  auto acc = account(*coll);
  CHECK(acc.documents == 300);
  CHECK(acc.duplicate_documents() == 0);
  for (const auto& r : readings) {
    auto doc = coll->find_one(Document().append("_id", r.id));
    REQUIRE(doc);
    CHECK(doc->get_datetime("reg_date") == r.received);
  }

  // A second start has nothing left to replay.
  record::Recorder again(opts, db);
  again.start();
  REQUIRE(again.wait_idle(10s));
  CHECK(again.stats().replayed == 0);
  again.stop();
  CHECK(coll->count_documents() == 300);
}

TEST_CASE("recorder: a torn spool tail is reported and skipped, the rest stored", "[record][sqlite]") {
  MosquittoServer broker;
  TempDir dir;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store("sqlite:" + (dir / "r.db").string()));
  // A spool of 3 batches, then a crash in the middle of writing a fourth.
  fs::path spool_dir = dir / "spool" / "spool";
  {
    record::JournalOptions jo;
    jo.prefix = "spool";
    record::Journal spool(spool_dir, jo);
    for (int b = 0; b < 3; ++b) {
      std::string record;
      std::uint32_t n = 10;
      for (int k = 0; k < 4; ++k) record.push_back(static_cast<char>((n >> (8 * k)) & 0xFF));
      for (int i = 0; i < 10; ++i) {
        record::Reading r;
        r.id = store::ObjectId::generate();
        r.received = store::DateTime::now();
        r.topic = "iot/spooled";
        r.payload = std::to_string(b * 10 + i);
        record::encode_reading(r, record);
      }
      spool.append(record);
    }
    spool.sync();
  }
  fs::path segment;
  for (const auto& entry : fs::directory_iterator(spool_dir))
    if (entry.path().extension() == ".log") segment = entry.path();
  REQUIRE(!segment.empty());
  {
    std::FILE* f = std::fopen(segment.c_str(), "ab");
    REQUIRE(f);
    const char torn[] = "\x40\x00\x00\x00garbage-half-record";
    std::fwrite(torn, 1, sizeof torn - 1, f);
    std::fclose(f);
  }
  std::vector<std::string> warnings;
  std::mutex m;
  auto opts = recorder_options(broker, dir / "spool");
  opts.on_log = [&](mqtt::LogLevel level, std::string_view text) {
    std::lock_guard lk(m);
    if (level >= mqtt::LogLevel::warning) warnings.emplace_back(text);
  };
  record::Recorder recorder(opts, db);
  REQUIRE_NOTHROW(recorder.start());
  REQUIRE(recorder.wait_idle(20s));
  auto stats = recorder.stats();
  recorder.stop();
  CHECK(stats.replayed == 30);
  CHECK(stats.stored == 30);
  CHECK(db->collection("iot_service", "sensors")->count_documents() == 30);
  std::lock_guard lk(m);
  CHECK_FALSE(warnings.empty());
}

TEST_CASE("recorder: start-up errors say what is wrong", "[record]") {
  MosquittoServer broker;
  TempDir dir;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store("sqlite::memory:"));

  SECTION("no filter, bad filter, bad sizes") {
    auto opts = recorder_options(broker, dir / "spool");
    opts.filters.clear();
    CHECK_THROWS_AS(record::Recorder(opts, db), Error);
    opts.filters = {"iot/#/x"};
    CHECK_THROWS_AS(record::Recorder(opts, db), Error);
    opts.filters = {"iot/#"};
    opts.batch_size = 0;
    CHECK_THROWS_AS(record::Recorder(opts, db), Error);
  }
  SECTION("the spool folder is in use by another recorder") {
    auto opts = recorder_options(broker, dir / "spool");
    record::Recorder first(opts, db);
    first.start();
    record::Recorder second(opts, db);
    try {
      second.start();
      FAIL("a second recorder on the same spool folder must not start");
    } catch (const Error& e) {
      CHECK(e.category() == ErrorCategory::io);
      CHECK(std::string(e.what()).find("in use") != std::string::npos);
    }
    CHECK_FALSE(second.running());
    first.stop();
  }
  SECTION("unreachable broker") {
    auto opts = recorder_options(broker, dir / "spool");
    opts.mqtt.port = free_port();
    opts.mqtt.connect_timeout = 2s;
    record::Recorder recorder(opts, db);
    CHECK_THROWS_AS(recorder.start(), Error);
    CHECK_FALSE(recorder.running());
    // Nothing is left locked: a corrected recorder starts on the same folder.
    auto good = recorder_options(broker, dir / "spool");
    record::Recorder fixed(good, db);
    CHECK_NOTHROW(fixed.start());
    fixed.stop();
  }
  SECTION("unreachable store") {
    auto opts = recorder_options(broker, dir / "spool");
    opts.store_uri = "mongodb://127.0.0.1:" + std::to_string(free_port()) + "/?serverSelectionTimeoutMS=500";
    record::Recorder recorder(opts);
    try {
      recorder.start();
      FAIL("the store is not there");
    } catch (const Error& e) {
      CHECK(e.category() == ErrorCategory::store);
    }
  }
}

TEST_CASE("recorder: stats JSON and status line", "[record]") {
  record::RecorderStats s;
  s.received = 12;
  s.stored = 10;
  s.pending = 2;
  s.store_ok = false;
  s.last_error = "store: \"down\"\n";
  auto json = Document::from_json(s.to_json());
  CHECK(json.get_int64("received") == 12);
  CHECK(json.get_int64("pending") == 2);
  CHECK(json.get_bool("store_ok") == false);
  CHECK(json.get_string("last_error") == "store: \"down\"\n");
  auto line = s.status_line();
  CHECK(line.find("recv 12") != std::string::npos);
  CHECK(line.find("FAILING") != std::string::npos);
}

TEST_CASE("recorder: drives a client it is given (connected already, as iotbridge-sub does)", "[record][sqlite]") {
  MosquittoServer broker;
  TempDir dir;
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store("sqlite:" + (dir / "r.db").string()));
  std::shared_ptr<mqtt::Client> client = mqtt::make_mosquitto_client(broker_options(broker));
  client->connect();
  auto opts = recorder_options(broker, dir / "spool", {"iot/given/#"});
  {
    record::Recorder recorder(opts, db, client);
    recorder.start();
    CHECK(recorder.stats().connected);
    {
      Publisher pub(broker);
      for (int i = 0; i < 100; ++i) pub.publish("iot/given/x", std::to_string(i));
      pub.flush();
    }
    REQUIRE(recorder.wait_received(100, 10s));
    REQUIRE(recorder.wait_idle(10s));
    recorder.stop();
    CHECK(recorder.stats().stored == 100);
  }
  CHECK(db->collection("iot_service", "sensors")->count_documents() == 100);
  // The recorder is gone; the client is still usable and holds nothing of it.
  CHECK(client->subscriptions().empty());
  client->connect();
  client->loop_start();
  CHECK(client->publish("iot/given/after", "1", 1).wait_for(10s));
  client->disconnect();
  client->loop_stop();
}
