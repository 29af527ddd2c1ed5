#!/usr/bin/env python3
"""Loads the page of `iotbridge-db serve` in headless Chromium and reports what it shows.

Drives Chromium through the DevTools protocol (a minimal WebSocket client from
the standard library): waits until the page shows the expected topics and
charts, saves a screenshot, runs a command that stores a new reading, and
waits until the page shows it without a reload. Prints one JSON object
({"initial": ..., "after": ..., "reloaded": ...}) for the calling test to check;
exits 1 with the last state seen when a wait runs out.

  browser_check.py --url URL --topics 3 --points 40 --screenshot out.png \
      --profile DIR --expect-value 99.5 -- iotbridge-db --store ... insert ...
"""
import argparse, base64, json, os, socket, struct, subprocess, sys, time, urllib.parse, urllib.request

WAIT = 180  # seconds for each condition: generous, a loaded 2-core machine is slow


class WebSocket:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=WAIT)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise RuntimeError("DevTools closed the connection during the WebSocket handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("DevTools refused the WebSocket: " + head.decode(errors="replace"))

    def _read(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise RuntimeError("DevTools closed the connection")
            data += chunk
        return data

    def send(self, text):
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                  bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                                  bytes([0x80 | 127]) + struct.pack(">Q", n))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 8:
                raise RuntimeError("DevTools closed the WebSocket")
            if opcode in (9, 10):  # ping / pong: not part of a message
                continue
            message += payload
            if b0 & 0x80:
                return message.decode()


class DevTools:
    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")


STATE = """JSON.stringify({
  marker: window.__iotbridgeMarker || null,
  topics: Array.from(document.querySelectorAll('#topics tbody tr')).map(r => ({
    topic: r.dataset.topic, value: r.querySelector('td.value') ? r.querySelector('td.value').textContent : null})),
  charts: Array.from(document.querySelectorAll('#charts .chart')).map(c => {
    const line = c.querySelector('svg polyline[data-series]');
    return {topic: c.dataset.topic, points: line ? line.points.numberOfItems : 0}; }),
  readings: Array.from(document.querySelectorAll('#readings tbody tr')).map(r =>
    Array.from(r.cells).map(td => td.textContent)),
  stats: document.getElementById('stats') ? document.getElementById('stats').textContent : null,
  polls: Number(document.body ? document.body.dataset.polls || 0 : 0)})"""


def wait_for(devtools, condition, what):
    deadline = time.monotonic() + WAIT
    state = None
    while time.monotonic() < deadline:
        text = devtools.evaluate(STATE)
        state = json.loads(text) if text else None
        if state and condition(state):
            return state
        time.sleep(0.2)
    print(json.dumps({"error": f"timed out waiting for {what}", "last_state": state}))
    sys.exit(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--chromium", default="chromium")
    p.add_argument("--url", required=True)
    p.add_argument("--topics", type=int, required=True)
    p.add_argument("--points", type=int, required=True)
    p.add_argument("--screenshot", required=True)
    p.add_argument("--profile", required=True)
    p.add_argument("--expect-value", required=True)
    p.add_argument("insert", nargs=argparse.REMAINDER)
    a = p.parse_args()
    insert = a.insert[1:] if a.insert[:1] == ["--"] else a.insert

    log = open(os.path.join(a.profile, "chromium.log"), "w")
    chromium = subprocess.Popen([a.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                 "--disable-extensions", "--remote-debugging-address=127.0.0.1",
                                 "--remote-debugging-port=0", "--user-data-dir=" + a.profile,
                                 "--window-size=1280,1800", "about:blank"],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        active = os.path.join(a.profile, "DevToolsActivePort")
        deadline = time.monotonic() + WAIT
        while not (os.path.exists(active) and len(open(active).read().split("\n")) >= 2):
            if chromium.poll() is not None or time.monotonic() > deadline:
                print(json.dumps({"error": "Chromium did not open its DevTools port", "log": open(log.name).read()[-2000:]}))
                sys.exit(1)
            time.sleep(0.1)
        port = int(open(active).read().split("\n")[0])
        pages = []
        while not pages:
            pages = [t for t in json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=WAIT))
                     if t.get("type") == "page"]
            if not pages:
                time.sleep(0.1)
        devtools = DevTools(pages[0]["webSocketDebuggerUrl"])
        devtools.call("Page.enable")
        devtools.call("Page.navigate", url=a.url)

        initial = wait_for(devtools, lambda s: len(s["topics"]) == a.topics and len(s["charts"]) == a.topics and
                           all(c["points"] == a.points for c in s["charts"]) and len(s["readings"]) > 0,
                           f"{a.topics} topic rows and charts of {a.points} points")
        shot = devtools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        with open(a.screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))

        devtools.evaluate("window.__iotbridgeMarker = 'no reload'; 1")  # gone if the page reloads
        subprocess.run(insert, check=True, stdout=subprocess.DEVNULL)
        after = wait_for(devtools, lambda s: s["readings"] and a.expect_value in s["readings"][0] and
                         any(c["points"] == a.points + 1 for c in s["charts"]),
                         f"the new reading {a.expect_value} in the table and its chart")
        print(json.dumps({"initial": initial, "after": after, "reloaded": after["marker"] != "no reload"}))
        try:
            devtools.call("Browser.close")
        except RuntimeError:
            pass
    finally:
        try:
            chromium.wait(timeout=30)
        except subprocess.TimeoutExpired:
            chromium.kill()
            chromium.wait()


if __name__ == "__main__":
    main()
