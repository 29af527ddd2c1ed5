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
import gzip
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import Checklist, Mosquitto, run, temp_dir  # noqa: E402

TOOLS = ["iotbridge-pub", "iotbridge-sub", "iotbridge-db"]
UNIT = "iotbridge-recorder@.service"
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
    has(r"/usr/share/doc/iotbridge/examples/recorder\.env", "the example environment file")
    has(r"/usr/share/doc/iotbridge/operating\.md", "the operating guide")
    has(r"/usr/share/doc/iotbridge/copyright", "the copyright file")
    include_root = os.path.join(source_dir, "include")
    headers = sorted(os.path.relpath(os.path.join(d, f), include_root)
                     for d, _, fs in os.walk(include_root) for f in fs if f.endswith(".hpp"))
    missing = [h for h in headers if "/usr/include/" + h not in files]
    c.check(not missing and headers, f"all {len(headers)} public headers are in /usr/include", str(missing))
    strays = [f for f in files if not f.startswith("/usr/")]
    c.check(not strays, "nothing outside /usr (no /etc conffiles, no /usr/local)", str(strays))


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
                 "iotbridge-db": ["--store", "find", "--projection"]}[tool]
        for flag in flags:
            c.check(flag in text, f"{tool}.1 documents {flag} (from --help)")
        c.check("ENVIRONMENT" in text and "SEE ALSO" in text, f"{tool}.1 has ENVIRONMENT and SEE ALSO")


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


if __name__ == "__main__":
    main()
