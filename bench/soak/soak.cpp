// The soak: a steady QoS 1 stream through a real Mosquitto broker into a real
// store, recorded by iotbridge in a child process, with one store outage per
// minute; one CSV row per second and a summary at the end. Not a test (no
// pass/fail beyond the exit code: 0 when every published reading is
// accounted for). scripts/soak builds and runs it and draws the plot.
//
//   iotbridge_soak [--minutes M] [--rate R] [--devices D] [--store mongodb|sqlite]
//                  [--outage-seconds S] [--outage-at S] [--recorder cli|lib]
//                  [--spill N] [--csv PATH] [--summary PATH] [--sub PATH]
//                  [--drain-timeout S] [--no-verify | --verify-api]
//
// The recorder: `--recorder cli` runs iotbridge-sub --store (the product as
// users run it: default options); `--recorder lib` runs this program as
// `iotbridge_soak --child-record ...`, a record::Recorder with the CLI's
// defaults except spill_threshold (--spill), so that a 10 s outage at a few
// thousand readings per second reaches the disk spool. Either way the
// recorder is its own process: its RSS (/proc/PID/status VmRSS) is its own,
// and it reports its counters as JSON lines on stderr every 50 ms.
//
// Publish-to-stored latency: the publisher keeps the wall-clock time of every
// publish (also in the payload, {"seq":N,"t":NS}). The recorder confirms
// readings in the order it accepted them (one FIFO queue; the spool is
// replayed in order before newer readings), and one publisher connection is
// delivered in order, so reading N is stored when the recorder's count of
// stored readings first reaches N + 1 (a reading counts once in "stored",
// also when its insert was retried and found it there: "duplicates"). Each
// 50 ms counter line gives that moment; the latency is sample time - publish
// time (resolution: the 50 ms sampling, so an overestimate by up to 50 ms).
//
// The end of the run reads every document back (for FerretDB from its SQLite
// file once it is stopped; through the store API otherwise) and checks: every
// seq 0..N-1 is there exactly once, nothing else is, and the documents are in
// publish order in the store's insertion order (the latency assumption).
// published (PUBACKed) = stored + reported (the recorder's rejected + pending
// + ignored at exit) or the run fails.
#include <sqlite3.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"
#include "iotbridge/record/recorder.hpp"
#include "iotbridge/shutdown.hpp"
#include "iotbridge/store/open.hpp"
#include "servers.hpp"

using namespace iotbridge;
namespace fs = std::filesystem;
using SysClock = std::chrono::system_clock;
using Steady = std::chrono::steady_clock;

#ifndef IOTBRIDGE_BINARY_DIR
#define IOTBRIDGE_BINARY_DIR "."
#endif

namespace {

constexpr const char* kDatabase = "soak";
constexpr const char* kCollection = "readings";
constexpr const char* kFilter = "iot/soak/#";

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SysClock::now().time_since_epoch()).count();
}

struct Config {
  double minutes = 10;
  int rate = 2000;
  int devices = 8;
  std::string store = "mongodb";
  double outage_seconds = 10;
  double outage_at = 25;  // seconds into each minute
  std::string recorder = "lib";
  std::size_t spill = 5000;
  std::string csv = "soak.csv";
  std::string summary;
  std::string sub = std::string(IOTBRIDGE_BINARY_DIR) + "/cli/iotbridge-sub";
  double drain_timeout = 300;
  bool verify = true;
  bool verify_api = false;  // read back through the store API also for FerretDB (slow)
};

// ---- the recorder child (--child-record) ------------------------------------

int child_record(int argc, char** argv) {
  record::RecorderOptions o;
  o.filters = {kFilter};
  o.qos = 1;
  o.mqtt.host = "127.0.0.1";
  o.database = kDatabase;
  o.collection = kCollection;
  o.stats_interval = std::chrono::milliseconds(50);
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    std::string v = i + 1 < argc ? argv[i + 1] : "";
    ++i;
    if (k == "--port")
      o.mqtt.port = std::stoi(v);
    else if (k == "--store")
      o.store_uri = v;
    else if (k == "--spool")
      o.spool_dir = v;
    else if (k == "--spill")
      o.spill_threshold = std::stoul(v);
    else if (k == "--stats-ms")
      o.stats_interval = std::chrono::milliseconds(std::stoi(v));
    else {
      std::cerr << "iotbridge_soak --child-record: unknown option " << k << '\n';
      return 2;
    }
  }
  o.on_stats = [](const record::RecorderStats& s) { std::cerr << s.to_json() + "\n" << std::flush; };
  o.on_log = [](mqtt::LogLevel level, std::string_view line) {
    if (level >= mqtt::LogLevel::warning) std::cerr << std::string(line) + "\n" << std::flush;
  };
  try {
    ShutdownSignal shutdown;
    record::Recorder recorder(o);
    auto stats = recorder.run(shutdown.token());
    std::cout << stats.to_json() << std::endl;
    return stats.pending == 0 ? 0 : 1;
  } catch (const Error& e) {
    std::cerr << "iotbridge_soak --child-record: " << e.what() << '\n';
    return 1;
  }
}

