#!/usr/bin/env python3
"""packaging:deb: builds the .deb with cpack (into a temporary folder, not the
build tree), checks its control fields and file list, unpacks it with
`dpkg -x` into a temporary root (nothing is installed into the system) and
uses it from there: the CLIs' --help and a real round trip (iotbridge-pub into
a broker, iotbridge-sub --store into an SQLite file, iotbridge-db reading it
back), the man pages, the pkg-config file (a program compiled and linked
against the unpacked library) and the systemd unit (systemd-analyze verify)."""
import argparse
import glob
import signal
import time
import urllib.request
import gzip
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import Checklist, Mosquitto, free_port, run, temp_dir, wait_for  # noqa: E402
from unit_test import allowed_syscalls, parse_unit  # noqa: E402

TOOLS = ["iotbridge-pub", "iotbridge-sub", "iotbridge-db", "iotbridge-recorder"]
UNIT = "iotbridge-recorder@.service"
SERVICE_UNIT = "iotbridge-recorder.service"
CONFIG = "/etc/iotbridge/recorder.toml"
RUNTIME_LIBRARIES = ["libmosquitto1", "libmongoc-1.0-0", "libbson-1.0-0", "libsqlite3-0", "libfmt9"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpack", required=True)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--mosquitto", default="")
    ap.add_argument("--cxx", default=os.environ.get("CXX", "c++"))
    ap.add_argument("--sanitize", default="", help="IOTBRIDGE_SANITIZE of the tree: the consumer links the runtime")
    args = ap.parse_args()
    c = Checklist("packaging:deb")
    work = temp_dir("iotbridge-deb-")
    try:
        deb = build_deb(c, args, work)
        check_control(c, deb, args.version)
        check_contents(c, deb, args.source_dir)
        root = os.path.join(work, "root")
        run(["dpkg", "-x", deb, root], c, "dpkg -x unpacks the package into a temporary root")
        check_tools(c, root, work, args)
        check_man_pages(c, root, args.version)
        check_pkg_config(c, root, work, args)
        check_unit(c, root, work)
        check_service_unit(c, root, work)
        check_service_run(c, root, work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    c.finish()


def build_deb(c, args, work):
    out = os.path.join(work, "out")
    r = run([args.cpack, "-G", "DEB", "--config", os.path.join(args.build_dir, "CPackConfig.cmake"), "-B", out],
            c, "cpack -G DEB builds the package", timeout=300)
    debs = glob.glob(os.path.join(out, "*.deb"))
    c.check(len(debs) == 1, "cpack made exactly one .deb", r.stdout)
    size = os.path.getsize(debs[0])
    print(f"package: {os.path.basename(debs[0])}, {size} bytes")
    return debs[0]


def check_control(c, deb, version):
    fields = {}
    for name in ["Package", "Version", "Architecture", "Maintainer", "Description", "Depends", "Section"]:
        fields[name] = run(["dpkg-deb", "-f", deb, name]).stdout.strip()
    print("control:", fields)
    c.check(fields["Package"] == "iotbridge", "Package: iotbridge")
    c.check(fields["Version"].split("-")[0] == version, f"Version {fields['Version']} is the project version {version}")
    c.check(fields["Architecture"] == run(["dpkg", "--print-architecture"]).stdout.strip(),
            "Architecture is this machine's")
    c.check(re.search(r"<[^>]+@[^>]+>", fields["Maintainer"]) is not None, "Maintainer has a name and an address")
    c.check(len(fields["Description"].splitlines()) > 3, "Description has a synopsis and an extended text")
    depends = [d.strip().split(" ")[0] for d in fields["Depends"].split(",")]
    for lib in RUNTIME_LIBRARIES:
        c.check(lib in depends, f"Depends names {lib}", fields["Depends"])
    info = run(["dpkg-deb", "--info", deb], c, "dpkg-deb --info reads the control archive").stdout
    c.check("Installed-Size" in info, "control has Installed-Size")
    conffiles = run(["dpkg-deb", "--info", deb, "conffiles"]).stdout.split()
    c.check(conffiles == [CONFIG], f"{CONFIG} is a conffile (an edited file survives upgrades)", str(conffiles))


def check_contents(c, deb, source_dir):
    listing = run(["dpkg-deb", "-c", deb], c, "dpkg-deb -c lists the files").stdout
    files = {line.split()[-1].lstrip(".") for line in listing.splitlines() if line and not line.startswith("d")}

    def has(pattern, what):
        matches = [f for f in files if re.fullmatch(pattern, f)]
        c.check(len(matches) >= 1, f"{what}: {matches[0] if matches else pattern}", "\n".join(sorted(files)))

    for tool in TOOLS:
        has(rf"/usr/bin/{tool}", f"the {tool} executable")
        has(rf"/usr/share/man/man1/{tool}\.1\.gz", f"the {tool} man page")
    for component in ("mqtt", "store", "record"):
        has(rf"/usr/lib/(.+/)?libiotbridge-{component}\.(a|so)", f"the {component} component's library")
        has(rf"/usr/lib/(.+/)?cmake/iotbridge/iotbridge-{component}-targets\.cmake",
            f"the {component} component's CMake targets")
        has(rf"/usr/lib/(.+/)?pkgconfig/iotbridge-{component}\.pc", f"the {component} component's pkg-config file")
    has(r"/usr/lib/(.+/)?cmake/iotbridge/iotbridgeConfig\.cmake", "the CMake package config")
    has(r"/usr/lib/(.+/)?cmake/iotbridge/iotbridgeConfigVersion\.cmake", "the CMake version file")
    has(r"/usr/lib/(.+/)?cmake/iotbridge/iotbridge-all-targets\.cmake", "the CMake targets of iotbridge::iotbridge")
    has(r"/usr/lib/(.+/)?pkgconfig/iotbridge\.pc", "the pkg-config file")
    has(rf"/usr/lib/systemd/system/{re.escape(UNIT)}", "the systemd unit")
    has(rf"/usr/lib/systemd/system/{re.escape(SERVICE_UNIT)}", "the iotbridge-recorder unit")
    has(re.escape(CONFIG), "the example configuration of iotbridge-recorder")
    has(r"/usr/share/doc/iotbridge/recorder-config\.md", "the configuration reference")
    has(r"/usr/share/doc/iotbridge/examples/recorder\.env", "the example environment file")
    has(r"/usr/share/doc/iotbridge/operating\.md", "the operating guide")
    has(r"/usr/share/doc/iotbridge/copyright", "the copyright file")
    include_root = os.path.join(source_dir, "include")
    headers = sorted(os.path.relpath(os.path.join(d, f), include_root)
                     for d, _, fs in os.walk(include_root) for f in fs if f.endswith(".hpp"))
    # include/iotbridge/service/ is iotbridge-recorder's own library, which is not installed.
    headers = [h for h in headers if not h.startswith("iotbridge/service/")]
    missing = [h for h in headers if "/usr/include/" + h not in files]
    c.check(not missing and headers, f"all {len(headers)} public headers are in /usr/include", str(missing))
    strays = [f for f in files if not f.startswith("/usr/") and f != CONFIG]
    c.check(not strays, f"nothing outside /usr but {CONFIG} (no /usr/local)", str(strays))


def check_tools(c, root, work, args):
    bindir = os.path.join(root, "usr", "bin")
    for tool in TOOLS:
        exe = os.path.join(bindir, tool)
        ldd = run(["ldd", exe]).stdout
        c.check("not found" not in ldd, f"{tool}: every shared library it needs resolves on this system", ldd)
        r = run([exe, "--help"], c, f"{tool} --help exits 0 from the unpacked root")
        c.check(tool in r.stdout or "Usage" in r.stdout, f"{tool} --help prints its usage", r.stdout)
        v = run([exe, "--version"], c, f"{tool} --version exits 0")
        c.check(v.stdout.strip() == f"{tool} {args.version}", f"{tool} --version prints '{tool} {args.version}'",
                v.stdout)
        r = run([exe, "--no-such-flag"])
        c.check(r.returncode != 0 and "--help" in r.stderr, f"{tool} refuses an unknown flag with a --help hint",
                r.stderr)

    # iotbridge-db on its own: insert, find, count in an SQLite file.
    db = os.path.join(bindir, "iotbridge-db")
    store = "sqlite:" + os.path.join(work, "db-only.db")
    run([db, "--store", store, "insert", "farm", "readings", '{"_id": 1, "topic": "t/a", "value": 21.5}',
         '{"_id": 2, "topic": "t/b", "value": 23.0}'], c, "iotbridge-db inserts two documents into an SQLite file")
    r = run([db, "--store", store, "find", "farm", "readings", '{"value": {"$gt": 22}}'],
            c, "iotbridge-db find with a filter")
    c.check('"t/b"' in r.stdout and '"t/a"' not in r.stdout, "find returns the matching document only", r.stdout)
    r = run([db, "--store", store, "count", "farm", "readings"], c, "iotbridge-db count")
    c.check(r.stdout.strip() == "2", "count is 2", r.stdout)
    r = run([db, "--store", store, "insert", "farm", "readings", '{"_id": 1}'])
    c.check(r.returncode != 0, "a duplicate _id is refused (exit non-zero)", r.stdout + r.stderr)

    # pub -> broker -> sub --store -> db, all from the package.
    if not args.mosquitto:
        c.note_not_checked("iotbridge-pub/iotbridge-sub round trip: no mosquitto binary found")
        return
    broker = Mosquitto(args.mosquitto, work)
    try:
        port = str(broker.port)
        # Retained, so that the recorder gets it whenever it subscribes: no race.
        run([os.path.join(bindir, "iotbridge-pub"), "-p", port, "-t", "iot/pkg/temperature", "-m", "24.5",
             "-q", "1", "-r"], c, "iotbridge-pub publishes a retained QoS 1 reading")
        recorded = "sqlite:" + os.path.join(work, "recorded.db")
        run([os.path.join(bindir, "iotbridge-sub"), "-p", port, "-t", "iot/#", "--store", recorded, "-C", "1",
             "--spool", os.path.join(work, "spool")], c,
            "iotbridge-sub --store records one message (-C 1) and exits 0", timeout=30)
        r = run([db, "--store", recorded, "find", "iot_service", "sensors"], c, "iotbridge-db reads the recording")
        c.check('"iot/pkg/temperature"' in r.stdout and "24.5" in r.stdout,
                "the recorded document has the topic and the decoded value", r.stdout)
    finally:
        broker.stop()


def check_man_pages(c, root, version):
    mandir = os.path.join(root, "usr", "share", "man")
    for tool in TOOLS:
        path = os.path.join(mandir, "man1", tool + ".1.gz")
        with gzip.open(path, "rt") as f:
            troff = f.read()
        c.check(len(troff) > 1000, f"{tool}.1.gz is gzip with {len(troff)} characters of troff")
        c.check(re.search(rf'^\.TH "?{tool.upper()}"? "?1"?', troff, re.M) is not None,
                f"{tool}.1 has a .TH header for section 1", troff[:400])
        env = dict(os.environ, MANWIDTH="100")
        r = run(["man", "-l", path], env=env) if shutil.which("man") else None
        if r is None:
            c.note_not_checked(f"rendering {tool}.1 with man -l: man is not installed")
            text = troff
        else:
            c.check(r.returncode == 0, f"man -l renders {tool}.1", r.stderr)
            text = re.sub(".\b", "", r.stdout)  # overstrike bold and underline, when man keeps them
        c.check(re.search(rf'^\.TH .*"{re.escape(tool)} {re.escape(version)}"', troff, re.M) is not None,
                f"{tool}.1 is for version {version}", troff[:400])
        c.check("NAME" in text and tool in text and "OPTIONS" in text, f"{tool}.1 has NAME and OPTIONS", text[:600])
        flags = {"iotbridge-pub": ["--simulate", "--password-file"], "iotbridge-sub": ["--store", "--spool"],
                 "iotbridge-db": ["--store", "find", "--projection"],
                 "iotbridge-recorder": ["--config", "--check", "IOTBRIDGE_STORE", "/metrics"]}[tool]
        for flag in flags:
            c.check(flag in text, f"{tool}.1 documents {flag} (from --help)")
        c.check("ENVIRONMENT" in text and "SEE ALSO" in text, f"{tool}.1 has ENVIRONMENT and SEE ALSO")
        if tool in ("iotbridge-pub", "iotbridge-sub", "iotbridge-db"):
            c.check("EXAMPLES" in text and f"{tool} -" in text, f"{tool}.1 has EXAMPLES of {tool} command lines")


def check_pkg_config(c, root, work, args):
    pcs = glob.glob(os.path.join(root, "usr", "lib", "**", "iotbridge.pc"), recursive=True)
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]))
    if not shutil.which("pkg-config"):
        c.note_not_checked("the pkg-config file: pkg-config is not installed")
        return
    includedir = run(["pkg-config", "--variable=includedir", "iotbridge"], env=env).stdout.strip()
    c.check(os.path.realpath(includedir) == os.path.realpath(os.path.join(root, "usr", "include")),
            f"the .pc file is relocatable: includedir resolves into the unpacked root ({includedir})")
    flags = run(["pkg-config", "--cflags", "--libs", "--static", "iotbridge"], c,
                "pkg-config --cflags --libs --static iotbridge", env=env).stdout.split()
    source = os.path.join(work, "consumer.cpp")
    with open(source, "w") as f:
        f.write('#include <iotbridge/topic.hpp>\n#include <cstdio>\n'
                'int main() { std::puts(iotbridge::topic_matches("home/+/light", "home/kitchen/light") ? '
                '"pkg-config consumer ok" : "mismatch"); }\n')
    exe = os.path.join(work, "consumer")
    # An instrumented library needs the sanitizer runtime in the consumer's link too.
    sanitize = [f"-fsanitize={args.sanitize}"] if args.sanitize else []
    run([args.cxx, source, "-o", exe] + sanitize + flags, c, "a program compiles and links against the unpacked library with "
        "the .pc flags", timeout=120)
    r = run([exe], c, "the program runs")
    c.check(r.stdout.strip() == "pkg-config consumer ok", "the program calls into the library", r.stdout)


