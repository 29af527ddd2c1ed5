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

Rate = readings / (publisher start -> consumer finished: all received, or all
stored). Peak RSS of the consumer process (wait4). Zero loss is checked for
every row (count stored or received). Usage:

  /usr/bin/python3 bench/record_compare.py [--build build/test] [--count 200000]
      [--slow-count 20000] [--ferretdb PATH] [--runs 1]
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
import datetime, sys
import paho.mqtt.client as mqtt
import pymongo
port, uri, n, client_id = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
coll = pymongo.MongoClient(uri)["bench_paho"]["sensors"]
count = 0
def on_connect(c, u, f, rc):
    c.subscribe("iot/bench/#", qos=1)
def on_subscribe(c, u, mid, granted):
    print("ready", flush=True)
def on_message(c, u, m):
    global count
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
print("stored %d" % count, flush=True)
'''


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


def publish(e2e, port, count):
    pub = subprocess.run([e2e, "publish", "--port", str(port), "--count", str(count), "--qos", "1"],
                         capture_output=True, text=True)
    if pub.returncode != 0:
        sys.exit("publisher failed: " + pub.stderr)


def run_peer(mode, name, consumer_cmd, ready, e2e, port, count, out_path, session_id):
    """live: starts the consumer, waits until it is subscribed, publishes, waits
    for it. backlog: the broker holds `count` readings for the consumer's
    persistent session, then the consumer starts and takes them all.
    Returns (seconds, peak RSS KiB, exit code, consumer stdout)."""
    if mode == "backlog":
        subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-c", "-i", session_id, "-q", "1",
                        "-t", "iot/bench/#", "-E"], check=True)
        publish(e2e, port, count)
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
        publish(e2e, port, count)
    rest = consumer.stdout.read() if ready == "line" else ""
    code, rss = wait4_rss(consumer, timeout=max(600, count / 200))
    elapsed = time.monotonic() - start
    out.close()
    return elapsed, rss, code, rest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "test"))
    ap.add_argument("--count", type=int, default=200000)
    ap.add_argument("--slow-count", type=int, default=20000, help="readings for the one-insert-per-message peer")
    ap.add_argument("--mode", choices=["backlog", "live"], default="backlog",
                    help="backlog (default): the broker holds the readings, the consumer drains them at its "
                         "speed; live: the consumer runs while the QoS 1 publisher sends")
    ap.add_argument("--ferretdb", default=os.environ.get("IOTBRIDGE_FERRETDB",
                                                         os.path.expanduser("~/.cache/iotbridge/ferretdb-v1.24.2/ferretdb")))
    ap.add_argument("--skip", default="", help="comma-separated row names to skip (sqlite,nosync,ferretdb,paho,sub)")
    args = ap.parse_args()
    e2e = os.path.join(args.build, "bench", "bench_record_e2e")
    if not os.access(e2e, os.X_OK):
        sys.exit("build bench_record_e2e first (cmake -DIOTBRIDGE_BUILD_BENCH=ON): " + e2e)
    skip = set(filter(None, args.skip.split(",")))
    n = args.count
    rows = []
    tmp = tempfile.mkdtemp(prefix="iotbridge-record-bench-")
    broker, port = start_mosquitto(tmp)
    ferret = None
    try:
        if "sub" not in skip:
            out = os.path.join(tmp, "sub.out")
            sid = "bench-sub"
            el, rss, code, _ = run_peer(args.mode, "mosquitto_sub",
                                        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-c", "-i", sid,
                                         "-t", "iot/bench/#", "-C", str(n)], "sleep", e2e, port, n, out, sid)
            with open(out) as f:
                got = sum(1 for _ in f)
            rows.append(("mosquitto_sub -q 1 (ceiling, receive only)", n, got, el, rss))

        def recorder_row(label, sid, store, extra):
            spool = tempfile.mkdtemp(prefix="spool-", dir=tmp)
            el, rss, code, rest = run_peer(args.mode, label,
                                           [e2e, "record", "--port", str(port), "--store", store, "--spool", spool,
                                            "--count", str(n), "--client-id", sid] + extra, "line", e2e, port, n,
                                           os.path.join(tmp, "rec.out"), sid)
            stored = 0
            for line in rest.splitlines():
                if line.startswith("{"):
                    stored = json.loads(line)["stats"]["stored"]
            rows.append((label, n, stored, el, rss))

        if "sqlite" not in skip:
            recorder_row("recorder -> SQLite (journal, fdatasync per batch)", "bench-rec-sqlite",
                         "sqlite:" + os.path.join(tmp, "rec.db"), [])
        if "nosync" not in skip:
            recorder_row("recorder -> SQLite (journal, no fsync)", "bench-rec-nosync",
                         "sqlite:" + os.path.join(tmp, "rec2.db"), ["--no-sync"])
        mongo_uri = None
        if ("ferretdb" not in skip or "paho" not in skip) and os.access(args.ferretdb, os.X_OK):
            ferret, mongo_uri = start_ferretdb(args.ferretdb, tmp)
        if "ferretdb" not in skip and mongo_uri:
            recorder_row("recorder -> FerretDB", "bench-rec-ferret", mongo_uri + "bench", [])
        if "paho" not in skip and mongo_uri:
            script = os.path.join(tmp, "paho_recorder.py")
            with open(script, "w") as f:
                f.write(PAHO_RECORDER)
            m = args.slow_count
            sid = "bench-paho"
            el, rss, code, rest = run_peer(args.mode, "paho",
                                           ["/usr/bin/python3", script, str(port), mongo_uri, str(m), sid], "line",
                                           e2e, port, m, os.path.join(tmp, "paho.out"), sid)
            stored = 0
            for line in rest.splitlines():
                if line.startswith("stored"):
                    stored = int(line.split()[1])
            rows.append(("paho-mqtt + pymongo insert_one per message -> FerretDB", m, stored, el, rss))
    finally:
        if ferret:
            ferret.terminate()
            ferret.wait()
        broker.terminate()
        broker.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    ceiling = next((r for r in rows if r[0].startswith("mosquitto_sub")), None)
    print("mode: %s, %d readings (%d for the one-insert-per-message peer)" % (args.mode, n, args.slow_count))
    print("| consumer | readings | stored/received | msg/s | vs mosquitto_sub | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, want, got, el, rss in rows:
        rate = want / el if el > 0 else 0
        ratio = "%.2fx" % (rate / (ceiling[1] / ceiling[3])) if ceiling else "-"
        print("| %s | %d | %d%s | %.0f | %s | %.1f MiB |" % (name, want, got, "" if got == want else " LOSS",
                                                          rate, ratio, rss / 1024.0))


if __name__ == "__main__":
    main()
