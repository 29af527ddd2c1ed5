#!/usr/bin/python3
"""One recorder against two on a two-node Artemis cluster, same stream, same run.

Two Apache Artemis 2.40 nodes on loopback (scripts/build-artemis; clustered by
static connectors, redistribution-delay 0, as tests/support/artemis_cluster.cpp
makes them), one FerretDB (scripts/build-ferretdb). Each round publishes the
same QoS 1 stream (bench_record_e2e publish: --count readings like `24.37` on
10 topics, up to 1000 in flight) on node 0 to a shared group
$share/recorders/iot/bench/#, recorded by

  one   iotbridge-recorder on node 0
  two   iotbridge-recorder on node 0 and another on node 1, one FerretDB

each recorder a process with a configuration file (batch 1000, flush 100 ms,
journal on, not synced). Rate = readings / (first publish -> the recorders'
stored counters, read from /metrics, add up to the stream). Every round checks
that the database holds exactly the stream. A first round of each row warms
the brokers' JIT and is not counted; then rounds alternate which row runs
first; the table shows the medians and the median of the rounds' ratios. Usage:

  /usr/bin/python3 bench/cluster_compare.py [--build build/test] [--count 20000] [--runs 3]
      [--artemis HOME] [--ferretdb PATH]
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
from record_compare import free_port, median, start_ferretdb, wait_port  # noqa: E402  (the recorder benchmark's helpers)
GROUP_FILTER = "$share/recorders/iot/bench/#"
GROUP_QUEUE = "recorders.iot.bench.#"
USER = PASSWORD = "iotbridge"


def script_output(name):
    return subprocess.run([os.path.join(ROOT, "scripts", name)], check=True, capture_output=True,
                          text=True).stdout.strip()


class Cluster:
    """Two Artemis nodes, each with an MQTT and a core (cluster) acceptor on free ports."""

    def __init__(self, home, tmp):
        self.nodes = []
        for i in range(2):
            self.nodes.append({"dir": os.path.join(tmp, "node%d" % i), "core": free_port(), "mqtt": free_port()})
        for i, n in enumerate(self.nodes):
            peer = self.nodes[1 - i]
            subprocess.run([os.path.join(home, "bin", "artemis"), "create", n["dir"], "--silent", "--clustered",
                            "--staticCluster", "tcp://127.0.0.1:%d" % peer["core"], "--max-hops", "1",
                            "--java-memory", "512M", "--no-web", "--user", USER, "--password", PASSWORD,
                            "--allow-anonymous", "--host", "127.0.0.1", "--name", "node%d" % i,
                            "--default-port", str(n["core"]), "--cluster-user", "cluster", "--cluster-password",
                            "cluster", "--no-amqp-acceptor", "--no-hornetq-acceptor", "--no-stomp-acceptor",
                            "--no-fsync"], check=True, stdout=subprocess.DEVNULL)
            xml = os.path.join(n["dir"], "etc", "broker.xml")
            text = open(xml).read()
            text = text.replace("127.0.0.1:1883?", "127.0.0.1:%d?" % n["mqtt"])
            text = text.replace('<address-setting match="#">',
                                '<address-setting match="#">\n<redistribution-delay>0</redistribution-delay>')
            open(xml, "w").write(text)
        self.procs = []
        for n in self.nodes:
            log = open(os.path.join(n["dir"], "run.log"), "w")
            self.procs.append(subprocess.Popen([os.path.join(n["dir"], "bin", "artemis"), "run"], stdout=log,
                                               stderr=subprocess.STDOUT))
        for i, n in enumerate(self.nodes):
            if not wait_port(n["mqtt"], 180):
                sys.exit("Artemis node %d did not start: see %s/run.log" % (i, n["dir"]))
        for i in range(2):
            deadline = time.monotonic() + 180
            while subprocess.run(self.tool(i, "check", "node", "--up", "--peers", "2"),
                                 capture_output=True).returncode != 0:
                if time.monotonic() > deadline:
                    sys.exit("Artemis node %d did not join the cluster" % i)
                time.sleep(0.5)

    def tool(self, i, *args):
        n = self.nodes[i]
        return [os.path.join(n["dir"], "bin", "artemis"), *args, "--url", "tcp://127.0.0.1:%d" % n["core"],
                "--user", USER, "--password", PASSWORD]

    def consumers(self, i):
        out = subprocess.run(self.tool(i, "queue", "stat", "--maxColumnSize", "-1"), capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            cells = [c.strip() for c in line.split("|")]
            if len(cells) > 3 and cells[1] == GROUP_QUEUE:
                return int(cells[3])
        return 0

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()


class Recorder:
    def __init__(self, build, tmp, name, mqtt_port, uri, database):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.metrics = free_port()
        conf = os.path.join(self.dir, "recorder.toml")
        with open(conf, "w") as f:
            f.write('[mqtt]\nurl = "mqtt://127.0.0.1:%d"\nclient_id = "%s"\n' % (mqtt_port, name))
            f.write('[store]\nuri = "%s"\ndatabase = "%s"\n' % (uri, database))
            f.write('[durability]\ndir = "%s"\nsync = false\n' % os.path.join(self.dir, "spool"))
            f.write('[metrics]\nlisten = "127.0.0.1:%d"\n' % self.metrics)
            f.write('[[route]]\nname = "bench"\nfilters = ["%s"]\n' % GROUP_FILTER)
        self.err = open(os.path.join(self.dir, "recorder.err"), "w")
        self.proc = subprocess.Popen([os.path.join(build, "cli", "iotbridge-recorder"), "--config", conf, "--quiet"],
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        if not wait_port(self.metrics, 60):
            sys.exit("iotbridge-recorder did not start: see " + self.err.name)

    def stored(self):
        try:
            body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics, timeout=5).read().decode()
        except OSError:
            return -1
        m = re.search(r'^iotbridge_readings_stored_total\{route="bench"\} (\S+)$', body, re.M)
        return int(float(m.group(1))) if m else 0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        self.err.close()
        return open(self.err.name).read().strip().splitlines()[-1]


def measure(args, cluster, uri, tmp, mode, round_no):
    database = "bench_%s_%s" % (mode, str(round_no).replace("-", "_"))
    nodes = [0] if mode == "one" else [0, 1]
    recorders = [Recorder(args.build, tmp, "%s-%s-r%d" % (mode, round_no, i), cluster.nodes[i]["mqtt"], uri,
                          database) for i in nodes]
    for i in nodes:
        deadline = time.monotonic() + 120
        while cluster.consumers(i) != 1:
            if time.monotonic() > deadline:
                sys.exit("the recorder on node %d did not subscribe" % i)
            time.sleep(0.5)
    time.sleep(1.0)  # the subscription reaches the other node in ~0.1 s; no event says so
    e2e = os.path.join(args.build, "bench", "bench_record_e2e")
    start = time.monotonic()
    pub = subprocess.run([e2e, "publish", "--host", "127.0.0.1", "--port", str(cluster.nodes[0]["mqtt"]), "--count",
                          str(args.count), "--qos", "1"], capture_output=True, text=True)
    if pub.returncode != 0:
        sys.exit("publisher failed: " + pub.stderr)
    published_in = json.loads(pub.stdout)["elapsed"]
    while sum(max(r.stored(), 0) for r in recorders) < args.count:
        if time.monotonic() - start > max(600, args.count / 50):
            sys.exit("%s: not all stored in time" % mode)
        time.sleep(0.02)
    elapsed = time.monotonic() - start
    parts = [r.stored() for r in recorders]
    summaries = [r.stop() for r in recorders]
    import pymongo  # Debian's python3-pymongo (install-deps)
    stored = pymongo.MongoClient(uri)[database]["sensors"].count_documents({})
    if stored != args.count:
        sys.exit("%s: the database holds %d documents, not %d" % (mode, stored, args.count))
    print("round %s %-3s: %7.0f readings/s (the publisher's acks: %.1f s of %.1f s), split %s, %s" %
          (round_no, mode, args.count / elapsed, published_in, elapsed, parts, "; ".join(summaries)), flush=True)
    return args.count / elapsed, parts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "test"))
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--artemis", default="")
    ap.add_argument("--ferretdb", default="")
    args = ap.parse_args()
    for tool in ("cli/iotbridge-recorder", "bench/bench_record_e2e"):
        if not os.access(os.path.join(args.build, tool), os.X_OK):
            sys.exit("build %s first (-DIOTBRIDGE_BUILD_BENCH=ON): %s" % (tool, os.path.join(args.build, tool)))
    artemis = args.artemis or script_output("build-artemis")
    ferretdb = args.ferretdb or script_output("build-ferretdb")
    tmp = tempfile.mkdtemp(prefix="iotbridge-cluster-bench-")
    load_before = os.getloadavg()
    fdb, uri = start_ferretdb(ferretdb, tmp)
    cluster = None
    rates = {"one": [], "two": []}
    splits = []
    try:
        cluster = Cluster(artemis, tmp)
        # The brokers' JIT compiles the paths the stream takes in the first
        # rounds (measured: a cold first round 2-7x slower): not counted.
        for mode in ("one", "two"):
            measure(args, cluster, uri, tmp, mode, "warm-up")
        for r in range(args.runs):
            for mode in (("one", "two") if r % 2 == 0 else ("two", "one")):
                rate, parts = measure(args, cluster, uri, tmp, mode, r)
                rates[mode].append(rate)
                if mode == "two":
                    splits.append(parts)
    finally:
        if cluster:
            cluster.stop()
        fdb.terminate()
        fdb.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()
    one, two = median(rates["one"]), median(rates["two"])
    ratio = median([t / o for o, t in zip(rates["one"], rates["two"])])
    print()
    print("| recorders | readings | readings/s (median of %d) | vs one (median of the rounds' ratios) | "
          "split (node 0 / node 1) |" % args.runs)
    print("|---|---:|---:|---:|---|")
    print("| one (node 0) | %d | %.0f | 1.00x | all / - |" % (args.count, one))
    print("| two (node 0 + node 1), one FerretDB | %d | %.0f | %.2fx | %s |" %
          (args.count, two, ratio, ", ".join("%d / %d" % tuple(p) for p in splits)))
    print()
    print("load average %.2f %.2f %.2f before, %.2f %.2f %.2f after; %d cores" %
          (*load_before, *load_after, os.cpu_count()))


if __name__ == "__main__":
    main()
