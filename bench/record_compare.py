#!/usr/bin/python3
"""Recorder end to end, against its peers, in one run on one machine.

One local Mosquitto (own config, free port, max_queued_messages raised so the
broker never drops), one flow-controlled QoS 1 publisher (bench_record_e2e
publish), and in turn as the consumer:

  mosquitto_sub -q 1 -C N          the ceiling: receiving only
  recorder -> SQLite               write-ahead journal on, fdatasync per batch
  recorder -> SQLite (no fsync)    write-ahead journal on, not synced
  recorder -> FerretDB             the MongoDB-compatible server
  paho + pymongo insert_one        the tutorials' recorder, one insert per message

Rate = readings / (first reading received -> last received (mosquitto_sub -F
%U) or last stored (recorders)); the rate including process start and stop
is shown too. Peak RSS of the consumer process (wait4). Zero loss is checked for
every row (count stored or received). Usage:

  /usr/bin/python3 bench/record_compare.py [--build build/test] [--count 200000]
      [--slow-count 20000] [--ferretdb PATH] [--runs 1]

--mode stream is the row a user sees: a QoS 0 live stream of --count readings
from `mosquitto_pub -l` while the consumer runs, timed from the first publish
to the consumer's exit, for `iotbridge-sub -C N --store sqlite:...` (the
recorder, journal on) against `mosquitto_sub -C N` in the same run:

  /usr/bin/python3 bench/record_compare.py --mode stream --count 1000000 [--runs 3]

--policies measures what a route policy costs: the recorder into SQLite
(journal on) with a plain route against the same route with deadband (0.05:
every reading still differs by 0.1, so the check runs and nothing is
suppressed) and against dedup_key "/seq" (payloads {"seq": i, "t": ...},
with a plain route on the same payloads as its baseline), rows interleaved:

  /usr/bin/python3 bench/record_compare.py --policies --count 100000 --runs 5

and, with --mode stream, the same four routes as iotbridge-sub --store flags
against mosquitto_sub on a live QoS 0 stream (the rate a user sees):

  /usr/bin/python3 bench/record_compare.py --mode stream --policies --count 200000 --runs 5
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PAHO_RECORDER = r'''
import datetime, sys, time
import paho.mqtt.client as mqtt
import pymongo
port, uri, n, client_id = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
coll = pymongo.MongoClient(uri)["bench_paho"]["sensors"]
count = 0
first = None
def on_connect(c, u, f, rc):
    c.subscribe("iot/bench/#", qos=1)
def on_subscribe(c, u, mid, granted):
    print("ready", flush=True)
def on_message(c, u, m):
    global count, first
    if first is None:
        first = time.time()
    try:
        value = float(m.payload)
    except ValueError:
        value = m.payload.decode("utf-8", "replace")
    coll.insert_one({"topic": m.topic, "value": value, "reg_date": datetime.datetime.utcnow()})
    count += 1
    if count >= n:
        c.disconnect()
c = mqtt.Client(client_id=client_id, clean_session=False)
c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
c.connect("127.0.0.1", port)
c.loop_forever()
print("stored %d %.6f" % (count, time.time() - first), flush=True)
'''


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def start_mosquitto(tmp):
    port = free_port()
    conf = os.path.join(tmp, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "max_queued_messages 10000000\nmax_inflight_messages 1000\nlog_dest none\n" % port)
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    p = subprocess.Popen([mosquitto, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_port(port):
        sys.exit("mosquitto did not start")
    return p, port


def start_ferretdb(binary, tmp):
    port = free_port()
    data = os.path.join(tmp, "ferretdb")
    os.makedirs(os.path.join(data, "data"), exist_ok=True)
    p = subprocess.Popen([binary, "--handler=sqlite", "--sqlite-url=file:%s/data/" % data,
                          "--listen-addr=127.0.0.1:%d" % port, "--state-dir=" + data, "--debug-addr=-",
                          "--telemetry=disable", "--log-level=error"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_port(port):
        sys.exit("FerretDB did not start")
    return p, "mongodb://127.0.0.1:%d/" % port


def wait4_rss(p, timeout):
    """Waits for p; returns (exit code, peak RSS in KiB)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            return p.returncode, ru.ru_maxrss
        if time.monotonic() > deadline:
            p.kill()
            pid, status, ru = os.wait4(p.pid, 0)
            p.returncode = -9
            return -9, ru.ru_maxrss
        time.sleep(0.002)


def publish(e2e, port, count, pub_extra=()):
    pub = subprocess.run([e2e, "publish", "--port", str(port), "--count", str(count), "--qos", "1"] + list(pub_extra),
                         capture_output=True, text=True)
    if pub.returncode != 0:
        sys.exit("publisher failed: " + pub.stderr)


