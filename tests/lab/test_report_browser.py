"""The report in a real browser: Debian's Chromium opens it from disk (file://), driven over
the DevTools protocol (a websocket, written here with the standard library: nothing is
downloaded at run time).

Skipped where Chromium is not installed; scripts/test.sh installs Debian's ``chromium``
in CI. At 1400 and 400 CSS pixels wide it checks that every image loads, nothing
overflows sideways, the status filter, the search and the figure zoom work (their
script runs), the math is MathML laid out as math, the page requests nothing but its own
files, and the console stays empty. Screenshots of both widths are kept in the test's
temporary folder (``.../screenshots``) and copied to ``$NABLAB_ARTEFACTS`` when it is set.
"""

import base64
import contextlib
import json
import os
import re
import secrets
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
                None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium; "
                             "scripts/test.sh installs it when CI is set and it runs as root)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars"]
#: Three claims: one agrees (with math and a figure), one disagrees, one writes a Graphviz file.
CLAIMS = ["autodiff.graph", "cnn.conv-output-shape", "data.one-hot"]
WIDTHS = (1400, 400)


# -- a small DevTools client -------------------------------------------------------------

class WebSocket:
    """Just enough of RFC 6455 for the DevTools protocol: masked text frames out, frames in."""

    def __init__(self, url: str, timeout: float = 30):
        m = re.fullmatch(r"ws://([^/:]+):(\d+)(/.*)", url)
        self.sock = socket.create_connection((m.group(1), int(m.group(2))), timeout=timeout)
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        self.sock.sendall((f"GET {m.group(3)} HTTP/1.1\r\nHost: {m.group(1)}:{m.group(2)}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, "the browser closed the websocket during the handshake"
            head += chunk
        head, self.buffer = head.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, text: str) -> None:
        data, mask = text.encode(), secrets.token_bytes(4)
        n = len(data)
        header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                  bytes([0x80 | 126]) + struct.pack(">H", n) if n < 1 << 16 else
                                  bytes([0x80 | 127]) + struct.pack(">Q", n))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the browser closed the websocket")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def pending(self) -> bool:
        return bool(self.buffer) or bool(select.select([self.sock], [], [], 0)[0])

    def receive(self) -> str:
        """The next whole text message (continuation frames joined, pings answered)."""
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 0x9:                 # ping: answer, keep reading
                self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
                continue
            if opcode == 0x8:
                raise ConnectionError("the browser closed the websocket")
            message += payload
            if b0 & 0x80:
                return message.decode()


