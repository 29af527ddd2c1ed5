#!/usr/bin/env python3
"""packaging:systemd-unit: runs the ExecStart= line of
packaging/systemd/iotbridge-recorder@.service the way systemd would for the
instance "home": specifiers expanded (%i %H %S %d), Environment= defaults
overlaid by packaging/systemd/example.env (the file operators copy), ${VAR}
as one word and $VAR split at whitespace, the password handed over as a
credential file, the StateDirectory created, KillSignal to stop it. Only
what must differ on a test machine is changed, and printed: the broker's
port, and /var/lib (the state root) moved into a temporary folder.

Against a real Mosquitto that requires the example's user name and a
password, it proves: the line parses (no usage error), the credential
password authenticates, the example's filter and store record a reading into
the StateDirectory, SIGTERM stops it cleanly (exit 0: Restart=on-failure
stays quiet) well within TimeoutStopSec, the persistent session (-c -i)
keeps a reading published while the service is stopped for the next start,
the documented settings for a broker without authentication parse, and
(under strace, when installed) every system call of a start, a recorded
reading and a stop is one SystemCallFilter= allows.
"""
import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import Checklist, Mosquitto, run, temp_dir, wait_for  # noqa: E402

INSTANCE = "home"
UNIT_NAME = f"iotbridge-recorder@{INSTANCE}.service"
PASSWORD = "s3cret pass"  # with a space: the file carries it whole


def parse_unit(path):
    """[Service] settings as (key, value) in order; backslash-continued lines joined."""
    settings, section, pending = [], None, ""
    for raw in open(path):
        line = raw.rstrip("\n")
        if pending:
            line, pending = pending + line, ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("["):
            section = stripped
            continue
        key, _, value = stripped.partition("=")
        settings.append((section, key.strip(), value.strip()))
    return settings


def parse_env_file(path):
    """systemd's EnvironmentFile= format as far as the example uses it:
    NAME=value, '#' comment lines, optional surrounding quotes; no expansion."""
    env = {}
    for raw in open(path):
        line = raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def expand_specifiers(text, specifiers):
    def one(m):
        s = m.group(1)
        if s not in specifiers:
            raise SystemExit(f"FAIL: the unit uses specifier %{s}, which this test does not know: teach it")
        return specifiers[s]

    return re.sub(r"%(.)", one, text)


def expand_command(line, env):
    """ExecStart= words as systemd makes them: ${VAR} is one word (empty
    included), a word that is exactly $VAR is split at whitespace."""
    argv = []
    for word in shlex.split(line):
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if m:
            argv += env.get(m.group(1), "").split()
            continue
        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
    return argv


