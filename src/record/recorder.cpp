// Recorder: start / stop / run, wiring the stages (pipeline.hpp): the MQTT
// client's handlers -> intake -> queue -> writer -> store, with the
// write-ahead journal and the spool on disk.
#include "iotbridge/record/recorder.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>

#include "intake.hpp"
#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/mosquitto.hpp"
#include "iotbridge/store/open.hpp"
#include "iotbridge/topic.hpp"
#include "pipeline.hpp"
#include "spool.hpp"
#include "writer.hpp"

namespace iotbridge::record {

namespace fs = std::filesystem;
using detail::Clock;

namespace {

std::string human_bytes(std::uint64_t n) {
  if (n < 1024 * 1024) return fmt::format("{:.1f} KiB", n / 1024.0);
  return fmt::format("{:.1f} MiB", n / (1024.0 * 1024));
}

// The filters for a message: a hostile one may be 65535 bytes long.
std::string describe_filters(const std::vector<std::string>& filters) {
  std::string out;
  for (const auto& f : filters) {
    if (!out.empty()) out += ", ";
    if (f.size() <= 80)
      out += "'" + f + "'";
    else
      out += fmt::format("'{}...' ({} bytes, {} levels)", f.substr(0, 60), f.size(),
                         std::count(f.begin(), f.end(), '/') + 1);
  }
  return out;
}

// The routes a recorder runs: RecorderOptions::routes, or the single-route
// options as one route named "default".
std::vector<Route> effective_routes(const RecorderOptions& o) {
  if (!o.routes.empty()) {
    if (!o.filters.empty())
      throw Error(ErrorCategory::config,
                  "set either the single-route options (filters) or routes, not both: move the filters into a route");
    return o.routes;
  }
  if (o.filters.empty()) throw Error(ErrorCategory::config, "the recorder needs at least one topic filter");
  if (o.database.empty() || o.collection.empty())
    throw Error(ErrorCategory::config, "database and collection names must not be empty");
  Route r;
  r.filters = o.filters;
  r.database = o.database;
  r.collection = o.collection;
  r.document = o.document;
  return {r};
}

void check_options(const RecorderOptions& o, const std::vector<Route>& routes) {
  for (const auto& r : routes)
    for (const auto& f : r.filters) validate_filter(f);  // Error (topic), as before routes
  validate_routes(routes);
  if (o.qos < 0 || o.qos > 2) throw Error(ErrorCategory::config, "qos must be 0, 1 or 2");
  if (o.batch_size == 0) throw Error(ErrorCategory::config, "batch size must be at least 1");
  if (o.queue_capacity == 0) throw Error(ErrorCategory::config, "queue capacity must be at least 1");
  if (o.flush_interval.count() <= 0) throw Error(ErrorCategory::config, "flush interval must be positive");
  if (o.retry_delay_min.count() <= 0 || o.retry_delay_max < o.retry_delay_min)
    throw Error(ErrorCategory::config, "retry delays must be positive, min <= max");
}

}  // namespace

struct Recorder::Impl {
  explicit Impl(RecorderOptions o)
      : opts(std::move(o)), log(opts.on_log), intake(counters, log, progress, opts.max_messages) {}

  RecorderOptions opts;
  detail::Counters counters;
  detail::Log log;
  detail::Progress progress;

  // Every route set built, the last one in force: readings in flight point
  // into older ones, so none is freed before stop().
  mutable std::mutex routes_mutex;
  std::vector<Route> routes;
  std::vector<std::unique_ptr<detail::RouteSet>> route_sets;

  std::shared_ptr<store::DocumentStore> store;
  std::shared_ptr<mqtt::Client> client;
  bool own_client = false;

  std::unique_ptr<Journal> wal;
  std::unique_ptr<detail::Spool> spool;
  std::unique_ptr<detail::HandOff> queue;
  detail::Intake intake;
  std::unique_ptr<detail::Writer> writer;
  std::unique_ptr<PeriodicTimer> stats_timer;
  std::unique_ptr<PeriodicTimer> expiry_timer;