def run_peer(mode, name, consumer_cmd, ready, e2e, port, count, out_path, session_id, pub_extra=()):
    """live: starts the consumer, waits until it is subscribed, publishes, waits
    for it. backlog: the broker holds `count` readings for the consumer's
    persistent session, then the consumer starts and takes them all.
    Returns (seconds, peak RSS KiB, exit code, consumer stdout)."""
    if mode == "backlog":
        subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-c", "-i", session_id, "-q", "1",
                        "-t", "iot/bench/#", "-E"], check=True)
        publish(e2e, port, count, pub_extra)
    out = open(out_path, "w")
    start = time.monotonic()
    consumer = subprocess.Popen(consumer_cmd, stdout=subprocess.PIPE if ready == "line" else out,
                                stderr=subprocess.DEVNULL, text=True)
    if mode == "live":
        if ready == "line":
            line = consumer.stdout.readline()
            if "ready" not in line:
                sys.exit("%s did not start: %r" % (name, line))
        else:
            time.sleep(1.0)  # mosquitto_sub prints nothing when subscribed
        start = time.monotonic()
        publish(e2e, port, count, pub_extra)
    rest = consumer.stdout.read() if ready == "line" else ""
    code, rss = wait4_rss(consumer, timeout=max(600, count / 200))
    elapsed = time.monotonic() - start
    out.close()
    return elapsed, rss, code, rest


def stream_run(consumer_cmd, port, lines_path, count, out_path):
    """Starts the consumer, lets it subscribe, pipes `count` lines into
    mosquitto_pub -l (QoS 0), and times first publish -> consumer exit.
    Returns (seconds, peak RSS KiB, exit code)."""
    with open(out_path, "w") as out:
        consumer = subprocess.Popen(consumer_cmd, stdout=out, stderr=subprocess.STDOUT)
        time.sleep(1.0)  # neither consumer says when it is subscribed; a second is plenty on loopback
        with open(lines_path, "rb") as lines:
            start = time.monotonic()
            pub = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "0",
                                    "-t", "iot/bench/stream", "-l"], stdin=lines)
            code, rss = wait4_rss(consumer, timeout=max(120, count / 5000))
            elapsed = time.monotonic() - start
        pub.wait()
    return elapsed, rss, code