def check_unit(c, root, work):
    unit_src = os.path.join(root, "usr", "lib", "systemd", "system", UNIT)
    text = open(unit_src).read()
    # Static checks first: they hold whether or not systemd-analyze exists.
    required = ["ExecStart=/usr/bin/iotbridge-sub ", "EnvironmentFile=/etc/iotbridge/%i.env", "Restart=on-failure",
                "KillSignal=SIGTERM", "TimeoutStopSec=", "DynamicUser=yes", "StateDirectory=iotbridge/%i",
                "--spool %S/iotbridge/%i", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                "NoNewPrivileges=yes", "PrivateDevices=yes", "ProtectKernelTunables=yes", "ProtectKernelModules=yes",
                "ProtectKernelLogs=yes", "ProtectControlGroups=yes",
                "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces=yes", "LockPersonality=yes",
                "MemoryDenyWriteExecute=yes", "SystemCallFilter=@system-service", "CapabilityBoundingSet=\n",
                "LoadCredential=password:/etc/iotbridge/%i.password", "WantedBy=multi-user.target"]
    missing = [k for k in required if k not in text]
    c.check(not missing, f"the unit has the {len(required)} required settings (static check)", str(missing))

    analyze = shutil.which("systemd-analyze")
    if not analyze:
        c.note_not_checked("systemd-analyze verify: systemd-analyze is not installed (only the static check ran)")
        return
    # An instance of the template, its ExecStart pointing into the unpacked root
    # (verify checks the binary exists) and its Documentation= man page found
    # through MANPATH (verify runs `man` on it).
    units = os.path.join(work, "units")
    os.makedirs(units)
    env_file = os.path.join(root, "usr", "share", "doc", "iotbridge", "examples", "recorder.env")
    instance = text.replace("/usr/bin/iotbridge-sub", os.path.join(root, "usr", "bin", "iotbridge-sub"))
    instance = instance.replace("EnvironmentFile=/etc/iotbridge/%i.env", "EnvironmentFile=" + env_file)
    path = os.path.join(units, "iotbridge-recorder@home.service")
    with open(path, "w") as f:
        f.write(instance)
    env = dict(os.environ, MANPATH=os.path.join(root, "usr", "share", "man"), SYSTEMD_LOG_TARGET="console",
               SYSTEMD_LOG_COLOR="0")
    r = run([analyze, "verify", path], env=env, cwd=units)
    output = (r.stdout + r.stderr).strip()
    c.check(r.returncode == 0 and output == "",
            "systemd-analyze verify accepts the unit with no warning (syntax, values, binary, man page)",
            f"exit {r.returncode}\n{output}")