class Page:
    """One browser tab: commands by name, events collected as they arrive."""

    def __init__(self, ws_url: str):
        self.ws = WebSocket(ws_url)
        self.events: list[dict] = []
        self._id = 0

    def send(self, method: str, timeout: float = 20, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        self.ws.sock.settimeout(timeout)
        while True:
            message = json.loads(self.ws.receive())
            if message.get("id") == self._id:
                assert "error" not in message, (method, message["error"])
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 20) -> dict:
        end = time.monotonic() + timeout
        seen = len(self.events)
        while True:
            for message in self.events[seen:]:
                if message.get("method") == event:
                    return message
            seen = len(self.events)
            left = end - time.monotonic()
            assert left > 0, f"no {event} within {timeout} s"
            self.ws.sock.settimeout(left)
            self.events.append(json.loads(self.ws.receive()))

    def drain(self) -> None:
        """Collect the events that have arrived (console messages come asynchronously)."""
        self.ws.sock.settimeout(1)
        while self.ws.pending():
            self.events.append(json.loads(self.ws.receive()))

    def js(self, expression: str):
        """Evaluate ``expression`` in the page (awaiting a promise) and return its value."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return path


@contextlib.contextmanager
def chromium(profile: Path):
    """A headless Chromium with a fresh profile; yields a Page on about:blank."""
    proc = subprocess.Popen([CHROMIUM, *FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    found, log = threading.Event(), []

    def read():                       # drain stderr for the whole run, so Chromium never blocks on it
        for line in proc.stderr:
            log.append(line)
            if "DevTools listening on" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert found.wait(30), "Chromium did not start its DevTools server:\n" + "".join(log[-20:])
        port = re.search(r"ws://[^:]+:(\d+)/", next(x for x in log if "DevTools listening" in x)).group(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            target = next(t for t in json.load(r) if t["type"] == "page")
        page = Page(target["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        yield page
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def load(page: Page, url: str, width: int, height: int = 900) -> None:
    page.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
              mobile=width < 700)
    page.events.clear()
    page.send("Page.navigate", url=url)
    page.wait_for("Page.loadEventFired")


def problems(page: Page) -> list[str]:
    """Console messages, uncaught exceptions and logged errors of the page so far."""
    page.js("0")          # a round trip: what the page logged before it has arrived
    page.drain()
    out = []
    for e in page.events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled":
            out.append(f"console.{params['type']}: " + " ".join(str(a.get("value", a.get("description")))
                                                                for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            out.append("uncaught: " + params["exceptionDetails"].get("exception", {}).get("description", ""))
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            out.append(f"log {params['entry']['level']}: {params['entry']['text']}")
    return out


def requests(page: Page) -> list[str]:
    page.drain()
    return [e["params"]["request"]["url"] for e in page.events if e.get("method") == "Network.requestWillBeSent"]


# -- the report -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "report"
    env = {**os.environ, "COLUMNS": "120"}
    run = subprocess.run([sys.executable, "-m", "nablab", "reproduce", "--out", str(out), "--quick",
                          "--only", ",".join(CLAIMS)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return out


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where the screenshots go; copied to $NABLAB_ARTEFACTS at the end when it is set."""
    folder = tmp_path_factory.mktemp("screenshots")
    yield folder
    if os.environ.get("NABLAB_ARTEFACTS"):
        dest = Path(os.environ["NABLAB_ARTEFACTS"])
        dest.mkdir(parents=True, exist_ok=True)
        for shot in folder.glob("*.png"):
            shutil.copy(shot, dest / shot.name)


