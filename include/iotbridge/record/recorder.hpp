/// @file
/// Recorder: the main job. Subscribes to MQTT filters and stores every reading
/// as exactly one document (see payload.hpp for the document), in batches,
/// without losing what it accepted when the store, the broker or the process
/// itself goes away for a while.
///
///   network thread:  message -> Reading{_id, reg_date, ...}
///                    -> append to the write-ahead journal (one plain write)
///                    -> bounded queue (blocks only when the queue is full)
///   record worker:   N readings or T ms -> fdatasync the write-ahead journal
///                    -> decode -> insert_many(ignore_duplicate_ids)
///                    -> trim the write-ahead journal through the batch
///                       (at most every 200 ms: a trim is a checkpoint fsync)
///   store failing:   retry with capped exponential backoff, still receiving;
///                    past spill_threshold queued readings, batches go to the
///                    disk spool (checksummed records, fsync per batch) and
///                    come back out, in order, once the store answers again.
///   start:           the spool and then the write-ahead journal left by an
///                    earlier run are stored first (replayed), then messages.
///
/// Exactly once into the store per accepted reading: the _id is fixed when a
/// message is accepted and travels with the reading through the journal and
/// the spool, so a replay or a retry re-inserts the same _id, which
/// insert_many(ignore_duplicate_ids) stores once (counted as a duplicate).
///
/// The one window left: libmosquitto sends the PUBACK of a QoS 1 message before
/// the message reaches the callback (lib/handle_publish.c), so a process killed
/// between those two points loses that message although the broker thinks it
/// was delivered. The window is the time to parse one packet; everything after
/// the journal append survives SIGKILL, and everything the worker has fsynced
/// survives a power loss. QoS 1 redelivery by the broker (after a lost
/// connection) can still store a message twice under two _ids: MQTT 3.1.1
/// gives the recorder nothing to recognise it by.
///
/// Thread-safety: start/stop/run/wait_* are driven by one owning thread;
/// stats() may be called from any thread at any time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "iotbridge/mqtt/client.hpp"
#include "iotbridge/record/fs.hpp"
#include "iotbridge/record/metrics.hpp"
#include "iotbridge/record/payload.hpp"
#include "iotbridge/record/route.hpp"
#include "iotbridge/store/store.hpp"

namespace iotbridge::record {

using LogHandler = std::function<void(mqtt::LogLevel, std::string_view)>;

using StatsHandler = std::function<void(const RecorderStats&)>;

struct RecorderOptions {
  // ---- what to record: routes ----
  /// The streams to record, each into its own collection with its own
  /// decoder and document options (route.hpp). Empty: one route named
  /// "default" made of `filters`, `database`, `collection` and `document`
  /// below (the single-route options). Setting both is an error.
  std::vector<Route> routes;

  // ---- from ----
  /// The filters of the single route; at least one when `routes` is empty.
  /// "$share/{group}/{filter}" splits a stream among recorders of one group
  /// (each message goes to one of them).
  std::vector<std::string> filters;
  int qos = 1;  ///< default 1: subscription QoS (QoS 1 + the journal = nothing lost)
  /// The connection, used when the Recorder makes its own client. For a
  /// persistent session (readings published while the recorder is down are
  /// kept by the broker) set client_id and clean_session = false.
  mqtt::Options mqtt;

  // ---- to ----
  std::string store_uri = "sqlite:iotbridge.db";  ///< default "sqlite:iotbridge.db"; used when no store is given
  std::string database = "iot_service";           ///< single route: default "iot_service"
  std::string collection = "sensors";             ///< single route: default "sensors"
  DocumentOptions document;                       ///< single route: default _id, topic, value, reg_date
  /// Ping the store in start() and throw when it does not answer (so a wrong
  /// URI is reported at once). Outages after start are waited out either way.
  bool check_store_on_start = true;  ///< default true

  /// A reading whose topic + payload exceed this cannot be one document
  /// (MongoDB's limit is 16 MiB): it is rejected and reported, not retried.
  std::size_t max_document_bytes = 16 * 1024 * 1024 - 16 * 1024;  ///< default 16 MiB - 16 KiB

  // ---- batching ----
  std::size_t batch_size = 1000;                  ///< default 1000 documents per insert_many
  std::chrono::milliseconds flush_interval{100};  ///< default 100 ms: a partial batch waits at most this
  /// Readings held in memory between the network thread and the worker. When
  /// full the network thread waits, which slows the broker down (QoS 1 flow
  /// control) instead of dropping anything.
  std::size_t queue_capacity = 100000;  ///< default 100000

