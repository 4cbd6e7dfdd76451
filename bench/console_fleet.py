"""Web console: `panelctl console` (a real process) with N simulated panels' heartbeats on a real mosquitto.

Measured, with N panels (default 2,000) each sending its heartbeat (the fields of
docs/protocol.md, retained, QoS 1) every 30 s (the panels' default
``heartbeat.interval``), spread evenly over the interval, after its retained
``online`` ``true``:

- the console's CPU (``/proc/PID/stat``, utime + stime, the process and its children)
  and memory (VmRSS; VmHWM, reset through ``/proc/PID/clear_refs`` after the start so
  that the steady window's peak is its own) over a steady window after the initial
  retained load, with no page open; then again while a fleet page is open;
- the fleet page's load time in Debian's Chromium driven by Playwright, logged in: from
  the navigation to the table holding N rows (and DOMContentLoaded, load);
- the delay from a heartbeat to the page: heartbeats carrying a unique ``firmware``
  (``0.1.0+m.<process>.<sequence>``) are noted when published; a MutationObserver in the
  page notes (``Date.now()``, the same clock) when a cell of the row shows it. A plain
  HTTP client reading the console's event stream (``/api/stream``) at the same time
  splits that delay into the console's part and the browser's; Chromium's CPU and its
  page counters (CDP ``Performance.getMetrics``: main-thread time, layouts) say where
  the browser's part goes.

Reference, same run and same broker: a bare paho subscriber (another process, MQTT 5,
QoS 1) on the same heartbeat and ``online`` topics: its CPU and memory, and the broker's
own delivery delay of the same marked heartbeats (publish → its ``on_message``).

The panels are simulated by a few publishing connections (up to 100 panels' topics
each, spread over 2 processes) instead of one connection per panel: 2,000 paho clients
would cost this 2-core machine more than the console does, and the broker's and the
console's work per message is the same. The simulated panels set no last will.

No goal is set by the issue: the figures are reported, not judged.

Run: ``python -m bench.console_fleet [N]`` (default 2000, 60 s) or ``--smoke`` (100 panels, 8 s).
"""

from __future__ import annotations

import argparse
import heapq
import http.cookiejar
import json
import math
import multiprocessing
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import ROOT, report
from bench.fanout import Mosquitto, machine_cpu, raise_fd_limit

DRIVES = ("a real `panelctl console` process and Debian's Chromium (Playwright) on a real mosquitto, with "
          "simulated panels' heartbeats published by worker processes (100 panels per connection); "
          "no `panel-player run` process")

PREFIX = "bench"
INTERVAL = 30.0  # the panels' default heartbeat.interval
PANELS_PER_CONNECTION = 100
PUBLISHER_PROCESSES = 2
FIRMWARE = "0.1.0"
MARK = re.compile(r"\+m\.\d+\.\d+")  # what a marked heartbeat's firmware carries after FIRMWARE
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
USER = "bench"


def panel_id(i: int) -> str:
    return f"panneau-{i:04d}"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the simulated panels -----------------------------------------------------------------------


