// Interop with the tutorials' tools: readings published by Debian's
// python3-paho-mqtt are recorded, and python3-pymongo reads them back with the
// types the tutorials expect (value a float, reg_date a datetime).
#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "iotbridge/record/recorder.hpp"
#include "iotbridge/store/open.hpp"
#include "record_helpers.hpp"
#include "servers.hpp"

using namespace iotbridge;
using namespace iotbridge::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* kPython = "/usr/bin/python3";

const char* kPublish = R"PY(
import sys, paho.mqtt.client as mqtt
port, n = int(sys.argv[1]), int(sys.argv[2])
c = mqtt.Client(client_id="paho-interop")
c.connect("127.0.0.1", port)
c.loop_start()
infos = [c.publish("iot/py/sensor%d" % (i % 3), "%.1f" % (20 + i * 0.5), qos=1) for i in range(n)]
for info in infos:
    info.wait_for_publish()
c.loop_stop()
c.disconnect()
print("published", n)
)PY";

const char* kRead = R"PY(
import sys, datetime, pymongo
uri, dbname, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
coll = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)[dbname]["sensors"]
docs = list(coll.find())
assert len(docs) == n, ("count", len(docs))
for d in docs:
    assert isinstance(d["value"], float), ("value type", type(d["value"]))
    assert isinstance(d["reg_date"], datetime.datetime), ("reg_date type", type(d["reg_date"]))
    assert d["topic"].startswith("iot/py/sensor"), d["topic"]
# The tutorials' query, as written there.
hot = list(coll.find({"value": {"$gt": 24.1}}, {"_id": 0, "topic": 1, "value": 1}).sort("value"))
expected = sorted(20 + i * 0.5 for i in range(n) if 20 + i * 0.5 > 24.1)
assert [d["value"] for d in hot] == expected, ([d["value"] for d in hot], expected)
assert all(set(d) == {"topic", "value"} for d in hot)
print("pymongo OK", len(docs), len(hot))
)PY";

}  // namespace

TEST_CASE("recorder: paho-mqtt publishes, pymongo reads floats and datetimes", "[record][mongo][interop]") {
  IOTBRIDGE_REQUIRE_MONGO();
  if (!fs::exists(kPython)) FAIL("Debian's /usr/bin/python3 (with python3-paho-mqtt, python3-pymongo) is needed");
  MosquittoServer broker;
  TempDir dir;
  std::ofstream(dir / "pub.py") << kPublish;
  std::ofstream(dir / "read.py") << kRead;

  auto uri = test_mongo_uri();
  auto name = unique_db_name("iotb_interop");
  auto db = std::shared_ptr<store::DocumentStore>(store::open_store(uri));
  auto opts = recorder_options(broker, dir / "spool");
  opts.database = name;
  record::Recorder recorder(opts, db);
  recorder.start();

  constexpr int kCount = 40;
  std::string out;
  REQUIRE(run_command({kPython, (dir / "pub.py").string(), std::to_string(broker.port()), std::to_string(kCount)},
                      &out) == 0);
  CHECK(out.find("published 40") != std::string::npos);
  REQUIRE(recorder.wait_received(kCount, 20s));
  REQUIRE(recorder.wait_idle(20s));
  recorder.stop();

  out.clear();
  int rc = run_command({kPython, (dir / "read.py").string(), uri, name, std::to_string(kCount)}, &out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("pymongo OK 40") != std::string::npos);
  db->drop_database(name);
}
