"""Alert latency: publish → ``alert.displayed.displayed_at``, next to the broker's own transit time.

A real mosquitto and a real ``panel-player run`` (png output) on this machine. For each
sample the wall-clock time is taken just before the PUBLISH (QoS 1, retained) leaves a
connected client, and compared with ``displayed_at``, when the player handed the first
frame showing the alert to its output (same clock, same machine). The alert is then
cancelled (empty payload) and the next one is sent once ``alert.ended`` is back.

Two pictures under the alert: a still one (fullscreen text slide: the loop sleeps until
the alert wakes it) and an animated one (landscape layout, ticker at the configured fps:
the alert may arrive while a frame is being drawn).

Reference, interleaved with the samples of each picture: a plain paho subscriber on its
own topic, same payload, same QoS, publish → ``on_message`` on the same clock.

Goal: panel p99 ≤ broker p99 + one frame period at the configured fps.

Each is measured twice: on mosquitto with its default settings, and with
``set_tcp_nodelay true``. With the defaults, Nagle's algorithm on the broker holds a
PUBLISH to the panel while the panel has not acknowledged the broker's previous
segment (e.g. the PUBACK of the panel's last event). The panel's link acknowledges
such a PUBACK at once (TCP_QUICKACK) instead of letting its TCP stack delay the ACK
up to 40 ms; the two runs show whether that holds.

``displayed_at`` is given to the millisecond (truncated): the middle of that millisecond
is used. Each alert has a text of its own (see :func:`alert_payload`). The first alert
of each player (fonts and alert screen built on first use) is
reported apart and not in the percentiles.

Run::

    .venv/bin/python -m bench.alert_latency            # 200 alerts per picture
    .venv/bin/python -m bench.alert_latency --smoke    # 20, for CI
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from . import common  # noqa: F401 - puts tests/ on the path
from fixtures_broker import Broker, connect_client  # noqa: E402,I001
from fixtures_player import PREFIX, PanelProcess, text_playlist  # noqa: E402

RIVERS = ["l'Isère", "le Drac", "la Romanche", "la Bourne", "le Furon", "la Vence", "le Guiers", "la Gresse"]
PLACES = ["des berges", "du quai Perrière", "du camping municipal", "des jardins familiaux", "de la zone artisanale"]


def alert_payload(i: int) -> bytes:
    """The ``i``-th alert: a text of its own, as real alerts have (the screen cannot reuse
    the lines it drew for the previous one), of a length that varies from one to the next."""
    river, place = RIVERS[i % len(RIVERS)], PLACES[i % len(PLACES)]
    body = (f"Crue de {river} : évacuez les abords {place} avant {12 + i % 10} h {i % 6}0. "
            + "Ne vous engagez pas sur les ponts ni sur les routes inondées. " * (1 + i % 3))
    return json.dumps({"level": "critical", "title": f"ALERTE CRUE n° {i + 1}", "body": body.strip()}).encode()
TICKER = ["Collecte des encombrants jeudi 3 décembre", "Marché de Noël place de la Mairie du 12 au 24 décembre"]


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


def _ticker_moves(p: PanelProcess, size: tuple[int, int]) -> bool:
    """Whether the ticker band of the PNG changes within 3 s (the picture is animated)."""
    band = (0, int(size[1] * 0.91), size[0], size[1])
    first = p.picture().crop(band).tobytes()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if p.picture().crop(band).tobytes() != first:
            return True
    return False


SIGNING_KEY_SEED = b"bench alert latency signing key".ljust(32, b".")


def measure(broker: Broker, folder: Path, picture: str, count: int, size: tuple[int, int],
            fps: int, signed: bool = False) -> dict[str, Any]:
    """``count`` alerts on one player showing ``picture`` (``still`` or ``ticker``); with
    ``signed``, the player has trust.keys and every alert and cancel is signed."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from player.trust import b64url, sign

    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.from_private_bytes(SIGNING_KEY_SEED)
    extra: dict[str, Any] = {"display": {"fps": fps}}
    if signed:
        extra["trust"] = {"keys": [{"kid": "bench", "key": b64url(key.public_key().public_bytes_raw())}],
                          "require": ["alerts"]}
    p = PanelProcess(broker, folder, "bench", size=size, extra=extra)
    last_iat = [0.0]

    def seal(data: bytes) -> bytes:
        if not signed:
            return data
        last_iat[0] = max(round(time.time(), 3), round(last_iat[0] + 0.001, 3))
        return sign(data, key=key, kid="bench", topic=topic, iat=last_iat[0])

    publisher = _client(broker)
    reference = Reference(broker, publisher)
    topic = f"{PREFIX}/panels/bench/alerts/latence"
    try:
        if picture == "ticker":
            playlist = text_playlist("bench-ticker", 1, "#003366", title="Mairie", layout="landscape",
                                     ticker=TICKER)
        else:
            playlist = text_playlist("bench-still", 1, "#003366", title="Mairie de Saint-Martin")
        mark = p.sub.mark()
        p.publish("panels/bench/playlist", playlist, retain=True)
        p.wait_event("playlist.applied", after=mark, timeout=20, where=lambda e: e.get("playlist") == playlist["id"])
        time.sleep(1.0)  # the start-up transition and first PNG writes are not what is measured
        animated = _ticker_moves(p, size)
        if picture == "ticker" and not animated:
            raise RuntimeError("the ticker does not animate: the measurement would be of a still picture")

        first: float | None = None
        panel: list[float] = []
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
            latency = _displayed_at(shown["displayed_at"]) - sent
            if i == 0:
                first = latency
            else:
                panel.append(latency)
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
    frame = 1.0 / fps
    out: dict[str, Any] = {
        "picture": picture + (" signed" if signed else ""), "samples": len(panel), "animated": animated, "first_alert_s": first,
        "panel_p50_s": percentile(panel, 50), "panel_p99_s": percentile(panel, 99), "panel_max_s": max(panel),
        "broker_p50_s": percentile(broker_s, 50), "broker_p99_s": percentile(broker_s, 99),
        "frame_s": frame,
    }
    out["goal_met"] = out["panel_p99_s"] <= out["broker_p99_s"] + frame
    return out


