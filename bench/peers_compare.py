#!/usr/bin/python3
"""MQTT into a store on two cores: iotbridge against Telegraf and the tutorials' way.

One Mosquitto on a free loopback port, one stream of N QoS 1 readings published
by `iotbridge-pub -l -q 1`, and in turn, each on a fresh database, each of these
consumers (interleaved rounds):

  broker                   mosquitto_sub -q 1 -C N > /dev/null: the broker's own
                           delivery rate, the reference (stores nothing)
  sub-sqlite, sub-ferretdb iotbridge-sub --store (defaults: batch 1000, 100 ms,
                           write-ahead journal fdatasynced per batch)
  recorder-sqlite, -ferretdb
                           iotbridge-recorder --config FILE (when it is built)
  telegraf-*               Telegraf inputs.mqtt_consumer -> outputs.mongodb /
                           outputs.sql (SQLite): with its defaults, and with the
                           settings that gave it the best throughput (-tuned)
  tutorial-ferretdb        paho-mqtt + PyMongo, one insert_one per message

The clock runs from the start of the publisher to the moment the store holds
N readings, polled on the store's SQLite file (max(rowid), a few microseconds)
every 0.2 s, every 10 ms once the end is near. Per row: readings/s,
stored/N (an exact count after the consumer stopped), peak RSS (VmHWM) and CPU
seconds (user + sys) of the consumer at that moment, the CPU of the store
server (FerretDB) and of the broker, the load average, and where the limit was.

  /usr/bin/python3 bench/peers_compare.py --quick            # N=20k, 1 round
  /usr/bin/python3 bench/peers_compare.py --n 100000 --rounds 3 --out r.json --chart c.png
  /usr/bin/python3 bench/peers_compare.py --from r.json --chart c.png   # re-render

Needs: build/dev/cli/iotbridge-{pub,sub,db} (cmake --build build/dev --target
...), mosquitto, mosquitto_sub, scripts/build-ferretdb, scripts/build-telegraf,
python3-paho-mqtt, python3-pymongo; python3-matplotlib for --chart.
Details and results: docs/benchmarks.md.
"""
import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
from record_compare import free_port, wait_port  # noqa: E402  (the recorder benchmark's port helpers)
TOPIC = "iot/bench/dev1/temp"
FILTER = "iot/bench/#"
TICK = os.sysconf("SC_CLK_TCK")

# The tutorials' recorder: subscribe, one insert_one per message, nothing else.
TUTORIAL_RECORDER = r'''
import datetime, sys
import paho.mqtt.client as mqtt
from pymongo import MongoClient

port, uri, db, client_id, topic = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
sensors = MongoClient(uri)[db]["sensors"]

def on_connect(client, userdata, flags, rc):
    client.subscribe(topic, qos=1)

def on_message(client, userdata, msg):
    sensors.insert_one({"topic": msg.topic, "value": float(msg.payload),
                        "reg_date": datetime.datetime.now(datetime.timezone.utc)})

client = mqtt.Client(client_id=client_id)
client.on_connect = on_connect
client.on_message = on_message
client.connect("127.0.0.1", port)
client.loop_forever()
'''

TELEGRAF_INPUT = '''
[[inputs.mqtt_consumer]]
  servers = ["tcp://127.0.0.1:{port}"]
  topics = ["{filter}"]
  qos = 1
  client_id = "{client_id}"
  data_format = "value"
  data_type = "float"
'''
# Tried at N=20k into both stores (docs/benchmarks.md): these gave the best rate.
TELEGRAF_TUNED_AGENT = '''
[agent]
  metric_batch_size = 5000
  metric_buffer_limit = 1000000
  flush_interval = "1s"
  flush_jitter = "0s"
  omit_hostname = true
'''
TELEGRAF_TUNED_INPUT = '''  max_undelivered_messages = 10000
'''


def proc_cpu(pid):
    """user + sys CPU seconds of a live process (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def stop(p, timeout=30):
    """SIGTERM, then SIGKILL after timeout; by PID only (servers we started)."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class Waiter(threading.Thread):
    """The only reaper of one child: keeps its exit time and rusage (CPU)."""

    def __init__(self, p):
        super().__init__(daemon=True)
        self.p, self.end, self.cpu, self.code = p, None, None, None
        self.start()

    def run(self):
        _, status, ru = os.wait4(self.p.pid, 0)
        self.cpu = ru.ru_utime + ru.ru_stime
        self.code = os.waitstatus_to_exitcode(status)
        self.p.returncode = self.code
        self.end = time.monotonic()

    def alive(self):
        return self.end is None

    def stop(self, timeout=30):
        """SIGTERM, then SIGKILL after timeout."""
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            self.join(timeout)
        if self.alive():
            self.p.kill()
            self.join()


