"""Fan-out: `panelctl push` (this process) to N simulated panels (worker processes, no renderer) on one mosquitto.

Measured: the time from a group push until every simulated panel applied it.

Each simulated panel runs the panel's real protocol code without rendering: a
:class:`player.net.link.MqttLink` (its own paho client and network thread),
:func:`player.content.parse_playlist` and a
:class:`player.playlists.PlaylistManager` whose assets are in memory; it
answers ``playlist.applied`` through :meth:`MqttLink.publish_event`, then
publishes its heartbeat (a short one: no renderer, no sensors), as the player
does after an apply. The push is ``panelctl push``'s own :func:`player.ctl.push.push`
to the group, which publishes the playlist retained and collects the answers.

Reference, same run and same broker: the broker's own fan-out of the same
payload to N plain paho subscribers (time from the publish until all N have it).
Goal: the push ≤ 3× that floor (``--goal fanout=…``), for fleets of 100 panels or more;
smaller ones (the smoke run's 20) are printed but not judged.

Run: ``python -m bench.fanout [N ...]`` (default 100 500 1000) or ``--smoke`` (N = 20).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import multiprocessing
import os
import queue
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from player.config import known_layouts
from player.content import parse_playlist
from player.ctl.client import CtlClient, Message
from player.ctl.push import Prepared, prepare_playlist, push
from player.ctl.settings import CtlSettings
from player.errors import ContentError
from player.net.link import LinkSettings, MqttLink
from player.net.protocol import (Inbound, LinkState, event_playlist_applied, event_playlist_rejected,
                                 iso_now)
from player.playlists import Candidate, PlaylistManager

from . import goals
from .goals import Goal

DRIVES = ("`panelctl push`'s own code in this process, N simulated panels (the panel's protocol code, no "
          "renderer) in worker processes, a real mosquitto; no `panel-player run` process")
GOAL_MIN_PANELS = 100

GROUP = "centre-ville"
SHARDS = 4  # threads standing in for the panels' main loops
REPEATS = 5
# paho waits on select(), which cannot watch a descriptor numbered 1024 or more; each client
# holds three (its socket and a wake-up pair), so one process hosts at most ~300 of them.
CLIENTS_PER_PROCESS = 300
ASSET = hashlib.sha256(b"affiche du marche").hexdigest()  # every simulated panel "has" this image


# -- the broker ---------------------------------------------------------------------------


class Mosquitto:
    """A throw-away mosquitto on a free loopback port, sized for many clients."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        conf = folder / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence false",
                 "max_connections -1", "set_tcp_nodelay true",
                 # panelctl receives one answer per panel at once: keep them all queued, do not drop.
                 "max_queued_messages 100000", "log_dest none"]
        if os.geteuid() == 0:
            lines.insert(0, "user root")
        conf.write_text("\n".join(lines) + "\n")
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.01)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.proc.stderr:
            self.proc.stderr.close()


def raise_fd_limit(needed: int) -> None:
    """Make room for ``needed`` descriptors here and in the mosquitto we start (it inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        print(f"  warning: only {target} file descriptors allowed; {needed} wanted", file=sys.stderr)


# -- the simulated panels ----------------------------------------------------------------------


class _Tagged(queue.Queue[object]):
    """The inbox a link sees: forwards each item, tagged with its panel, to that panel's shard."""

    def __init__(self, panel: SimPanel, shard: queue.Queue[tuple[SimPanel, object]]) -> None:
        super().__init__()
        self.panel = panel
        self.shard = shard

    def put_nowait(self, item: object) -> None:
        self.shard.put((self.panel, item))

    def put(self, item: object, block: bool = True, timeout: float | None = None) -> None:
        self.shard.put((self.panel, item))


