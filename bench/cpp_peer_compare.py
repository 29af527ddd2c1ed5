#!/usr/bin/python3
"""iotbridge::mqtt against paho.mqtt.cpp, the same C++ program on each, one broker, one run.

Starts its own mosquitto on a free loopback port (stopped by PID at the end;
max_queued_messages 1000000 so that a subscriber that falls behind loses
nothing at the broker, max_inflight_messages 20, its default) and runs the two
peers built in bench/ (mqtt_peer_iotbridge, mqtt_peer_paho; same CLI, see
bench/mqtt_peer_common.hpp), rounds interleaved so that load elsewhere on the
machine hits both alike, medians of --rounds:

  - throughput, QoS 0 and QoS 1: a `sub` process, then a `pub` process
    publishing as fast as its client takes messages (each client publishes to
    and receives from the same client library). Publish rate = N / (first
    publish -> last PUBACK, or last written for QoS 0); receive rate =
    received / (first -> last arrival); peak RSS (VmHWM) of each process;
  - latency at a fixed rate (--rates, default 1000 and 10000 msg/s), QoS 0
    and 1: `latency` mode, both clients in one process, the publish time in
    each payload; p50 / p99 publish-to-receive;
  - size: mqtt_min_pub_iotbridge (iotbridge::mqtt alone) and
    mqtt_min_pub_paho, each run once against the broker, then a copy
    stripped; the bytes, and the shared libraries ldd lists.

  bench/cpp_peer_compare.py --bench-dir build/dev/bench [--rounds 3] [--qos0 200000] [--qos1 100000]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtt_compare import start_broker, stop_broker  # noqa: E402

CLIENTS = (("iotbridge", "mqtt_peer_iotbridge"), ("paho.mqtt.cpp", "mqtt_peer_paho"))


def parse_result(text, what):
    for line in text.splitlines():
        if line.startswith("result "):
            return {k: v for k, v in (f.split("=", 1) for f in line.split()[1:])}
    raise SystemExit("%s printed no result line:\n%s" % (what, text[-2000:]))


def run_throughput(peer, port, qos, count, size, topic, extra):
    common = ["--port", str(port), "--qos", str(qos), "--count", str(count), "--size", str(size), "--topic", topic]
    common += extra
    sub = subprocess.Popen([peer, "--mode", "sub"] + common, stdout=subprocess.PIPE, text=True)
    if sub.stdout.readline().strip() != "ready":
        sub.kill()
        raise SystemExit("%s --mode sub did not subscribe" % peer)
    pub = subprocess.run([peer, "--mode", "pub"] + common, capture_output=True, text=True, timeout=600)
    out, _ = sub.communicate(timeout=600)
    p = parse_result(pub.stdout + pub.stderr, peer + " --mode pub")
    s = parse_result(out, peer + " --mode sub")
    return {"pub_rate": float(p["pub_msg_per_s"]), "sub_rate": float(s["sub_msg_per_s"]),
            "received": int(s["received"]), "pub_rss": int(p["peak_rss_kib"]), "sub_rss": int(s["peak_rss_kib"])}


def run_latency(peer, port, qos, rate, count, size, topic, extra):
    out = subprocess.run([peer, "--port", str(port), "--mode", "latency", "--qos", str(qos), "--count", str(count),
                          "--rate", str(rate), "--size", str(size), "--topic", topic] + extra,
                         capture_output=True, text=True, timeout=600)
    r = parse_result(out.stdout + out.stderr, peer + " --mode latency")
    return {"p50": float(r["p50_us"]), "p99": float(r["p99_us"]), "received": int(r["received"]),
            "rss": int(r["peak_rss_kib"])}


def extra_args(args, client):
    extra = ["--inflight", str(args.inflight)]
    if args.nodelay and client == "iotbridge":
        extra += ["--nodelay", "1"]
    return extra


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def shared_libs(binary):
    """(name, resolved path) for every library ldd lists."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(\S+)", line)
        if m:
            libs.append((m.group(1), os.path.realpath(m.group(2))))
    return libs