HARDENING = ["DynamicUser=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
             "NoNewPrivileges=yes", "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectKernelLogs=yes",
             "ProtectControlGroups=yes", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces=yes",
             "LockPersonality=yes", "MemoryDenyWriteExecute=yes", "SystemCallFilter=@system-service",
             "CapabilityBoundingSet=\n"]


def check_service_unit(c, root, work):
    """iotbridge-recorder.service: its settings, and systemd-analyze verify."""
    unit_dir = os.path.join(root, "usr", "lib", "systemd", "system")
    text = open(os.path.join(unit_dir, SERVICE_UNIT)).read()
    template = open(os.path.join(unit_dir, UNIT)).read()
    required = [f"ExecStart=/usr/bin/iotbridge-recorder --config {CONFIG}\n",
                f"ExecStartPre=/usr/bin/iotbridge-recorder --config {CONFIG} --check\n",
                "ExecReload=/bin/kill -HUP $MAINPID\n", "KillSignal=SIGTERM", "Restart=on-failure",
                "RestartPreventExitStatus=2", "StateDirectory=iotbridge\n", "WantedBy=multi-user.target"] + HARDENING
    missing = [k for k in required if k not in text]
    c.check(not missing, f"{SERVICE_UNIT} has the {len(required)} required settings", str(missing))
    # The hardening of the template unit, setting for setting.
    section = template.split("# ---- hardening ----", 1)[1].split("[Install]", 1)[0]
    wanted = [line for line in section.splitlines() if "=" in line and not line.startswith("#")
              and not line.startswith("StateDirectory=")]
    lacking = [line for line in wanted if line + "\n" not in text]
    c.check(wanted and not lacking, f"{SERVICE_UNIT} has every hardening setting of {UNIT} ({len(wanted)})",
            str(lacking))
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        c.note_not_checked(f"systemd-analyze verify {SERVICE_UNIT}: systemd-analyze is not installed")
        return
    units = os.path.join(work, "service-units")
    os.makedirs(units)
    path = os.path.join(units, SERVICE_UNIT)
    with open(path, "w") as f:
        f.write(text.replace("/usr/bin/iotbridge-recorder", os.path.join(root, "usr", "bin", "iotbridge-recorder")))
    env = dict(os.environ, MANPATH=os.path.join(root, "usr", "share", "man"), SYSTEMD_LOG_TARGET="console",
               SYSTEMD_LOG_COLOR="0")
    r = run([analyze, "verify", path], env=env, cwd=units)
    output = (r.stdout + r.stderr).strip()
    c.check(r.returncode == 0 and output == "",
            f"systemd-analyze verify accepts {SERVICE_UNIT} with no warning", f"exit {r.returncode}\n{output}")