  // ---- durability ----
  /// Folder of the write-ahead journal ("wal/") and the disk spool ("spool/"),
  /// created if missing and locked (one recorder per folder). Empty: neither,
  /// readings live only in memory (lost on a crash; the store being down then
  /// fills the queue and slows the intake).
  std::filesystem::path spool_dir = "iotbridge-spool";  ///< default "./iotbridge-spool"
  /// fdatasync the write-ahead journal once per batch (power-loss safety).
  /// Off, it still survives a killed process (the data is in the page cache).
  bool sync_write_ahead = true;  ///< default true
  /// The spool refuses batches past this size (a full disk must not corrupt
  /// it): the intake then slows down as with no spool. 0: no limit. When the
  /// disk itself is full, the write-ahead journal pauses the intake.
  std::uint64_t spool_max_bytes = 0;  ///< default 0: only the disk limits it
  /// The file system of the journal and the spool; null: the real one
  /// (Fs::posix()). Tests wrap it to inject a full disk or a failed fsync.
  std::shared_ptr<Fs> fs = nullptr;

  // ---- the store failing ----
  std::chrono::milliseconds retry_delay_min{100};   ///< default 0.1 s, doubling per failure
  std::chrono::milliseconds retry_delay_max{5000};  ///< default 5 s
  /// While the store fails, queued readings beyond this go to the spool.
  /// 0: half of queue_capacity.
  std::size_t spill_threshold = 0;  ///< default 0: queue_capacity / 2
  /// How long stop() keeps trying a failing store before it leaves the rest
  /// in the journal / spool for the next start (nothing is lost either way).
  std::chrono::milliseconds shutdown_timeout{10000};  ///< default 10 s

  // ---- stopping by itself (iotbridge-sub -C) ----
  /// Make run() return once this many messages were received, then stop()
  /// (which stores everything received). Messages that arrive between the
  /// limit and the disconnect are stored too (received > max_messages): the
  /// client library acknowledged them already, so dropping them would lose
  /// them. 0: no limit.
  std::uint64_t max_messages = 0;  ///< default 0

  // ---- reporting ----
  LogHandler on_log;  ///< default: warnings and errors to stderr
  /// Called every stats_interval on a timer thread (a status line, say).
  StatsHandler on_stats;
  std::chrono::milliseconds stats_interval{0};  ///< default 0: never
};

class Recorder {
 public:
  /// The store (when null, opened from options.store_uri) and the client (when
  /// null, made from options.mqtt with make_mosquitto_client). A given client
  /// is driven by the recorder: it connects it if needed, runs loop_start(),
  /// subscribes, and disconnects it in stop(); do not run its loop yourself.
  /// Does not connect.
  /// @param options  what to record, where to, and how (every field has a default but `filters`)
  /// @param store    a store to write to; null: open_store(options.store_uri) in start()
  /// @param client   an MQTT client to drive; null: make_mosquitto_client(options.mqtt)
  /// @throws Error (config) on inconsistent options (no filter, bad filter,
  ///         qos, batch_size 0, ...) and invalid routes (validate_routes(),
  ///         naming the route and the field)
  explicit Recorder(RecorderOptions options, std::shared_ptr<store::DocumentStore> store = nullptr,
                    std::shared_ptr<mqtt::Client> client = nullptr);
  /// stop() if running.
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  /// Locks and opens the spool folder, replays what an earlier run left,
  /// opens the store (and pings it), connects to the broker and subscribes.
  /// Throws Error: io (spool folder unusable or locked by another recorder),
  /// store (unreachable with check_store_on_start), mqtt (broker unreachable,
  /// refused, subscription refused), topic (bad filter). Leaves nothing
  /// running when it throws.
  void start();

  /// Stops taking messages (disconnects from the broker), stores everything
  /// queued (for up to shutdown_timeout while the store fails; what is left
  /// stays in the journal and spool for the next start), closes. Idempotent.
  void stop();

  /// start() unless running already (start() first, to report "subscribed"
  /// before the wait); waits until `stop` is requested (ShutdownSignal::token()) or
  /// max_messages were accepted and stored; stop().
  /// @param stop  ends the run when requested (Ctrl-C / SIGTERM through ShutdownSignal)
  /// @return the final stats: `pending == 0` when everything accepted was stored
  /// @throws Error as start() does; nothing once running
  RecorderStats run(std::stop_token stop);

  /// Waits until every accepted reading is confirmed by the store (pending is
  /// 0 and the queue is empty). False on timeout. For tests and tools.
  bool wait_idle(std::chrono::milliseconds timeout) const;
  /// Waits until `received` reaches `count`. False on timeout.
  bool wait_received(std::uint64_t count, std::chrono::milliseconds timeout) const;

  /// Replaces the routes of a running (or stopped) recorder, for a reload:
  /// validated first (throws Error (config) and changes nothing when they are
  /// invalid). The subscriptions change to the new filters; a reading
  /// accepted before the call is stored by the route it was accepted for (or,
  /// when no new route has its name, by the first new route), once; readings
  /// accepted after it follow the new routes.
  void update_routes(std::vector<Route> routes);
  /// The routes in use (the single-route options as one route when
  /// RecorderOptions::routes was empty).
  std::vector<Route> routes() const;

  bool running() const noexcept;
  RecorderStats stats() const;
  const RecorderOptions& options() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace iotbridge::record