  // One tick of the recorder's own expiry (routes whose store does not
  // expire documents by itself): small batches, so inserts never wait long,
  // and a bounded number per tick, so one tick never runs for long.
  void expire_tick() {
    static constexpr std::int64_t kBatch = 500;
    static constexpr int kBatchesPerTick = 20;
    for (const auto& route : current_routes()->routes()) {
      if (route->route.expire_after.count() <= 0) continue;
      try {
        if (route->retention.mode() == Retention::Mode::none) {  // the store was down at start
          route->retention = Retention::setup(*store, route->collection, route->route);
          log(route->retention.mode() == Retention::Mode::conflict ? mqtt::LogLevel::warning : mqtt::LogLevel::notice,
              route->retention.message());
        }
        for (int i = 0; i < kBatchesPerTick; ++i)
          if (route->retention.expire_some(kBatch) < kBatch) break;
      } catch (const std::exception& e) {
        log(mqtt::LogLevel::warning, fmt::format("route '{}': removing expired documents failed, trying again: {}",
                                                 route->route.name, e.what()));
      }
    }
  }
  std::atomic<bool> running{false};
  Clock::time_point started_at{};
  std::atomic<std::uint64_t> connects{0};

  const detail::RouteSet* current_routes() const {
    std::lock_guard lock(routes_mutex);
    return route_sets.back().get();
  }
  std::vector<std::string> route_names() const {
    std::lock_guard lock(routes_mutex);
    std::vector<std::string> out;
    for (const auto& r : routes) out.push_back(r.name);
    return out;
  }

  std::vector<mqtt::Subscription> subscriptions(const std::vector<std::string>& filters) {
    std::vector<mqtt::Subscription> subs;
    for (const auto& f : filters)
      subs.push_back(mqtt::Subscription{f, opts.qos, [this, f](const mqtt::Message& m) { intake.accept(f, m); }});
    return subs;
  }

  // Waits for the broker's answer to a subscription; throws Error (mqtt) when
  // it refuses a filter or closes the connection instead of answering.
  void await_subscription(mqtt::SubscribeToken token, const std::vector<std::string>& filters) {
    // A broker that refuses a filter may close the connection instead of
    // answering (Mosquitto does so for filters deeper than 200 levels): that
    // is reported at once, not as a timeout after a reconnect loop.
    auto wait = client->options().connect_timeout;
    auto deadline = Clock::now() + wait;
    bool answered = false;
    while (!(answered = token.wait_for(std::chrono::milliseconds(50))) && Clock::now() < deadline) {
      if (connects.load() > 1 || !counters.connected.load())
        throw Error(ErrorCategory::mqtt,
                    fmt::format("the broker closed the connection instead of answering the subscription to {}; "
                                "it refuses a filter (Mosquitto does so for more than 200 levels) or this client",
                                describe_filters(filters)));
    }
    if (!answered)
      throw Error(ErrorCategory::mqtt,
                  "the broker did not answer the subscription within " + std::to_string(wait.count()) + " ms");
    auto granted = token.granted_qos();
    for (std::size_t i = 0; i < granted.size() && i < filters.size(); ++i) {
      if (mqtt::SubscribeResult::is_failure(granted[i]))
        throw Error(ErrorCategory::mqtt,
                    fmt::format("the broker refused the subscription to {} (code 0x{:02x}); check its ACL",
                                describe_filters({filters[i]}), granted[i]),
                    granted[i]);
    }
  }