def size_rows(bench_dir, port, workdir):
    rows = []
    for client, name in (("iotbridge", "mqtt_min_pub_iotbridge"), ("paho.mqtt.cpp", "mqtt_min_pub_paho")):
        binary = os.path.join(bench_dir, name)
        ran = subprocess.run([binary, str(port), "bench/size", "hello"], capture_output=True, text=True, timeout=30)
        if ran.returncode != 0:
            raise SystemExit("%s failed: %s" % (name, ran.stderr.strip()))
        stripped = os.path.join(workdir, name + ".stripped")
        subprocess.run(["strip", "-o", stripped, binary], check=True)
        libs = shared_libs(binary)
        mqtt_libs = [(n, p) for n, p in libs if re.search(r"mosquitto|paho", n)]
        rows.append({"client": client, "name": name, "bytes": os.path.getsize(stripped),
                     "mqtt_libs": [(n, os.path.getsize(p)) for n, p in mqtt_libs],
                     "other_libs": [n for n, _ in libs if (n, _) not in mqtt_libs]})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench-dir", default="build/dev/bench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--qos0", type=int, default=200000, help="messages in the QoS 0 throughput run")
    ap.add_argument("--qos1", type=int, default=100000, help="messages in the QoS 1 throughput run")
    ap.add_argument("--rates", default="1000,10000", help="fixed rates (msg/s) of the latency runs")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each latency run")
    ap.add_argument("--size", type=int, default=32, help="payload bytes (the first 20 carry the publish time)")
    ap.add_argument("--nodelay", action="store_true",
                    help="TCP_NODELAY in the iotbridge peer (paho.mqtt.c has no such option and leaves Nagle on)")
    ap.add_argument("--inflight", type=int, default=0,
                    help="QoS 1 messages on the wire for both (0: each client's default, iotbridge 20, paho 65535)")
    args = ap.parse_args()
    peers = []
    for client, name in CLIENTS:
        path = os.path.join(args.bench_dir, name)
        if not os.access(path, os.X_OK):
            raise SystemExit("%s not found: configure with -DIOTBRIDGE_BUILD_BENCH=ON (paho.mqtt.cpp installed, "
                             "scripts/install-deps) and build it" % path)
        peers.append((client, path))
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    workdir = tempfile.mkdtemp(prefix="iotbridge-peer-")
    load_before = os.getloadavg()
    broker, port = start_broker(mosquitto, workdir, "mosquitto",
                                "max_queued_messages 1000000\nmax_inflight_messages 20\n")
    try:
        throughput = {}
        for qos, count in ((0, args.qos0), (1, args.qos1)):
            for rnd in range(args.rounds):
                for client, path in peers:
                    r = run_throughput(path, port, qos, count, args.size, "bench/t/%d/%d" % (qos, rnd),
                                       extra_args(args, client))
                    throughput.setdefault((qos, client), []).append(r)
                    print("throughput QoS %d %-14s publish %8.0f msg/s  receive %8.0f msg/s  received %d/%d  "
                          "RSS pub %d KiB sub %d KiB" % (qos, client, r["pub_rate"], r["sub_rate"], r["received"],
                                                         count, r["pub_rss"], r["sub_rss"]), flush=True)
        latency = {}
        for rate in (int(x) for x in args.rates.split(",")):
            count = int(rate * args.seconds)
            for qos in (0, 1):
                for rnd in range(args.rounds):
                    for client, path in peers:
                        r = run_latency(path, port, qos, rate, count, args.size, "bench/l/%d/%d/%d" % (rate, qos, rnd),
                                        extra_args(args, client))
                        latency.setdefault((rate, qos, client), []).append(r)
                        print("latency %5d msg/s QoS %d %-14s p50 %8.1f us  p99 %9.1f us  received %d/%d  RSS %d KiB" %
                              (rate, qos, client, r["p50"], r["p99"], r["received"], count, r["rss"]), flush=True)
        sizes = size_rows(args.bench_dir, port, workdir)
    finally:
        stop_broker(broker)
        shutil.rmtree(workdir, ignore_errors=True)
    load_after = os.getloadavg()

    print()
    print("load average before %.2f %.2f %.2f, after %.2f %.2f %.2f; medians of %d interleaved rounds; "
          "--inflight %d%s" % (load_before + load_after + (args.rounds, args.inflight,
                                                          " --nodelay" if args.nodelay else "")))
    print()
    print("| QoS | messages | client | publish msg/s | receive msg/s | received (worst) | peak RSS pub / sub |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for qos, count in ((0, args.qos0), (1, args.qos1)):
        for client, _ in peers:
            rs = throughput[(qos, client)]
            print("| %d | %d | %s | %.0f | %.0f | %d | %.1f / %.1f MiB |" %
                  (qos, count, client, median([r["pub_rate"] for r in rs]), median([r["sub_rate"] for r in rs]),
                   min(r["received"] for r in rs), median([r["pub_rss"] for r in rs]) / 1024,
                   median([r["sub_rss"] for r in rs]) / 1024))
    print()
    print("| rate | QoS | client | p50 | p99 | p99 per round | received (worst) | peak RSS |")
    print("|---:|---|---|---:|---:|---|---:|---:|")
    for (rate, qos, client), rs in latency.items():
        print("| %d msg/s | %d | %s | %.0f us | %.0f us | %s | %d of %d | %.1f MiB |" %
              (rate, qos, client, median([r["p50"] for r in rs]), median([r["p99"] for r in rs]),
               ", ".join("%.0f" % r["p99"] for r in rs), min(r["received"] for r in rs),
               int(rate * args.seconds), median([r["rss"] for r in rs]) / 1024))
    print()
    print("| minimal publisher | stripped binary | MQTT shared libraries (bytes) | other shared libraries |")
    print("|---|---:|---|---|")
    for s in sizes:
        print("| %s (`%s`) | %d bytes | %s | %s |" %
              (s["client"], s["name"], s["bytes"], ", ".join("%s %d" % lib for lib in s["mqtt_libs"]),
               ", ".join(s["other_libs"])))


if __name__ == "__main__":
    sys.exit(main())
