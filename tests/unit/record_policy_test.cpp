// Route policies, each on its own: durations, change-only recording with a
// heartbeat (deadband, on_change), dedup _ids, quarantine documents, and the
// checks validate_routes() makes of them.
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <vector>

#include "iotbridge/duration.hpp"
#include "iotbridge/error.hpp"
#include "iotbridge/record/change_filter.hpp"
#include "iotbridge/record/dedup.hpp"
#include "iotbridge/record/quarantine.hpp"
#include "iotbridge/record/route.hpp"
#include "iotbridge/store/open.hpp"
#include "record/sha256.hpp"

using namespace iotbridge;
using namespace iotbridge::record;
using namespace std::chrono_literals;
using store::DateTime;
using store::Document;
using store::ObjectId;
using store::Value;

namespace {

std::string hex(const std::array<std::uint8_t, 32>& d) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (auto b : d) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

std::string sha(std::string_view text) {
  detail::Sha256 h;
  h.update(text);
  return hex(h.finish());
}

std::vector<std::pair<std::string, Value>> value(Value v) { return {{"value", std::move(v)}}; }

DateTime at(std::int64_t seconds) { return DateTime{1'700'000'000'000 + seconds * 1000}; }

// Feeds `values` one second apart and returns the stored ones.
std::vector<double> run(ChangeFilter& f, const std::vector<double>& values, std::int64_t start = 0) {
  std::vector<double> stored;
  std::int64_t t = start;
  for (double v : values) {
    if (stores(f.decide("iot/a/temp", ObjectId::generate(), at(t++), value(v)))) stored.push_back(v);
  }
  return stored;
}

Route route_with(std::function<void(Route&)> change) {
  Route r;
  r.name = "r";
  r.filters = {"iot/#"};
  change(r);
  return r;
}

}  // namespace

TEST_CASE("parse_duration reads the units people write", "[policy][duration]") {
  struct Row {
    const char* text;
    std::int64_t millis;
  };
  for (Row row :
       {Row{"500ms", 500}, Row{"2s", 2000}, Row{"15m", 900000}, Row{"1h", 3600000}, Row{"30d", 30LL * 86400000},
        Row{"1w", 7LL * 86400000}, Row{"1h30m", 5400000}, Row{" 2s ", 2000}, Row{"0s", 0}, Row{"1s500ms", 1500}}) {
    INFO(row.text);
    CHECK(parse_duration(row.text).count() == row.millis);
  }
}

TEST_CASE("parse_duration refuses what it cannot read, saying what to write", "[policy][duration]") {
  struct Row {
    const char* text;
    const char* says;
  };
  for (Row row : {Row{"", "is empty"}, Row{"30", "has no unit; write 30ms, 30s"}, Row{"1.5h", "whole numbers"},
                  Row{"-2s", "no sign"}, Row{"2x", "unknown unit 'x'"}, Row{"2 s", "unexpected ' '"},
                  Row{"s", "expected a number"}, Row{"99999999999999999999ms", "too long"},
                  Row{"9999999999999999d", "too long"}, Row{"2S", "unknown unit 'S'"}}) {
    INFO(row.text);
    try {
      parse_duration(row.text, "heartbeat");
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.category() == ErrorCategory::config);
      CHECK_THAT(e.what(), Catch::Contains(row.says) && Catch::StartsWith("heartbeat '"));
    }
  }
}

TEST_CASE("format_duration writes what parse_duration reads back", "[policy][duration]") {
  CHECK(format_duration(0ms) == "0s");
  CHECK(format_duration(500ms) == "500ms");
  CHECK(format_duration(2s) == "2s");
  CHECK(format_duration(90min) == "1h30m");
  CHECK(format_duration(24h * 30) == "30d");
  CHECK(format_duration(24h * 14) == "2w");
  CHECK(format_duration(24h * 15) == "15d");
  for (std::chrono::milliseconds d : std::vector<std::chrono::milliseconds>{1ms, 1500ms, 61s, 25h, 24h * 30 + 1ms})
    CHECK(parse_duration(format_duration(d)) == d);
}