  void open_durability() {
    if (opts.spool_dir.empty()) return;
    auto files = opts.fs ? opts.fs : Fs::posix();
    if (auto ec = files->create_directories(opts.spool_dir))
      throw Error(ErrorCategory::io, "cannot create spool folder " + opts.spool_dir.string() + ": " + ec.message(),
                  ec.value());
    auto on_problem = [this](const JournalProblem& problem) {
      // Called under the journal's lock: log only.
      log(mqtt::LogLevel::warning, problem.message);
      log.set_error(problem.message);
    };
    JournalOptions wal_options;
    wal_options.prefix = "wal";
    wal_options.fsync = opts.sync_write_ahead;
    wal_options.fs = files;
    try {
      // The journal's own lock keeps a second recorder out of the folder.
      wal = std::make_unique<Journal>(opts.spool_dir / "wal", wal_options, on_problem);
    } catch (const Error& e) {
      if (e.code() != EWOULDBLOCK) throw;
      throw Error(ErrorCategory::io,
                  "spool folder " + opts.spool_dir.string() +
                      " is in use by another recorder; give each recorder its own folder (--spool DIR)",
                  e.code());
    }
    spool = std::make_unique<detail::Spool>(opts.spool_dir / "spool", opts.spool_max_bytes, on_problem, files);
    const detail::RouteSet* routes = current_routes();
    std::size_t migrated = spool->migrate(*wal, opts.batch_size, log,
                                          [&](const Reading& r) { ++routes->by_name(r.route).counters->replayed; });
    counters.spool_bytes = spool->bytes();
    if (migrated || spool->has_backlog())
      log(mqtt::LogLevel::notice,
          fmt::format("replaying what an earlier run left: {} readings from the write-ahead journal, spool {}",
                      migrated, human_bytes(spool->bytes())));
  }

  // The client may outlive the recorder (a given one): leave no callback of
  // ours in it. Unsubscribing while disconnected only forgets the handlers;
  // a persistent session on the broker keeps its subscriptions.
  void detach_client() {
    if (!client) return;
    try {
      client->on_connect({});
      client->on_disconnect({});
      for (const auto& f : current_routes()->filters()) client->unsubscribe(f);
    } catch (const std::exception& e) {
      log(mqtt::LogLevel::warning, std::string("detaching from the MQTT client: ") + e.what());
    }
  }

  void close_durability() {
    wal.reset();
    spool.reset();
  }

  // Everything start() set up, undone (start() failed).
  void undo_start() {
    intake.close();
    if (client) {
      try {
        client->disconnect();
        client->loop_stop();
      } catch (...) {
      }
      detach_client();
      if (own_client) {
        client.reset();
        own_client = false;
      }
    }
    if (queue) queue->close();
    if (writer) writer->stop();
    writer.reset();
    queue.reset();
    close_durability();
  }
};

Recorder::Recorder(RecorderOptions options, std::shared_ptr<store::DocumentStore> store,
                   std::shared_ptr<mqtt::Client> client)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  auto routes = effective_routes(impl_->opts);
  check_options(impl_->opts, routes);
  impl_->route_sets.push_back(std::make_unique<detail::RouteSet>(routes, impl_->counters));
  impl_->routes = std::move(routes);
  impl_->store = std::move(store);
  impl_->client = std::move(client);
}

Recorder::~Recorder() {
  try {
    stop();
  } catch (...) {
  }
}

const RecorderOptions& Recorder::options() const noexcept { return impl_->opts; }
bool Recorder::running() const noexcept { return impl_->running.load(); }

std::vector<Route> Recorder::routes() const {
  std::lock_guard lock(impl_->routes_mutex);
  return impl_->routes;
}