class SqliteCounter:
    """Counts the rows of one table of an SQLite file that someone else writes
    (WAL or rollback journal), cheaply: max(rowid) while polling (rows are only
    appended), count(*) for the final check. `table` is a name or a callable
    that finds it (None until the table exists)."""

    def __init__(self, path, table):
        self.path, self.table, self.conn, self.name = path, table, None, None

    def _ready(self):
        if self.name:
            return True
        if not os.path.exists(self.path):
            return False
        try:
            if self.conn is None:
                self.conn = sqlite3.connect("file:%s?mode=ro" % self.path, uri=True, timeout=5,
                                            isolation_level=None, check_same_thread=False)
            self.name = self.table(self.conn) if callable(self.table) else self._exists(self.table)
        except sqlite3.Error:
            self.name = None
        return bool(self.name)

    def _exists(self, name):
        row = self.conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
        return row[0] if row else None

    def poll(self):
        if not self._ready():
            return 0
        try:
            return self.conn.execute('SELECT max(rowid) FROM "%s"' % self.name).fetchone()[0] or 0
        except sqlite3.Error:
            return 0

    def exact(self):
        if not self._ready():
            return 0
        return self.conn.execute('SELECT count(*) FROM "%s"' % self.name).fetchone()[0]

    def sample(self):
        if not self._ready():
            return None
        cur = self.conn.execute('SELECT * FROM "%s" LIMIT 1' % self.name)
        row = cur.fetchone()
        return dict(zip([c[0] for c in cur.description], row)) if row else None

    def close(self):
        if self.conn:
            self.conn.close()


def ferret_table(coll):
    """FerretDB 1.x (SQLite backend) keeps collection -> table in _ferretdb_collections."""
    def find(conn):
        row = conn.execute("SELECT table_name FROM _ferretdb_collections WHERE name=?", (coll,)).fetchone()
        return row[0] if row else None
    return find


class Env:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="iotbridge-peers-")
        self.cli = os.path.join(args.build, "cli")
        self.serial = 0
        self.broker = self.ferret = None
        self.start_broker()
        if any(r.store == "ferretdb" for r in args.plan):
            self.start_ferretdb()

    def next_id(self, prefix):
        self.serial += 1
        return "%s-%d" % (prefix, self.serial)

    def start_broker(self):
        self.port = free_port()
        conf = os.path.join(self.tmp, "mosquitto.conf")
        self.broker_log = os.path.join(self.tmp, "mosquitto.log")
        # max_queued_messages: Telegraf and the tutorials' recorder fall far behind
        # the publisher; at the default 1000 the broker would drop the rest of
        # their QoS 1 backlog ("Outgoing messages are being dropped").
        # max_inflight_messages stays at its default, 20. log_type subscribe tells
        # us when a consumer is subscribed.
        with open(conf, "w") as f:
            # As root, mosquitto would switch to user "mosquitto", who cannot read our temp dir.
            f.write("user root\n" if os.geteuid() == 0 else "")
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages %d\nlog_dest stderr\nlog_type error\nlog_type warning\n"
                    "log_type subscribe\n" % (self.port, max(2000000, 2 * self.args.n_max)))
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.broker = subprocess.Popen([binary, "-c", conf], stdout=subprocess.DEVNULL,
                                       stderr=open(self.broker_log, "w"))
        if not wait_port(self.port):
            sys.exit("peers_compare: mosquitto did not start on 127.0.0.1:%d" % self.port)

    def start_ferretdb(self):
        self.fport = free_port()
        self.fdir = os.path.join(self.tmp, "ferretdb")
        os.makedirs(os.path.join(self.fdir, "data"))
        self.ferret = subprocess.Popen(
            [self.args.ferretdb, "--handler=sqlite", "--sqlite-url=file:%s/data/" % self.fdir,
             "--listen-addr=127.0.0.1:%d" % self.fport, "--state-dir=" + self.fdir, "--debug-addr=-",
             "--telemetry=disable", "--log-level=error"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.tmp, "ferretdb.log"), "w"))
        if not wait_port(self.fport):
            sys.exit("peers_compare: FerretDB did not start on 127.0.0.1:%d" % self.fport)
        self.mongo_uri = "mongodb://127.0.0.1:%d/" % self.fport

    def mongo(self):
        import pymongo
        return pymongo.MongoClient(self.mongo_uri, serverSelectionTimeoutMS=10000)

    def ferret_counter(self, db, coll):
        return SqliteCounter(os.path.join(self.fdir, "data", db + ".sqlite"), ferret_table(coll))

    def wait_subscribed(self, client_id, consumer, timeout=60):
        """Mosquitto logs '<client id> <qos> <filter>' when a client subscribes."""
        deadline = time.monotonic() + timeout
        needle = " %s " % client_id
        while time.monotonic() < deadline:
            if not consumer.alive():
                return False
            try:
                with open(self.broker_log, errors="replace") as f:
                    for line in f:
                        if needle in line and FILTER in line:
                            return True
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        return False

    def close(self):
        for p in (self.ferret, self.broker):
            if p:
                stop(p)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Row:
    """slow: stop this row after --slow-timeout seconds and report the rate of
    what it stored by then (its rate is steady; the whole stream would take
    tens of minutes)."""

    def __init__(self, key, label, consumer, store, build, slow=False):
        self.key, self.label, self.consumer, self.store, self.build = key, label, consumer, store, build
        self.slow = slow


