"""Fan-out, per panel and per push: three figures, each next to its floor measured in the same run.

1. **panelctl's CPU per panel answer.** N simulated panels (paho clients spread over a few
   worker processes, each subscribed to its panel's and its group's playlist topics, with
   retained ``online`` and heartbeat like a panel) answer a real ``panelctl push --group``
   (a separate process running panelctl's own CLI, ``player.ctl.cli.main``) with the
   panel's ``playlist.applied`` event after validating the playlist with
   :func:`player.content.parse_playlist`. The CPU of the panelctl process from the moment
   it publishes the playlist until its tracker has every answer
   (``time.process_time()``: every thread, read by two timing hooks in that process),
   divided by N. Floor: a bare paho subscriber process (MQTT 5, QoS 1, ``on_message``
   only counts) subscribed to the same ``P/panels/+/events`` and receiving the same N
   events of the same push; its CPU per message. Goal: ratio ≤ 1.5
   (``--goal fanout_answers_ratio=…``), judged at N ≥ 1,000.

2. **A panel's CPU to receive and apply one playlist.** A real ``panel-player run``
   (png output, 320x180, MQTT on) receives 50 versions of a playlist on its panel topic
   in a row, each awaited through its ``playlist.applied`` event; its CPU from
   ``/proc/PID/stat`` (every thread, ended ones too; user and kernel) over that window
   divided by 50. The same player's CPU over an equal window with no playlist is measured
   right after (schedstat, to the nanosecond: it is far below a clock tick), and the apply
   cost is given with and without it subtracted. Floor: another process
   parsing and validating the same 50 payloads with the player's own
   ``parse_playlist`` (JSON decoding included), per playlist. Goal: (apply − idle) /
   floor ≤ 2 (``--goal playlist_apply_ratio=…``).

3. **Broker-side wall time of a push** to 2,000 panels (and to 100): from panelctl's
   publish to the moment the last simulated panel's socket had the playlist (each
   worker process stamps the moment the kernel reports a socket readable, before any
   MQTT decoding: what the panels' own CPUs would do in a real fleet is left out).
   Reported, no goal; the round trip (until panelctl has every answer), which on this
   machine also carries every simulated panel's work on two cores, is printed next to it.

Run: ``python -m bench.fanout [N ...]`` (default 100 2000) or ``--smoke`` (N = 20 and 100, 5 playlists).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from . import goals
from .common import ROOT, start_player, stop, store_playlist, wait_for, write_config
from .goals import Goal

DRIVES = ("real `panelctl push` processes (panelctl's CLI, two timing hooks) answered by N simulated panels "
          "(paho clients in worker processes, the panel's playlist validation and events), a bare paho "
          "subscriber process; a real `panel-player run` (png 320x180) receiving playlists; a real mosquitto")

PREFIX = "bench"
GROUP = "centre-ville"
REPEATS = 5
PER_PROCESS = 500  # simulated panels per worker process (one epoll loop each, no thread per client)
ANSWERS_GOAL_MIN = 1000  # the answers ratio is judged for fleets at least this large
PLAYER_SIZE = (320, 180)
PLAYER_ID = "bench"


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
    """Make room for ``needed`` descriptors here and in the processes we start (they inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        print(f"  warning: only {target} file descriptors allowed; {needed} wanted", file=sys.stderr)


CLOCK_TICK = 1 / os.sysconf("SC_CLK_TCK")


def machine_cpu(pids: list[int]) -> float:
    """CPU seconds used so far by the processes ``pids``, every thread (ended ones too), to the clock tick."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
    return total * CLOCK_TICK


def user_system(pid: int) -> tuple[float, float]:
    """User and kernel CPU seconds of ``pid`` so far (every thread, ended ones too), to the clock tick."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) * CLOCK_TICK, int(fields[12]) * CLOCK_TICK


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each living thread of ``pid`` (schedstat, to the nanosecond): the main thread and the others by id."""
    found: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            used = int((task / "schedstat").read_text().split()[0]) / 1e9
        except (OSError, IndexError, ValueError):
            continue
        found["main thread" if task.name == str(pid) else f"thread {task.name}"] = used
    return found


# -- what is pushed ----------------------------------------------------------------------------


def playlist(version: int) -> dict[str, Any]:
    """What an operator pushes: six text slides with a style (no picture: the real player
    in part 2 would wait for it; no ticker: it would redraw 30 times a second)."""
    return {"id": "fanout", "version": version, "layout": "fullscreen", "slides": [
        {"id": f"info-{i}", "type": "text", "duration": 8, "title": f"Information {i}",
         "body": "Marché de Noël place de la Mairie, du 12 au 24 décembre. Navette gratuite le samedi.",
         "style": {"background": "#003366", "color": "#ffffff", "align": "center"}} for i in range(6)]}


def payload(version: int) -> bytes:
    return json.dumps(playlist(version), ensure_ascii=False, separators=(",", ":")).encode()


def _json(data: dict[str, Any]) -> bytes:  # as the panel's link encodes what it publishes
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# -- the simulated panels: paho clients on one epoll loop per process -------------------------------


class _Panel:
    def __init__(self, pid: str, client: mqtt.Client) -> None:
        self.id = pid
        self.client = client
        self.sock: Any = None
        self.read = True
        self.write = False
        self.ready = False  # CONNACK, SUBACK and the first retained messages acknowledged
        self.pending: set[int] = set()
        self.stamp: float | None = None
        self.first: tuple[str, int] | None = None  # (topic, version) of the first message after arming
        self.answered = False


def _worker(conn: Connection, ids: list[int], port: int) -> None:
    """One process of the simulation: ``ids``' panels on one epoll loop; orders come on ``conn``."""
    from player.config import known_layouts
    from player.content import parse_playlist
    from player.errors import ContentError
    from player.net.protocol import event_playlist_applied, event_playlist_rejected, iso_now

    layouts = known_layouts()
    sel = selectors.DefaultSelector()
    sel.register(conn.fileno(), selectors.EVENT_READ, None)
    panels: list[_Panel] = []
    by_client: dict[int, _Panel] = {}
    armed: list[int] = []  # the version awaited, while stamping

    def update(p: _Panel) -> None:
        events = (selectors.EVENT_READ if p.read else 0) | (selectors.EVENT_WRITE if p.write else 0)
        if p.sock is None:
            return
        try:
            if events:
                sel.modify(p.sock, events, p) if p.sock in sel.get_map() else sel.register(p.sock, events, p)
            elif p.sock in sel.get_map():
                sel.unregister(p.sock)
        except (KeyError, ValueError, OSError):
            pass

    def on_socket_open(client: mqtt.Client, userdata: Any, sock: Any) -> None:
        p = by_client[id(client)]
        p.sock = sock
        update(p)

    def on_socket_close(client: mqtt.Client, userdata: Any, sock: Any) -> None:
        p = by_client[id(client)]
        if sock in sel.get_map():
            sel.unregister(sock)
        p.sock = None

    def on_register_write(client: mqtt.Client, userdata: Any, sock: Any) -> None:
        p = by_client[id(client)]
        p.write = True
        update(p)

    def on_unregister_write(client: mqtt.Client, userdata: Any, sock: Any) -> None:
        p = by_client[id(client)]
        p.write = False
        update(p)

    def heartbeat(p: _Panel, version: int | None) -> None:
        info = p.client.publish(f"{PREFIX}/panels/{p.id}/heartbeat", _json(
            {"panel": p.id, "ts": iso_now(), "groups": [GROUP],
             "playlist": {"id": "fanout", "version": version} if version else None}), qos=1, retain=True)
        p.pending.add(info.mid)

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        p = by_client[id(client)]
        _, mid = client.subscribe([(f"{PREFIX}/panels/{p.id}/playlist", 1), (f"{PREFIX}/groups/{GROUP}/playlist", 1)])
        p.pending.add(mid or 0)
        p.pending.add(client.publish(f"{PREFIX}/panels/{p.id}/online", b"true", qos=1, retain=True).mid)
        heartbeat(p, None)

    def on_ack(client: mqtt.Client, userdata: Any, mid: int, *rest: Any) -> None:
        p = by_client[id(client)]
        p.pending.discard(mid)
        if not p.pending:
            p.ready = True

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        p = by_client[id(client)]
        try:
            pl = parse_playlist(bytes(msg.payload), max_bytes=1 << 20, layouts=layouts)  # the panel's validation
        except ContentError as exc:
            p.first = p.first or (msg.topic, -1)
            client.publish(f"{PREFIX}/panels/{p.id}/events", _json(event_playlist_rejected("; ".join(exc.errors))), qos=1)
            return
        p.first = p.first or (msg.topic, pl.version)
        if armed and pl.version == armed[0] and not p.answered:
            client.publish(f"{PREFIX}/panels/{p.id}/events", _json(event_playlist_applied(pl.id, pl.version)), qos=1)
            heartbeat(p, pl.version)  # an applied playlist is a notable change: the panel reports it at once
            p.answered = True

    for i in ids:
        pid = f"sim-{i:04d}"
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{pid}-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
        p = _Panel(pid, c)
        by_client[id(c)] = p
        panels.append(p)
        c.on_socket_open = on_socket_open
        c.on_socket_close = on_socket_close
        c.on_socket_register_write = on_register_write
        c.on_socket_unregister_write = on_unregister_write
        c.on_connect = on_connect
        c.on_subscribe = on_ack
        c.on_publish = on_ack
        c.on_message = on_message

    def pump(timeout: float) -> bool:
        """One round of the loop; True when an order came on the pipe."""
        order = False
        for key, events in sel.select(timeout):
            p = key.data
            if p is None:
                order = True
                continue
            if events & selectors.EVENT_READ:
                if armed and p.stamp is None:
                    p.stamp = time.monotonic()  # the kernel has the playlist; decoding waits
                    p.read = False
                    update(p)
                    continue
                p.client.loop_read()
            if events & selectors.EVENT_WRITE:
                p.client.loop_write()
        return order

    try:
        for p in panels:
            p.client.connect("127.0.0.1", port, keepalive=600)
            pump(0)
        deadline = time.monotonic() + 60 + len(panels) / 20
        while not all(p.ready for p in panels):
            pump(0.2)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{sum(p.ready for p in panels)} of {len(panels)} simulated panels ready")
        conn.send("ready")
        while True:
            if not pump(1.0):
                for p in panels:
                    p.client.loop_misc()
                continue
            order = conn.recv()
            if order == "close":
                break
            version = int(order)
            for p in panels:
                p.stamp, p.first, p.answered = None, None, False
                p.client.loop_read()  # nothing left unread: a socket readable from now on has the push
            armed[:] = [version]
            conn.send("armed")
            deadline = time.monotonic() + 120
            while any(p.stamp is None for p in panels) and time.monotonic() < deadline:
                pump(0.5)  # stamping only: nothing is decoded until every socket had its data
            for p in panels:
                p.read = True
                update(p)
            while (any(not p.answered for p in panels) or any(p.pending for p in panels)) \
                    and time.monotonic() < deadline:
                pump(0.5)
            wrong = [p.first for p in panels if p.first != (f"{PREFIX}/groups/{GROUP}/playlist", version)]
            conn.send({"stamps": [p.stamp for p in panels if p.stamp is not None],
                       "answered": sum(p.answered for p in panels), "wrong": wrong[:3], "n_wrong": len(wrong)})
            armed.clear()
    except Exception as exc:  # the parent reports it
        conn.send(f"error: {exc!r}")
    finally:
        for p in panels:
            try:
                p.client.disconnect()
                p.client.loop_write()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        conn.close()


class Fleet:
    """``n`` simulated panels ``sim-<i>`` in group GROUP, over worker processes of PER_PROCESS at most."""

    def __init__(self, n: int, port: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        procs = max(2, -(-n // PER_PROCESS))
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for k in range(procs):
            ids = list(range(k, n, procs))
            if not ids:
                continue
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, ids, port), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        for pipe in self.pipes:
            self._expect(pipe, 120 + n / 10, "ready")

    @staticmethod
    def _expect(pipe: Connection, timeout: float, word: str | None = None) -> Any:
        if not pipe.poll(timeout):
            raise RuntimeError(f"a simulation process did not answer within {timeout:g} s")
        answer = pipe.recv()
        if isinstance(answer, str) and answer.startswith("error"):
            raise RuntimeError(f"simulation process: {answer}")
        if word is not None and answer != word:
            raise RuntimeError(f"simulation process said {answer!r}, expected {word!r}")
        return answer

    def arm(self, version: int) -> None:
        for pipe in self.pipes:
            pipe.send(version)
        for pipe in self.pipes:
            self._expect(pipe, 30, "armed")

    def collect(self) -> tuple[list[float], int]:
        """Every panel's stamp (monotonic: when its socket had the playlist) and how many answered."""
        stamps: list[float] = []
        answered = 0
        for pipe in self.pipes:
            got = self._expect(pipe, 180)
            if got["n_wrong"]:
                raise RuntimeError(f"{got['n_wrong']} simulated panels got something else first: {got['wrong']}")
            stamps += got["stamps"]
            answered += got["answered"]
        return stamps, answered

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


# -- the floor of part 1: a bare paho subscriber in its own process ------------------------------------


def _bare(conn: Connection, port: int) -> None:
    """Counts the messages on ``P/panels/+/events``; on ``n``: its CPU until n more came."""
    lock = threading.Condition()
    count = [0]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{uuid.uuid4().hex[:6]}",
                         protocol=mqtt.MQTTv5)

    wanted = [0]

    def on_message(c: Any, u: Any, m: Any) -> None:
        count[0] += 1  # paho's network thread only
        if count[0] == wanted[0]:
            with lock:
                lock.notify_all()  # once: a wake-up of the waiting thread per message would be counted too

    subscribed = threading.Event()
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect("127.0.0.1", port, keepalive=600)
    client.loop_start()
    try:
        client.subscribe(f"{PREFIX}/panels/+/events", qos=1)
        if not subscribed.wait(10):
            raise RuntimeError("no SUBACK")
        conn.send("ready")
        while (n := conn.recv()) is not None:
            with lock:
                count[0], wanted[0] = 0, n
            cpu = time.process_time()
            conn.send("armed")
            with lock:
                ok = lock.wait_for(lambda: count[0] >= n, 180)
            used = time.process_time() - cpu
            conn.send(used if ok else f"error: got {count[0]} of {n} events")
    except Exception as exc:  # the parent reports it
        conn.send(f"error: {exc!r}")
    finally:
        client.disconnect()
        client.loop_stop()


# -- panelctl, a real process with two timing hooks ------------------------------------------------------


def panelctl_child(out: str, argv: list[str]) -> int:
    """Run panelctl's CLI in this process, noting its CPU when it publishes the playlist and when
    its tracker stops listening (every answer in): written as JSON to ``out``."""
    from player.ctl import cli
    from player.ctl.client import CtlClient

    marks: dict[str, float] = {}
    publish, listen = CtlClient.publish, CtlClient.listen

    def timed_publish(self: CtlClient, topic: str, payload: bytes | str, **kwargs: Any) -> None:
        if topic.endswith("/playlist") and "publish_cpu" not in marks:
            marks["publish_cpu"], marks["publish_at"] = time.process_time(), time.monotonic()
        publish(self, topic, payload, **kwargs)

    def timed_listen(self: CtlClient, handler: Any) -> None:
        if handler is None and "publish_cpu" in marks and "answered_cpu" not in marks:
            marks["answered_cpu"], marks["answered_at"] = time.process_time(), time.monotonic()
        listen(self, handler)

    setattr(CtlClient, "publish", timed_publish)
    setattr(CtlClient, "listen", timed_listen)
    code = cli.main(argv)
    marks["end_cpu"] = time.process_time()
    Path(out).write_text(json.dumps(marks))
    return code


def run_panelctl(port: int, folder: Path, version: int, n: int) -> dict[str, float]:
    """One real ``panelctl push --group`` of ``version``; its marks and its whole CPU (rusage)."""
    file = folder / f"playlist-{version}.json"
    file.write_bytes(payload(version))
    marks, table = folder / f"marks-{version}.json", folder / f"table-{version}.txt"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(table, "wb") as stdout:
        proc = subprocess.Popen([sys.executable, "-m", "bench.fanout", "--panelctl-child", str(marks), "--",
                                 "push", str(file), "--group", GROUP, "--broker", f"127.0.0.1:{port}",
                                 "--prefix", PREFIX, "--protocol", "5", "--timeout", "120"],
                                cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stderr.close()
    applied = sum(1 for line in table.read_text().splitlines() if " applied " in f" {line} ")
    if proc.returncode != 0 or applied != n or not marks.exists():
        raise RuntimeError(f"panelctl push to {n} panels: exit {proc.returncode}, {applied} applied\n"
                           + err.decode(errors="replace")[-1500:])
    got: dict[str, float] = json.loads(marks.read_text())
    got["whole_cpu"] = usage.ru_utime + usage.ru_stime
    return got


def measure_push(n: int, repeats: int) -> dict[str, Any]:
    """Parts 1 and 3 for a fleet of ``n``."""
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        folder = Path(tmp)
        broker = Mosquitto(folder)
        fleet = bare_proc = None
        parent, child = ctx.Pipe()
        try:
            t0 = time.monotonic()
            fleet = Fleet(n, broker.port)
            connect_s = time.monotonic() - t0
            bare_proc = ctx.Process(target=_bare, args=(child, broker.port), daemon=True)
            bare_proc.start()
            Fleet._expect(parent, 30, "ready")
            rows = []
            for r in range(repeats):
                version = r + 1
                fleet.arm(version)
                parent.send(n)
                Fleet._expect(parent, 10, "armed")
                marks = run_panelctl(broker.port, folder, version, n)
                stamps, answered = fleet.collect()
                bare_cpu = Fleet._expect(parent, 180)
                if len(stamps) != n or answered != n:
                    raise RuntimeError(f"{len(stamps)} of {n} panels had the playlist, {answered} answered")
                t = marks["publish_at"]
                rows.append({"ctl_us": (marks["answered_cpu"] - marks["publish_cpu"]) / n * 1e6,
                             "bare_us": bare_cpu / n * 1e6, "whole_cpu_s": marks["whole_cpu"],
                             "last_s": max(stamps) - t, "median_s": statistics.median(stamps) - t,
                             "round_trip_s": marks["answered_at"] - t})
        finally:
            try:
                parent.send(None)
            except OSError:
                pass  # the subscriber process is gone already: its error was reported
            if bare_proc is not None:
                bare_proc.join(10)
                if bare_proc.is_alive():
                    bare_proc.kill()
            if fleet is not None:
                fleet.close()
            broker.close()
    result: dict[str, Any] = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
    ratios = [row["ctl_us"] / row["bare_us"] for row in rows]
    result.update(panels=n, processes=len(fleet.procs) if fleet else 0, connect_s=connect_s,
                  ratio=statistics.median(ratios), ratio_range=(min(ratios), max(ratios)),
                  last_range=(min(r["last_s"] for r in rows), max(r["last_s"] for r in rows)))
    return result


# -- part 2: a real player applying playlists ------------------------------------------------------------


FLOOR = textwrap.dedent("""
    import sys, time
    from player.config import known_layouts
    from player.content import parse_playlist
    payloads = open(sys.argv[1], "rb").read().split(b"\\n")
    layouts = known_layouts()
    rounds = int(sys.argv[2])
    for raw in payloads:  # warm-up
        parse_playlist(raw, max_bytes=256 * 1024, layouts=layouts)
    times = []
    for _ in range(rounds):
        cpu = time.process_time()
        for raw in payloads:
            parse_playlist(raw, max_bytes=256 * 1024, layouts=layouts)
        times.append(time.process_time() - cpu)
    times.sort()
    print(times[len(times) // 2] / len(payloads))
""")


def parse_floor(payloads: list[bytes], rounds: int = 21) -> float:
    """CPU seconds to parse and validate one of ``payloads`` in a process doing only that (median round)."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as f:
        f.write(b"\n".join(payloads))
        f.flush()
        done = subprocess.run([sys.executable, "-c", FLOOR, f.name, str(rounds)], cwd=ROOT, check=True,
                              capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return float(done.stdout.strip())


def measure_apply(count: int, warmup: int = 3) -> dict[str, Any]:
    """Part 2: a real player's CPU per playlist received and applied, its idle CPU, the parse floor."""
    from player.ctl.client import CtlClient
    from player.ctl.settings import CtlSettings

    with tempfile.TemporaryDirectory(prefix="apply-") as tmp:
        folder = Path(tmp)
        broker = Mosquitto(folder)
        player = None
        try:
            store_playlist(folder, playlist(0))
            config = write_config(folder, size=PLAYER_SIZE, layout="fullscreen", extra={
                "panel": {"id": PLAYER_ID, "groups": [GROUP]},
                "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port, "prefix": PREFIX,
                         "keepalive": 60},
                "heartbeat": {"interval": 30}})
            with CtlClient(CtlSettings(port=broker.port, prefix=PREFIX)) as ctl:
                events, online = f"{PREFIX}/panels/{PLAYER_ID}/events", f"{PREFIX}/panels/{PLAYER_ID}/online"
                ctl.subscribe([events, online])
                player = start_player(config)
                wait_for(lambda: (folder / "frame.png").exists(), 30, "the first frame", player)
                end = time.monotonic() + 30
                while (msg := ctl.next_message(end)) is not None and not (msg.topic == online and msg.payload == b"true"):
                    pass
                if msg is None:
                    raise RuntimeError("the player did not come online")
                topic = f"{PREFIX}/panels/{PLAYER_ID}/playlist"
                sent: list[bytes] = []

                def apply(version: int) -> None:
                    data = payload(version)
                    sent.append(data)
                    ctl.publish(topic, data, retain=True)
                    deadline = time.monotonic() + 30
                    while (m := ctl.next_message(deadline)) is not None:
                        if m.topic == events:
                            event = json.loads(m.payload)
                            if event.get("type") == "playlist.rejected":
                                raise RuntimeError(f"the player rejected v{version}: {event}")
                            if event.get("type") == "playlist.applied" and event.get("version") == version:
                                return
                    raise RuntimeError(f"no playlist.applied for v{version}")

                for v in range(1, warmup + 1):
                    apply(v)
                time.sleep(1.0)
                sent.clear()
                threads0, split0, t0 = thread_cpu(player.pid), user_system(player.pid), time.monotonic()
                for v in range(warmup + 1, warmup + count + 1):
                    apply(v)
                split1, t1, threads1 = user_system(player.pid), time.monotonic(), thread_cpu(player.pid)
                window = t1 - t0
                time.sleep(1.0)  # the last apply's frame and heartbeat
                idle0 = sum(thread_cpu(player.pid).values())  # to the nanosecond: idle is far below a tick
                time.sleep(window)
                idle = sum(thread_cpu(player.pid).values()) - idle0
        finally:
            if player is not None:
                stop(player)
            broker.close()
    floor = parse_floor(sent)
    user, system = split1[0] - split0[0], split1[1] - split0[1]
    busy = user + system
    by_thread = sorted(((name, threads1.get(name, 0.0) - threads0.get(name, 0.0)) for name in threads1),
                       key=lambda x: -x[1])
    return {"count": count, "window_s": window, "busy_s": busy, "idle_s": idle,
            "apply_ms": busy / count * 1000, "apply_net_ms": (busy - idle) / count * 1000,
            "floor_ms": floor * 1000, "user_ms": user / count * 1000, "system_ms": system / count * 1000,
            "threads": [(n, s) for n, s in by_thread if s > 0.0005][:5],
            "bytes": len(sent[0])}


# -- the report -------------------------------------------------------------------------------------------


def run(counts: list[int], playlists: int = 50, repeats: int = REPEATS) -> dict[str, Any]:
    """Measure the three figures; prints them and returns them with the two goals."""
    raise_fd_limit(4 * max(counts) + 1024)
    rows = {n: measure_push(n, repeats) for n in counts}
    found: list[Goal] = []
    print(f"\n== fan-out 1: panelctl's CPU per panel answer, real `panelctl push --group` (median of {repeats})")
    print(f"  {'N':>5}  {'panelctl':>11}  {'bare paho (floor)':>17}  {'ratio':>6}  {'each push':>11}  "
          f"{'panelctl process, all':>21}  {'processes':>9}")
    for n, r in rows.items():
        low, high = r["ratio_range"]
        print(f"  {n:>5}  {r['ctl_us']:>8.0f} µs  {r['bare_us']:>14.0f} µs  {r['ratio']:>5.2f}×  "
              f"{f'{low:.2f}–{high:.2f}×':>11}  {r['whole_cpu_s'] * 1000:>15.0f} ms CPU  {r['processes']:>9}")
        found.append(Goal("fanout_answers_ratio", f"N = {n}", r["ratio"], goals.value("fanout_answers_ratio"), "×",
                          measured_at=f"N = {n}", goal_at=f"N ≥ {ANSWERS_GOAL_MIN}", at_goal_size=n >= ANSWERS_GOAL_MIN))
    print("  (panelctl: its process's CPU from its publish of the playlist until its tracker had every answer,\n"
          "   divided by N; floor: a bare paho subscriber process receiving the same N events of the same push;\n"
          "   'all': the whole panelctl process, start-up, fleet read and table included)")
    print(f"\n== fan-out 3: broker-side wall time of a push (median of {repeats}; no goal)")
    print(f"  {'N':>5}  {'publish → last socket has it':>28}  {'(range)':>17}  {'→ half of them':>14}  "
          f"{'→ panelctl has every answer':>27}  {'fleet connect':>13}")
    for n, r in rows.items():
        low, high = r["last_range"]
        print(f"  {n:>5}  {r['last_s'] * 1000:>25.1f} ms  {f'{low * 1000:.1f}–{high * 1000:.1f} ms':>17}  "
              f"{r['median_s'] * 1000:>11.1f} ms  {r['round_trip_s'] * 1000:>24.1f} ms  {r['connect_s']:>11.2f} s")
    print("  (the panels' sockets are stamped when the kernel has the playlist, before any decoding; the round\n"
          f"   trip also carries every simulated panel's decoding, validation and answer, on {os.cpu_count()} cores)")
    a = measure_apply(playlists)
    ratio_net = a["apply_net_ms"] / a["floor_ms"]
    ratio_raw = a["apply_ms"] / a["floor_ms"]
    print(f"\n== fan-out 2: a real panel-player's CPU to receive and apply one playlist "
          f"(png {PLAYER_SIZE[0]}x{PLAYER_SIZE[1]}, {a['count']} in a row, {a['bytes']} bytes each)")
    print(f"  receive + apply, all CPU          {a['apply_ms']:.2f} ms per playlist ({ratio_raw:.1f}× the floor; "
          f"{a['busy_s'] * 1000:.0f} ms over {a['window_s']:.2f} s)")
    print(f"    of which user {a['user_ms']:.2f} ms, kernel {a['system_ms']:.2f} ms (writes and fsyncs, sockets)")
    print(f"  idle, same player, equal window   {a['idle_s'] * 1000:.1f} ms ({a['idle_s'] / a['count'] * 1000:.3f} ms "
          "per playlist's share)")
    print(f"  receive + apply, idle subtracted  {a['apply_net_ms']:.2f} ms per playlist ({ratio_net:.1f}× the floor)")
    print(f"  floor: parse_playlist alone       {a['floor_ms']:.3f} ms per playlist (its own process, same payloads)")
    print("  the player's threads over the window: "
          + ", ".join(f"{name} {s * 1000:.0f} ms" for name, s in a["threads"]))
    found.append(Goal("playlist_apply_ratio", "idle subtracted", ratio_net, goals.value("playlist_apply_ratio"), "×",
                      measured_at=f"png {PLAYER_SIZE[0]}x{PLAYER_SIZE[1]}, {a['count']} playlists",
                      goal_at=f"png {PLAYER_SIZE[0]}x{PLAYER_SIZE[1]}, 50 playlists", at_goal_size=a["count"] >= 50))
    for goal in found:
        print(f"  goal {goal.name}, {goal.what}: {goal.figure()} {goal.line()}")
    sys.stdout.flush()
    return {"rows": rows, "apply": a, "goals": found}


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--panelctl-child":
        rest = sys.argv[3:]
        sys.exit(panelctl_child(sys.argv[2], rest[1:] if rest[:1] == ["--"] else rest))
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("counts", nargs="*", type=int, help="fleet sizes (default 100 2000)")
    parser.add_argument("--smoke", action="store_true", help="N = 20 and 100, 5 playlists")
    args = parser.parse_args()
    if args.smoke:
        run([20, 100], playlists=5, repeats=1)
    else:
        run(args.counts or [100, 2000])