class SimPanel:
    """One panel's protocol side; :meth:`handle` runs on its shard thread only."""

    def __init__(self, panel_id: str, port: int, prefix: str, shard: queue.Queue[tuple[SimPanel, object]],
                 on_connected: Callable[[], None], fallback: Candidate) -> None:
        self.id = panel_id
        self.assets = {ASSET}
        self.manager = PlaylistManager([GROUP], self.assets.__contains__, asset_wait_s=60)
        self.manager.start_with(fallback)
        self.on_connected = on_connected
        self.connected_once = False
        self.stages: dict[int, tuple[float, float]] = {}  # version -> (message in, answer handed to paho)
        settings = LinkSettings(host="127.0.0.1", port=port, prefix=prefix, keepalive=60, session_expiry=0)
        self.link = MqttLink(settings, panel_id, [GROUP], _Tagged(self, shard))
        self.layouts = known_layouts()

    def handle(self, item: object) -> None:
        now = time.monotonic()
        if isinstance(item, LinkState) and item.connected:
            self.heartbeat()
            if not self.connected_once:
                self.connected_once = True
                self.on_connected()
        elif isinstance(item, Inbound) and item.route.kind == "playlist":
            source = "panel" if item.route.scope == "panel" else f"group:{item.route.name}"
            if not item.payload:
                self.manager.received(source, None, b"", now)
            else:
                try:
                    playlist = parse_playlist(item.payload, max_bytes=1 << 20, layouts=self.layouts)
                except ContentError as exc:
                    self.link.publish_event(event_playlist_rejected("; ".join(exc.errors)))
                    return
                self.manager.received(source, playlist, item.payload, now)
            decision = self.manager.poll(now)
            for cand, reason in decision.rejected:
                self.link.publish_event(event_playlist_rejected(reason, cand.playlist.id))
            if decision.apply is not None:
                pl = decision.apply.playlist
                self.link.publish_event(event_playlist_applied(pl.id, pl.version))
                self.stages[pl.version] = (item.received, time.monotonic())  # received: on the network thread
                self.heartbeat()  # an applied playlist is a notable change: the player reports it at once

    def heartbeat(self) -> None:
        current = self.manager.current.playlist if self.manager.current else None
        self.link.publish_heartbeat({"panel": self.id, "ts": iso_now(), "groups": [GROUP],
                                     "playlist": current.identity() if current else None})


def _shard_loop(shard: queue.Queue[tuple[SimPanel, object] | None]) -> None:
    while (job := shard.get()) is not None:
        panel, item = job
        try:
            panel.handle(item)
        except Exception as exc:  # a benchmark must report, not hang
            print(f"  simulated panel {panel.id} failed: {exc!r}", file=sys.stderr)


class Fleet:
    """Simulated panels ``sim-<i>`` for each i in ``ids``, connected; ``close()`` stops them."""

    def __init__(self, ids: list[int], port: int, prefix: str) -> None:
        n = len(ids)
        fallback_raw = (b'{"id":"defaut","version":0,"slides":[{"id":"a","type":"text","title":"Bienvenue"}]}')
        fallback = Candidate(parse_playlist(fallback_raw), fallback_raw, "bundled", time.monotonic())
        self.shards: list[queue.Queue[Any]] = [queue.Queue() for _ in range(SHARDS)]
        self.threads = [threading.Thread(target=_shard_loop, args=(q,), daemon=True) for q in self.shards]
        for t in self.threads:
            t.start()
        self._cond = threading.Condition()
        self.connected = 0

        def one_more() -> None:
            with self._cond:
                self.connected += 1
                self._cond.notify_all()

        self.panels = [SimPanel(f"sim-{i:04d}", port, prefix, self.shards[i % SHARDS], one_more, fallback)
                       for i in ids]
        for p in self.panels:
            p.link.start()
        with self._cond:
            if not self._cond.wait_for(lambda: self.connected == n, timeout=60 + n / 20):
                raise RuntimeError(f"only {self.connected} of {n} simulated panels connected")

    def close(self) -> None:
        for p in self.panels:
            p.link.stop()
        for q in self.shards:
            q.put(None)
        for t in self.threads:
            t.join(5)


# -- the reference: plain subscribers ---------------------------------------------------------------


