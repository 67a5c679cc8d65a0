"""Headless Chromium (Debian's `chromium`), driven over the DevTools protocol.

The dashboard test and `make demo` open the engine's page the way a person
does (the reader token in the URL fragment), let its script run, read what it
shows, click, and take a screenshot. No Python dependency: the DevTools
WebSocket is spoken by the small client below (RFC 6455: one text message per
call, answers matched by id, events kept).

    with Browser() as b:
        b.goto(f"http://127.0.0.1:{port}/dashboard#token={token}")
        b.wait("document.body.dataset.loaded >= 1")
        tables = b.eval(TABLES)
        b.screenshot("build/artifacts/dashboard.png")

`Browser.requests` lists every URL the page asked for (Network domain), so a
test can show the page needs nothing but the engine; `Browser.errors` holds
uncaught exceptions and console errors of the page.
"""
import base64
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")

# Every table of the page as rows (not its heading, nor the "none" row of an
# empty one): the row's data-* attributes, its cells' text, and the cells
# named by data-k (what the test compares with MongoDB).
TABLES = """Object.fromEntries([...document.querySelectorAll("table[id]")].map(t => [t.id,
  [...t.rows].filter(r => !r.querySelector("th") && !r.classList.contains("none")).map(r => ({data: {...r.dataset},
    cells: [...r.cells].map(c => c.textContent),
    k: Object.fromEntries([...r.querySelectorAll("[data-k]")].map(c => [c.dataset.k, c.textContent]))}))]))"""


def available():
    return bool(CHROMIUM) and Path(CHROMIUM).exists()


def required():
    """A pytest mark for a module that needs the browser: a skip without
    chromium, a failure under CI (CI=true), as netns.required() does."""
    import pytest

    if available():
        return []
    if os.environ.get("CI") == "true":
        pytest.fail("needs chromium (make deps); CI=true, so this fails instead of skipping",
                    pytrace=False)
    return pytest.mark.skip(reason="no chromium (make deps)")


class _WebSocket:
    """A client WebSocket: text messages only, enough for DevTools."""

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, url, timeout=30):
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        want = base64.b64encode(hashlib.sha1((key + self.GUID).encode()).digest()).decode()
        if " 101 " not in lines[0] or not any(
                l.lower().startswith("sec-websocket-accept:") and l.split(":", 1)[1].strip() == want
                for l in lines[1:]):
            raise ConnectionError(f"not a WebSocket answer: {lines[0]}")

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _frame(self, opcode, payload):
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)  # a client masks every frame
        body = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")
                ).to_bytes(n, "big") if n else b""
        self.sock.sendall(head + mask + body)

    def send(self, text):
        self._frame(0x1, text.encode())

    def recv(self):
        parts = []
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
            op = b0 & 0x0F
            if op == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            if op == 0x9:
                self._frame(0xA, data)
                continue
            if op in (0x0, 0x1, 0x2):
                parts.append(data)
                if b0 & 0x80:
                    return b"".join(parts).decode()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Browser:
    """One headless Chromium with one page, over DevTools. A context manager;
    its profile is a temp dir removed on close."""

    def __init__(self, width=1400, height=1000, timeout=30):
        self.dir = Path(tempfile.mkdtemp(prefix="adchrome-"))
        self.log = self.dir / "chromium.log"
        self.events, self.errors, self.requests = [], [], []
        self._id = 0
        # --no-sandbox: the tests and the demo run as root. No network but the
        # page's own: no background services, no component updates.
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
             f"--user-data-dir={self.dir / 'profile'}", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking", "--disable-sync",
             "--disable-component-update", "--disable-default-apps", "--hide-scrollbars",
             "--force-device-scale-factor=1", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"), start_new_session=True)
        try:
            port = self._port(timeout)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            self.ws = _WebSocket(pages[0]["webSocketDebuggerUrl"], timeout)
            for domain in ("Page", "Runtime", "Network"):
                self.call(f"{domain}.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                      deviceScaleFactor=1, mobile=False)
        except Exception:
            self.close()
            raise

    def _port(self, timeout):
        active = self.dir / "profile" / "DevToolsActivePort"
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited ({self.proc.returncode}): "
                                   f"{self.log.read_text(errors='replace')[-1500:]}")
            if active.exists() and active.read_text().strip():
                return int(active.read_text().split()[0])
            time.sleep(0.1)
        raise RuntimeError(f"chromium gave no DevTools port in {timeout} s")

    def _event(self, msg):
        self.events.append(msg)
        m, p = msg.get("method"), msg.get("params") or {}
        if m == "Network.requestWillBeSent":
            self.requests.append(p["request"]["url"])
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails") or {}
            self.errors.append((d.get("exception") or {}).get("description") or d.get("text"))
        elif m == "Runtime.consoleAPICalled" and p.get("type") == "error":
            self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))

    def call(self, method, **params):
        """One DevTools command; its result, or RuntimeError with its error."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def eval(self, expr):
        """The value of a JavaScript expression in the page (promises awaited)."""
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise RuntimeError(f"{expr[:60]}: {(d.get('exception') or {}).get('description') or d}")
        return r["result"].get("value")

    def goto(self, url):
        self.call("Page.navigate", url=url)

    def wait(self, expr, timeout=20, what=None):
        """Poll `expr` until it is truthy; its value. On timeout, AssertionError
        with the page's errors and its #err text."""
        deadline = time.time() + timeout
        failed = None
        while time.time() < deadline:
            try:
                got, failed = self.eval(expr), None
            except RuntimeError as exc:
                got, failed = None, exc  # a navigation in progress, or a bad expression
            if got:
                return got
            time.sleep(0.1)
        shown = self.eval("(document.getElementById('err') || {}).textContent || ''")
        raise AssertionError(f"{what or expr} not true within {timeout} s; page errors "
                             f"{self.errors}, #err {shown!r}" + (f"; last: {failed}" if failed else ""))

    def screenshot(self, path):
        """The whole page (not only the window), cut to what the body holds
        plus its margin, as a PNG at `path`."""
        size = self.eval("""(() => { const b = document.body, m = parseFloat(getComputedStyle(b).marginLeft) || 0;
          let r = 0, h = 0;
          for (const e of b.querySelectorAll("*")) { const x = e.getBoundingClientRect();
            if (x.width && x.height) { r = Math.max(r, x.right); h = Math.max(h, x.bottom); } }
          return {width: Math.ceil(r + m + window.scrollX), height: Math.ceil(h + m + window.scrollY)}; })()""")
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                               "scale": 1})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self):
        if getattr(self, "ws", None):
            self.ws.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