class Beats:
    """Heartbeats as docs/protocol.md describes them, for panel ``i`` of the fleet.

    Each panel has its own stable traits (groups, sensors, a few with recent errors);
    temperature, light and memory move a little from one heartbeat to the next.
    """

    def __init__(self, i: int, started: float) -> None:
        rnd = random.Random(i)
        self.i = i
        self.rnd = rnd
        self.started = started - rnd.randint(3600, 40 * 86400)  # up for hours to weeks
        self.groups = ["ville", f"quartier-{i % 12 + 1}"] + (["ecoles"] if i % 7 == 0 else [])
        self.light_sensor = i % 5 != 0
        self.door = i % 3 != 0
        self.pi = i % 10 != 0
        self.temp = rnd.uniform(38.0, 58.0)
        self.rss = rnd.uniform(38.0, 46.0)
        self.disk = rnd.randint(2000, 12000)
        self.reconnects = rnd.randint(0, 4)
        self.output = "ledmatrix" if i % 4 == 0 else "fbdev"
        self.errors = ([{"reason": "sensor light: no answer", "count": rnd.randint(1, 9),
                         "first": _iso(started - 3000), "last": _iso(started - 600)}] if i % 50 == 0 else [])

    def payload(self, now: float, firmware: str = FIRMWARE) -> bytes:
        rnd = self.rnd
        self.temp = min(70.0, max(30.0, self.temp + rnd.uniform(-0.6, 0.6)))
        self.rss = min(60.0, max(30.0, self.rss + rnd.uniform(-0.2, 0.2)))
        ambient = round(rnd.uniform(0.2, 0.9), 3) if self.light_sensor else None
        hb: dict[str, Any] = {
            "panel": panel_id(self.i), "ts": _iso(now), "firmware": firmware,
            "uptime_s": int(now - self.started), "playlist": {"id": "hiver-2026", "version": 3},
            "slide": f"info-{int(now // 10) % 6}", "alerts": [],
            "brightness": int(20 + 70 * ambient) if ambient is not None else 70, "ambient": ambient,
            "cpu_temp_c": round(self.temp, 1), "fps": 0.0, "rss_mb": round(self.rss, 1),
            "disk_free_mb": self.disk, "mqtt_reconnects": self.reconnects,
            "door_open": False if self.door else None, "clock_synced": True, "errors": self.errors,
            "under_voltage": False if self.pi else None, "throttled": False if self.pi else None,
            "display": {"output": self.output, "healthy": True,
                        "status": "ok: /dev/fb0 1920x1080" if self.output == "fbdev" else "ok: 2 chains of 64x32"},
            "mqtt_connected": True, "groups": self.groups,
            "sensor_faults": ["light"] if self.errors else [],
            "brightness_source": "sensor" if self.light_sensor else "schedule", "brightness_floor": None,
            "brightness_derated": False, "screen": "on", "update": None, "alerts_unconfirmed": [],
        }
        return json.dumps(hb, separators=(",", ":")).encode()


def _publisher(conn: Connection, k: int, port: int, blocks: list[list[int]], n_total: int,
               interval: float) -> None:
    """One publishing process: a connection per block of panels; retained online and heartbeats."""
    clients: list[mqtt.Client] = []
    try:
        now = time.time()
        owner: dict[int, mqtt.Client] = {}
        beats: dict[int, Beats] = {}
        for b, ids in enumerate(blocks):
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-panels-{k}-{b}", protocol=mqtt.MQTTv5)
            c.max_inflight_messages_set(200)
            c.connect("127.0.0.1", port, keepalive=60)
            c.loop_start()
            clients.append(c)
            for i in ids:
                owner[i] = c
                beats[i] = Beats(i, now)
        # What the broker holds before the console starts: every panel online, with a heartbeat.
        infos = []
        for i, c in owner.items():
            infos.append(c.publish(f"{PREFIX}/panels/{panel_id(i)}/online", b"true", qos=1, retain=True))
            infos.append(c.publish(f"{PREFIX}/panels/{panel_id(i)}/heartbeat", beats[i].payload(time.time()),
                                   qos=1, retain=True))
        for info in infos:
            info.wait_for_publish(60)
        conn.send("ready")
        order = conn.recv()
        t0 = float(order[1])
        due = [(t0 + i / n_total * interval, i) for i in owner]
        heapq.heapify(due)
        marking = False
        seq = 0
        marks: list[tuple[str, str, float]] = []
        published = 0
        slip = 0.0
        while True:
            wait = due[0][0] - time.time()
            if conn.poll(max(0.0, min(wait, 0.5))):
                order = conn.recv()
                if order[0] == "mark":
                    marking = bool(order[1])
                    continue
                if order[0] == "stop":
                    break
                continue
            when, i = due[0]
            now = time.time()
            if now < when:
                continue
            heapq.heapreplace(due, (when + interval, i))
            slip = max(slip, now - when)
            firmware = FIRMWARE
            if marking:
                seq += 1
                firmware = f"{FIRMWARE}+m.{k}.{seq}"
            payload = beats[i].payload(now, firmware)
            sent = time.time()
            owner[i].publish(f"{PREFIX}/panels/{panel_id(i)}/heartbeat", payload, qos=1, retain=True)
            published += 1
            if marking:
                marks.append((firmware[len(FIRMWARE):], panel_id(i), sent))
        conn.send({"marks": marks, "published": published, "slip_s": slip})
    except Exception as exc:  # the parent reports it
        conn.send(f"error: {exc!r}")
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        conn.close()