BROKER_CONFIGS = {
    "mosquitto defaults": "",
    # Nagle's algorithm off on the broker's client sockets: a small PUBLISH then leaves at once
    # even when the panel has not yet acknowledged the broker's previous segment (the panel's
    # delayed ACK would otherwise hold it up to 40 ms on Linux).
    "set_tcp_nodelay true": "set_tcp_nodelay true\n",
}


def run(count: int = 200, size: tuple[int, int] = (1920, 1080), fps: int = 30) -> dict[str, Any]:
    """Measure both pictures with ``count`` alerts each, on a broker with its default
    settings and on one with ``set_tcp_nodelay true``; print the tables; return the figures
    as ``{broker config: {picture: figures}}``."""
    if count < 1:
        raise ValueError("count must be at least 1")
    results: dict[str, Any] = {}
    for name, extra_conf in BROKER_CONFIGS.items():
        with tempfile.TemporaryDirectory(prefix="alert-latency-") as tmp:
            folder = Path(tmp)
            broker = Broker(folder / "broker")
            if extra_conf:
                broker.conf.write_text(broker.conf.read_text() + extra_conf)
            broker.start()
            try:
                results[name] = {picture: measure(broker, folder / picture, picture, count, size, fps)
                                 for picture in ("still", "ticker")}
                if not extra_conf:  # signatures on (trust.keys), default broker settings
                    results[name]["still signed"] = measure(broker, folder / "signed", "still", count, size, fps,
                                                            signed=True)
            finally:
                broker.stop()
        _print(results[name], size, fps, name)
    return results


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _print(results: dict[str, dict[str, Any]], size: tuple[int, int], fps: int, broker: str) -> None:
    frame = 1000.0 / fps
    print(f"\n== alert latency, publish → displayed_at, png output {size[0]}x{size[1]}, {fps} fps, "
          f"broker: {broker}")
    print(f"   goal: panel p99 ≤ broker p99 + one frame ({frame:.1f} ms)")
    head = ("picture", "alerts", "broker p50", "broker p99", "panel p50", "panel p99", "panel max", "first alert",
            "goal")
    rows = [head]
    for picture, r in results.items():
        label = {"still": "still text slide", "ticker": "landscape + ticker",
                 "still signed": "still, signed alerts"}[picture]
        rows.append((label, str(r["samples"]), _ms(r["broker_p50_s"]), _ms(r["broker_p99_s"]),
                     _ms(r["panel_p50_s"]), _ms(r["panel_p99_s"]), _ms(r["panel_max_s"]),
                     _ms(r["first_alert_s"]), "met" if r["goal_met"] else "NOT met"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for row in rows:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200, help="alerts per picture (default 200)")
    parser.add_argument("--smoke", action="store_true", help="20 alerts per picture (CI)")
    parser.add_argument("--size", default="1920x1080", help="panel size WxH (default 1920x1080)")
    parser.add_argument("--fps", type=int, default=30, help="display.fps (default 30)")
    args = parser.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    run(20 if args.smoke else args.count, (w, h), args.fps)
    return 0  # figures to read, not a timed test: a noisy machine must not fail CI


if __name__ == "__main__":
    sys.exit(main())