def stream_main(args):
    n = args.count
    sub_bin = os.path.join(args.build, "cli", "iotbridge-sub")
    if not os.access(sub_bin, os.X_OK):
        sys.exit("build iotbridge-sub first: " + sub_bin)
    tmp = tempfile.mkdtemp(prefix="iotbridge-stream-bench-")
    lines_path = os.path.join(tmp, "lines")
    with open(lines_path, "w") as f:
        for i in range(n):
            f.write("%.1f\n" % (20 + (i % 200) * 0.1))
    json_path = os.path.join(tmp, "json-lines")
    with open(json_path, "w") as f:
        for i in range(n):
            f.write('{"seq": %d, "t": %.1f}\n' % (i, 20 + (i % 200) * 0.1))
    broker, port = start_mosquitto(tmp)
    sub_name = "mosquitto_sub -C N"
    # (name, iotbridge-sub flags, lines); None: mosquitto_sub
    rows = [(sub_name, None, lines_path), ("iotbridge-sub -C N --store sqlite (journal on)", [], lines_path)]
    if args.policies:
        rows = [(sub_name, None, lines_path),
                ("--store, number payloads", [], lines_path),
                ("--store --deadband 0.05 (nothing suppressed)", ["--deadband", "0.05"], lines_path),
                ("--store, {\"seq\": i} payloads", [], json_path),
                ("--store --dedup-key /seq", ["--dedup-key", "/seq"], json_path)]
    results = {name: [] for name, _, _ in rows}
    try:
        for r in range(args.runs):
            for name, flags, lines in rows:
                out = os.path.join(tmp, "rec.out")
                if flags is None:
                    el, rss, code = stream_run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "0",
                                                "-t", "iot/bench/#", "-C", str(n)], port, lines, n, out)
                    with open(out, "rb") as f:
                        got = sum(1 for _ in f)
                else:
                    db = os.path.join(tmp, "stream%d.db" % r)
                    spool = os.path.join(tmp, "spool%d" % r)
                    el, rss, code = stream_run([sub_bin, "-h", "127.0.0.1", "-p", str(port), "-q", "0", "-t",
                                                "iot/bench/#", "-C", str(n), "--store", "sqlite:" + db, "--spool",
                                                spool, "--stats-json"] + flags, port, lines, n, out)
                    got = 0
                    with open(out) as f:
                        for line in f:
                            if line.startswith("{"):
                                st = json.loads(line)
                                got = st.get("stored", got) + st.get("suppressed", 0)
                    shutil.rmtree(spool, ignore_errors=True)
                    for suffix in ("", "-wal", "-shm"):
                        if os.path.exists(db + suffix):
                            os.remove(db + suffix)
                results[name].append((el, rss, code, got))
                print("run %d %s: %.2f s, %d done, exit %d" % (r + 1, name, el, got, code), file=sys.stderr,
                      flush=True)
    finally:
        broker.terminate()
        broker.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    sub_time = median([r[0] for r in results[sub_name]])
    print("mode: stream (QoS 0, mosquitto_pub -l, first publish -> consumer exit), %d readings, median of %d runs"
          % (n, args.runs))
    print("| consumer | readings | received/stored (worst run) | seconds (median) | msg/s | vs mosquitto_sub "
          "| peak RSS (max) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, rs in results.items():
        t = median([r[0] for r in rs])
        got = min(r[3] for r in rs)
        print("| %s | %d | %d%s | %.2f | %.0f | %.2fx | %.1f MiB |" % (
            name, n, got, "" if got == n else " LOSS", t, n / t, sub_time / t, max(r[1] for r in rs) / 1024.0))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "test"))
    ap.add_argument("--count", type=int, default=200000)
    ap.add_argument("--slow-count", type=int, default=10000, help="readings for the one-insert-per-message peer")
    ap.add_argument("--runs", type=int, default=3, help="rounds (rows interleaved); the median rate is reported")
    ap.add_argument("--mode", choices=["backlog", "live", "stream"], default="backlog",
                    help="backlog (default): the broker holds the readings, the consumer drains them at its "
                         "speed; live: the consumer runs while the QoS 1 publisher sends; stream: QoS 0 "
                         "mosquitto_pub -l into iotbridge-sub --store vs mosquitto_sub, first publish -> exit")
    ap.add_argument("--ferretdb", default=os.environ.get("IOTBRIDGE_FERRETDB",
                                                         os.path.expanduser("~/.cache/iotbridge/ferretdb-v1.24.2/ferretdb")))
    ap.add_argument("--skip", default="", help="comma-separated row names to skip (sqlite,nosync,ferretdb,paho,sub)")
    ap.add_argument("--policies", action="store_true",
                    help="plain route vs deadband vs dedup_key, recorder -> SQLite (journal on), rows interleaved")
    args = ap.parse_args()
    if args.mode == "stream":
        return stream_main(args)
    e2e = os.path.join(args.build, "bench", "bench_record_e2e")
    if not os.access(e2e, os.X_OK):
        sys.exit("build bench_record_e2e first (cmake -DIOTBRIDGE_BUILD_BENCH=ON): " + e2e)
    skip = set(filter(None, args.skip.split(",")))
    n = args.count
    tmp = tempfile.mkdtemp(prefix="iotbridge-record-bench-")
    broker, port = start_mosquitto(tmp)
    ferret = None
    mongo_uri = None
    if ("ferretdb" not in skip or "paho" not in skip) and os.access(args.ferretdb, os.X_OK):
        ferret, mongo_uri = start_ferretdb(args.ferretdb, tmp)
    counter = [0]

    def sid(prefix):
        counter[0] += 1
        return "%s-%d" % (prefix, counter[0])

    def sub_row():
        out = os.path.join(tmp, "sub.out")
        i = sid("bench-sub")
        el, rss, code, _ = run_peer(args.mode, "mosquitto_sub",
                                    ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-c", "-i", i,
                                     "-t", "iot/bench/#", "-C", str(n), "-F", "%U"], "sleep", e2e, port, n, out, i)
        with open(out) as f:
            stamps = [float(line) for line in f if line.strip()]
        busy = stamps[-1] - stamps[0] if len(stamps) > 1 else el
        return n, len(stamps), el, rss, None, busy

    cpu = {}  # row name -> CPU seconds of the recorder process, per run

    def recorder_row(store, extra, pub_extra=(), name=None):
        def run():
            spool = tempfile.mkdtemp(prefix="spool-", dir=tmp)
            i = sid("bench-rec")
            el, rss, code, rest = run_peer(args.mode, "recorder",
                                           [e2e, "record", "--port", str(port), "--store", store(), "--spool", spool,
                                            "--count", str(n), "--client-id", i] + extra, "line", e2e, port, n,
                                           os.path.join(tmp, "rec.out"), i, pub_extra)
            stored, hw, busy = 0, None, el
            for line in rest.splitlines():
                if line.startswith("{"):
                    doc = json.loads(line)
                    st = doc["stats"]
                    # suppressed readings are done too (received = stored + suppressed + ...)
                    stored, hw, busy = st["stored"] + st.get("suppressed", 0), st["queue_high_water"], doc["elapsed"]
                    if name:
                        cpu.setdefault(name, []).append(doc["cpu_seconds"])
            shutil.rmtree(spool, ignore_errors=True)
            return n, stored, el, rss, hw, busy
        return run

    def paho_row():
        script = os.path.join(tmp, "paho_recorder.py")
        with open(script, "w") as f:
            f.write(PAHO_RECORDER)
        m = args.slow_count
        i = sid("bench-paho")
        el, rss, code, rest = run_peer(args.mode, "paho", ["/usr/bin/python3", script, str(port), mongo_uri, str(m), i],
                                       "line", e2e, port, m, os.path.join(tmp, "paho.out"), i)
        stored, busy = 0, el
        for line in rest.splitlines():
            if line.startswith("stored"):
                stored, busy = int(line.split()[1]), float(line.split()[2])
        return m, stored, el, rss, None, busy

    db_counter = [0]

    def sqlite_uri():
        db_counter[0] += 1
        return "sqlite:" + os.path.join(tmp, "rec%d.db" % db_counter[0])

    def mongo_db():
        db_counter[0] += 1
        return mongo_uri + "bench%d" % db_counter[0]

    plan = []
    if args.policies:
        skip = {"sub", "sqlite", "nosync", "ferretdb", "paho"}
        for name, extra, pub_extra in [
                ("plain route, number payloads", [], []),
                ("deadband 0.05 (nothing suppressed), number payloads", ["--deadband", "0.05"], []),
                ("plain route, {\"seq\": i} payloads", [], ["--json-seq"]),
                ("dedup_key \"/seq\", {\"seq\": i} payloads", ["--dedup-key", "/seq"], ["--json-seq"])]:
            plan.append((name, recorder_row(sqlite_uri, extra, pub_extra, name)))
    if "sub" not in skip:
        plan.append(("mosquitto_sub -q 1 (ceiling, receive only)", sub_row))
    if "sqlite" not in skip:
        plan.append(("recorder -> SQLite (journal, fdatasync per batch)", recorder_row(sqlite_uri, [])))
    if "nosync" not in skip:
        plan.append(("recorder -> SQLite (journal, no fsync)", recorder_row(sqlite_uri, ["--no-sync"])))
    if "ferretdb" not in skip and mongo_uri:
        plan.append(("recorder -> FerretDB", recorder_row(mongo_db, [])))
    if "paho" not in skip and mongo_uri:
        plan.append(("paho-mqtt + pymongo insert_one per message -> FerretDB", paho_row))
    results = {name: [] for name, _ in plan}
    try:
        for r in range(args.runs):
            for name, fn in plan:
                results[name].append(fn())
                print("run %d %s: %s" % (r + 1, name, results[name][-1]), file=sys.stderr, flush=True)
    finally:
        if ferret:
            ferret.terminate()
            ferret.wait()
        broker.terminate()
        broker.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    # Steady-state rate: first reading received -> last one received (mosquitto_sub)
    # or stored (recorders); start-up and shutdown of the process are not counted.
    rates = {name: median([want / busy for want, got, el, rss, hw, busy in rs]) for name, rs in results.items()}
    walls = {name: median([want / el for want, got, el, rss, hw, busy in rs]) for name, rs in results.items()}
    ceiling = rates.get("mosquitto_sub -q 1 (ceiling, receive only)")
    print("mode: %s, %d readings (%d for the one-insert-per-message peer), median of %d runs"
          % (args.mode, n, args.slow_count, args.runs))
    print("| consumer | readings | stored/received (worst run) | msg/s first->last (median) | vs mosquitto_sub "
          "| msg/s incl. process start/stop | peak RSS (max) | queue high-water |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, rs in results.items():
        want = rs[0][0]
        got = min(r[1] for r in rs)
        rss = max(r[3] for r in rs)
        hws = [r[4] for r in rs if r[4] is not None]
        ratio = "%.2fx" % (rates[name] / ceiling) if ceiling else "-"
        print("| %s | %d | %d%s | %.0f | %s | %.0f | %.1f MiB | %s |" % (
            name, want, got, "" if got == want else " LOSS", rates[name], ratio, walls[name], rss / 1024.0,
            max(hws) if hws else "-"))
    if args.policies:
        print()
        print("| route -> SQLite (journal on) | msg/s first->last (median) | rate vs its baseline "
              "| CPU us/reading (median) | CPU vs its baseline |")
        print("|---|---:|---:|---:|---:|")
        names = [name for name, _ in plan]
        for k, name in enumerate(names):
            base = names[k - 1] if k % 2 else name
            c = median(cpu[name]) / n * 1e6
            cb = median(cpu[base]) / n * 1e6
            print("| %s | %.0f | %+.1f %% | %.2f | %+.1f %% |" % (
                name, rates[name], (rates[name] / rates[base] - 1) * 100, c, (c / cb - 1) * 100))


if __name__ == "__main__":
    main()
