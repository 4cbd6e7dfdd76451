"""panelctl's answer reading, in this process, with a publishing worker process: CPU per answer, next to bare paho.

After a push to a fleet, every panel answers at once and one panelctl (or a
central server built on it) reads them all: the one part of a fan-out that does
not spread over the panels' own CPUs. Another process publishes N events on
``P/panels/ID/events``, as N panels would (MQTT 5, QoS 1); this process reads them
with panelctl's own :class:`player.ctl.track.Tracker`, and the CPU time of this
process is divided by N.

Reference, same run and same broker: a bare paho subscriber (MQTT 5, QoS 1) whose
``on_message`` only counts. Median of 3, the two interleaved.

Run: ``python -m bench.answers [N]`` (default 4000) or ``--smoke`` (N = 200).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import statistics
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import report
from bench.fanout import Mosquitto
from player.ctl.client import CtlClient
from player.ctl.settings import CtlSettings
from player.ctl.track import Progress, Tracker

DRIVES = ("panelctl's `Tracker` in this process reading events that a worker process publishes on a real "
          "mosquitto; no `panel-player run` process")
PREFIX = "bench"
REPEATS = 3


def _panel_id(i: int) -> str:
    return f"panel-{i:05d}"


def _answer(version: int) -> bytes:
    return json.dumps({"type": "playlist.applied", "playlist": "fanout", "version": version,
                       "ts": "2026-11-26T10:00:00Z"}).encode()


def _publisher(conn: Connection, port: int, n: int) -> None:
    """Another process: on each order, publish one answer per panel and report when the broker has them all."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-panels", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        while (version := conn.recv()) is not None:
            payload = _answer(version)
            infos = [client.publish(f"{PREFIX}/panels/{_panel_id(i)}/events", payload, qos=1) for i in range(n)]
            for info in infos:
                info.wait_for_publish(60)
            conn.send("sent")
    finally:
        client.disconnect()
        client.loop_stop()


def _with_tracker(port: int, n: int, order: Any, version: int) -> float:
    """CPU seconds this process used while panelctl's tracker read ``n`` answers."""
    with CtlClient(CtlSettings(port=port, prefix=PREFIX)) as client:
        expected = {_panel_id(i) for i in range(n)}
        tracker = Tracker(client, PREFIX, expected=expected, possible=set(),
                          match=lambda pid, ev: ("applied", "") if ev.get("version") == version else None,
                          success="applied", progress=Progress(io.StringIO()))
        tracker.start()
        cpu = time.process_time()
        order(version)
        answers = tracker.wait(timeout=120)
        used = time.process_time() - cpu
    if len(answers) != n:
        raise RuntimeError(f"panelctl read {len(answers)} of {n} answers")
    return used


def _with_bare_paho(port: int, n: int, order: Any, version: int) -> float:
    """CPU seconds this process used while a bare paho subscriber received ``n`` messages."""
    done, subscribed = threading.Event(), threading.Event()
    count = [0]

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        count[0] += 1
        if count[0] == n:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{version}", protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.subscribe(f"{PREFIX}/panels/+/events", qos=1)
        if not subscribed.wait(10):
            raise RuntimeError("the bare subscriber's SUBACK did not come")
        cpu = time.process_time()
        order(version)
        if not done.wait(120):
            raise RuntimeError(f"the bare subscriber got {count[0]} of {n} messages")
        return time.process_time() - cpu
    finally:
        client.disconnect()
        client.loop_stop()


def run(n: int = 4000) -> dict[str, Any]:
    """Measure; prints the report and returns µs of CPU per answer for both readers."""
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="answers-") as tmp:
        broker = Mosquitto(Path(tmp))
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_publisher, args=(child, broker.port, n), daemon=True)
        proc.start()

        def order(version: int) -> None:
            parent.send(version)  # the answers arrive while we read; "sent" is collected afterwards

        def collected(used: float) -> float:
            if not parent.poll(60) or parent.recv() != "sent":
                raise RuntimeError("the publishing process did not finish")
            return used

        try:
            tracked, bare = [], []
            for r in range(REPEATS):
                tracked.append(collected(_with_tracker(broker.port, n, order, 2 * r + 1)))
                bare.append(collected(_with_bare_paho(broker.port, n, order, 2 * r + 2)))
        finally:
            parent.send(None)
            proc.join(10)
            if proc.is_alive():
                proc.kill()
            broker.close()
    result: dict[str, Any] = {"panelctl_us": statistics.median(tracked) / n * 1e6, "bare_us": statistics.median(bare) / n * 1e6}
    report(f"panelctl reading {n} answers from another process (MQTT 5, QoS 1; median of {REPEATS})", [
        ("panelctl's tracker", f"{result['panelctl_us']:.0f} µs of CPU per answer "
                               f"({statistics.median(tracked) * 1000:.0f} ms in all)"),
        ("reference: bare paho subscriber", f"{result['bare_us']:.0f} µs of CPU per message "
                                            f"({statistics.median(bare) * 1000:.0f} ms in all)"),
        ("goal", "none: shows the cost that a central server pays for each panel of a push"),
    ])
    result["goals"] = []  # none set: the figure says what a push costs the central side
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.answers", description=__doc__)
    parser.add_argument("n", nargs="?", type=int, default=4000, help="answers to read (default 4000)")
    parser.add_argument("--smoke", action="store_true", help="N = 200")
    args = parser.parse_args()
    run(200 if args.smoke else args.n)