def metrics_value(port, name):
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    total = None
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total = (total or 0) + float(line.split()[-1])
    return total


def check_service_run(c, root, work, args):
    """The unit's ExecStartPre= and ExecStart= lines, exactly, with the packaged
    /etc/iotbridge/recorder.toml: only the broker port, the metrics port and
    /var/lib (into a temporary folder) are changed, and printed. A reading is
    recorded and counted on /metrics, ExecReload's SIGHUP applies an added route,
    KillSignal stops it with exit 0, and (under strace) every system call is in
    SystemCallFilter=."""
    if not args.mosquitto:
        c.note_not_checked("iotbridge-recorder.service run: no mosquitto binary found")
        return
    unit = parse_unit(os.path.join(root, "usr", "lib", "systemd", "system", SERVICE_UNIT))
    values = lambda key: [v for s, k, v in unit if s == "[Service]" and k == key]  # noqa: E731
    exe = os.path.join(root, "usr", "bin", "iotbridge-recorder")
    state = os.path.join(work, "var", "lib")
    config = os.path.join(work, "recorder.toml")
    broker_dir = os.path.join(work, "service-broker")  # its own log: the round trip's broker logged a SUBACK already
    os.makedirs(broker_dir)
    broker = Mosquitto(args.mosquitto, broker_dir)
    try:
        metrics_port = free_port()
        text = open(os.path.join(root, CONFIG.lstrip("/"))).read()
        overrides = [(re.search(r'url = "mqtt://[^"]*"', text).group(0), f'url = "mqtt://127.0.0.1:{broker.port}"'),
                     (re.search(r'listen = "[^"]*"', text).group(0), f'listen = "127.0.0.1:{metrics_port}"'),
                     ("/var/lib/", state + "/")]
        for old, new in overrides:
            print(f"test override: {old} -> {new}")
            text = text.replace(old, new)
        os.makedirs(os.path.join(state, "iotbridge"))
        with open(config, "w") as f:
            f.write(text)

        def command(line):
            return [exe if w == "/usr/bin/iotbridge-recorder" else (config if w == CONFIG else w)
                    for w in line.split()]

        pre = command(values("ExecStartPre")[0])
        r = run(pre, c, "ExecStartPre= (--check) accepts the packaged configuration")
        c.check("route climate" in r.stdout, "--check prints the example's route", r.stdout)
        argv = command(values("ExecStart")[0])
        allowed = allowed_syscalls(values("SystemCallFilter"))
        trace = os.path.join(work, "recorder-strace.log") if allowed is not None and shutil.which("strace") else None
        log_path = os.path.join(work, "recorder-service.log")
        with open(log_path, "w") as log:
            full = (["strace", "-f", "-qq", "-o", trace, "--"] if trace else []) + argv
            env = dict(os.environ)
            if trace:
                env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
            p = subprocess.Popen(full, stdout=log, stderr=subprocess.STDOUT, cwd=work, env=env)
            pid = p.pid
            if trace:
                def tracee():
                    try:
                        for child in open(f"/proc/{p.pid}/task/{p.pid}/children").read().split():
                            if os.path.realpath(f"/proc/{child}/exe") == os.path.realpath(exe):
                                return int(child)
                    except OSError:
                        pass
                    return None
                wait_for(lambda: p.poll() is not None or tracee() is not None, 10)
                pid = tracee() or p.pid
            subscribed = wait_for(lambda: p.poll() is not None or broker.logged("Sending SUBACK to iotbridge-recorder"), 20)
            run([os.path.join(root, "usr", "bin", "iotbridge-pub"), "-p", str(broker.port), "-t",
                 "iot/home1/kitchen/temperature", "-m", "24.5", "-q", "1"], c, "a reading is published")
            counted = wait_for(lambda: metrics_value(metrics_port, "iotbridge_readings_stored_total") == 1, 20)
            c.check(subscribed and counted, "the service records the reading: /metrics says "
                    "iotbridge_readings_stored_total 1",
                    f"subscribed {subscribed}, stored_total {metrics_value(metrics_port, 'iotbridge_readings_stored_total')}"
                    f"\n{open(log_path).read()}\nbroker log:\n{open(broker.log_path).read()}")
            with open(config, "a") as f:
                f.write('\n[[route]]\nname = "meters"\nfilters = ["meters/#"]\ncollection = "meters"\n')
            os.kill(pid, signal.SIGHUP)  # ExecReload=/bin/kill -HUP $MAINPID
            reloaded = wait_for(lambda: "reloaded" in open(log_path).read() and "route meters" in open(log_path).read(),
                                20)
            c.check(reloaded, "SIGHUP (ExecReload=) re-reads the file and says so", open(log_path).read())
            os.kill(pid, signal.SIGTERM)
            started = time.monotonic()
            try:
                code = p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                code = "killed"
        output = open(log_path).read()
        c.check(code == 0, f"SIGTERM stops it with exit 0 in {time.monotonic() - started:.2f} s", f"{code}\n{output}")
        last = output.strip().splitlines()[-1] if output.strip() else ""
        c.check(last.startswith("stopped after") and "DOWN" not in last, "the last line is the summary", output)
        c.check(os.path.isdir(os.path.join(state, "iotbridge", "spool")),
                "the journal and spool live in StateDirectory=iotbridge (/var/lib/iotbridge/spool)")
        if trace:
            used = set()
            for traced in open(trace):
                m = re.match(r"\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]", traced)
                if m and m.group(1) != "resumed":
                    used.add(m.group(1))
            outside = sorted(used - allowed)
            c.check(len(used) > 20 and not outside, f"all {len(used)} system calls of iotbridge-recorder (start, "
                    "a reading, /metrics, SIGHUP, stop) are in SystemCallFilter=@system-service",
                    f"outside: {outside}")
        else:
            c.note_not_checked("iotbridge-recorder's system calls against SystemCallFilter= (strace, systemd-analyze)")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