void Recorder::update_routes(std::vector<Route> routes) {
  Impl& d = *impl_;
  auto set = std::make_unique<detail::RouteSet>(routes, d.counters);  // validates: throws before any change
  const detail::RouteSet* old = d.current_routes();
  if (d.running)
    for (const auto& [level, note] : set->open(*d.store)) d.log(level, note);
  std::vector<std::string> added, removed;
  for (const auto& f : set->filters())
    if (std::find(old->filters().begin(), old->filters().end(), f) == old->filters().end()) added.push_back(f);
  for (const auto& f : old->filters())
    if (std::find(set->filters().begin(), set->filters().end(), f) == set->filters().end()) removed.push_back(f);
  const detail::RouteSet* now = set.get();
  {
    std::lock_guard lock(d.routes_mutex);
    d.route_sets.push_back(std::move(set));
    d.routes = std::move(routes);
  }
  if (!d.running) return;
  // New routes first, then new subscriptions, then the old ones go: a message
  // is always taken by the routes in force when it arrives.
  d.intake.set_routes(now);
  if (!added.empty()) d.await_subscription(d.client->subscribe(d.subscriptions(added)), added);
  for (const auto& f : removed) d.client->unsubscribe(f);
  d.log(mqtt::LogLevel::notice, fmt::format("routes changed: {} routes, {} filters subscribed, {} unsubscribed",
                                            now->routes().size(), added.size(), removed.size()));
}

void Recorder::start() {
  Impl& d = *impl_;
  if (d.running) throw Error(ErrorCategory::config, "the recorder is already running");
  d.started_at = Clock::now();
  try {
    d.open_durability();
    if (!d.store) d.store = store::open_store(d.opts.store_uri);
    if (d.opts.check_store_on_start) d.store->ping();
    {
      std::lock_guard lock(d.routes_mutex);
      for (auto& set : d.route_sets)
        for (const auto& [level, note] : set->open(*d.store)) d.log(level, note);
    }
    d.queue = std::make_unique<detail::HandOff>(d.opts.queue_capacity);
    d.writer = std::make_unique<detail::Writer>(d.opts, d.counters, d.log, d.progress, d.intake, *d.queue, d.wal.get(),
                                                d.spool.get(), [&d] { return d.current_routes(); });
    d.writer->start();

    if (!d.client) {
      d.client = std::shared_ptr<mqtt::Client>(mqtt::make_mosquitto_client(d.opts.mqtt));
      d.own_client = true;
    }
    d.client->on_connect([&d](const mqtt::ConnectResult& r) {
      if (r.reason_code != 0) return;
      d.counters.connected = true;
      if (d.connects.fetch_add(1) > 0)
        d.log(mqtt::LogLevel::notice,
              r.address.empty() ? std::string("reconnected to the broker") : "reconnected to " + r.address);
    });
    d.client->on_disconnect([&d](const mqtt::DisconnectInfo& info) {
      d.counters.connected = false;
      if (info.unexpected) {
        d.log(mqtt::LogLevel::warning, "lost the broker connection (" + info.reason + "); reconnecting");
        d.log.set_error("mqtt: " + info.reason);
      }
    });
    const detail::RouteSet* routes = d.current_routes();
    d.intake.open(d.wal.get(), d.queue.get(), routes);
    auto token = d.client->subscribe(d.subscriptions(routes->filters()));
    if (!d.client->connected()) d.client->connect();  // else: a given client, connected by its owner
    d.counters.connected = true;
    if (d.connects.load() == 0) d.connects = 1;
    d.client->loop_start();
    d.await_subscription(token, routes->filters());
  } catch (...) {
    d.undo_start();
    throw;
  }
  d.running = true;
  if (d.opts.on_stats && d.opts.stats_interval.count() > 0) {
    d.stats_timer = std::make_unique<PeriodicTimer>(d.opts.stats_interval, [this] { impl_->opts.on_stats(stats()); });
    d.stats_timer->start();
  }
  // Retention done by the recorder (SQLite, servers without TTL indexes);
  // every route set is checked on each tick, so a reload needs nothing more.
  d.expiry_timer = std::make_unique<PeriodicTimer>(std::chrono::seconds(1), [&d] { d.expire_tick(); });
  d.expiry_timer->start();
}