def _bare(conn: Connection, port: int, expect: int) -> None:
    """The reference: a bare paho subscriber on the same topics; notes when marked heartbeats arrive."""
    marks: dict[str, float] = {}
    count = [0]

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        count[0] += 1
        p = message.payload
        j = p.find(b"+m.")
        if j >= 0:
            t = time.time()
            marks.setdefault(p[j:p.find(b'"', j)].decode(), t)

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
    c.on_message = on_message
    c.on_connect = lambda c, u, f, rc, p: c.subscribe([(f"{PREFIX}/panels/+/heartbeat", 1),
                                                         (f"{PREFIX}/panels/+/online", 1)])
    try:
        c.connect("127.0.0.1", port, keepalive=60)
        c.loop_start()
        deadline = time.monotonic() + 60
        while count[0] < expect:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bare subscriber got {count[0]} of {expect} retained messages")
            time.sleep(0.01)
        conn.send("ready")
        while (order := conn.recv()) != "stop":
            conn.send(count[0] if order == "count" else dict(marks))
    except Exception as exc:
        conn.send(f"error: {exc!r}")
    finally:
        c.disconnect()
        c.loop_stop()
        conn.close()


def _answer(pipe: Connection, timeout: float, what: str) -> Any:
    if not pipe.poll(timeout):
        raise RuntimeError(f"{what}: no answer within {timeout:g} s")
    got = pipe.recv()
    if isinstance(got, str) and got.startswith("error"):
        raise RuntimeError(f"{what}: {got}")
    return got