// ---- small readers ------------------------------------------------------------

// The unsigned number after "key": in a flat JSON line (the recorder's to_json).
std::optional<std::uint64_t> json_uint(const std::string& line, const char* key) {
  std::string k = std::string("\"") + key + "\":";
  auto p = line.find(k);
  if (p == std::string::npos) return std::nullopt;
  const char* s = line.c_str() + p + k.size();
  char* end = nullptr;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (end == s) return std::nullopt;
  return v;
}

bool json_true(const std::string& line, const char* key) {
  return line.find(std::string("\"") + key + "\":true") != std::string::npos;
}

// The machine's 1-minute load average (the soak shares its cores).
double load1() {
  std::ifstream in("/proc/loadavg");
  double v = NAN;
  in >> v;
  return v;
}

long rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

std::uint64_t dir_bytes(const fs::path& dir) {
  std::uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (it->is_regular_file(ec2)) {
      auto size = it->file_size(ec2);
      if (!ec2) total += size;
    }
  }
  return total;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  auto k = static_cast<std::size_t>(
      std::min<double>(static_cast<double>(v.size() - 1), std::floor(p / 100.0 * static_cast<double>(v.size()))));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

std::string fmt_num(double v, int digits = 1) {
  if (std::isnan(v)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// The folder of FerretDB's SQLite files, from its --sqlite-url=file:DIR/ argument.
std::string ferret_data_dir(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string arg;
  const std::string key = "--sqlite-url=file:";
  while (std::getline(in, arg, '\0'))
    if (arg.rfind(key, 0) == 0) {
      std::string dir = arg.substr(key.size());
      while (!dir.empty() && dir.back() == '/') dir.pop_back();
      return dir;
    }
  throw std::runtime_error("cannot find FerretDB's --sqlite-url in /proc/" + std::to_string(pid) + "/cmdline");
}

using TakeDoc =
    std::function<void(std::optional<std::int64_t>, std::optional<std::int64_t>, std::optional<std::int64_t>)>;

// FerretDB 1.x (SQLite backend) keeps a collection as one table of JSON
// documents ("_ferretdb_sjson"), named in _ferretdb_collections; dates are
// milliseconds since the epoch.
void read_ferretdb_file(const std::string& file, const std::string& collection, const TakeDoc& take) {
  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(file.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    std::string why = raw ? sqlite3_errmsg(raw) : "out of memory";
    sqlite3_close(raw);
    throw std::runtime_error("cannot open " + file + ": " + why);
  }
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, sqlite3_close);
  auto prepare = [&](const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db.get(), sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
      throw std::runtime_error(file + ": " + sqlite3_errmsg(db.get()));
    return std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)>(st, sqlite3_finalize);
  };
  auto q = prepare("SELECT table_name FROM _ferretdb_collections WHERE name = ?");
  sqlite3_bind_text(q.get(), 1, collection.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(q.get()) != SQLITE_ROW) throw std::runtime_error(file + ": no collection " + collection);
  std::string table = reinterpret_cast<const char*>(sqlite3_column_text(q.get(), 0));
  auto rows = prepare(
      "SELECT json_extract(_ferretdb_sjson, '$.value.seq'), json_extract(_ferretdb_sjson, '$.value.t'), "
      "json_extract(_ferretdb_sjson, '$.reg_date') FROM \"" +
      table + "\" ORDER BY rowid");
  auto col = [&](int i) -> std::optional<std::int64_t> {
    if (sqlite3_column_type(rows.get(), i) == SQLITE_NULL) return std::nullopt;
    return sqlite3_column_int64(rows.get(), i);
  };
  int rc;
  while ((rc = sqlite3_step(rows.get())) == SQLITE_ROW) {
    auto reg_ms = col(2);
    take(col(0), col(1), reg_ms ? std::optional<std::int64_t>(*reg_ms * 1000000) : std::nullopt);
  }
  if (rc != SQLITE_DONE) throw std::runtime_error(file + ": " + sqlite3_errmsg(db.get()));
}

// ---- the run ------------------------------------------------------------------

struct Latest {
  std::uint64_t received = 0, stored = 0, duplicates = 0, rejected = 0, pending = 0, ignored = 0;
  std::uint64_t spooled = 0, unspooled = 0, spool_bytes = 0, retries = 0, queue_depth = 0, queue_high_water = 0;
  bool store_ok = true;
  bool seen = false;
  std::string line;
};