def telegraf_config(env, cid, output, tuned):
    text = TELEGRAF_TUNED_AGENT if tuned else ""
    text += TELEGRAF_INPUT.format(port=env.port, filter=FILTER, client_id=cid)
    if tuned:
        text += TELEGRAF_TUNED_INPUT
    return text + output


def build_sub(env, n, store):
    cid = env.next_id("peers-sub")
    spool = os.path.join(env.tmp, cid + "-spool")
    cmd = [os.path.join(env.cli, "iotbridge-sub"), "-h", "127.0.0.1", "-p", str(env.port), "-q", "1", "-i", cid,
           "-t", FILTER]
    if store == "sqlite":
        path = os.path.join(env.tmp, cid + ".db")
        cmd += ["--store", "sqlite:" + path, "--spool", spool]
        counter = SqliteCounter(path, lambda c: next((r[0] for r in c.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%sensors'")), None))
        sample = lambda: cli_sample(env, "sqlite:" + path, "iot_service")
        files = [path, spool]
    else:
        db = cid.replace("-", "_")
        cmd += ["--store", env.mongo_uri, "--db", db, "--spool", spool]
        counter = env.ferret_counter(db, "sensors")
        sample = lambda: mongo_sample(env, db, "sensors")
        files = [spool]
    return dict(cid=cid, cmd=cmd, counter=counter, sample=sample, files=files,
                drop=(db if store == "ferretdb" else None))


def build_recorder(env, n, store):
    binary = os.path.join(env.cli, "iotbridge-recorder")
    if not os.access(binary, os.X_OK):
        return None
    cid = env.next_id("peers-rec")
    spool = os.path.join(env.tmp, cid + "-spool")
    db = "iot_service" if store == "sqlite" else cid.replace("-", "_")
    path = os.path.join(env.tmp, cid + ".db")
    uri = "sqlite:" + path if store == "sqlite" else env.mongo_uri
    conf = os.path.join(env.tmp, cid + ".toml")
    with open(conf, "w") as f:
        f.write('[mqtt]\nurl = "mqtt://127.0.0.1:%d"\nclient_id = "%s"\nqos = 1\n\n'
                '[store]\nuri = "%s"\ndatabase = "%s"\n\n[durability]\ndir = "%s"\n\n'
                '[[route]]\nname = "bench"\nfilters = ["%s"]\ncollection = "sensors"\n'
                % (env.port, cid, uri, db, spool, FILTER))
    if store == "sqlite":
        counter = SqliteCounter(path, lambda c: next((r[0] for r in c.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%sensors'")), None))
        sample = lambda: cli_sample(env, uri, db)
    else:
        counter = env.ferret_counter(db, "sensors")
        sample = lambda: mongo_sample(env, db, "sensors")
    return dict(cid=cid, cmd=[binary, "--config", conf], counter=counter, sample=sample, files=[path, spool],
                drop=(db if store == "ferretdb" else None))


def build_telegraf(env, n, store, tuned):
    cid = env.next_id("peers-telegraf")
    conf = os.path.join(env.tmp, cid + ".toml")
    if store == "ferretdb":
        db = cid.replace("-", "_")
        # outputs.mongodb creates a time-series collection named after the metric
        # unless one exists; FerretDB 1.x refuses that ("support for field
        # timeseries is not implemented") and Telegraf then stores nothing.
        with env.mongo() as m:
            m[db].create_collection("mqtt_consumer")
        output = '\n[[outputs.mongodb]]\n  dsn = "%s"\n  database = "%s"\n' % (env.mongo_uri, db)
        counter = env.ferret_counter(db, "mqtt_consumer")
        sample = lambda: mongo_sample(env, db, "mqtt_consumer")
        files, drop = [], db
    else:
        path = os.path.join(env.tmp, cid + ".db")
        dsn = "file:" + path
        if tuned:
            dsn += "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
        output = '\n[[outputs.sql]]\n  driver = "sqlite"\n  data_source_name = "%s"\n' % dsn
        if tuned:
            output += "  batch_transactions = true\n"
        counter = SqliteCounter(path, "mqtt_consumer")
        sample = counter.sample
        files, drop = [path, path + "-wal", path + "-shm", path + "-journal"], None
    with open(conf, "w") as f:
        f.write(telegraf_config(env, cid, output, tuned))
    return dict(cid=cid, cmd=[env.args.telegraf, "--config", conf], counter=counter, sample=sample, files=files,
                drop=drop)


def build_tutorial(env, n):
    cid = env.next_id("peers-tutorial")
    script = os.path.join(env.tmp, "tutorial_recorder.py")
    with open(script, "w") as f:
        f.write(TUTORIAL_RECORDER)
    db = cid.replace("-", "_")
    return dict(cid=cid, cmd=["/usr/bin/python3", script, str(env.port), env.mongo_uri, db, cid, FILTER],
                counter=env.ferret_counter(db, "sensors"), sample=lambda: mongo_sample(env, db, "sensors"),
                files=[], drop=db)


def build_broker_ref(env, n):
    cid = env.next_id("peers-ref")
    return dict(cid=cid, cmd=["mosquitto_sub", "-h", "127.0.0.1", "-p", str(env.port), "-q", "1", "-i", cid,
                              "-t", FILTER, "-C", str(n)], counter=None, sample=None, files=[], drop=None)


def cli_sample(env, uri, db):
    out = subprocess.run([os.path.join(env.cli, "iotbridge-db"), "--store", uri, "find", db, "sensors", "-n", "1"],
                         capture_output=True, text=True, timeout=60)
    line = out.stdout.strip().splitlines()
    return line[0] if line else out.stderr.strip()


def mongo_sample(env, db, coll):
    with env.mongo() as m:
        return m[db][coll].find_one()


ROWS = [
    Row("broker", "mosquitto_sub -q 1 -C N > /dev/null (broker's delivery rate)", "mosquitto_sub", "none",
        build_broker_ref),
    Row("sub-sqlite", "iotbridge-sub --store (defaults)", "iotbridge-sub", "sqlite",
        lambda e, n: build_sub(e, n, "sqlite")),
    Row("recorder-sqlite", "iotbridge-recorder --config", "iotbridge-recorder", "sqlite",
        lambda e, n: build_recorder(e, n, "sqlite")),
    Row("telegraf-sqlite", "Telegraf, defaults (outputs.sql)", "Telegraf", "sqlite",
        lambda e, n: build_telegraf(e, n, "sqlite", False), slow=True),
    Row("telegraf-tuned-sqlite", "Telegraf, tuned (outputs.sql, batch_transactions, WAL)", "Telegraf tuned", "sqlite",
        lambda e, n: build_telegraf(e, n, "sqlite", True)),
    Row("sub-ferretdb", "iotbridge-sub --store (defaults)", "iotbridge-sub", "ferretdb",
        lambda e, n: build_sub(e, n, "ferretdb")),
    Row("recorder-ferretdb", "iotbridge-recorder --config", "iotbridge-recorder", "ferretdb",
        lambda e, n: build_recorder(e, n, "ferretdb")),
    Row("telegraf-ferretdb", "Telegraf, defaults (outputs.mongodb)", "Telegraf", "ferretdb",
        lambda e, n: build_telegraf(e, n, "ferretdb", False)),
    Row("telegraf-tuned-ferretdb", "Telegraf, tuned (outputs.mongodb)", "Telegraf tuned", "ferretdb",
        lambda e, n: build_telegraf(e, n, "ferretdb", True)),
    Row("tutorial-ferretdb", "tutorials' recorder: paho-mqtt + PyMongo insert_one", "tutorials' way", "ferretdb",
        build_tutorial),
]
ROW_KEYS = [r.key for r in ROWS]


def write_stream(path, n, seed=16):
    rnd = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            f.write("%.2f\n" % (24.0 + rnd.uniform(-0.5, 0.5)))


def run_row(env, row, n, stream, timeout, stall):
    """One consumer, one fresh database, one stream of n readings."""
    spec = row.build(env, n)
    if spec is None:
        return dict(key=row.key, n=n, missing=True)
    log = open(os.path.join(env.tmp, spec["cid"] + ".log"), "w")
    res = dict(key=row.key, n=n, load_before=loadavg(), clock=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    counter = spec["counter"]
    consumer = Waiter(subprocess.Popen(spec["cmd"], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL if counter is None else log, stderr=log))
    pub = None
    try:
        if not env.wait_subscribed(spec["cid"], consumer):
            log.flush()
            res["error"] = "did not subscribe; its log: " + open(log.name).read()[-800:]
            return res
        broker0 = proc_cpu(env.broker.pid)
        ferret0 = proc_cpu(env.ferret.pid) if env.ferret else 0.0
        pub_out = open(os.path.join(env.tmp, spec["cid"] + ".pub"), "w")
        with open(stream) as stdin:
            t0 = time.monotonic()
            pub = Waiter(subprocess.Popen([os.path.join(env.cli, "iotbridge-pub"), "-h", "127.0.0.1", "-p",
                                           str(env.port), "-q", "1", "-t", TOPIC, "-l", "--stats"],
                                          stdin=stdin, stdout=pub_out, stderr=pub_out))
        stored, last_change, last_count, rate = 0, t0, 0, 0.0
        cpu = hwm = None
        while True:
            now = time.monotonic()
            if counter is None:  # the reference: mosquitto_sub -C N exits after N
                if not consumer.alive():
                    now, stored = consumer.end, (n if consumer.code == 0 else 0)
                    if consumer.code != 0:
                        res["error"] = "mosquitto_sub exited with code %s" % consumer.code
                    break
            else:
                stored = counter.poll()
                if stored >= n:
                    cpu, hwm = proc_cpu(consumer.p.pid), proc_hwm_kib(consumer.p.pid)
                    break
                if stored != last_count:
                    rate = (stored - last_count) / max(now - last_change, 1e-3)
                    last_change, last_count = now, stored
                if not consumer.alive():
                    res["error"] = "consumer exited (code %s) at %d stored" % (consumer.code, stored)
                    break
            if now - t0 > timeout or (not pub.alive() and now - max(last_change, pub.end) > stall):
                res["stopped"] = "after %.0f s" % (now - t0)
                if counter is not None:
                    cpu, hwm = proc_cpu(consumer.p.pid), proc_hwm_kib(consumer.p.pid)
                break
            near = rate > 0 and (n - stored) / rate < 0.4
            time.sleep(0.01 if counter is None or near else 0.2)
        res["seconds"] = now - t0
        res["broker_cpu"] = proc_cpu(env.broker.pid) - broker0
        if row.store == "ferretdb":
            res["store_cpu"] = proc_cpu(env.ferret.pid) - ferret0
        res["load_after"] = loadavg()
        consumer.stop()
        if counter is None:
            res["stored"], res["cpu"] = stored, consumer.cpu
        else:
            res["stored"] = counter.exact()
            res["cpu"], res["rss_kib"] = cpu, hwm
            res["sample"] = spec["sample"]()
        res["rate"] = min(res["stored"], n) / res["seconds"]
        pub.join(timeout=max(0.0, timeout - (time.monotonic() - t0)))
        pub.stop()
        res["pub_seconds"] = pub.end - t0
        res["pub_cpu"], res["pub_code"] = pub.cpu, pub.code
        res["limit"] = where_limit(res, row)
        return res
    finally:
        consumer.stop()
        if pub:
            pub.stop()
        log.close()
        if counter:
            counter.close()
        if spec.get("drop"):
            try:
                with env.mongo() as m:
                    m.drop_database(spec["drop"])
            except Exception as e:  # a failed drop only costs disk space
                print("peers_compare: dropping %s: %s" % (spec["drop"], e), file=sys.stderr)
        for f in spec["files"]:
            if os.path.isdir(f):
                shutil.rmtree(f, ignore_errors=True)
            elif os.path.exists(f):
                os.remove(f)


def where_limit(res, row):
    """The consumer kept up when N was stored within 0.25 s (or 5%) of the last
    PUBACK (0.25 s: a flush interval and a poll); then the publisher or the broker set the pace (whichever used more
    of its one core). Otherwise the consumer, or the store server when it used
    more CPU than the consumer."""
    t, pub = res["seconds"], res["pub_seconds"]
    if res.get("stored", 0) < res["n"] and "stopped" in res:
        return "consumer (stopped)"
    if t - pub <= max(0.25, 0.05 * t):
        b = res["broker_cpu"] / t
        p = (res["pub_cpu"] or 0) / pub if pub > 0 else 0
        return "broker" if b > p else "publisher"
    if row.store == "ferretdb" and res.get("store_cpu", 0) > (res.get("cpu") or 0):
        return "store (FerretDB)"
    return "consumer"


# ---- reporting -----------------------------------------------------------------

def median(xs):
    xs = sorted(xs)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def summarize(results):
    """One line per (n, row): medians over the rounds."""
    by = {}
    for r in results:
        by.setdefault((r["n"], r["key"]), []).append(r)
    out = []
    for (n, key), rs in sorted(by.items(), key=lambda kv: (kv[0][0], ROW_KEYS.index(kv[0][1]))):
        row = ROWS[ROW_KEYS.index(key)]
        ok = [r for r in rs if "rate" in r]
        s = dict(n=n, key=key, row=row, rounds=len(rs), missing=all(r.get("missing") for r in rs))
        if ok:
            s.update(rate=median([r["rate"] for r in ok]), rates=[r["rate"] for r in ok],
                     stored=min(r["stored"] for r in ok), cpu=median([r["cpu"] for r in ok if r.get("cpu") is not None]),
                     rss=max((r.get("rss_kib") or 0) for r in ok) / 1024.0,
                     store_cpu=median([r["store_cpu"] for r in ok if "store_cpu" in r]),
                     limits=sorted(set(r["limit"] for r in ok)),
                     load=[min(min(r["load_before"][0], r["load_after"][0]) for r in ok),
                           max(max(r["load_before"][0], r["load_after"][0]) for r in ok)],
                     stopped=[r["stopped"] for r in ok if "stopped" in r],
                     errors=[r["error"] for r in rs if "error" in r])
        else:
            s["errors"] = [r["error"] for r in rs if "error" in r]
        out.append(s)
    return out


def table(results):
    lines = []
    summary = summarize(results)
    ref = {s["n"]: s.get("rate") for s in summary if s["key"] == "broker"}
    lines.append("| N | consumer | store | readings/s (median; rounds) | vs broker | stored/N (worst) "
                 "| consumer CPU s | FerretDB CPU s | peak RSS | limit | load avg |")
    lines.append("|---:|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    for s in summary:
        row = s["row"]
        store = {"none": "-", "sqlite": "SQLite", "ferretdb": "FerretDB"}[row.store]
        if s["missing"]:
            lines.append("| %d | %s | %s | not built (issue 11 not on main yet) | | | | | | | |"
                         % (s["n"], row.label, store))
            continue
        if "rate" not in s:
            lines.append("| %d | %s | %s | failed: %s | | | | | | | |" % (s["n"], row.label, store,
                                                                         "; ".join(s["errors"])[:200]))
            continue
        vs = "%.2fx" % (s["rate"] / ref[s["n"]]) if ref.get(s["n"]) else "-"
        stored = "%d/%d" % (s["stored"], s["n"])
        if s["stopped"]:
            stored += " (stopped %s)" % s["stopped"][0]
        lines.append("| %d | %s | %s | %s (%s) | %s | %s | %s | %s | %s | %s | %.1f-%.1f |" % (
            s["n"], row.label, store, fmt_int(s["rate"]), ", ".join(fmt_int(x) for x in s["rates"]), vs, stored,
            "%.2f" % s["cpu"] if s["cpu"] is not None else "-",
            "%.1f" % s["store_cpu"] if s["store_cpu"] is not None else "-",
            "%.1f MiB" % s["rss"] if s["rss"] else "-", ", ".join(s["limits"]), s["load"][0], s["load"][1]))
    return "\n".join(lines)


def fmt_int(x):
    return "{:,.0f}".format(x)


def targets(results):
    """The issue's targets, checked on the medians."""
    out = []
    for n in sorted(set(r["n"] for r in results)):
        s = {x["key"]: x for x in summarize(results) if x["n"] == n and "rate" in x}
        for store in ("sqlite", "ferretdb"):
            ours = [s[k] for k in ("sub-" + store, "recorder-" + store) if k in s]
            theirs = [s[k] for k in ("telegraf-" + store, "telegraf-tuned-" + store) if k in s]
            if not ours or not theirs:
                continue
            best = max(theirs, key=lambda x: x["rate"])
            for o in ours:
                out.append("N=%d %s: %s %s readings/s vs best Telegraf (%s) %s: %.1fx; CPU %.2f s vs %.2f s "
                           "(least Telegraf %.2f s); RSS %.1f vs %.1f MiB (least Telegraf %.1f MiB)" % (
                               n, store, o["row"].consumer, fmt_int(o["rate"]), best["row"].label,
                               fmt_int(best["rate"]), o["rate"] / best["rate"], o["cpu"], best["cpu"],
                               min(t["cpu"] for t in theirs), o["rss"], best["rss"], min(t["rss"] for t in theirs)))
        for key in ("sub-sqlite", "recorder-sqlite"):
            if "broker" not in s or key not in s:
                continue
            ratio = s[key]["rate"] / s["broker"]["rate"]
            # Paired: the consumer and the reference in the same round, minutes apart.
            rounds = {}
            for r in results:
                if r["n"] == n and r["key"] in ("broker", key) and "rate" in r:
                    rounds.setdefault(r.get("round"), {})[r["key"]] = r["rate"]
            paired = [x[key] / x["broker"] for x in rounds.values() if len(x) == 2]
            out.append("N=%d %s into SQLite at %.2fx the broker's own delivery rate (medians; per round %s; "
                       "target >= 0.95x: %s)" % (n, s[key]["row"].consumer, ratio,
                                                 ", ".join("%.2fx" % x for x in paired),
                                                 "met" if ratio >= 0.95 else "NOT met"))
    return out


def chart(results, path, n):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [s for s in summarize(results) if s["n"] == n and "rate" in s]
    if not rows:
        return
    names = ["%s\n-> %s%s" % (s["row"].consumer, {"none": "(no store)", "sqlite": "SQLite", "ferretdb": "FerretDB"}
                                [s["row"].store], "\n(stopped: %s stored)" % fmt_int(s["stored"]) if s["stopped"] else "")
             for s in rows]
    colors = ["#2b7bba" if s["row"].consumer.startswith("iotbridge") else
              "#999999" if s["key"] == "broker" else "#e0803a" for s in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 0.55 * len(rows) + 1.8), sharey=True)
    y = list(range(len(rows)))[::-1]
    a.barh(y, [s["rate"] for s in rows], color=colors)
    a.set_xscale("log")
    a.set_xlabel("readings/s (median, log scale; more is better)")
    for yi, s in zip(y, rows):
        a.text(s["rate"], yi, " " + fmt_int(s["rate"]), va="center", fontsize=8)
    a.set_yticks(y)
    a.set_yticklabels(names, fontsize=8)
    cpu = [s["cpu"] or 0 for s in rows]
    server = [s["store_cpu"] or 0 for s in rows]
    b.barh(y, cpu, color=colors, label="consumer")
    b.barh(y, server, left=cpu, color="white", edgecolor=colors, hatch="///", label="FerretDB server")
    b.set_xlabel("CPU seconds for %s readings (user+sys; less is better)" % fmt_int(n))
    for yi, c, f in zip(y, cpu, server):
        b.text(c + f, yi, " %.1f" % c + (" + %.1f" % f if f else ""), va="center", fontsize=8)
    b.legend(loc="upper right", fontsize=8)
    a.set_xlim(right=max(s["rate"] for s in rows) * 4)
    top = max(c + f for c, f in zip(cpu, server))
    b.set_xlim(right=top * 1.25 if top > 0 else 1)
    loads = [x for s in rows for x in s["load"]]
    fig.suptitle("MQTT QoS 1 into a store, %s readings, 2 shared cores (load average %.0f-%.0f): "
                 "iotbridge (blue), peers (orange)" % (fmt_int(n), min(loads), max(loads)), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def print_report(results):
    print(table(results))
    print()
    for line in targets(results):
        print("- " + line)
    samples = {}
    for r in results:
        if r.get("sample") is not None:
            row = ROWS[ROW_KEYS.index(r["key"])]
            samples.setdefault((row.consumer.replace(" tuned", ""), row.store), r["sample"])
    if samples:
        print("\nOne stored document per consumer:")
        for (consumer, store), doc in samples.items():
            print("- %s -> %s: %s" % (consumer, store, doc if isinstance(doc, str) else json.dumps(doc, default=str)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "dev"), help="build tree with cli/iotbridge-*")
    ap.add_argument("--n", default="100000", help="readings per stream, comma-separated (100000,1000000)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per N")
    ap.add_argument("--rows", default=",".join(ROW_KEYS), help="comma-separated rows: " + ", ".join(ROW_KEYS))
    ap.add_argument("--skip", default="", help="rows to leave out, comma-separated")
    ap.add_argument("--quick", action="store_true", help="N=20000, 1 round: to try it out")
    ap.add_argument("--timeout", type=float, default=None,
                    help="stop a row after this many seconds (default: max(300, N/300))")
    ap.add_argument("--slow-timeout", type=float, default=120,
                    help="stop the rows known to be very slow (Telegraf's defaults into SQLite: one fsync per "
                         "reading) after this many seconds and report the rate so far (default 120)")
    ap.add_argument("--tutorial-max-n", type=int, default=100000,
                    help="run the tutorials' recorder only for N up to this (default 100000: at ~1k readings/s "
                         "1M would take ~20 minutes a round)")
    ap.add_argument("--stall", type=float, default=60, help="stop a row when nothing was stored for this long after "
                    "the publisher finished")
    ap.add_argument("--ferretdb", default=os.environ.get("IOTBRIDGE_FERRETDB",
                                                         os.path.expanduser("~/.cache/iotbridge/ferretdb-v1.24.2/ferretdb")))
    ap.add_argument("--telegraf", default=None, help="Telegraf binary (default: scripts/build-telegraf)")
    ap.add_argument("--out", help="append every round's result to this JSON file")
    ap.add_argument("--from", dest="from_", help="report the results of this JSON file instead of running")
    ap.add_argument("--chart", help="write a PNG bar chart (readings/s, CPU s) for the largest N")
    args = ap.parse_args()

    if args.from_:
        with open(args.from_) as f:
            results = json.load(f)["results"]
        print_report(results)
        if args.chart:
            for n in sorted(set(r["n"] for r in results)):
                chart(results, args.chart.replace(".png", "-%d.png" % n) if len(set(r["n"] for r in results)) > 1
                      else args.chart, n)
        return

    if args.quick:
        args.n, args.rounds = "20000", 1
    ns = [int(x) for x in args.n.split(",")]
    args.n_max = max(ns)
    keys = [k for k in args.rows.split(",") if k and k not in args.skip.split(",")]
    unknown = [k for k in keys if k not in ROW_KEYS]
    if unknown:
        sys.exit("peers_compare: unknown rows %s; known: %s" % (unknown, ", ".join(ROW_KEYS)))
    args.plan = [ROWS[ROW_KEYS.index(k)] for k in keys]
    for tool in ("iotbridge-pub", "iotbridge-sub", "iotbridge-db"):
        if not os.access(os.path.join(args.build, "cli", tool), os.X_OK):
            sys.exit("peers_compare: %s/cli/%s is missing: cmake --build %s --target iotbridge-pub iotbridge-sub "
                     "iotbridge-db" % (args.build, tool, args.build))
    if any(r.key.startswith("telegraf") for r in args.plan) and not args.telegraf:
        args.telegraf = subprocess.run([os.path.join(ROOT, "scripts", "build-telegraf")], check=True,
                                       capture_output=True, text=True).stdout.strip()
    if any(r.store == "ferretdb" for r in args.plan) and not os.access(args.ferretdb, os.X_OK):
        sys.exit("peers_compare: no FerretDB at %s (scripts/build-ferretdb)" % args.ferretdb)

    results = []
    if args.out and os.path.exists(args.out):
        with open(args.out) as f:
            results = json.load(f)["results"]
    env = Env(args)
    try:
        for n in ns:
            stream = os.path.join(env.tmp, "stream-%d.txt" % n)
            write_stream(stream, n)
            timeout = args.timeout or max(300.0, n / 300.0)
            for rnd in range(args.rounds):
                # Rotate the order each round so no row always runs first (or last).
                plan = args.plan[rnd % len(args.plan):] + args.plan[:rnd % len(args.plan)]
                for row in plan:
                    if row.key == "tutorial-ferretdb" and n > args.tutorial_max_n:
                        continue
                    r = run_row(env, row, n, stream, min(timeout, args.slow_timeout) if row.slow else timeout,
                                args.stall)
                    r["round"] = rnd + 1
                    results.append(r)
                    print("N=%d round %d %-24s %s" % (n, rnd + 1, row.key, brief(r)), file=sys.stderr, flush=True)
                    if args.out:
                        with open(args.out, "w") as f:
                            json.dump({"results": results}, f, indent=1, default=str)
    finally:
        env.close()
    print_report(results)
    if args.chart:
        chart(results, args.chart, max(ns))


def brief(r):
    if r.get("missing"):
        return "not built"
    if "rate" not in r:
        return "failed: " + r.get("error", "?")[:300]
    return "%s readings/s, %d/%d stored in %.2f s, cpu %s s, rss %s MiB, limit %s, load %.1f%s" % (
        fmt_int(r["rate"]), r["stored"], r["n"], r["seconds"], "%.2f" % r["cpu"] if r.get("cpu") is not None else "-",
        "%.1f" % (r["rss_kib"] / 1024.0) if r.get("rss_kib") else "-", r["limit"], r["load_after"][0],
        " STOPPED " + r["stopped"] if "stopped" in r else "")


if __name__ == "__main__":
    main()
