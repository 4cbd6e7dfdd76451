"""Alert latency of real ``panel-player run`` processes (fbdev, 1920x1080 and LED 128x64) on a real mosquitto.

Publish → the alert on screen, next to the broker's own transit time. For each sample
the wall-clock time is taken just before the PUBLISH (QoS 1, retained) leaves a
connected client, and compared with the two times of the ``alert.displayed`` event
(same clock, same machine):

* ``title_at``: the first frame showing the alert (on a full screen: its level's
  colours, pictogram, label and title) was handed to the output;
* ``displayed_at``: the frame with the **whole** alert, title and body, was handed to
  the output. A full screen at 1920x1080 adds the body one frame after the title
  (docs/alerts.md); on an LED panel the whole alert is on the first frame.

The alert is then cancelled (empty payload) and the next one sent once ``alert.ended``
is back.

The output is fbdev on a fake framebuffer (a plain file for ``/dev/fb0``, a fake sysfs
tree for its geometry): it copies a frame into the framebuffer before ``show()``
returns, so "handed to the output" is the picture in video memory. (The png output
writes at most one file each 0.5 s: a frame arriving just after the cancel's is copied
only at the end of that window.) At 128x64 the layout is ``led-matrix`` and the alert
screen the LED one (no anti-aliasing, text that does not fit scrolls), as on the LED
matrix output; the rpi-rgb-led-matrix library that output needs exists only on a Pi.

Each alert is unlike the one before, so that no cache makes it cheaper than a real
one: levels take turns (critical, warning, info, with ``alerts.info_mode:
fullscreen``), so the top band differs from the last one drawn (the alert screen keeps
the last alert's band); texts of three kinds (flood, road closure, water cut), each
numbered and of a varying length, so the pictogram changes too and no line of text was
drawn before.

Pictures under the alert: a still one (a text slide: the loop sleeps until the alert
wakes it) and an animated one (the layout's ticker scrolling at the configured fps: the
alert may arrive while a frame is being drawn). At 1920x1080 also a row with signed
alerts (``trust.keys``, every alert and cancel signed), and, for the still and
animated pictures, a second broker with ``set_tcp_nodelay true``.

Reference, interleaved with the samples of each row: a plain paho subscriber on its
own topic, same payload, same QoS, publish → ``on_message`` on the same clock.

Goal (``--goal alert_latency=FRAMES``): whole alert p99 ≤ broker p99 + one frame period
at the configured fps, judged from 100 alerts a row or more (the p99 of fewer is their
maximum: the smoke run's 20 are printed, not judged).

``displayed_at`` is given to the millisecond (truncated): the middle of that millisecond
is used. The first alert of each player (one-time work such as the first event
published) is reported apart and not in the percentiles.

Run::

    .venv/bin/python -m bench.alert_latency            # 200 alerts per row
    .venv/bin/python -m bench.alert_latency --smoke    # 20, for CI
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import common, goals  # noqa: F401 - common puts tests/ on the path
from .goals import Goal
from fake_framebuffer import make_fb  # noqa: E402,I001
from fixtures_broker import Broker, connect_client  # noqa: E402
from fixtures_player import PREFIX, PanelProcess, text_playlist  # noqa: E402

DRIVES = ("real `panel-player run` processes (fbdev on a fake framebuffer; 1920x1080 and LED 128x64) on a "
          "real mosquitto, with a plain paho subscriber as the reference")
GOAL_MIN_ALERTS = 100
LEVELS = ("critical", "warning", "info")
RIVERS = ["l'Isère", "le Drac", "la Romanche", "la Bourne", "le Furon", "la Vence", "le Guiers", "la Gresse"]
PLACES = ["des berges", "du quai Perrière", "du camping municipal", "des jardins familiaux", "de la zone artisanale"]
ROADS = ["D1075", "D531", "avenue Jean-Jaurès", "route de Lyon", "pont de la Porte de France", "rue Thiers"]
DISTRICTS = ["Berriat", "Championnet", "l'Île Verte", "Saint-Bruno", "Teisseire", "la Villeneuve"]
TICKER = ["Collecte des encombrants jeudi 3 décembre", "Marché de Noël place de la Mairie du 12 au 24 décembre"]


def alert_text(i: int) -> tuple[str, str]:
    """The ``i``-th alert's title and body: one of three kinds (so the pictogram changes:
    flood, closure, none), numbered, of a length that varies from one to the next."""
    kind = (i + i // 3) % 3
    hour, minute = 12 + i % 10, (i % 6) * 10
    if kind == 0:
        river, place = RIVERS[i % len(RIVERS)], PLACES[i % len(PLACES)]
        title = f"CRUE n° {i + 1}"
        body = (f"Crue de {river} : évacuez les abords {place} avant {hour} h {minute:02d}. "
                + "Ne vous engagez pas sur les ponts ni sur les routes inondées. " * (1 + i % 3))
    elif kind == 1:
        road = ROADS[i % len(ROADS)]
        title = f"{road} fermée ({i + 1})"
        body = (f"Éboulement : la circulation est interdite sur {road} jusqu'à {hour} h {minute:02d}. "
                + "Suivez la déviation signalée et laissez passer les secours. " * (1 + i % 3))
    else:
        district = DISTRICTS[i % len(DISTRICTS)]
        title = f"Coupure d'eau n° {i + 1}"
        body = (f"Travaux sur le réseau à {district} de {hour} h à {hour + 2} h {minute:02d}. "
                + "Des points d'eau sont ouverts aux écoles du quartier. " * (1 + i % 3))
    return title, body.strip()


def alert_payload(i: int) -> bytes:
    """The ``i``-th alert: its level in turn (critical, warning, info) and a text of its own."""
    title, body = alert_text(i)
    return json.dumps({"level": LEVELS[i % len(LEVELS)], "title": title, "body": body}).encode()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _client(broker: Broker, on_message: Any = None) -> Any:
    return connect_client(broker, f"bench-{uuid.uuid4().hex[:10]}", on_message=on_message)


class Reference:
    """The broker's publish → subscriber time for one payload, on the publisher's clock."""

    def __init__(self, broker: Broker, publisher: Any) -> None:
        self.publisher = publisher
        self.topic = f"bench/reference/{uuid.uuid4().hex[:8]}"
        self._received: float | None = None
        self._cond = threading.Condition()
        subscribed = threading.Event()
        self.client = _client(broker, self._on_message)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.subscribe(self.topic, qos=1)
        if not subscribed.wait(5):
            raise RuntimeError("reference subscriber got no SUBACK")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._cond:
            self._received = time.time()
            self._cond.notify_all()

    def sample(self, payload: bytes) -> float:
        with self._cond:
            self._received = None
        sent = time.time()
        info = self.publisher.publish(self.topic, payload, qos=1, retain=True)
        with self._cond:
            if not self._cond.wait_for(lambda: self._received is not None, timeout=5):
                raise RuntimeError("reference message not received within 5 s")
            received = self._received
        info.wait_for_publish(5)
        assert received is not None
        return received - sent

    def close(self) -> None:
        self.publisher.publish(self.topic, b"", qos=1, retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()


def _displayed_at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() + 0.0005


@dataclass(frozen=True)
class Case:
    """One row: a panel size and layout, a picture under the alert, signed or not."""

    label: str
    size: tuple[int, int]
    layout: str
    ticker: bool
    signed: bool = False

    @property
    def at(self) -> str:
        return f"{self.size[0]}x{self.size[1]}"


FULL_HD = (1920, 1080)
LED = (128, 64)
CASES = {
    "still": Case("1920x1080, still text slide", FULL_HD, "fullscreen", ticker=False),
    "ticker": Case("1920x1080, landscape + ticker", FULL_HD, "landscape", ticker=True),
    "signed": Case("1920x1080, still, signed alerts", FULL_HD, "fullscreen", ticker=False, signed=True),
    "led still": Case("LED 128x64, still text", LED, "led-matrix", ticker=False),
    "led ticker": Case("LED 128x64, text + ticker", LED, "led-matrix", ticker=True),
}


def _framebuffer_changes(device: str, size: tuple[int, int], seconds: float) -> bool:
    """Whether the bottom tenth of the framebuffer (where the layouts' ticker runs) changes
    within ``seconds``: the picture is animated."""
    w, h = size
    top = int(h * 0.9)

    def band() -> bytes:
        with open(device, "rb") as f:
            f.seek(top * w * 4)
            return f.read((h - top) * w * 4)

    first = band()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if band() != first:
            return True
    return False


SIGNING_KEY_SEED = b"bench alert latency signing key".ljust(32, b".")


def _start_panel(broker: Broker, folder: Path, case: Case, fps: int, extra: dict[str, Any]) -> tuple[PanelProcess, str]:
    """A player on the fbdev output of a fake framebuffer of the case's size."""
    device, sysfs = make_fb(folder, *case.size, 32)
    display = {"output": "fbdev", "device": device, "fps": fps, "layout": case.layout}
    p = PanelProcess(broker, folder, "bench", size=case.size, extra={"display": display, **extra}, start=False)
    old = os.environ.get("PANEL_PLAYER_SYSFS_ROOT")
    os.environ["PANEL_PLAYER_SYSFS_ROOT"] = str(sysfs)  # read by the player process it starts
    try:
        p.start()
    finally:
        if old is None:
            os.environ.pop("PANEL_PLAYER_SYSFS_ROOT", None)
        else:
            os.environ["PANEL_PLAYER_SYSFS_ROOT"] = old
    return p, device


def measure(broker: Broker, folder: Path, case: Case, count: int, fps: int) -> dict[str, Any]:
    """``count`` alerts (and their cancels) on one player, one at a time."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from player.trust import b64url, sign

    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.from_private_bytes(SIGNING_KEY_SEED)
    extra: dict[str, Any] = {"alerts": {"info_mode": "fullscreen"}}
    if case.signed:
        extra["trust"] = {"keys": [{"kid": "bench", "key": b64url(key.public_key().public_bytes_raw())}],
                          "require": ["alerts"]}
    p, device = _start_panel(broker, folder, case, fps, extra)
    last_iat = [0.0]
    topic = f"{PREFIX}/panels/bench/alerts/latence"

    def seal(data: bytes) -> bytes:
        if not case.signed:
            return data
        last_iat[0] = max(round(time.time(), 3), round(last_iat[0] + 0.001, 3))
        return sign(data, key=key, kid="bench", topic=topic, iat=last_iat[0])

    publisher = _client(broker)
    reference = Reference(broker, publisher)
    try:
        # An id of its own: the previous row's playlist is still retained on the same topic.
        playlist = text_playlist(f"bench-{case.layout}{'-ticker' if case.ticker else ''}", 1, "#003366",
                                 title="Mairie de Saint-Martin",
                                 layout=case.layout, **({"ticker": TICKER} if case.ticker else {}))
        mark = p.sub.mark()
        p.publish("panels/bench/playlist", playlist, retain=True)
        p.wait_event("playlist.applied", after=mark, timeout=20, where=lambda e: e.get("playlist") == playlist["id"])
        time.sleep(1.0)  # the start-up transition is not what is measured
        # Up to 10 s: on the LED panel the ticker's band is blank while its text comes back
        # in from the right (24 px/s), for as long as 5 s.
        animated = _framebuffer_changes(device, case.size, 10.0 if case.ticker else 1.0)
        if case.ticker and not animated:
            raise RuntimeError(f"{case.label}: the ticker does not animate: the measurement would be of a still picture")

        first: tuple[float, float] | None = None
        title_s: list[float] = []
        whole_s: list[float] = []
        broker_s: list[float] = []
        for i in range(count + 1):
            payload = alert_payload(i)
            if i > 0:
                broker_s.append(reference.sample(payload))
            mark = p.sub.mark()
            sealed = seal(payload)
            sent = time.time()
            publisher.publish(topic, sealed, qos=1, retain=True).wait_for_publish(5)
            shown = p.wait_event("alert.displayed", after=mark, where=lambda e: e.get("alert") == "latence")
            whole = _displayed_at(shown["displayed_at"]) - sent
            title = _displayed_at(shown.get("title_at") or shown["displayed_at"]) - sent
            if i == 0:
                first = (title, whole)
            else:
                title_s.append(title)
                whole_s.append(whole)
            publisher.publish(topic, seal(b""), qos=1, retain=True).wait_for_publish(5)
            p.wait_event("alert.ended", after=mark, where=lambda e: e.get("alert") == "latence")
        if p.proc is None or p.proc.poll() is not None:
            raise RuntimeError("the player stopped during the measurement")
    finally:
        reference.close()
        publisher.disconnect()
        publisher.loop_stop()
        p.stop()
        p.close()
    return {
        "case": case, "samples": len(whole_s), "animated": animated, "first_alert_s": first,
        "title_p50_s": percentile(title_s, 50), "title_p99_s": percentile(title_s, 99),
        "panel_p50_s": percentile(whole_s, 50), "panel_p99_s": percentile(whole_s, 99), "panel_max_s": max(whole_s),
        "broker_p50_s": percentile(broker_s, 50), "broker_p99_s": percentile(broker_s, 99),
        "frame_s": 1.0 / fps,
    }


BROKER_CONFIGS = {
    "mosquitto defaults": ("", ("still", "ticker", "signed", "led still", "led ticker")),
    # Nagle's algorithm off on the broker's client sockets: a small PUBLISH then leaves at once
    # even when the panel has not yet acknowledged the broker's previous segment (the panel's
    # delayed ACK would otherwise hold it up to 40 ms on Linux).
    "set_tcp_nodelay true": ("set_tcp_nodelay true\n", ("still", "ticker")),
}


def run(count: int = 200, fps: int = 30, brokers: tuple[str, ...] = tuple(BROKER_CONFIGS)) -> dict[str, Any]:
    """Measure every row with ``count`` alerts each on the broker configurations named in
    ``brokers``; print the tables; return ``{broker config: {row: figures}}`` and ``goals``."""
    if count < 1:
        raise ValueError("count must be at least 1")
    results: dict[str, Any] = {}
    found: list[Goal] = []
    for name in brokers:
        extra_conf, rows = BROKER_CONFIGS[name]
        with tempfile.TemporaryDirectory(prefix="alert-latency-") as tmp:
            folder = Path(tmp)
            broker = Broker(folder / "broker")
            if extra_conf:
                broker.conf.write_text(broker.conf.read_text() + extra_conf)
            broker.start()
            try:
                results[name] = {row: measure(broker, folder / row.replace(" ", "-"), CASES[row], count, fps)
                                 for row in rows}
            finally:
                broker.stop()
        for row, r in results[name].items():
            case = r["case"]
            limit = r["broker_p99_s"] + goals.value("alert_latency") * r["frame_s"]
            r["goal"] = Goal("alert_latency", f"{case.label}, {name}", r["panel_p99_s"] * 1000, limit * 1000, "ms",
                             measured_at=f"{case.at}, {r['samples']} alerts",
                             goal_at=f"{case.at}, ≥ {GOAL_MIN_ALERTS} alerts",
                             at_goal_size=r["samples"] >= GOAL_MIN_ALERTS)
            found.append(r["goal"])
        _print(results[name], fps, name)
    results["goals"] = found
    return results


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _print(results: dict[str, dict[str, Any]], fps: int, broker: str) -> None:
    frame = 1000.0 / fps
    print(f"\n== alert latency, publish → on screen, fbdev output, {fps} fps, broker: {broker}")
    print(f"   title: the first frame showing the alert; whole: the frame with its title and body "
          f"(displayed_at)\n   goal: whole p99 ≤ broker p99 + {goals.value('alert_latency'):g} frame "
          f"({frame:.1f} ms)")
    head = ("row", "alerts", "broker p50", "broker p99", "title p50", "title p99", "whole p50", "whole p99",
            "whole max", "first alert (title / whole)", "goal")
    rows = [head]
    for r in results.values():
        first = r["first_alert_s"]
        goal: Goal = r["goal"]
        rows.append((r["case"].label, str(r["samples"]), _ms(r["broker_p50_s"]), _ms(r["broker_p99_s"]),
                     _ms(r["title_p50_s"]), _ms(r["title_p99_s"]), _ms(r["panel_p50_s"]), _ms(r["panel_p99_s"]),
                     _ms(r["panel_max_s"]), "-" if first is None else f"{_ms(first[0])} / {_ms(first[1])}",
                     goal.line()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head) - 1)]
    for row in rows:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1])
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--count", type=int, default=200, help="alerts per row (default 200)")
    parser.add_argument("--smoke", action="store_true", help="20 alerts per row, default broker only (CI)")
    parser.add_argument("--fps", type=int, default=30, help="display.fps (default 30)")
    args = parser.parse_args(argv)
    result = run(20 if args.smoke else args.count, args.fps,
                 ("mosquitto defaults",) if args.smoke else tuple(BROKER_CONFIGS))
    missed = [g for g in result["goals"] if g.missed]
    for g in missed:
        print(f"goal missed: {g.name} ({g.what}): {g.figure()}, goal {g.bound()}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