class PlainSubscribers:
    """Plain paho clients subscribed to one topic, recording when a message reaches each."""

    def __init__(self, ids: list[int], port: int, topic: str) -> None:
        self.n = len(ids)
        self.topic = topic
        self._cond = threading.Condition()
        self._times: list[float] = []
        self._acked = 0
        self.clients = []
        for i in ids:
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"plain-{i:04d}-{uuid.uuid4().hex[:6]}",
                            protocol=mqtt.MQTTv5)
            c.on_connect = lambda c, u, f, rc, p: c.subscribe(self.topic, qos=1)
            c.on_subscribe = self._on_subscribe
            c.on_message = self._on_message
            c.connect_async("127.0.0.1", port, keepalive=60)
            c.loop_start()
            self.clients.append(c)
        with self._cond:
            if not self._cond.wait_for(lambda: self._acked == self.n, timeout=60 + self.n / 20):
                raise RuntimeError(f"only {self._acked} of {self.n} plain subscribers subscribed")

    def _on_subscribe(self, *args: Any) -> None:
        with self._cond:
            self._acked += 1
            self._cond.notify_all()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        at = time.monotonic()
        with self._cond:
            self._times.append(at)
            self._cond.notify_all()

    def reset(self) -> None:
        with self._cond:
            self._times.clear()

    def last(self, timeout: float = 60) -> float:
        """When the message reached the last subscriber (``time.monotonic()``, system-wide on Linux)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._times) >= self.n, timeout=timeout):
                raise RuntimeError(f"only {len(self._times)} of {self.n} subscribers got the message")
            return max(self._times)

    def close(self) -> None:
        for c in self.clients:
            c.disconnect()
            c.loop_stop()


def _worker(conn: Connection, ids: list[int], port: int, prefix: str, topic: str) -> None:
    """One process of the simulation: a share of the panels and of the plain subscribers."""
    fleet = plain = None
    try:
        fleet = Fleet(ids, port, prefix)
        plain = PlainSubscribers(ids, port, topic)
        conn.send("ready")
        while (order := conn.recv()) != "close":
            if order == "reset":
                plain.reset()
                conn.send("ok")
            elif order == "last":
                conn.send(plain.last())
            elif isinstance(order, tuple) and order[0] == "stages":
                got = [p.stages[order[1]] for p in fleet.panels if order[1] in p.stages]
                conn.send((max(g[0] for g in got), max(g[1] for g in got)) if got else None)
    except Exception as exc:  # the parent reports it
        conn.send(f"error: {exc!r}")
    finally:
        for part in (plain, fleet):
            if part is not None:
                part.close()
        conn.close()


class Simulation:
    """``n`` simulated panels and ``n`` plain subscribers spread over ``procs`` processes.

    The panels of a real fleet each have their own CPU; one Python process
    hosting hundreds of them would measure its own interpreter lock instead.
    """

    def __init__(self, n: int, port: int, prefix: str, topic: str, procs: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs = []
        for k in range(procs):
            ids = list(range(k, n, procs))
            if not ids:
                continue
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, ids, port, prefix, topic), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        for pipe in self.pipes:
            self._expect(pipe, "ready", 120 + n / 10)

    @staticmethod
    def _expect(pipe: Connection, word: str, timeout: float) -> Any:
        if not pipe.poll(timeout):
            raise RuntimeError(f"a simulation process did not answer {word!r} within {timeout:g} s")
        answer = pipe.recv()
        if isinstance(answer, str) and answer.startswith("error"):
            raise RuntimeError(f"simulation process: {answer}")
        if word != "value" and answer != word:
            raise RuntimeError(f"simulation process said {answer!r}, expected {word!r}")
        return answer

    def floor(self, publisher: CtlClient, topic: str, payload: bytes) -> float:
        """Time from publishing ``payload`` until every plain subscriber has it."""
        for pipe in self.pipes:
            pipe.send("reset")
        for pipe in self.pipes:
            self._expect(pipe, "ok", 10)
        start = time.monotonic()
        publisher.publish(topic, payload, retain=True)
        for pipe in self.pipes:
            pipe.send("last")
        return max(self._expect(pipe, "value", 60) for pipe in self.pipes) - start

    def stages(self, version: int) -> tuple[float, float]:
        """When the last panel had playlist ``version`` and when the last one had answered."""
        for pipe in self.pipes:
            pipe.send(("stages", version))
        got = [self._expect(pipe, "value", 10) for pipe in self.pipes]
        if any(g is None for g in got):
            raise RuntimeError(f"some simulation process has no panel that applied v{version}")
        return max(g[0] for g in got), max(g[1] for g in got)

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send("close")
            except OSError:
                pass
        for proc in self.procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()


class TimedCtlClient(CtlClient):
    """panelctl's client, noting when push() publishes the playlist (the start of the
    fan-out) and when each event reached it (the network thread's receive time, kept
    with the message); the events are read only after the push."""

    published_at = 0.0

    def __init__(self, settings: CtlSettings, roles: dict[str, list[int]]) -> None:
        super().__init__(settings)
        self.roles = roles  # whose CPU time to note at the publish
        self.cpu_at_publish: dict[str, float] = {}
        self.events: list[tuple[float, bytes]] = []

    def publish(self, topic: str, payload: bytes | str, **kwargs: Any) -> None:
        if topic.endswith("/playlist"):
            self.cpu_at_publish = cpu_by_role(self.roles)
            self.published_at = time.monotonic()
        super().publish(topic, payload, **kwargs)

    def listen(self, handler: Callable[[Message], None] | None) -> None:
        if handler is None:
            super().listen(None)
            return

        def noting(msg: Message) -> None:
            if msg.topic.endswith("/events"):
                self.events.append((msg.received, msg.payload))
            handler(msg)

        super().listen(noting)

    def last_applied(self, version: int, n: int) -> float:
        """When the last of ``n`` ``playlist.applied`` events for ``version`` came in."""
        times = []
        for received, payload in self.events:
            try:
                event = json.loads(payload)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("type") == "playlist.applied" and event.get("version") == version:
                times.append(received)
        if len(times) < n:
            raise RuntimeError(f"only {len(times)} of {n} panels applied v{version}")
        return max(times)


# -- the measurement ---------------------------------------------------------------------------------


def group_playlist(version: int) -> Prepared:
    """What an operator pushes to a group: a few text slides and one image, validated like panelctl does."""
    data = {"id": "fanout", "version": version, "layout": "landscape", "slides": [
        {"id": f"info-{i}", "type": "text", "duration": 8, "title": f"Information {i}",
         "body": "Marché de Noël place de la Mairie, du 12 au 24 décembre.",
         "style": {"background": "#003366", "color": "#ffffff", "align": "center"}} for i in range(6)
    ] + [{"id": "affiche", "type": "image", "duration": 10, "asset": f"sha256:{ASSET}", "fit": "contain"}],
        "ticker": ["Collecte des encombrants jeudi 3 décembre"]}
    return prepare_playlist(data, Path("."), max_asset_bytes=2 << 20, max_message_bytes=1 << 20)


def measure(n: int, repeats: int = REPEATS, procs: int | None = None) -> dict[str, Any]:
    """Median floor and push fan-out for ``n`` panels (seconds; the CPU figures per process role)."""
    procs = procs or max(os.cpu_count() or 2, -(-2 * n // CLIENTS_PER_PROCESS))
    prefix = "bench"
    topic = f"{prefix}/reference/playlist"
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        broker = Mosquitto(Path(tmp))
        sim = None
        try:
            settings = CtlSettings(port=broker.port, prefix=prefix)
            t0 = time.monotonic()
            sim = Simulation(n, broker.port, prefix, topic, procs)
            connect_s = time.monotonic() - t0
            floors, pushes, totals, arrivals, answers_out = [], [], [], [], []
            floor_cpu: list[dict[str, float]] = []
            push_cpu: list[dict[str, float]] = []
            # Every process of the run: the broker, this one (panelctl), the simulation's.
            roles = {"broker": [broker.proc.pid], "panelctl": [os.getpid()],
                     "simulation": [p.pid for p in sim.procs if p.pid is not None]}
            with CtlClient(settings) as publisher, TimedCtlClient(settings, roles) as ctl:
                for r in range(repeats):
                    prepared = group_playlist(version=r + 1)
                    c0 = cpu_by_role(roles)
                    floors.append(sim.floor(publisher, topic, prepared.payload))
                    floor_cpu.append(_minus(cpu_by_role(roles), c0))
                    out, err = io.StringIO(), io.StringIO()
                    start = time.monotonic()
                    code = push(ctl, prefix, prepared, panels=[], groups=[GROUP], timeout=60, wait=True,
                                max_asset_bytes=2 << 20, out=out, err=err)
                    totals.append(time.monotonic() - start)
                    applied = [line for line in out.getvalue().splitlines() if " applied " in f" {line} "]
                    if code != 0 or len(applied) != n:
                        raise RuntimeError(f"push to {n} panels: exit {code}, {len(applied)} applied\n"
                                           + out.getvalue()[-2000:])
                    pushes.append(ctl.last_applied(r + 1, n) - ctl.published_at)
                    push_cpu.append(_minus(cpu_by_role(roles), ctl.cpu_at_publish))
                    arrived, answered = sim.stages(r + 1)
                    arrivals.append(arrived - ctl.published_at)
                    answers_out.append(answered - ctl.published_at)
        finally:
            if sim is not None:
                sim.close()
            broker.close()
    each = [p / f for p, f in zip(pushes, floors) if f > 0]  # the ratio within each repeat
    return {"panels": n, "processes": procs, "connect_s": connect_s, "floor_s": statistics.median(floors),
            "ratio_range": (min(each), max(each)) if each else (float("inf"), float("inf")),
            "push_s": statistics.median(pushes), "push_total_s": statistics.median(totals),
            "arrived_s": statistics.median(arrivals), "answered_s": statistics.median(answers_out),
            "floor_cpu_s": _median_of(floor_cpu), "push_cpu_s": _median_of(push_cpu)}


CLOCK_TICK = 1 / os.sysconf("SC_CLK_TCK")


def cpu_by_role(roles: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each role's processes, every thread, to the clock tick."""
    return {role: machine_cpu(pids) for role, pids in roles.items()}