void Recorder::stop() {
  Impl& d = *impl_;
  if (!d.running) return;
  if (d.stats_timer) {
    d.stats_timer->stop();
    d.stats_timer.reset();
  }
  if (d.expiry_timer) {
    d.expiry_timer->stop();
    d.expiry_timer.reset();
  }
  // 1. Stop taking messages: the broker keeps what it has not delivered
  //    (persistent session) or drops it (clean session), as MQTT says. A
  //    network thread waiting on a full queue is released first (its reading
  //    stays in the write-ahead journal), so it cannot hold up the disconnect.
  d.intake.release_waiters();
  try {
    d.client->disconnect();
  } catch (const std::exception& e) {
    d.log(mqtt::LogLevel::warning, std::string("disconnect: ") + e.what());
  }
  d.client->loop_stop();
  d.intake.close();
  d.counters.connected = false;
  d.detach_client();
  // 2. Store everything queued; give up only when the store has made no
  //    progress for shutdown_timeout (what is left stays on disk).
  d.queue->close();
  {
    auto settled = [&d] {
      auto s = d.counters.snapshot({});
      return s.stored + s.rejected + s.suppressed + s.quarantined;
    };
    std::unique_lock lk(d.progress.mutex);
    std::uint64_t last = settled();
    auto last_progress = Clock::now();
    while (!d.writer->done()) {
      d.progress.cv.wait_for(lk, std::chrono::milliseconds(50));
      std::uint64_t now = settled();
      if (now != last) {
        last = now;
        last_progress = Clock::now();
      } else if (Clock::now() - last_progress >= d.opts.shutdown_timeout) {
        break;
      }
    }
  }
  d.writer->stop();  // gives up (its stop token) and joins
  RecorderStats s = stats();
  if (s.pending > 0)
    d.log(mqtt::LogLevel::warning,
          fmt::format("{} readings not stored yet (the store is failing); they are kept in {} for the next start",
                      s.pending, d.opts.spool_dir.string()));
  d.writer.reset();
  d.close_durability();
  d.running = false;
  if (d.own_client) {
    d.client.reset();
    d.own_client = false;
  }
}

RecorderStats Recorder::run(std::stop_token stop) {
  Impl& d = *impl_;
  if (!d.running) start();
  {
    std::stop_callback on_stop(stop, [&d] { d.progress.notify(); });
    auto limit = d.intake.limit_reached();
    std::unique_lock lk(d.progress.mutex);
    d.progress.cv.wait(lk, [&] { return stop.stop_requested() || limit.stop_requested(); });
  }
  this->stop();
  return stats();
}

bool Recorder::wait_idle(std::chrono::milliseconds timeout) const {
  Impl& d = *impl_;
  auto deadline = Clock::now() + timeout;
  std::unique_lock lk(d.progress.mutex);
  while (true) {
    auto s = d.counters.snapshot({});
    if (d.writer && d.writer->idle() && s.pending == 0 && (!d.queue || d.queue->size() == 0)) return true;
    if (!d.writer && s.pending == 0) return true;
    if (Clock::now() >= deadline) return false;
    d.progress.cv.wait_until(lk, std::min(deadline, Clock::now() + std::chrono::milliseconds(20)));
  }
}

bool Recorder::wait_received(std::uint64_t count, std::chrono::milliseconds timeout) const {
  Impl& d = *impl_;
  auto deadline = Clock::now() + timeout;
  while (d.counters.snapshot({}).received < count) {
    if (Clock::now() >= deadline) return false;
    std::unique_lock lk(d.progress.mutex);
    d.progress.cv.wait_for(lk, std::chrono::milliseconds(20));
  }
  return true;
}

RecorderStats Recorder::stats() const {
  const Impl& d = *impl_;
  RecorderStats s = d.counters.snapshot(d.route_names());
  if (d.queue) {
    s.queue_depth = d.queue->size();
    s.queue_high_water = d.queue->high_water_mark();
  }
  s.queue_capacity = d.opts.queue_capacity;
  auto c = d.connects.load();
  s.reconnects = c > 0 ? c - 1 : 0;
  s.last_error = d.log.last_error();
  if (d.started_at != Clock::time_point{})
    s.uptime_seconds = std::chrono::duration<double>(Clock::now() - d.started_at).count();
  return s;
}

}  // namespace iotbridge::record