struct Outage {
  double start_s = 0;  // stop requested (SIGTERM: the store finishes what it is doing first)
  double down_s = 0;   // the store process has exited
  double end_s = 0;    // store accepting connections again
};

struct Run {
  Config cfg;
  std::size_t capacity = 0;
  std::unique_ptr<std::atomic<std::int64_t>[]> publish_ns;  // per seq; 0 = not published
  std::unique_ptr<std::atomic<std::int64_t>[]> stored_ns;   // per seq; 0 = not yet stored
  std::atomic<std::uint64_t> sent{0};                       // publish() calls that returned
  std::atomic<std::uint64_t> acked{0};                      // PUBACKs
  std::atomic<std::uint64_t> publish_errors{0};
  std::atomic<bool> outage_now{false};
  std::int64_t t0_ns = 0;

  std::mutex mu;
  Latest latest;
  std::vector<double> bucket_ms;  // latencies of readings confirmed since the last row
  std::vector<Outage> outages;
};

void tail_stats(Run& run, const fs::path& log, std::stop_token stop) {
  std::ifstream in;
  std::string partial;
  std::uint64_t next = 0;  // first seq not yet known stored
  std::vector<char> buf(1 << 16);
  while (true) {
    if (!in.is_open()) {
      in.open(log, std::ios::binary);
      if (!in.is_open()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
    }
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    auto n = in.gcount();
    if (n <= 0) {
      in.clear();
      if (stop.stop_requested()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    partial.append(buf.data(), static_cast<std::size_t>(n));
    std::size_t pos;
    while ((pos = partial.find('\n')) != std::string::npos) {
      std::string line = partial.substr(0, pos);
      partial.erase(0, pos + 1);
      if (line.rfind("{\"received\":", 0) != 0) continue;
      std::int64_t t = now_ns();
      Latest l;
      l.seen = true;
      l.received = json_uint(line, "received").value_or(0);
      l.stored = json_uint(line, "stored").value_or(0);
      l.duplicates = json_uint(line, "duplicates").value_or(0);
      l.rejected = json_uint(line, "rejected").value_or(0);
      l.pending = json_uint(line, "pending").value_or(0);
      l.ignored = json_uint(line, "ignored").value_or(0);
      l.spooled = json_uint(line, "spooled").value_or(0);
      l.unspooled = json_uint(line, "unspooled").value_or(0);
      l.spool_bytes = json_uint(line, "spool_bytes").value_or(0);
      l.retries = json_uint(line, "retries").value_or(0);
      l.queue_depth = json_uint(line, "queue_depth").value_or(0);
      l.queue_high_water = json_uint(line, "queue_high_water").value_or(0);
      l.store_ok = json_true(line, "store_ok");
      l.line = line;
      std::uint64_t distinct = l.stored;
      distinct = std::min<std::uint64_t>(distinct, run.sent.load());
      distinct = std::min<std::uint64_t>(distinct, run.capacity);
      std::vector<double> lat;
      for (; next < distinct; ++next) {
        std::int64_t p = run.publish_ns[next].load(std::memory_order_acquire);
        run.stored_ns[next].store(t, std::memory_order_release);
        if (p > 0) lat.push_back(static_cast<double>(t - p) / 1e6);
      }
      std::lock_guard lock(run.mu);
      run.latest = std::move(l);
      run.bucket_ms.insert(run.bucket_ms.end(), lat.begin(), lat.end());
    }
  }
}

void publish_loop(Run& run, int port, std::stop_token stop) {
  mqtt::Options o;
  o.host = "127.0.0.1";
  o.port = port;
  o.client_id = "iotbridge-soak-publisher";
  o.max_inflight = 100;
  o.max_queued = 10000;
  auto client = mqtt::make_mosquitto_client(o);
  client->on_publish([&run](const mqtt::PublishResult& r) {
    if (r.reason_code < 0x80) run.acked.fetch_add(1);
  });
  client->connect();
  client->loop_start();
  const double period_ns = 1e9 / run.cfg.rate;
  const auto start_steady = Steady::now();
  std::uint64_t seq = 0;
  std::vector<std::string> topics;
  for (int d = 0; d < run.cfg.devices; ++d) topics.push_back("iot/soak/dev" + std::to_string(d) + "/reading");
  while (!stop.stop_requested() && seq < run.capacity) {
    auto due = start_steady + std::chrono::nanoseconds(static_cast<std::int64_t>(static_cast<double>(seq) * period_ns));
    if (Steady::now() < due) std::this_thread::sleep_until(due);
    std::int64_t t = now_ns();
    run.publish_ns[seq].store(t, std::memory_order_release);
    std::string payload = "{\"seq\":" + std::to_string(seq) + ",\"t\":" + std::to_string(t) + "}";
    try {
      client->publish(topics[seq % topics.size()], payload, 1);
      run.sent.store(seq + 1);
    } catch (const Error& e) {
      // Not published: the seq is taken back (the next publish reuses it).
      run.publish_ns[seq].store(0);
      run.publish_errors.fetch_add(1);
      std::cerr << "soak: publish failed: " << e.what() << '\n';
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    ++seq;
  }
  // Every PUBACK before disconnecting (the broker has them all then).
  auto deadline = Steady::now() + std::chrono::seconds(60);
  while (run.acked.load() < run.sent.load() && Steady::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  client->disconnect();
  client->loop_stop();
}

void usage() {
  std::cerr << "usage: iotbridge_soak [options]   (bench/README.md, \"Soak\")\n"
               "  --minutes M          publishing time (default 10)\n"
               "  --rate R             QoS 1 messages per second (default 2000)\n"
               "  --devices D          topics iot/soak/devN/reading (default 8)\n"
               "  --store mongodb|sqlite  FerretDB of its own, or an SQLite file (default mongodb)\n"
               "  --outage-seconds S   store stopped this long once a minute, mongodb only; 0: none (default 10)\n"
               "  --outage-at S        second of each minute the outage starts (default 25)\n"
               "  --recorder lib|cli   record::Recorder child, or iotbridge-sub --store (default lib)\n"
               "  --spill N            lib: spill_threshold (default 5000)\n"
               "  --sub PATH           the iotbridge-sub binary (default: this build tree's)\n"
               "  --csv PATH           one row per second (default soak.csv; outages in PATH.outages)\n"
               "  --summary PATH       the final table (Markdown)\n"
               "  --drain-timeout S    wait this long for the backlog after publishing (default 300)\n"
               "  --no-verify          skip reading the store back\n"
               "  --verify-api         read FerretDB back through find() (slow) instead of its SQLite file\n";
}

int soak_main(const Config& cfg) {
  Run run;
  run.cfg = cfg;
  run.capacity = static_cast<std::size_t>(cfg.minutes * 60 * cfg.rate * 1.05) + 1000;
  run.publish_ns.reset(new std::atomic<std::int64_t>[run.capacity]);
  run.stored_ns.reset(new std::atomic<std::int64_t>[run.capacity]);
  for (std::size_t i = 0; i < run.capacity; ++i) {
    run.publish_ns[i].store(0);
    run.stored_ns[i].store(0);
  }
  const bool mongo = cfg.store == "mongodb";
  const bool outages = mongo && cfg.outage_seconds > 0;

  // Ctrl-C / SIGTERM end the run early, through the normal end (servers
  // stopped, temporary folders removed).
  ShutdownSignal shutdown;
  auto interrupted = shutdown.token();
  test::TempDir work("iotbridge-soak");
  test::MosquittoServer broker;
  std::unique_ptr<test::MongoServer> ferret;
  std::string uri;
  if (mongo) {
    ferret = std::make_unique<test::MongoServer>();
    uri = ferret->uri();
  } else {
    uri = "sqlite:" + (work / "soak.db").string();
  }
  const fs::path spool = work / "spool";
  const fs::path log = work / "recorder.log";
  std::vector<std::string> argv;
  if (cfg.recorder == "cli") {
    argv = {cfg.sub,
            "-h",
            "127.0.0.1",
            "-p",
            std::to_string(broker.port()),
            "-q",
            "1",
            "-t",
            kFilter,
            "--store",
            uri,
            "--db",
            kDatabase,
            "--collection",
            kCollection,
            "--spool",
            spool.string(),
            "--stats-interval",
            "0.05",
            "--stats-json"};
  } else {
    argv = {fs::read_symlink("/proc/self/exe").string(),
            "--child-record",
            "--port",
            std::to_string(broker.port()),
            "--store",
            uri,
            "--spool",
            spool.string(),
            "--spill",
            std::to_string(cfg.spill)};
  }
  std::printf("soak: broker 127.0.0.1:%d, store %s, recorder %s (%s), %d msg/s QoS 1 over %d topics, %.1f min\n",
              broker.port(), uri.c_str(), cfg.recorder.c_str(), argv[0].c_str(), cfg.rate, cfg.devices, cfg.minutes);
  test::Process recorder(argv, log);

  std::jthread tail([&](std::stop_token st) { tail_stats(run, log, st); });
  // Ready: the first counter line comes after the SUBACK.
  for (auto deadline = Steady::now() + std::chrono::seconds(30);;
       std::this_thread::sleep_for(std::chrono::milliseconds(10))) {
    {
      std::lock_guard lock(run.mu);
      if (run.latest.seen) break;
    }
    if (!recorder.alive() || Steady::now() > deadline) {
      std::ifstream in(log);
      std::cerr << "soak: the recorder did not start:\n" << in.rdbuf() << '\n';
      return 1;
    }
  }

  std::ofstream csv(cfg.csv);
  csv << "t_s,published,acked,stored,received,pub_rate,stored_rate,lat_p50_ms,lat_p99_ms,rss_kb,"
         "disk_spool_bytes,disk_wal_bytes,spool_bytes,queue_depth,pending,spooled,retries,store_ok,outage,load1\n";

  const auto t0 = Steady::now();
  run.t0_ns = now_ns();
  auto secs = [&] { return std::chrono::duration<double>(Steady::now() - t0).count(); };
  const double duration = cfg.minutes * 60;

  std::jthread publisher([&](std::stop_token st) { publish_loop(run, broker.port(), st); });
  std::jthread chaos;
  if (outages) {
    chaos = std::jthread([&](std::stop_token st) {
      auto over = [&] { return st.stop_requested() || interrupted.stop_requested(); };
      for (int m = 0; m * 60 + cfg.outage_at < duration && !over(); ++m) {
        auto at =
            t0 + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(m * 60 + cfg.outage_at));
        while (Steady::now() < at && !over()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        if (over()) break;
        Outage o;
        o.start_s = secs();
        run.outage_now = true;
        ferret->stop();
        o.down_s = secs();
        auto back =
            at + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(cfg.outage_seconds));
        while (Steady::now() < back) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        ferret->start();
        o.end_s = secs();
        run.outage_now = false;
        std::printf("soak: store outage %.1f s (down %.1f s) .. %.1f s\n", o.start_s, o.down_s, o.end_s);
        std::lock_guard lock(run.mu);
        run.outages.push_back(o);
      }
      // The store process belongs to this thread: Process sets
      // PR_SET_PDEATHSIG, which fires when the forking *thread* exits, so
      // returning now would SIGKILL the restarted store.
      while (!st.stop_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    });
  }

  double load_min = 1e9, load_max = 0;
  std::uint64_t peak_stored_rate = 0;  // catching up after an outage
  std::vector<long> rss_series;
  std::vector<double> rss_t;
  std::uint64_t last_sent = 0, last_distinct = 0;
  bool publishing = true;
  bool drained = false;
  int row = 0;
  bool recorder_died = false;
  for (;;) {
    ++row;
    auto due = t0 + std::chrono::seconds(row);
    std::this_thread::sleep_until(due);
    double t = secs();
    if (publishing && (t >= duration || interrupted.stop_requested())) {
      publisher.request_stop();
      publisher.join();
      publishing = false;
    }
    Latest l;
    std::vector<double> bucket;
    {
      std::lock_guard lock(run.mu);
      l = run.latest;
      bucket.swap(run.bucket_ms);
    }
    long rss = rss_kb(recorder.pid());
    double load = load1();
    if (!std::isnan(load)) {
      load_min = std::min(load_min, load);
      load_max = std::max(load_max, load);
    }
    if (rss > 0) {
      rss_series.push_back(rss);
      rss_t.push_back(t);
    }
    std::uint64_t sent = run.sent.load();
    std::uint64_t distinct = l.stored;
    csv << row << ',' << sent << ',' << run.acked.load() << ',' << distinct << ',' << l.received << ','
        << (sent - last_sent) << ',' << (distinct - std::min(distinct, last_distinct)) << ','
        << fmt_num(percentile(bucket, 50), 2) << ',' << fmt_num(percentile(bucket, 99), 2) << ',' << rss << ','
        << dir_bytes(spool / "spool") << ',' << dir_bytes(spool / "wal") << ',' << l.spool_bytes << ',' << l.queue_depth
        << ',' << l.pending << ',' << l.spooled << ',' << l.retries << ',' << (l.store_ok ? 1 : 0) << ','
        << (run.outage_now.load() ? 1 : 0) << ',' << fmt_num(load, 2) << '\n';
    csv.flush();
    if (row % 10 == 0 || !publishing)
      std::printf("soak: %4d s sent %llu stored %llu q %llu pend %llu spool %llu B rss %ld kB%s\n", row,
                  static_cast<unsigned long long>(sent), static_cast<unsigned long long>(distinct),
                  static_cast<unsigned long long>(l.queue_depth), static_cast<unsigned long long>(l.pending),
                  static_cast<unsigned long long>(l.spool_bytes), rss, l.store_ok ? "" : " store FAILING");
    std::fflush(stdout);
    peak_stored_rate = std::max(peak_stored_rate, distinct - std::min(distinct, last_distinct));
    last_sent = sent;
    last_distinct = distinct;
    if (!recorder.alive()) {
      recorder_died = true;
      std::fprintf(stderr, "soak: the recorder process died at %.1f s\n", t);
      break;
    }
    if (!publishing) {
      if (distinct >= run.sent.load() && l.pending == 0 && run.acked.load() == run.sent.load()) {
        drained = true;
        break;
      }
      if (t > duration + cfg.drain_timeout || interrupted.stop_requested()) break;
    }
  }
  const double end_publish = duration;
  const double drained_at = secs();
  if (publisher.joinable()) {
    publisher.request_stop();
    publisher.join();
  }
  int status = recorder.terminate(std::chrono::seconds(30));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  tail.request_stop();
  tail.join();
  Latest final_stats;
  {
    std::lock_guard lock(run.mu);
    final_stats = run.latest;
  }
  // The child's final counters (stdout, same log): the last JSON line.
  {
    std::ifstream in(log);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("{\"received\":", 0) == 0) final_stats.line = line;
  }
  const std::uint64_t published = run.acked.load();
  const std::uint64_t sent = run.sent.load();

  // ---- what the store holds ----
  std::uint64_t in_store = 0, distinct_seqs = 0, dup_docs = 0, missing = 0, foreign = 0;
  // Documents in natural (insertion) order whose seq is below one inserted
  // before them: 0 means the store took the readings in publish order, which
  // is what the latency mapping assumes.
  std::uint64_t out_of_order = 0;
  std::int64_t max_seq = -1;
  std::vector<double> accept_ms;
  std::string verify_error;
  std::vector<std::uint8_t> seen(cfg.verify ? sent : 0, 0);
  const auto verify_start = Steady::now();
  // One stored document: its seq, its publish time, its reg_date (ns).
  auto take = [&](std::optional<std::int64_t> seq, std::optional<std::int64_t> t, std::optional<std::int64_t> reg_ns) {
    ++in_store;
    if (!seq || *seq < 0 || static_cast<std::uint64_t>(*seq) >= sent) {
      ++foreign;
      return;
    }
    if (*seq < max_seq) ++out_of_order;
    max_seq = std::max(max_seq, *seq);
    if (seen[static_cast<std::size_t>(*seq)]++) {
      ++dup_docs;
      return;
    }
    if (reg_ns && t) accept_ms.push_back(static_cast<double>(*reg_ns - *t) / 1e6);
  };
  std::string verify_how;
  if (cfg.verify) try {
      accept_ms.reserve(sent);
      if (mongo && !cfg.verify_api) {
        // FerretDB serves a full find at a few thousand documents per second
        // here (and counts through an aggregation that holds the whole
        // collection in memory), so with FerretDB stopped its SQLite file is
        // read directly: one row per document, in insertion (rowid) order.
        verify_how = "FerretDB's SQLite file, FerretDB stopped";
        std::string data = ferret_data_dir(ferret->pid());
        ferret->stop();
        read_ferretdb_file(data + "/" + kDatabase + ".sqlite", kCollection, take);
      } else {
        // Every document once, in natural order, through the store API.
        verify_how = "find() through the store API";
        auto store = store::open_store(uri);
        auto coll = store->collection(kDatabase, kCollection);
        store::FindOptions fo;
        fo.projection = store::Document::from_json(R"({"_id":0,"value":1,"reg_date":1})");
        auto cursor = coll->find(store::Document(), fo);
        while (auto doc = cursor->next()) {
          std::optional<std::int64_t> reg_ns;
          if (auto reg = doc->get_datetime("reg_date"))
            reg_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(reg->time_point().time_since_epoch()).count();
          take(doc->get_int64("value.seq"), doc->get_int64("value.t"), reg_ns);
        }
      }
      for (auto s : seen)
        if (s) ++distinct_seqs;
      missing = sent - distinct_seqs;
    } catch (const std::exception& e) {
      verify_error = e.what();
      std::fprintf(stderr, "soak: reading the store back failed: %s\n", e.what());
    }
  const double verify_seconds = std::chrono::duration<double>(Steady::now() - verify_start).count();

  // The store restarted by the chaos thread lives as long as that thread.
  if (chaos.joinable()) {
    chaos.request_stop();
    chaos.join();
  }

  // ---- latency, overall and away from the outages ----
  std::vector<Outage> outs;
  {
    std::lock_guard lock(run.mu);
    outs = run.outages;
  }
  // An outage disturbs readings from its start until the backlog it caused is
  // stored: the moment the last reading published before the store came back
  // is confirmed.
  std::vector<std::pair<std::int64_t, std::int64_t>> disturbed;
  for (const auto& o : outs) {
    std::int64_t s = run.t0_ns + static_cast<std::int64_t>(o.start_s * 1e9);
    std::int64_t e = run.t0_ns + static_cast<std::int64_t>(o.end_s * 1e9);
    std::int64_t drain = e;
    for (std::size_t i = 0; i < sent; ++i) {
      std::int64_t p = run.publish_ns[i].load();
      if (p >= e) break;
      drain = std::max(drain, run.stored_ns[i].load());
    }
    disturbed.emplace_back(s, drain);
  }
  std::vector<double> all_ms, steady_ms;
  all_ms.reserve(sent);
  std::uint64_t unconfirmed = 0;
  for (std::size_t i = 0; i < sent; ++i) {
    std::int64_t p = run.publish_ns[i].load(), s = run.stored_ns[i].load();
    if (s == 0 || p == 0) {
      ++unconfirmed;
      continue;
    }
    double ms = static_cast<double>(s - p) / 1e6;
    all_ms.push_back(ms);
    bool hit = false;
    for (auto [a, b] : disturbed)
      if (p < b && s > a) hit = true;
    if (!hit) steady_ms.push_back(ms);
  }

  // ---- RSS ----
  auto slope = [](const std::vector<double>& x, const std::vector<long>& y, double from) {
    double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (x[i] < from) continue;
      double yy = static_cast<double>(y[i]) / 1024.0;
      n += 1;
      sx += x[i];
      sy += yy;
      sxx += x[i] * x[i];
      sxy += x[i] * yy;
    }
    if (n < 3) return static_cast<double>(NAN);
    return (n * sxy - sx * sy) / (n * sxx - sx * sx) * 60.0;  // MB per minute
  };
  long rss_min = rss_series.empty() ? 0 : *std::min_element(rss_series.begin(), rss_series.end());
  long rss_max = rss_series.empty() ? 0 : *std::max_element(rss_series.begin(), rss_series.end());
  long rss_first = rss_series.empty() ? 0 : rss_series.front();
  long rss_last = rss_series.empty() ? 0 : rss_series.back();
  double rss_slope_all = slope(rss_t, rss_series, 0);
  double rss_slope_2nd = slope(rss_t, rss_series, duration / 2);

  const std::uint64_t reported = final_stats.line.empty() ? 0
                                                          : json_uint(final_stats.line, "rejected").value_or(0) +
                                                                json_uint(final_stats.line, "pending").value_or(0) +
                                                                json_uint(final_stats.line, "ignored").value_or(0);
  const bool exact = cfg.verify ? verify_error.empty() && (distinct_seqs + reported == published &&
                                                           missing == reported && published == sent)
                                : (final_stats.stored + reported == published);
  std::ostringstream s;
  s << "| measure | value |\n|---|---|\n";
  s << "| run | " << fmt_num(cfg.minutes, 1) << " min at " << cfg.rate << " msg/s QoS 1 over " << cfg.devices
    << " topics, store " << cfg.store << ", recorder " << cfg.recorder
    << (cfg.recorder == "lib" ? " (spill_threshold " + std::to_string(cfg.spill) + ")" : "") << " |\n";
  s << "| store outages | " << outs.size() << " x ~" << fmt_num(cfg.outage_seconds, 0) << " s (measured:";
  for (const auto& o : outs) s << ' ' << fmt_num(o.end_s - o.start_s, 1);
  s << " s from the stop request; down";
  for (const auto& o : outs) s << ' ' << fmt_num(o.end_s - o.down_s, 1);
  s << " s) |\n";
  s << "| published (PUBACKed) | " << published << " (publish() calls " << sent << ", errors "
    << run.publish_errors.load() << ") |\n";
  s << "| stored (distinct seqs in the store) | " << distinct_seqs << " (documents " << in_store << ") |\n";
  s << "| duplicates in the store / foreign docs | " << dup_docs << " / " << foreign << " |\n";
  if (cfg.verify)
    s << "| read back | "
      << (verify_error.empty() ? "all documents, " + verify_how + ", in " + fmt_num(verify_seconds, 0) + " s"
                               : "FAILED: " + verify_error)
      << " |\n";
  s << "| missing seqs | " << missing << " |\n";
  s << "| documents out of publish order (natural order) | " << out_of_order << " |\n";
  s << "| reported by the recorder (rejected + pending + ignored) | " << reported << " |\n";
  s << "| accounting published = stored + reported | " << (exact ? "exact" : "NOT exact") << " |\n";
  s << "| recorder counters at exit | received " << json_uint(final_stats.line, "received").value_or(0) << ", stored "
    << json_uint(final_stats.line, "stored").value_or(0) << ", duplicates "
    << json_uint(final_stats.line, "duplicates").value_or(0) << ", spooled "
    << json_uint(final_stats.line, "spooled").value_or(0) << ", unspooled "
    << json_uint(final_stats.line, "unspooled").value_or(0) << ", retries "
    << json_uint(final_stats.line, "retries").value_or(0) << ", queue high water "
    << json_uint(final_stats.line, "queue_high_water").value_or(0) << " |\n";
  s << "| throughput (stored / (last stored - first publish)) | "
    << fmt_num(static_cast<double>(distinct_seqs ? distinct_seqs : published) / std::max(1.0, drained_at), 0)
    << " msg/s; publishing " << fmt_num(end_publish, 0) << " s, all stored at " << fmt_num(drained_at, 1) << " s"
    << (drained ? "" : " (NOT drained)") << " |\n";
  s << "| peak stored rate (one second, catching up after an outage) | " << peak_stored_rate << " readings/s |\n";
  s << "| publish-to-stored p50 / p99 / max, all | " << fmt_num(percentile(all_ms, 50)) << " / "
    << fmt_num(percentile(all_ms, 99)) << " / " << fmt_num(percentile(all_ms, 100)) << " ms (" << all_ms.size()
    << " readings) |\n";
  s << "| publish-to-stored p50 / p99 / max, outside outages | " << fmt_num(percentile(steady_ms, 50)) << " / "
    << fmt_num(percentile(steady_ms, 99)) << " / " << fmt_num(percentile(steady_ms, 100)) << " ms (" << steady_ms.size()
    << " readings) |\n";
  if (cfg.verify)
    s << "| publish-to-accepted (reg_date - t) p50 / p99 | " << fmt_num(percentile(accept_ms, 50), 2) << " / "
      << fmt_num(percentile(accept_ms, 99), 2) << " ms |\n";
  s << "| recorder RSS first / min / max / last | " << fmt_num(rss_first / 1024.0) << " / " << fmt_num(rss_min / 1024.0)
    << " / " << fmt_num(rss_max / 1024.0) << " / " << fmt_num(rss_last / 1024.0) << " MB |\n";
  s << "| RSS slope, whole run / second half | " << fmt_num(rss_slope_all, 2) << " / " << fmt_num(rss_slope_2nd, 2)
    << " MB/min |\n";
  s << "| machine load (1-min average, 2 cores) min / max | " << fmt_num(load_min, 2) << " / " << fmt_num(load_max, 2)
    << " |\n";
  s << "| recorder exit status | " << status << (recorder_died ? " (DIED during the run)" : "") << " |\n";
  std::printf("\n%s", s.str().c_str());
  if (!cfg.summary.empty()) {
    std::ofstream out(cfg.summary);
    out << s.str();
    out << "\noutages_s:";
    for (const auto& o : outs)
      out << ' ' << fmt_num(o.start_s, 2) << '-' << fmt_num(o.end_s, 2) << " (down " << fmt_num(o.down_s, 2) << ')';
    out << "\nunconfirmed_latency_samples: " << unconfirmed << '\n';
  }
  // Outage windows for the plot, next to the CSV.
  {
    std::ofstream out(cfg.csv + ".outages");
    for (const auto& o : outs)
      out << fmt_num(o.start_s, 2) << ',' << fmt_num(o.end_s, 2) << ',' << fmt_num(o.down_s, 2) << '\n';
  }
  if (!exact || recorder_died || !drained) {
    std::ifstream in(log);
    std::string line, tail_lines;
    while (std::getline(in, line))
      if (line.rfind("{\"received\":", 0) != 0) tail_lines += line + "\n";
    std::cerr << "soak: recorder log (non-counter lines):\n" << tail_lines;
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--child-record") return child_record(argc, argv);
  if (argc > 1 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    usage();
    return 0;
  }
  Config cfg;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--minutes")
      cfg.minutes = std::stod(next());
    else if (k == "--rate")
      cfg.rate = std::stoi(next());
    else if (k == "--devices")
      cfg.devices = std::stoi(next());
    else if (k == "--store")
      cfg.store = next();
    else if (k == "--outage-seconds")
      cfg.outage_seconds = std::stod(next());
    else if (k == "--outage-at")
      cfg.outage_at = std::stod(next());
    else if (k == "--recorder")
      cfg.recorder = next();
    else if (k == "--spill")
      cfg.spill = std::stoul(next());
    else if (k == "--csv")
      cfg.csv = next();
    else if (k == "--summary")
      cfg.summary = next();
    else if (k == "--sub")
      cfg.sub = next();
    else if (k == "--drain-timeout")
      cfg.drain_timeout = std::stod(next());
    else if (k == "--verify-api")
      cfg.verify_api = true;
    else if (k == "--no-verify")
      cfg.verify = false;
    else {
      usage();
      return 2;
    }
  }
  if ((cfg.store != "mongodb" && cfg.store != "sqlite") || (cfg.recorder != "cli" && cfg.recorder != "lib") ||
      cfg.rate <= 0 || cfg.devices <= 0 || cfg.minutes <= 0) {
    usage();
    return 2;
  }
  try {
    return soak_main(cfg);
  } catch (const std::exception& e) {
    std::cerr << "soak: " << e.what() << '\n';
    return 1;
  }
}
