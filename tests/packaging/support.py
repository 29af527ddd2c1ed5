"""What the packaging tests share: a checklist that prints every check (so a
log shows what was proven, and what was not checked and why), a Mosquitto
broker on a free port, and command helpers. Standard library only."""
import os
import socket
import subprocess
import sys
import tempfile
import time


class Checklist:
    """Each check prints 'ok: ...' or fails the test at once with 'FAIL: ...'."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.not_checked = []

    def check(self, condition, what, detail=""):
        if not condition:
            print(f"FAIL: {what}")
            if detail:
                print(detail.rstrip())
            sys.exit(1)
        self.passed += 1
        print(f"ok: {what}")

    def note_not_checked(self, what):
        """Something this run could not check: said in the log, never counted as a pass."""
        self.not_checked.append(what)
        print(f"NOT CHECKED: {what}")

    def finish(self):
        print(f"{self.name}: {self.passed} checks passed")
        for what in self.not_checked:
            print(f"{self.name}: not checked: {what}")


def run(argv, check=None, what=None, timeout=30, **kwargs):
    """Runs argv, capturing stdout and stderr as text; with a Checklist, checks exit 0."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check is not None:
        check.check(result.returncode == 0, what or " ".join(argv),
                    f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


class Mosquitto:
    """A broker on 127.0.0.1:<free port>; with users, only they may connect."""

    def __init__(self, mosquitto, workdir, users=None):
        self.port = free_port()
        conf = os.path.join(workdir, "mosquitto.conf")
        # log_type all: tests wait on the log ("Sending SUBACK to <client id>"), not on time.
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "max_queued_messages 10000",
                 "log_type all", "log_timestamp false"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto', who cannot read our private temp folder
        if users:
            pwfile = os.path.join(workdir, "mosquitto.passwd")
            for i, (user, password) in enumerate(users.items()):
                args = ["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [pwfile, user, password]
                subprocess.run(args, check=True, capture_output=True)
            os.chmod(pwfile, 0o600)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines += ["allow_anonymous true"]
        # log_dest file is written line by line; stdout into a file would be block-buffered.
        self.log_path = os.path.join(workdir, "mosquitto.log")
        lines.append(f"log_dest file {self.log_path}")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = open(os.path.join(workdir, "mosquitto.out"), "w")
        self.process = subprocess.Popen([mosquitto, "-c", conf], stdout=self.log, stderr=subprocess.STDOUT)

        def accepting():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        if not wait_for(accepting, 10):
            self.stop()
            out = open(os.path.join(os.path.dirname(self.log_path), "mosquitto.out")).read()
            raise RuntimeError(f"mosquitto did not start on port {self.port}: {out}")

    def logged(self, text):
        try:
            with open(self.log_path) as f:
                return text in f.read()
        except FileNotFoundError:
            return False

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def temp_dir(prefix):
    return tempfile.mkdtemp(prefix=prefix)