def _minus(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {role: after[role] - before[role] for role in after}


def _median_of(samples: list[dict[str, float]]) -> dict[str, float]:
    """Per role, and in all (``"total"``), the median over the repeats."""
    totals = [{**s, "total": sum(s.values())} for s in samples]
    return {role: statistics.median(t[role] for t in totals) for role in totals[0]}


def machine_cpu(pids: list[int]) -> float:
    """CPU seconds used so far by the processes ``pids``, every thread, to the clock tick.

    One read of ``/proc/PID/stat`` per process (utime + stime): reading each thread's
    schedstat would cost tens of milliseconds with hundreds of simulated panels.
    """
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
    return total * CLOCK_TICK


def run(counts: list[int]) -> dict[str, Any]:
    """Measure each N in ``counts``; prints the table and returns ``{N: figures}`` plus ``goal_met``."""
    raise_fd_limit(4 * max(counts) + 512)
    rows = {n: measure(n) for n in counts}
    print(f"\n== fan-out: panelctl push of a group playlist to N simulated panels "
          f"(median of {REPEATS}; goal ≤ {goals.value('fanout'):g}× the broker's floor)")
    print(f"  {'N':>5}  {'broker floor':>12}  {'push → all applied':>18}  {'ratio':>6}  {'each repeat':>11}  "
          f"{'last panel has it':>17}  {'last answer sent':>16}  {'push() wall time':>16}  "
          f"{'CPU: floor':>10}  {'CPU: push':>11}  {'fleet connect':>13}  {'processes':>9}")
    found: list[Goal] = []
    for n, r in rows.items():
        ratio = r["push_s"] / r["floor_s"] if r["floor_s"] > 0 else float("inf")
        r["ratio"] = ratio
        found.append(Goal("fanout", f"N = {n}", ratio, goals.value("fanout"), "×", measured_at=f"N = {n}",
                          goal_at=f"N ≥ {GOAL_MIN_PANELS}", at_goal_size=n >= GOAL_MIN_PANELS))
        low, high = r["ratio_range"]
        print(f"  {n:>5}  {r['floor_s'] * 1000:>9.1f} ms  {r['push_s'] * 1000:>15.1f} ms  {ratio:>5.2f}×  "
              f"{f'{low:.1f}–{high:.1f}×':>11}  "
              f"{r['arrived_s'] * 1000:>14.1f} ms  {r['answered_s'] * 1000:>13.1f} ms  "
              f"{r['push_total_s'] * 1000:>13.1f} ms  {r['floor_cpu_s']['total'] * 1000:>7.0f} ms  "
              f"{r['push_cpu_s']['total'] * 1000:>8.0f} ms  {r['connect_s']:>11.2f} s  {r['processes']:>9}")
    print(f"  (the three middle columns count from the moment push() publishes the playlist; CPU: what the\n"
          f"   broker, panelctl and the simulated panels used in all, on this machine's {os.cpu_count()} cores)")
    print("  CPU by process, floor → push (medians):")
    for n, r in rows.items():
        print(f"  {n:>5}  " + ", ".join(f"{role} {r['floor_cpu_s'][role] * 1000:.0f} → {r['push_cpu_s'][role] * 1000:.0f} ms"
                                     for role in ("broker", "panelctl", "simulation")))
    for goal in found:
        print(f"  goal, {goal.what}: {goal.line()}")
    sys.stdout.flush()
    return {"rows": rows, "goals": found}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__)
    parser.add_argument("counts", nargs="*", type=int, help="fleet sizes (default 100 500 1000)")
    parser.add_argument("--smoke", action="store_true", help="N = 20 only")
    args = parser.parse_args()
    run([20] if args.smoke else (args.counts or [100, 500, 1000]))