class Simulation:
    """The publishing processes and the bare subscriber's process."""

    def __init__(self, n: int, port: int, interval: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        size = min(PANELS_PER_CONNECTION, -(-n // PUBLISHER_PROCESSES))  # every process has a share
        blocks = [list(range(s, min(n, s + size))) for s in range(0, n, size)]
        self.connections = len(blocks)
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for k in range(PUBLISHER_PROCESSES):
            mine = blocks[k::PUBLISHER_PROCESSES]
            if not mine:
                continue
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_publisher, args=(child, k, port, mine, n, interval), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        self.bare_pipe, child = ctx.Pipe()
        self.bare = ctx.Process(target=_bare, args=(child, port, 2 * n), daemon=True)
        for pipe in self.pipes:
            if _answer(pipe, 120, "a publishing process") != "ready":
                raise RuntimeError("a publishing process did not get ready")
        self.bare.start()
        if _answer(self.bare_pipe, 120, "the bare subscriber") != "ready":
            raise RuntimeError("the bare subscriber did not get ready")
        t0 = time.time()
        for pipe in self.pipes:
            pipe.send(("start", t0))

    @property
    def publisher_pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def mark(self, on: bool) -> None:
        for pipe in self.pipes:
            pipe.send(("mark", on))

    def bare_count(self) -> int:
        self.bare_pipe.send("count")
        return int(_answer(self.bare_pipe, 10, "the bare subscriber"))

    def bare_marks(self) -> dict[str, float]:
        self.bare_pipe.send("marks")
        return dict(_answer(self.bare_pipe, 10, "the bare subscriber"))

    def stop(self) -> dict[str, Any]:
        """Stops publishing; the marks published (marker, panel, time) and counts."""
        for pipe in self.pipes:
            pipe.send(("stop",))
        out: dict[str, Any] = {"marks": [], "published": 0, "slip_s": 0.0}
        for pipe in self.pipes:
            got = _answer(pipe, 30, "a publishing process")
            out["marks"] += got["marks"]
            out["published"] += got["published"]
            out["slip_s"] = max(out["slip_s"], got["slip_s"])
        return out

    def close(self) -> None:
        for pipe in [*self.pipes, self.bare_pipe]:
            try:
                pipe.send(("stop",) if pipe is not self.bare_pipe else "stop")
            except OSError:
                pass
        for proc in [*self.procs, self.bare]:
            if proc.pid is None:
                continue
            proc.join(10)
            if proc.is_alive():
                proc.kill()


# -- the console ---------------------------------------------------------------------------------


def _free_port() -> int:
    """A free loopback port below the ephemeral range, so that no client connection (the
    simulation opens many) takes it between this check and the console's bind."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rnd = random.Random()
    for _ in range(200):
        port = rnd.randrange(max(1025, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def family(pid: int) -> list[int]:
    """``pid`` and its descendants (a server that forks workers is measured whole)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of the process, MiB."""
    got = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            got[line[:5]] = int(line.split()[1]) / 1024
    return got["VmRSS"], got["VmHWM"]


def reset_peak(pid: int) -> bool:
    """Start the process's VmHWM again from its current RSS (``/proc/PID/clear_refs``, 5); False if refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Console:
    """``panelctl console`` on a temporary config: its own users file, database and secret."""

    def __init__(self, folder: Path, broker_port: int) -> None:
        self.folder = folder
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(12)
        cfg = {"broker": f"127.0.0.1:{broker_port}", "prefix": PREFIX,
               "console": {"listen_host": "127.0.0.1", "listen_port": self.port,
                           "users_file": str(folder / "console-users"), "secret_file": str(folder / "console-secret"),
                           "db": str(folder / "console.db"), "screenshot_dir": str(folder / "screens"),
                           "heartbeat_interval": INTERVAL}}
        self.config = folder / "panelctl.yaml"
        self.config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        self.env = dict(os.environ, PANELCTL_CONFIG=str(self.config))
        self.env.pop("PANELCTL_KEY", None)
        from player.console.auth import UsersFile  # H2's users file (argon2 hashes), as `panelctl console user add`

        UsersFile(folder / "console-users").add(USER, "viewer", self.password)
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.log = open(folder / "console.log", "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "player.ctl.cli", "--config", str(self.config),
                                      "console"], cwd=ROOT, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def tail(self) -> str:
        self.log.flush()
        return (self.folder / "console.log").read_text(errors="replace")[-2000:]

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"panelctl console exited ({self.proc.returncode}): {self.tail()}")

    def wait_for_fleet(self, n: int, timeout: float) -> float:
        """Logs in over HTTP and polls ``/api/fleet`` (the fleet page's rows) until it lists ``n`` panels;
        seconds since the start."""
        opener = self.opener
        deadline = time.monotonic() + timeout
        logged_in = False
        rows = 0
        problem = "no answer"
        while time.monotonic() < deadline:
            self.check()
            try:
                if not logged_in:
                    page = opener.open(self.base + "/login", timeout=10).read().decode()
                    found = re.search(r'name="csrf"\s+value="([^"]*)"', page)
                    form = {"username": USER, "password": self.password, "csrf": found.group(1) if found else ""}
                    opener.open(self.base + "/login", urllib.parse.urlencode(form).encode(), timeout=10).read()
                    logged_in = True
                got = opener.open(self.base + "/api/fleet", timeout=30)
                if "json" in got.headers.get("Content-Type", ""):
                    rows = len(json.loads(got.read())["panels"])
                    if rows >= n:
                        return time.monotonic() - self.started
                else:
                    logged_in, problem = False, "sent to the login page"
            except urllib.error.HTTPError as exc:
                logged_in, problem = False, f"HTTP {exc.code} on {exc.url}"
            except OSError as exc:
                problem = str(exc)
            time.sleep(0.25)
        raise RuntimeError(f"the console's fleet page listed {rows} of {n} panels after {timeout:g} s "
                           f"(last: {problem}); its log: {self.tail()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class StreamReader:
    """A plain HTTP client on the console's event stream (``/api/stream``, the page's own feed),
    noting when each marked heartbeat's change arrives: the console's part of the delay, without
    a browser."""

    def __init__(self, console: Console) -> None:
        self.seen: dict[str, float] = {}
        self.events = 0
        self.problem: str | None = None
        self.response = console.opener.open(console.base + "/api/stream", timeout=30)
        if "event-stream" not in self.response.headers.get("Content-Type", ""):
            raise RuntimeError(f"/api/stream answered {self.response.headers.get('Content-Type')!r}")
        self.thread = threading.Thread(target=self._read, name="sse-reader", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        mark = re.compile(rb"\+m\.\d+\.\d+")
        try:
            for line in self.response:
                if line.startswith(b"data:"):
                    at = time.time()
                    self.events += 1
                    found = mark.search(line)
                    if found:
                        self.seen.setdefault(found.group().decode(), at)
        except Exception as exc:  # noqa: BLE001 - closed by close() (http.client raises anything then)
            self.problem = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        self.response.close()
        self.thread.join(5)


# -- the browser ---------------------------------------------------------------------------------

ROWS = "table#fleet tr[data-panel]"
# Notes, in the page, when a row first shows each marker (the page's own clock, Date.now()).
OBSERVER = """() => {
  window.__seen = {};
  const mark = /\\+m\\.\\d+\\.\\d+$/;  // a cell ending with a marked firmware
  const now = [0];
  const look = (cell) => {
    const m = cell.textContent.match(mark);
    if (m && !(m[0] in window.__seen)) window.__seen[m[0]] = now[0];
  };
  new MutationObserver((records) => {
    now[0] = Date.now();
    for (const r of records) {
      const el = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      const cell = el && el.closest('td, th');
      if (cell) look(cell);  // a cell's text changed in place
      for (const a of r.addedNodes) {  // rows (or a whole body) put in
        if (a.nodeType === 1) for (const c of a.querySelectorAll('tr[data-panel] td')) look(c);
      }
    }
  }).observe(document.querySelector('table#fleet'), {subtree: true, childList: true, characterData: true});
}"""
FULL_TABLE = """(n) => {
  if (document.querySelectorAll('%s').length < n) return false;
  window.__rowsAt = window.__rowsAt || performance.now();
  return true;
}""" % ROWS


@contextmanager
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium (scripts/bootstrap.sh --tests)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def login(page: Any, base: str, password: str) -> None:
    page.goto(base + "/login")
    page.fill("form#login input[name=username]", USER)
    page.fill("form#login input[name=password]", password)
    with page.expect_navigation():
        page.press("form#login input[name=password]", "Enter")
    if "/login" in page.url:
        raise RuntimeError(f"login refused: still on {page.url}")


def _is_chromium(pid: int) -> bool:
    try:
        return b"chromium" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False


def _page_metrics(cdp: Any) -> dict[str, float]:
    """Chromium's own counters for the page (seconds of main-thread work by kind, counts)."""
    return {m["name"]: float(m["value"]) for m in cdp.send("Performance.getMetrics")["metrics"]}


def load_fleet_page(page: Any, base: str, n: int) -> dict[str, float]:
    """One navigation to the fleet page: ms from its start to the table holding ``n`` rows, DCL, load."""
    page.goto(base + "/", wait_until="commit")
    page.wait_for_function(FULL_TABLE, arg=n, polling=10, timeout=120_000)
    page.wait_for_load_state("load")
    t = page.evaluate("""() => {
      const nav = performance.getEntriesByType('navigation')[0];
      return {rows: window.__rowsAt, dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
              response: nav.responseEnd, bytes: nav.encodedBodySize};
    }""")
    return {k: float(v) for k, v in t.items()}


# -- the measurement ---------------------------------------------------------------------------------


def _cpu(roles: dict[str, list[int]]) -> dict[str, float]:
    return {role: machine_cpu(pids) for role, pids in roles.items()}


def _window(roles: dict[str, list[int]], seconds: float, console: Console,
            sim: Simulation) -> dict[str, Any]:
    """CPU of each role and the console's peak RSS over ``seconds`` (sampled every 0.5 s)."""
    c0, n0, t0 = _cpu(roles), sim.bare_count(), time.monotonic()
    peak_rss = 0.0
    while time.monotonic() - t0 < seconds:
        console.check()
        peak_rss = max(peak_rss, memory_mb(console.proc.pid)[0])
        time.sleep(min(0.5, max(0.0, seconds - (time.monotonic() - t0))))
    c1, n1, t1 = _cpu(roles), sim.bare_count(), time.monotonic()
    return {"seconds": t1 - t0, "cpu": {r: c1[r] - c0[r] for r in c1}, "messages": n1 - n0, "peak_rss": peak_rss}


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def _dist(values: list[float]) -> str:
    if not values:
        return "none measured"
    return (f"median {statistics.median(values):.0f} ms, p95 {_pct(values, 0.95):.0f} ms, "
            f"max {max(values):.0f} ms ({len(values)} heartbeats)")


def run(panels: int = 2000, seconds: float = 60.0, delay_s: float = 30.0, loads: int = 3,
        settle_s: float = 5.0) -> dict[str, Any]:
    """Measure; prints the report and returns the figures (no goal: ``"goals": []``)."""
    raise_fd_limit(1024)
    with tempfile.TemporaryDirectory(prefix="console-fleet-") as tmp:
        folder = Path(tmp)
        broker = Mosquitto(folder)
        sim: Simulation | None = None
        console: Console | None = None
        try:
            t = time.monotonic()
            sim = Simulation(panels, broker.port, INTERVAL)
            fleet_s = time.monotonic() - t
            console = Console(folder, broker.port)
            initial_s = console.wait_for_fleet(panels, timeout=60 + panels / 20)
            time.sleep(settle_s)  # the history's first writes, the first ticks
            cpid = console.proc.pid
            rss_loaded, hwm_start = memory_mb(cpid)
            # The start's peak holds the initial load and the login's password check (Argon2id,
            # 64 MiB by argon2-cffi's defaults): the steady window's own peak is measured apart.
            steady_peak_apart = reset_peak(cpid)
            roles = {"console": family(cpid), "bare": [sim.bare.pid or 0], "broker": [broker.proc.pid],
                     "publishers": sim.publisher_pids}
            steady = _window(roles, seconds, console, sim)
            rss_steady, hwm_steady = memory_mb(cpid)
            bare_rss = memory_mb(sim.bare.pid or 0)[0]

            with browser() as chromium:
                page = chromium.new_page()
                login(page, console.base, console.password)
                timings = [load_fleet_page(page, console.base, panels) for _ in range(loads)]
                page.evaluate(OBSERVER)
                reader = StreamReader(console)
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")
                me = os.getpid()
                live_roles = dict(roles, console=family(cpid),
                                  chromium=[p for p in family(me) if p != me and _is_chromium(p)])
                m0 = _page_metrics(cdp)
                sim.mark(True)
                live = _window(live_roles, delay_s, console, sim)
                sim.mark(False)
                page_work = {k: v - m0.get(k, 0.0) for k, v in _page_metrics(cdp).items()}
                time.sleep(3.0)  # the last marked heartbeats reach the page
                seen: dict[str, float] = page.evaluate("() => window.__seen")
                reader.close()
                rows_now = page.locator(ROWS).count()
            rss_end, hwm_end = memory_mb(cpid)  # the browser's login and page loads included
            published = sim.stop()
            bare_marks = sim.bare_marks()
        except Exception as exc:
            if console is not None and console.proc.poll() is not None:
                raise RuntimeError(f"{exc}; console log: {console.tail()}") from exc
            raise
        finally:
            if console is not None:
                console.close()
            if sim is not None:
                sim.close()
            broker.close()

    marks = published["marks"]
    to_page = [seen[m] - sent * 1000 for m, _, sent in marks if m in seen]
    to_bare = [(bare_marks[m] - sent) * 1000 for m, _, sent in marks if m in bare_marks]
    to_stream = [(reader.seen[m] - sent) * 1000 for m, _, sent in marks if m in reader.seen]
    page_after_stream = [seen[m] - reader.seen[m] * 1000 for m, _, _ in marks if m in seen and m in reader.seen]
    beats_s = panels / INTERVAL

    def pct(w: dict[str, Any], role: str) -> float:
        return float(w["cpu"][role] / w["seconds"] * 100)

    def cpu_row(w: dict[str, Any], role: str) -> str:
        used = w["cpu"][role]
        per = used / w["messages"] * 1e6 if w["messages"] else float("nan")
        return f"{used / w['seconds'] * 100:.2f} % of one core ({per:.0f} µs per message received)"

    med = {k: statistics.median(t[k] for t in timings) for k in timings[0]}
    busy = page_work.get("TaskDuration", 0.0) / live["seconds"] * 100
    layouts = max(1.0, page_work.get("LayoutCount", 0.0))
    result: dict[str, Any] = {
        "panels": panels, "connections": sim.connections if sim else 0, "initial_s": initial_s,
        "steady": steady, "live": live, "rss_loaded_mb": rss_loaded, "rss_steady_mb": rss_steady,
        "hwm_start_mb": hwm_start, "hwm_steady_mb": hwm_steady, "hwm_end_mb": hwm_end,
        "rss_end_mb": rss_end, "bare_rss_mb": bare_rss,
        "page_ms": med, "page_loads": timings, "to_page_ms": to_page, "to_bare_ms": to_bare,
        "to_stream_ms": to_stream, "stream_to_page_ms": page_after_stream, "page_work": page_work,
        "marks": len(marks), "seen": len(to_page), "slip_s": published["slip_s"], "rows_now": rows_now,
    }
    conns, procs = result["connections"], len(sim.procs) if sim else 0
    report(f"web console, {panels} simulated panels: heartbeat every {INTERVAL:g} s each ({beats_s:.1f}/s in "
           f"all), retained, QoS 1; published over {conns} connection{'s' if conns > 1 else ''} (up to "
           f"{PANELS_PER_CONNECTION} panels' topics each) from {procs} process{'es' if procs > 1 else ''}", [
        ("fleet on the broker (retained online + heartbeat)", f"{fleet_s:.1f} s to publish"),
        ("console start → fleet page lists every panel", f"{initial_s:.1f} s (HTTP, polled every 0.25 s)"),
        (f"console CPU, steady {steady['seconds']:.0f} s, no page open", cpu_row(steady, "console")),
        ("reference: bare paho subscriber, same heartbeats", cpu_row(steady, "bare")),
        ("broker (mosquitto), same window", f"{pct(steady, 'broker'):.2f} % of one core "
                                            f"(publishers: {pct(steady, 'publishers'):.2f} %)"),
        (f"console CPU, {live['seconds']:.0f} s with a fleet page and a plain stream reader open",
         cpu_row(live, "console")),
        ("console RSS: loaded / after steady / end", f"{rss_loaded:.1f} / {rss_steady:.1f} / {rss_end:.1f} MiB"),
        ("console peak RSS (VmHWM): start / steady / end",
         f"{hwm_start:.1f} / " + (f"{hwm_steady:.1f}" if steady_peak_apart else "(not apart)")
         + f" / {hwm_end:.1f} MiB (start and end include a login: Argon2id, 64 MiB)"),
        ("reference: bare paho subscriber RSS", f"{bare_rss:.1f} MiB"),
        (f"fleet page load, Chromium, median of {len(timings)}",
         f"{med['rows']:.0f} ms to {panels} rows (DOMContentLoaded {med['dcl']:.0f} ms, load {med['load']:.0f} ms, "
         f"HTML {med['bytes'] / 1024:.0f} KiB); each: " + ", ".join(f"{t['rows']:.0f}" for t in timings) + " ms"),
        ("heartbeat → row updated in the page (SSE)", _dist(to_page)
         + (f"; {len(marks) - len(to_page)} of {len(marks)} not seen" if len(to_page) < len(marks) else "")),
        ("reference: heartbeat → bare paho subscriber", _dist(to_bare)),
        ("the same heartbeats → console's event stream, read by a plain HTTP client", _dist(to_stream)
         + (f"; {len(marks) - len(to_stream)} not seen" if len(to_stream) < len(marks) else "")),
        ("the same heartbeats, stream → page (the browser's part)", _dist(page_after_stream)),
        ("Chromium, same window", f"{pct(live, 'chromium'):.1f} % of one core (every "
                                  f"process); page main thread busy {busy:.0f} % of the time: layout "
                                  f"{page_work.get('LayoutDuration', 0) * 1000 / layouts:.0f} ms × {layouts:.0f}, "
                                  f"scripts {page_work.get('ScriptDuration', 0):.1f} s, style "
                                  f"{page_work.get('RecalcStyleDuration', 0):.1f} s"),
        ("publishers' schedule slip (worst)", f"{published['slip_s'] * 1000:.0f} ms"),
        ("goal", "none set by the issue: reported, not judged"),
    ])
    if not marks or not to_page or not to_stream:
        # Not a goal but a broken chain: the page (or the stream) never showed a heartbeat.
        raise RuntimeError(f"of {len(marks)} marked heartbeats, {len(to_stream)} reached the event stream and "
                           f"{len(to_page)} the fleet page's rows")
    result["goals"] = []
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.console_fleet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("panels", nargs="?", type=int, default=2000, help="simulated panels (default 2000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="steady window (default 60)")
    parser.add_argument("--smoke", action="store_true", help="100 panels, 8 s")
    args = parser.parse_args()
    if args.smoke:
        run(panels=100, seconds=8.0, delay_s=6.0, loads=1, settle_s=1.0)
    else:
        run(panels=args.panels, seconds=args.seconds)