VISIBLE_ROWS = "[...document.querySelectorAll('#claims tr[data-claim]')].filter(r => !r.hidden)"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_report_in_chromium(report_dir, shots, tmp_path, width):
    url = (report_dir / "index.html").resolve().as_uri()
    with chromium(tmp_path / "profile") as page:
        load(page, url, width)
        page.screenshot(shots / f"report-{width}px-top.png")
        # Every image loaded (none is lazy), and the page asked for nothing but its own files.
        images = page.js("[...document.images].filter(i => i.closest('main, body > :not(dialog)'))"
                         ".map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
        assert images and all(ok for _, ok in images), images
        assert all(u.startswith((report_dir.resolve().as_uri() + "/", "data:")) for u in requests(page)), \
            requests(page)
        # Nothing wider than the window; the page itself does not hide an overflow.
        sizes = page.js("[document.documentElement.scrollWidth, document.documentElement.clientWidth,"
                        " getComputedStyle(document.body).overflowX, getComputedStyle(document.documentElement).overflowX]")
        assert sizes[0] <= sizes[1] == width and sizes[2:] == ["visible", "visible"], sizes
        wide = page.js(f"[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > {width} + 1"
                       " && !e.closest('.scroll, dialog')).map(e => e.tagName + '.' + e.className).slice(0, 5)")
        assert wide == [], wide
        # The math is MathML, laid out as math: a superscript sits above its base.
        math = page.js("""(() => { const m = [...document.querySelectorAll('math')];
            const sup = document.querySelector('math msup');
            const [base, script] = sup ? [...sup.children].map(c => c.getBoundingClientRect()) : [];
            return [m.length, m.every(e => getComputedStyle(e).display.includes('math')),
                    sup ? script.bottom < base.bottom && script.left >= base.right - 1 : null]; })()""")
        assert math[0] >= 3 and math[1] and math[2], math
        # The filter and the search: the script ran (they are hidden without it) and they work.
        assert page.js("!document.getElementById('filters').hidden && document.getElementById('shown').textContent") \
            == f"{len(CLAIMS)} of {len(CLAIMS)} claims shown"
        page.js("document.querySelector('input[name=status][value=disagrees]').click()")
        assert page.js(f"{VISIBLE_ROWS}.map(r => r.dataset.claim)") == ["data.one-hot"]
        assert page.js("[...document.querySelectorAll('section.claim')].filter(s => !s.hidden).map(s => s.id)") \
            == ["data.one-hot"]
        page.screenshot(shots / f"report-{width}px-disagrees.png")
        page.js("document.querySelector('input[name=status][value=\"\"]').click()")
        page.js("document.getElementById('search').focus()")
        page.send("Input.insertText", text="shape")
        assert page.js(f"{VISIBLE_ROWS}.map(r => r.dataset.claim)") == ["cnn.conv-output-shape"]
        page.js("document.getElementById('search').select()")
        page.send("Input.insertText", text="no such words")
        assert page.js(f"{VISIBLE_ROWS}.length") == 0 and page.js("!document.getElementById('none-shown').hidden")
        page.js("document.getElementById('search').value = ''; document.getElementById('search')"
                ".dispatchEvent(new Event('input'))")
        assert page.js(f"{VISIBLE_ROWS}.length") == len(CLAIMS)
        # A click on a figure opens it large in a dialog; Escape closes it.
        box = page.js("(() => { const i = document.querySelector('a.zoom img'); i.scrollIntoView({block: 'center'});"
                      " const r = i.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            page.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)
        page.js("new Promise(r => { const i = document.querySelector('#zoom img');"
                " i.complete ? r() : i.addEventListener('load', r); })")
        assert page.js("document.getElementById('zoom').open && document.querySelector('#zoom img').naturalWidth > 0")
        page.screenshot(shots / f"report-{width}px-zoom.png")
        page.send("Input.dispatchKeyEvent", type="keyDown", key="Escape", code="Escape", windowsVirtualKeyCode=27)
        page.send("Input.dispatchKeyEvent", type="keyUp", key="Escape", code="Escape", windowsVirtualKeyCode=27)
        assert page.js("!document.getElementById('zoom').open")
        page.js("document.getElementById('data.one-hot').scrollIntoView()")
        page.screenshot(shots / f"report-{width}px-claim.png")
        assert problems(page) == []


def test_without_scripts_every_claim_shows_and_the_controls_stay_hidden(report_dir, tmp_path):
    with chromium(tmp_path / "profile") as page:
        page.send("Emulation.setScriptExecutionDisabled", value=True)
        load(page, (report_dir / "index.html").resolve().as_uri(), 1400)
        assert page.js("document.getElementById('filters').hidden") is True
        assert page.js(f"{VISIBLE_ROWS}.length") == len(CLAIMS)
        # Without the script a figure's link opens the image file itself.
        assert page.js("document.querySelector('a.zoom').getAttribute('href')") \
            == page.js("document.querySelector('a.zoom img').getAttribute('src')")
        assert problems(page) == []


def test_the_dot_files_are_linked_and_the_tables_mark_wrong_answers(report_dir, tmp_path):
    with chromium(tmp_path / "profile") as page:
        load(page, (report_dir / "index.html").resolve().as_uri(), 1400)
        links = page.js("[...document.querySelectorAll('#autodiff\\\\.graph .files a')].map(a => a.getAttribute('href'))")
        assert links == ["autodiff.graph--graph.dot"] and (report_dir / links[0]).is_file()
        wrong = page.js("[...document.querySelectorAll('#data\\\\.one-hot table.grades > tbody > tr.wrong > td:first-child')]"
                        ".map(td => [td.textContent.trim(), getComputedStyle(td).backgroundColor])")
        assert [w[0] for w in wrong] == ["vocabulary_size", "one_hot", "repeats_share_a_row"], wrong
        assert all(w[1] not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)") for w in wrong), wrong
        reason = page.js("document.querySelector('#claims tr[data-claim=\"data.one-hot\"] .reason').textContent")
        assert reason.startswith("Answer set 004: vocabulary_size = 4, computed 5"), reason
        assert problems(page) == []


def test_console_errors_would_be_caught(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><p>x</p><script>console.error("seen"); throw new Error("boom")</script>')
    with chromium(tmp_path / "profile") as page:
        load(page, bad.as_uri(), 800)
        found = problems(page)
    assert any("seen" in p for p in found) and any("boom" in p for p in found), found