TEST_CASE("SHA-256 gives the FIPS 180-4 test vectors", "[policy][dedup]") {
  CHECK(sha("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  detail::Sha256 pieces;  // fed in pieces across block boundaries: same digest
  for (int i = 0; i < 1000; ++i) pieces.update(std::string(1000, 'a'));
  CHECK(hex(pieces.finish()) == sha(std::string(1000000, 'a')));
}

TEST_CASE("the dedup _id is a fixed function of route, topic and key", "[policy][dedup]") {
  ObjectId a = dedup_id("climate", "iot/a/temp", "n17");
  CHECK(a == dedup_id("climate", "iot/a/temp", "n17"));
  // Fixed across machines and versions: two recorders of a $share group agree.
  CHECK(a.to_hex() == dedup_id("climate", "iot/a/temp", "n17").to_hex());
  CHECK(a != dedup_id("climate", "iot/a/temp", "n18"));
  CHECK(a != dedup_id("power", "iot/a/temp", "n17"));
  CHECK(a != dedup_id("climate", "iot/b/temp", "n17"));
  // Length prefixes: moving bytes from one part to the next changes the id.
  CHECK(dedup_id("ab", "c", "k") != dedup_id("a", "bc", "k"));
  CHECK(dedup_id("r", "t", "") != dedup_id("r", "", "t"));
}

TEST_CASE("dedup keys: JSON Pointer, user property, payload", "[policy][dedup]") {
  DedupKey pointer("/seq");
  CHECK(pointer.source() == DedupKey::Source::json_pointer);
  auto payload = decode_payload(R"({"seq": 17, "t": 20.5})").value;
  CHECK(pointer.from_value(payload) == "n17");
  CHECK(pointer.from_value(decode_payload(R"({"seq": 17.0})").value) == "n17");  // one JSON number
  CHECK(pointer.from_value(decode_payload(R"({"seq": "17"})").value) == "s17");  // a string is another key
  CHECK(pointer.from_value(decode_payload(R"({"seq": 1.5})").value) == "n1.5");
  CHECK(pointer.from_value(decode_payload(R"({"seq": {"a": 1}})").value).value_or("").front() == 'j');
  CHECK_FALSE(pointer.from_value(decode_payload(R"({"t": 1})").value));       // missing
  CHECK_FALSE(pointer.from_value(decode_payload(R"({"seq": null})").value));  // null is no key
  CHECK_FALSE(pointer.from_value(decode_payload("20.5").value));
  CHECK_FALSE(pointer.from_message("x", {}));

  DedupKey property("user_property:msg-id");
  CHECK(property.source() == DedupKey::Source::user_property);
  mqtt::Properties props;
  props.user_properties = {{"other", "1"}, {"msg-id", "A-7"}, {"msg-id", "second"}};
  CHECK(property.from_message("payload", props) == "A-7");  // the first of that name
  CHECK_FALSE(property.from_message("payload", {}));

  DedupKey whole("payload");
  CHECK(whole.from_message(std::string("a\0b", 3), {}) == std::string("a\0b", 3));

  CHECK(DedupKey("").empty());
  CHECK(DedupKey().source() == DedupKey::Source::none);
  for (const char* bad : {"seq", "user_property:", "/a~2", "payloads"}) {
    INFO(bad);
    CHECK_THROWS_WITH(DedupKey(bad), Catch::Contains("dedup_key"));
  }
}

TEST_CASE("deadband 0.2: 20.0 20.1 20.15 20.3 20.3 stores 20.0 and 20.3", "[policy][change]") {
  ChangeFilter f({.deadband = 0.2});
  CHECK(run(f, {20.0, 20.1, 20.15, 20.3, 20.3}) == std::vector<double>{20.0, 20.3});
}

TEST_CASE("deadband: a change of exactly the deadband counts, both ways, whatever the binary digits",
          "[policy][change]") {
  ChangeFilter f({.deadband = 0.2});
  CHECK(run(f, {20.0, 20.2, 20.0, 19.9, 19.8}) == std::vector<double>{20.0, 20.2, 20.0, 19.8});
  ChangeFilter zero({.deadband = 0.0});  // 0: every change, no repeats
  CHECK(run(zero, {1, 1, 1.0001, 1.0001, 2}) == std::vector<double>{1, 1.0001, 2});
}

TEST_CASE("deadband: a value that is not a number is stored when it differs", "[policy][change]") {
  ChangeFilter f({.deadband = 0.5});
  auto id = [] { return ObjectId::generate(); };
  CHECK(f.decide("t", id(), at(0), value(20.0)) == ChangeDecision::store_first);
  CHECK(f.decide("t", id(), at(1), value("offline")) == ChangeDecision::store_changed);
  CHECK(f.decide("t", id(), at(2), value("offline")) == ChangeDecision::suppress);
  CHECK(f.decide("t", id(), at(3), value(20.1)) == ChangeDecision::store_changed);
  CHECK(f.decide("t", id(), at(4), value(std::nan(""))) == ChangeDecision::store_changed);
  CHECK(f.decide("t", id(), at(5), value(std::nan(""))) == ChangeDecision::suppress);
}

TEST_CASE("on_change: any value, stored only when it differs", "[policy][change]") {
  ChangeFilter f({.deadband = std::nullopt, .on_change = true});
  auto id = [] { return ObjectId::generate(); };
  CHECK(f.decide("t", id(), at(0), value("open")) == ChangeDecision::store_first);
  CHECK(f.decide("t", id(), at(1), value("open")) == ChangeDecision::suppress);
  CHECK(f.decide("t", id(), at(2), value("closed")) == ChangeDecision::store_changed);
  CHECK(f.decide("t", id(), at(3), value(7)) == ChangeDecision::store_changed);
  CHECK(f.decide("t", id(), at(4), value(7.0)) == ChangeDecision::suppress);  // the same number
  CHECK(f.decide("t", id(), at(5), value(Document().append("a", 1))) == ChangeDecision::store_changed);
  CHECK(f.decide("t", id(), at(6), value(Document().append("a", 1))) == ChangeDecision::suppress);
  // Topics are apart: another topic's first reading is stored.
  CHECK(f.decide("u", id(), at(7), value(7)) == ChangeDecision::store_first);
}

TEST_CASE("without deadband or on_change every reading is stored", "[policy][change]") {
  ChangeFilter f({});
  CHECK(run(f, {1, 1, 1}) == std::vector<double>{1, 1, 1});
}

TEST_CASE("heartbeat forces a store after its interval of nothing stored", "[policy][change]") {
  ChangeFilter f({.deadband = 0.2, .heartbeat = 10s});
  auto id = [] { return ObjectId::generate(); };
  CHECK(f.decide("t", id(), at(0), value(20.0)) == ChangeDecision::store_first);
  CHECK(f.decide("t", id(), at(5), value(20.0)) == ChangeDecision::suppress);
  CHECK(f.decide("t", id(), at(9), value(20.0)) == ChangeDecision::suppress);
  CHECK(f.decide("t", id(), at(10), value(20.0)) == ChangeDecision::store_heartbeat);
  CHECK(f.decide("t", id(), at(15), value(20.3)) == ChangeDecision::store_changed);  // restarts the interval
  CHECK(f.decide("t", id(), at(24), value(20.3)) == ChangeDecision::suppress);
  CHECK(f.decide("t", id(), at(25), value(20.3)) == ChangeDecision::store_heartbeat);
}

TEST_CASE("mapped fields: stored when any field changed, compared field by field", "[policy][change]") {
  ChangeFilter f({.deadband = 0.5});
  auto id = [] { return ObjectId::generate(); };
  using Fields = std::vector<std::pair<std::string, Value>>;
  CHECK(f.decide("t", id(), at(0), Fields{{"temp", 20.0}, {"hum", 40.0}}) == ChangeDecision::store_first);
  CHECK(f.decide("t", id(), at(1), Fields{{"temp", 20.2}, {"hum", 40.4}}) == ChangeDecision::suppress);
  CHECK(f.decide("t", id(), at(2), Fields{{"temp", 20.2}, {"hum", 40.6}}) == ChangeDecision::store_changed);
  // Compared with the stored 40.6 now, not the first 40.0.
  CHECK(f.decide("t", id(), at(3), Fields{{"temp", 20.4}, {"hum", 40.6}}) == ChangeDecision::suppress);
  // A field the last stored reading lacked is a change.
  CHECK(f.decide("t", id(), at(4), Fields{{"temp", 20.4}, {"hum", 40.6}, {"bat", 3.0}}) ==
        ChangeDecision::store_changed);
}

TEST_CASE("replays: the same reading again, or an older one, is stored and changes nothing", "[policy][change]") {
  ChangeFilter f({.deadband = 0.2});
  ObjectId first = ObjectId::generate(), second = ObjectId::generate();
  CHECK(f.decide("t", first, at(0), value(20.0)) == ChangeDecision::store_first);
  CHECK(f.decide("t", second, at(1), value(20.5)) == ChangeDecision::store_changed);
  // From the spool after a failed insert: same _id, decided before.
  CHECK(f.decide("t", second, at(1), value(20.5)) == ChangeDecision::store_replay);
  // An older reading (an earlier run's journal): stored, the memory stays 20.5.
  CHECK(f.decide("t", first, at(0), value(20.0)) == ChangeDecision::store_replay);
  CHECK(f.decide("t", ObjectId::generate(), at(2), value(20.6)) == ChangeDecision::suppress);
}

TEST_CASE("a restart keeps the filter right: exported and restored state", "[policy][change]") {
  ChangeFilter before({.deadband = 0.2, .heartbeat = 10s});
  CHECK(run(before, {20.0, 20.1, 20.3}) == std::vector<double>{20.0, 20.3});  // t = 0, 1, 2
  auto state = before.export_state();
  REQUIRE(state.size() == 1);
  CHECK(state[0].topic == "iot/a/temp");
  CHECK(state[0].stored_at == at(2));

  ChangeFilter after({.deadband = 0.2, .heartbeat = 10s});
  for (auto& s : state) after.restore(s);
  // Neither a burst of unchanged values nor a missed change ...
  CHECK(run(after, {20.3, 20.4, 20.6}, 3) == std::vector<double>{20.6});  // t = 3, 4, 5
  // ... and the heartbeat counts from the last store before the restart's.
  CHECK(run(after, {20.6, 20.6}, 14) == std::vector<double>{20.6});  // t = 14 suppressed, 15 heartbeat
}

TEST_CASE("a restart keeps the filter right: state read back from the store", "[policy][change]") {
  auto store = store::open_store("sqlite::memory:");
  auto coll = store->collection("iot_service", "sensors");
  std::vector<std::string> no_fields;
  ObjectId last = ObjectId::generate();
  coll->insert_one(Document()
                       .append("_id", ObjectId::generate())
                       .append("topic", "iot/a/temp")
                       .append("value", 20.0)
                       .append("reg_date", at(0)));
  coll->insert_one(
      Document().append("_id", last).append("topic", "iot/a/temp").append("value", 20.3).append("reg_date", at(2)));
  coll->insert_one(Document()
                       .append("_id", ObjectId::generate())
                       .append("topic", "iot/b/temp")
                       .append("value", 5.0)
                       .append("reg_date", at(9)));

  int lookups = 0;
  auto lookup = store_lookup(coll, no_fields);
  ChangeFilter f({.deadband = 0.2, .heartbeat = 10s}, [&](std::string_view topic) {
    ++lookups;
    return lookup(topic);
  });
  auto id = [] { return ObjectId::generate(); };
  CHECK(f.decide("iot/a/temp", id(), at(3), value(20.4)) == ChangeDecision::suppress);  // vs 20.3, not 20.0
  CHECK(f.decide("iot/a/temp", id(), at(4), value(20.5)) == ChangeDecision::store_changed);
  CHECK(f.decide("iot/c/temp", id(), at(5), value(1.0)) == ChangeDecision::store_first);  // nothing stored yet
  CHECK(f.decide("iot/c/temp", id(), at(6), value(1.0)) == ChangeDecision::suppress);
  CHECK(lookups == 2);  // once per topic per run
  auto exported = f.export_state();
  REQUIRE(exported.size() == 2);
  CHECK(exported[0].values == value(20.5));

  // Mapped fields are read back by name.
  auto state = change_state_from_document(Document()
                                              .append("_id", last)
                                              .append("topic", "t")
                                              .append("temp", 1.5)
                                              .append("hum", 2)
                                              .append("reg_date", at(1)),
                                          {"temp", "hum", "missing"});
  REQUIRE(state);
  CHECK(state->values == std::vector<std::pair<std::string, Value>>{{"temp", 1.5}, {"hum", 2}});
  CHECK_FALSE(change_state_from_document(Document().append("topic", "t"), {}));
}

TEST_CASE("the filter remembers at most max_topics topics, and looks a forgotten one up again", "[policy][change]") {
  int lookups = 0;
  ChangeFilter f({.deadband = 0.2, .max_topics = 2}, [&](std::string_view) {
    ++lookups;
    return std::optional<ChangeState>();  // nothing stored before this run
  });
  auto id = [] { return ObjectId::generate(); };
  CHECK(f.decide("a", id(), at(0), value(20.0)) == ChangeDecision::store_first);
  CHECK(f.decide("b", id(), at(1), value(20.0)) == ChangeDecision::store_first);
  CHECK(f.decide("a", id(), at(2), value(20.1)) == ChangeDecision::suppress);     // a: most recently seen
  CHECK(f.decide("c", id(), at(3), value(20.0)) == ChangeDecision::store_first);  // forgets b, the least recent
  CHECK(f.size() == 2);
  CHECK(f.evicted() == 1);
  CHECK(f.decide("a", id(), at(4), value(20.1)) == ChangeDecision::suppress);  // a still remembered
  // b was forgotten: looked up again, and (nothing found) stored as a first reading, never suppressed.
  CHECK(f.decide("b", id(), at(5), value(20.0)) == ChangeDecision::store_first);
  CHECK(f.evicted() == 2);  // c went
  CHECK(lookups == 4);
  std::set<std::string> topics;
  for (const auto& s : f.export_state()) topics.insert(s.topic);
  CHECK(topics == std::set<std::string>{"a", "b"});
  // restore() keeps the bound too.
  f.restore(ChangeState{"d", id(), at(6), value(1.0)});
  CHECK(f.size() == 2);
  CHECK(f.evicted() == 3);
  CHECK_THROWS_WITH(ChangeFilter({.deadband = std::nullopt, .on_change = true, .max_topics = 0}),
                    Catch::Contains("max_topics"));
}

TEST_CASE("ChangeFilter refuses a negative or non-finite deadband", "[policy][change]") {
  CHECK_THROWS_WITH(ChangeFilter({.deadband = -1.0}), Catch::Contains("deadband"));
  CHECK_THROWS_WITH(ChangeFilter({.deadband = std::numeric_limits<double>::infinity()}), Catch::Contains("deadband"));
}

TEST_CASE("a quarantine document keeps the raw reading and why", "[policy][quarantine]") {
  QuarantinedReading q;
  q.reading.id = ObjectId::generate();
  q.reading.received = at(0);
  q.reading.topic = "iot/a/big";
  q.reading.payload = std::string("\xff\0{", 3);
  q.reading.qos = 1;
  q.reading.retain = true;
  q.route = "climate";
  q.reason = QuarantineReason::too_large;
  q.message = "the document is 5012 bytes; max_document_bytes is 1000";
  q.code = 0;
  q.quarantined_at = at(5);
  Document doc = to_document(q);
  CHECK(doc.get_object_id("_id") == q.reading.id);
  CHECK(doc.get_string("reason") == "too_large");
  CHECK(doc.get_string("route") == "climate");
  CHECK(doc.get("payload")->as_binary().data == std::vector<std::uint8_t>{0xff, 0, '{'});
  CHECK(doc.get_datetime("reg_date") == at(0));

  auto back = quarantined_reading_from_document(Document::from_json(doc.to_json(store::JsonMode::canonical)));
  CHECK(back.reading.id == q.reading.id);
  CHECK(back.reading.payload == q.reading.payload);
  CHECK(back.reading.topic == q.reading.topic);
  CHECK(back.reading.qos == 1);
  CHECK(back.reading.retain);
  CHECK(back.reading.received == at(0));
  CHECK(back.reason == QuarantineReason::too_large);
  CHECK(back.message == q.message);
  CHECK(back.quarantined_at == at(5));

  CHECK_THROWS_WITH(quarantined_reading_from_document(Document().append("_id", ObjectId::generate())),
                    Catch::Contains("'topic'"));
}

TEST_CASE("quarantine reasons: words, and the store's codes", "[policy][quarantine]") {
  for (auto r : {QuarantineReason::too_large, QuarantineReason::validator, QuarantineReason::unique_index,
                 QuarantineReason::unmapped, QuarantineReason::refused})
    CHECK(parse_quarantine_reason(to_string(r)) == r);
  CHECK_FALSE(parse_quarantine_reason("lost"));
  CHECK(classify_refusal(121, "Document failed validation") == QuarantineReason::validator);
  CHECK(classify_refusal(11000, "E11000 duplicate key error index: serial_1") == QuarantineReason::unique_index);
  CHECK(classify_refusal(10334, "") == QuarantineReason::too_large);
  CHECK(classify_refusal(2, "object to insert too large") == QuarantineReason::too_large);
  CHECK(classify_refusal(14, "wrong type") == QuarantineReason::refused);
  Route r;
  r.collection = "climate";
  CHECK(quarantine_collection(r) == "climate_quarantine");
  r.quarantine = "refused";
  CHECK(quarantine_collection(r) == "refused");
}

TEST_CASE("validate_routes checks the policies, naming the route and the option", "[policy][route]") {
  struct Row {
    std::function<void(Route&)> change;
    const char* says;
  };
  for (const Row& row : std::vector<Row>{
           {[](Route& r) { r.deadband = -0.1; }, "route 'r': deadband"},
           {[](Route& r) { r.deadband = std::nan(""); }, "route 'r': deadband"},
           {[](Route& r) { r.heartbeat = 15min; }, "route 'r': heartbeat: 15m forces a store"},
           {[](Route& r) { r.dedup_key = "seq"; }, "route 'r': dedup_key"},
           {[](Route& r) { r.quarantine = "sensors"; }, "route 'r': quarantine: must not be the route's own"},
           {[](Route& r) { r.max_document_bytes = 10; }, "route 'r': max_document_bytes"},
           {[](Route& r) { r.timeseries = store::TimeseriesOptions{.granularity = "days"}; },
            "route 'r': timeseries.granularity: 'days'"},
           {[](Route& r) { r.timeseries = store::TimeseriesOptions{.time_field = ""}; },
            "route 'r': timeseries.time_field"},
           {[](Route& r) { r.expire_after = -1s; }, "route 'r': expire_after"},
       }) {
    INFO(row.says);
    CHECK_THROWS_WITH(validate_routes({route_with(row.change)}), Catch::Contains(row.says));
  }
  CHECK_NOTHROW(validate_routes({route_with([](Route& r) {
    r.deadband = 0.2;
    r.on_change = true;
    r.heartbeat = 15min;
    r.dedup_key = "user_property:id";
    r.expire_after = std::chrono::hours(24 * 30);
    r.timeseries = store::TimeseriesOptions{};
    r.max_document_bytes = 1000;
    r.on_unmapped = Route::OnUnmapped::quarantine;
  })}));
  CHECK(parse_on_unmapped("quarantine") == Route::OnUnmapped::quarantine);
  CHECK(to_string(parse_on_unmapped("store")) == "store");
  CHECK_THROWS_WITH(parse_on_unmapped("drop"), Catch::Contains("on_unmapped 'drop'"));
}