def allowed_syscalls(filters):
    """The system calls SystemCallFilter= lines allow (allow-lists only), expanded from
    systemd-analyze syscall-filter's groups; None without systemd-analyze."""
    if not shutil.which("systemd-analyze") or not filters:
        return None
    listing = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True).stdout
    groups, current = {}, None
    for line in listing.splitlines():
        if line.startswith("@"):
            current = line.split()[0]
            groups[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            groups[current].append(line.strip())

    def expand(name):
        if not name.startswith("@"):
            return {name}
        return set().union(*[expand(x) for x in groups.get(name, [])]) if groups.get(name) else set()

    allowed = set()
    for value in filters:
        if value.startswith("~"):
            raise SystemExit("FAIL: the test does not handle deny-list SystemCallFilter=~...: teach it")
        for item in value.split():
            allowed |= expand(item)
    return allowed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--mosquitto", default="")
    args = ap.parse_args()
    c = Checklist("packaging:systemd-unit")
    if not args.mosquitto:
        if os.environ.get("CI") == "true":  # CI installs mosquitto: a skip there would hide a broken setup
            sys.exit("packaging:systemd-unit: no mosquitto binary in CI (scripts/install-deps installs it)")
        print("IOTBRIDGE-SKIPPED: no mosquitto binary: the unit's command line cannot be run against a broker")
        return
    unit_path = os.path.join(args.source_dir, "packaging", "systemd", "iotbridge-recorder@.service")
    env_path = os.path.join(args.source_dir, "packaging", "systemd", "example.env")
    work = temp_dir("iotbridge-unit-")
    try:
        run_unit(c, args, unit_path, env_path, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    c.finish()


def run_unit(c, args, unit_path, env_path, work):
    settings = parse_unit(unit_path)
    service = [(k, v) for s, k, v in settings if s == "[Service]"]

    def values(key):
        return [v for k, v in service if k == key]

    state_root = os.path.join(work, "var", "lib")  # %S, and the /var/lib of the example's paths
    credentials = os.path.join(work, "run", "credentials", UNIT_NAME)  # %d
    specifiers = {"i": INSTANCE, "I": INSTANCE, "H": socket.gethostname(), "S": state_root, "d": credentials,
                  "%": "%"}

    # Environment= defaults, then the env file (EnvironmentFile= wins).
    env = {}
    for value in values("Environment"):
        for assignment in shlex.split(expand_specifiers(value, specifiers)):
            key, _, v = assignment.partition("=")
            env[key] = v
    env_files = values("EnvironmentFile")
    c.check(env_files == [f"/etc/iotbridge/%i.env"], "EnvironmentFile is /etc/iotbridge/%i.env", str(env_files))
    example = parse_env_file(env_path)
    for key in ["IOTBRIDGE_BROKER", "IOTBRIDGE_FILTERS", "IOTBRIDGE_STORE", "IOTBRIDGE_USER"]:
        c.check(example.get(key), f"example.env sets {key} ({example.get(key)})")
    env.update(example)

    # What a test machine must change, said out loud.
    broker = Mosquitto(args.mosquitto, work, users={env["IOTBRIDGE_USER"]: PASSWORD})
    try:
        overrides = {}
        url = re.sub(r":\d+$", "", env["IOTBRIDGE_BROKER"]).replace("localhost", "127.0.0.1")
        overrides["IOTBRIDGE_BROKER"] = f"{url}:{broker.port}"
        for key, value in env.items():
            if "/var/lib/" in value:
                overrides[key] = value.replace("/var/lib/", state_root + "/")
        for key, value in overrides.items():
            print(f"test override: {key}={value} (example: {env[key]})")
        env.update(overrides)
        c.check(env["IOTBRIDGE_STORE"].startswith("sqlite:" + os.path.join(state_root, "iotbridge", INSTANCE) + "/"),
                "the example's SQLite store lies inside StateDirectory=iotbridge/%i (writable under "
                "ProtectSystem=strict)", env["IOTBRIDGE_STORE"])

        # What systemd sets up before ExecStart: the state directory, the credential.
        state_dirs = [expand_specifiers(v, specifiers) for v in values("StateDirectory")]
        c.check(state_dirs == [f"iotbridge/{INSTANCE}"], "StateDirectory=iotbridge/%i", str(state_dirs))
        state_dir = os.path.join(state_root, state_dirs[0])
        os.makedirs(state_dir, mode=0o700)
        loads = [v for v in values("LoadCredential") if v.startswith("password:")]
        c.check(len(loads) == 1, "the password comes as a credential (LoadCredential=password:...)", str(loads))
        os.makedirs(credentials)
        password_file = os.path.join(credentials, "password")
        with open(password_file, "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(password_file, 0o400)  # as systemd makes it

        execs = values("ExecStart")
        c.check(len(execs) == 1, "one ExecStart= line")
        line = expand_specifiers(execs[0], specifiers)
        argv = expand_command(line, env)
        c.check(argv[0] == "/usr/bin/iotbridge-sub", "ExecStart runs /usr/bin/iotbridge-sub", argv[0])
        argv[0] = os.path.join(args.bin_dir, "iotbridge-sub")
        print("command:", shlex.join(argv))
        c.check("--store" in argv and "--spool" in argv and "-c" in argv and "-i" in argv,
                "the command records (--store) with a spool folder and a persistent session (-c -i)")
        c.check(argv[argv.index("--spool") + 1] == state_dir, "--spool is the StateDirectory")

        process_env = {"PATH": "/usr/bin:/bin", "CREDENTIALS_DIRECTORY": credentials, "STATE_DIRECTORY": state_dir}
        for name in ["ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"]:  # a sanitizer build's settings
            if name in os.environ:
                process_env[name] = os.environ[name]
        process_env.update(env)
        cwd = os.path.join(work, "cwd")  # systemd's is /, read-only under ProtectSystem=strict: nothing may land here
        os.makedirs(cwd)
        stop_timeout = float(values("TimeoutStopSec")[0])
        kill_signal = getattr(signal, values("KillSignal")[0])
        pub = os.path.join(args.bin_dir, "iotbridge-pub")
        db = os.path.join(args.bin_dir, "iotbridge-db")
        auth = ["-p", str(broker.port), "-u", env["IOTBRIDGE_USER"], "--password-file", password_file]
        topic_filter = env["IOTBRIDGE_FILTERS"].split()[-1]
        first_topic = topic_filter.replace("#", "home/temperature").replace("+", "home")
        second_topic = topic_filter.replace("#", "home/humidity").replace("+", "home")
        store = ["--store", env["IOTBRIDGE_STORE"]]
        where = [env["IOTBRIDGE_DB"], env["IOTBRIDGE_COLLECTION"]]

        def count():
            r = run([db] + store + ["count"] + where)
            return int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip().isdigit() else -1

        def service_run(what, expected_count, before_stop=None, trace_path=None):
            """Starts the ExecStart command (under strace -f when trace_path is given); runs
            `before_stop` once the broker acknowledged its subscription; waits for `expected_count`
            documents; stops it with KillSignal (sent to the service process, not to strace)."""
            log_path = os.path.join(work, f"service-{expected_count}.log")
            with open(log_path, "w") as log:
                command = ["strace", "-f", "-qq", "-o", trace_path, "--"] + argv if trace_path else argv
                run_env = dict(process_env)
                if trace_path:  # LeakSanitizer cannot work under ptrace (an ASan build)
                    run_env["ASAN_OPTIONS"] = (run_env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
                p = subprocess.Popen(command, env=run_env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
                service_pid = p.pid
                if trace_path:
                    # strace forks short-lived helpers before the tracee: find the child that runs argv[0].
                    def tracee():
                        try:
                            for pid in open(f"/proc/{p.pid}/task/{p.pid}/children").read().split():
                                if os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(argv[0]):
                                    return int(pid)
                        except OSError:
                            pass
                        return None

                    wait_for(lambda: p.poll() is not None or tracee() is not None, 10)
                    service_pid = tracee() or p.pid
                subscribed = wait_for(lambda: p.poll() is not None or
                                      broker.logged(f"Sending SUBACK to {env['IOTBRIDGE_CLIENT_ID']}"), 20)
                if subscribed and before_stop:
                    before_stop()
                stored = wait_for(lambda: p.poll() is not None or count() >= expected_count, 20)
                alive = p.poll() is None
                if alive:
                    try:
                        os.kill(service_pid, kill_signal)
                    except ProcessLookupError:  # the service ended by itself (strace still reaping it)
                        alive = False
                started = time.monotonic()
                try:
                    code = p.wait(stop_timeout)
                except subprocess.TimeoutExpired:
                    p.kill()
                    code = "killed after TimeoutStopSec"
                took = time.monotonic() - started
            output = open(log_path).read()
            c.check(alive and subscribed and stored, f"{what}: the service subscribes and stores ({count()} documents)",
                    f"output:\n{output}\nbroker log:\n{open(broker.log_path).read()}")
            c.check(code == 0, f"{what}: {values('KillSignal')[0]} stops it with exit 0 in {took:.2f} s "
                    f"(TimeoutStopSec={stop_timeout:g})", f"exit {code}\n{output}")
            c.check("Error" not in output and "Warning" not in output, f"{what}: no error or warning printed",
                    output)

        # 1. Published once the broker acknowledged the service's subscription. Traced, to hold
        # the system calls it makes against SystemCallFilter=.
        allowed = allowed_syscalls(values("SystemCallFilter"))
        trace_path = os.path.join(work, "strace.log") if allowed is not None and shutil.which("strace") else None
        service_run("first start", 1, lambda: run([pub] + auth + ["-t", first_topic, "-m", "21.5", "-q", "1"], c,
                                                  "iotbridge-pub (same user and password) publishes a reading"),
                    trace_path)
        if trace_path:
            used = set()
            for traced in open(trace_path):
                m = re.match(r"\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]", traced)
                if m and m.group(1) not in ("resumed",):
                    used.add(m.group(1))
            outside = sorted(used - allowed)
            c.check(len(used) > 20 and not outside,
                    f"all {len(used)} system calls of a start, a recorded reading and a stop are in "
                    f"SystemCallFilter={' '.join(values('SystemCallFilter'))}", f"outside the filter: {outside}")
        else:
            c.note_not_checked("the service's system calls against SystemCallFilter= (needs strace and "
                               "systemd-analyze)")
        r = run([db] + store + ["find"] + where, c, "iotbridge-db reads the store")
        c.check(f'"{first_topic}"' in r.stdout and "21.5" in r.stdout, "the reading is stored", r.stdout)

        # 2. Published while the service is stopped: the persistent session keeps it.
        run([pub] + auth + ["-t", second_topic, "-m", "48", "-q", "1"], c,
            "a QoS 1 reading is published while the service is stopped")
        service_run("second start", 2)
        r = run([db] + store + ["find"] + where + ['{"topic": "' + second_topic + '"}'])
        c.check(f'"{second_topic}"' in r.stdout and "48" in r.stdout,
                "the reading published while stopped was kept by the broker (persistent session) and stored",
                r.stdout)
        c.check(count() == 2, "each reading stored once")

        contents = sorted(os.listdir(state_dir))
        c.check("wal" in contents, f"the write-ahead journal lives in the StateDirectory ({contents})")
        c.check(os.listdir(cwd) == [], "nothing was written to the working directory")
        # The same line without a broker password: the broker refuses, the tool says so (exit 5).
        os.chmod(password_file, 0o600)
        with open(password_file, "w") as f:
            f.write("wrong\n")
        r = run(argv, env=process_env, cwd=cwd, timeout=30)
        c.check(r.returncode == 5 and "Error" in r.stderr,
                "a wrong credential is refused by the broker: exit 5 with a sentence", f"exit {r.returncode}\n"
                f"{r.stdout}{r.stderr}")
        # The documented setting for a broker without authentication (IOTBRIDGE_USER and
        # IOTBRIDGE_PASSWORD_FILE empty) parses: this broker then refuses the anonymous
        # client (exit 5), where a usage error would be exit 1.
        anonymous = dict(env, IOTBRIDGE_USER="", IOTBRIDGE_PASSWORD_FILE="")
        anonymous_argv = [argv[0]] + expand_command(line, anonymous)[1:]
        r = run(anonymous_argv, env=process_env, cwd=cwd, timeout=30)
        c.check(r.returncode == 5 and "--help" not in r.stderr,
                "with IOTBRIDGE_USER= and IOTBRIDGE_PASSWORD_FILE= the line parses and connects anonymously "
                "(refused here: exit 5)", f"exit {r.returncode}\n{r.stdout}{r.stderr}")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
