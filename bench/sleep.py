"""Sleep hours: real ``panel-player run`` processes (png output) asleep and awake, and a real mosquitto.

What a sleeping panel costs, and how fast an alert lights it.

1. Idle CPU of the real ``panel-player run`` (png output, CPU time from the kernel's
   schedstat), each for the same time, in the same run: a still text slide (the
   reference), the landscape layout with its ticker scrolling, and that same
   landscape layout inside a sleep window. Goal: asleep ≤ the still slide (within one
   scheduler tick over the period: ``--goal sleep_idle=TICKS``).
2. Wake latency: a real mosquitto, a real player asleep in its sleep hours. For each
   sample a critical alert is published (QoS 1, retained) and timed to
   ``alert.displayed.displayed_at`` (the first frame handed to the output with the
   screen switched on and its brightness applied: the player sends it only then) and
   to the moment the PNG on disk shows the alert lit; it is then cancelled and the next
   sample waits for ``screen.asleep``. References in the same run: the broker's own
   transit (a plain subscriber, interleaved) and the same alert on the same player
   awake (the sleep lifted by the ``wake`` command). Goal: asleep p99 ≤ awake p99 +
   one frame period (``--goal sleep_wake=FRAMES``).

Both goals are set for 1920x1080 (and 50 alerts): the smoke run's 640x360 figures are
printed, not judged.

Run::

    .venv/bin/python -m bench sleep
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from . import common, goals
from .alert_latency import TICKER, Reference, _client, _displayed_at, percentile
from fixtures_broker import Broker  # noqa: E402,I001
from fixtures_player import PREFIX, PanelProcess, text_playlist  # noqa: E402

DRIVES = ("real `panel-player run` processes (png output; a still slide, a ticker awake, the ticker asleep), "
          "then one asleep on a real mosquitto")
GOAL_SIZE = (1920, 1080)
GOAL_ALERTS = 50
WHOLE_WEEK = ["00:00-24:00"]
CRITICAL_BG = (160, 0, 0)


def _idle_case(folder: Path, seconds: float, size: tuple[int, int], layout: str,
               sleep: list[str] | None) -> float:
    folder.mkdir(parents=True)
    playlist: dict[str, Any] = {"id": "idle", "version": 1, "slides": [
        {"id": "s", "type": "text", "duration": 3600, "title": "Mairie", "body": "Ouverte de 8 h 30 à 17 h"}]}
    if layout == "landscape":
        playlist["ticker"] = TICKER
    common.store_playlist(folder, playlist)
    extra = {"display": {"sleep": sleep}} if sleep else None
    config = common.write_config(folder, size=size, layout=layout, extra=extra)
    player = common.start_player(config)
    try:
        common.wait_for(lambda: (folder / "frame.png").exists(), 30, "the first frame", player)
        time.sleep(1.5)  # the start-up transition and first PNG writes are not what is measured
        before, start = common.cpu_seconds(player.pid), time.monotonic()
        time.sleep(seconds)
        return 100.0 * (common.cpu_seconds(player.pid) - before) / (time.monotonic() - start)
    finally:
        common.stop(player)


def idle(seconds: float, size: tuple[int, int]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sleep-idle-") as tmp:
        folder = Path(tmp)
        still = _idle_case(folder / "still", seconds, size, "fullscreen", None)
        ticker = _idle_case(folder / "ticker", seconds, size, "landscape", None)
        asleep = _idle_case(folder / "asleep", seconds, size, "landscape", WHOLE_WEEK)
    # One scheduler tick (10 ms at HZ=100) over the period is below what this can tell apart.
    resolution = 100.0 * 0.01 / seconds
    at, goal_at = f"{size[0]}x{size[1]}", f"{GOAL_SIZE[0]}x{GOAL_SIZE[1]}"
    goal = goals.Goal("sleep_idle", "landscape + ticker asleep, ≤ still slide", asleep,
                      still + goals.value("sleep_idle") * resolution, "% of one core", measured_at=at, goal_at=goal_at)
    common.report(f"idle CPU asleep, png output {at}", [
        ("measured over", f"{seconds:g} s each, one after the other"),
        ("reference: still text slide, awake", f"{still:.3f} % of one core"),
        ("landscape + ticker, awake", f"{ticker:.3f} % of one core"),
        ("landscape + ticker, asleep", f"{asleep:.3f} % of one core"),
        ("goal: asleep ≤ still + one scheduler tick", goal.line()),
    ])
    return {"still_pct": still, "ticker_pct": ticker, "asleep_pct": asleep, "goals": [goal]}


def _lit_png(path: Path, since_ns: int, at: tuple[int, int]) -> bool:
    """Whether ``path`` was replaced after ``since_ns`` and shows the critical colour, lit, at ``at``."""
    from PIL import Image

    try:
        if os.stat(path).st_mtime_ns <= since_ns:
            return False
        with Image.open(path) as img:
            red, green, blue = img.convert("RGB").getpixel(at)  # type: ignore[misc]
    except OSError:
        return False
    return red >= CRITICAL_BG[0] * 0.6 - 1 and green == 0 and blue == 0


def _command(p: PanelProcess, publisher: Any, cmd: str, **fields: Any) -> None:
    request = f"{cmd}-{uuid.uuid4().hex[:8]}"
    mark = p.sub.mark()
    publisher.publish(f"{p.topic}/cmd", json.dumps({"id": request, "cmd": cmd, **fields}), qos=1).wait_for_publish(5)
    p.wait_event("command.done", after=mark, where=lambda e: e.get("request") == request)


def wake_latency(count: int, size: tuple[int, int], fps: int = 30) -> dict[str, Any]:
    at = (2, size[1] * 2 // 3)  # the alert screen's background, left of its text
    results: dict[str, list[float]] = {"broker": [], "asleep": [], "asleep_png": [], "awake": []}
    with tempfile.TemporaryDirectory(prefix="sleep-wake-") as tmp:
        folder = Path(tmp)
        broker = Broker(folder / "broker")
        broker.start()
        (folder / "panel").mkdir()
        p = PanelProcess(broker, folder / "panel", "bench", size=size,
                         extra={"display": {"fps": fps, "sleep": WHOLE_WEEK}}, start=False)
        publisher = _client(broker)
        reference = Reference(broker, publisher)
        topic = f"{PREFIX}/panels/bench/alerts/nuit"
        try:
            p.start()
            mark = p.sub.mark()
            p.publish("panels/bench/playlist", text_playlist("nuit", 1, "#003366", title="Mairie"), retain=True)
            p.wait_event("playlist.applied", after=mark, timeout=20)
            first: float | None = None
            for awake in (False, True):
                if awake:
                    _command(p, publisher, "wake", seconds=3600)
                for i in range(count + 1):
                    payload = json.dumps({"level": "critical", "title": f"ALERTE CRUE n° {i + 1}",
                                          "body": f"Évacuez les berges avant {12 + i % 10} h."}).encode()
                    if i > 0:
                        results["broker"].append(reference.sample(payload))
                    mark = p.sub.mark()
                    since = os.stat(p.png).st_mtime_ns if p.png.exists() else 0
                    sent = time.time()
                    publisher.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
                    png_s = None
                    if not awake:
                        common.wait_for(lambda: _lit_png(p.png, since, at), 10, "the PNG lit", p.proc)
                        png_s = time.time() - sent
                    shown = p.wait_event("alert.displayed", after=mark, where=lambda e: e.get("alert") == "nuit")
                    if shown.get("brightness") is None or shown["brightness"] < 60:
                        raise RuntimeError(f"alert shown at {shown.get('brightness')} %, below the floor")
                    latency = _displayed_at(shown["displayed_at"]) - sent
                    if i == 0 and not awake:
                        first = latency
                    elif i > 0:
                        results["awake" if awake else "asleep"].append(latency)
                        if png_s is not None:
                            results["asleep_png"].append(png_s)
                    publisher.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
                    p.wait_event("alert.ended" if awake else "screen.asleep", after=mark, timeout=10)
                    # The png output writes at most one file each 0.5 s (its black picture has
                    # just gone out): a panel asleep for the night is not in that window.
                    time.sleep(0.6)
            if p.proc is None or p.proc.poll() is not None:
                raise RuntimeError("the player stopped during the measurement")
        finally:
            reference.close()
            publisher.disconnect()
            publisher.loop_stop()
            p.stop()
            p.close()
            broker.stop()

    def ms(values: list[float], q: float) -> str:
        return f"{percentile(values, q) * 1000:.1f} ms"

    frame = 1.0 / fps
    goal = goals.Goal("sleep_wake", "alert on a sleeping panel, p99", percentile(results["asleep"], 99) * 1000,
                      (percentile(results["awake"], 99) + goals.value("sleep_wake") * frame) * 1000, "ms",
                      measured_at=f"{size[0]}x{size[1]}, {count} alerts",
                      goal_at=f"{GOAL_SIZE[0]}x{GOAL_SIZE[1]}, ≥ {GOAL_ALERTS} alerts",
                      at_goal_size=size == GOAL_SIZE and count >= GOAL_ALERTS)
    common.report(f"wake latency, publish → alert shown lit, png output {size[0]}x{size[1]}, {fps} fps "
                  f"(goal: asleep p99 ≤ awake p99 + one frame, {frame * 1000:.1f} ms)", [
        ("alerts per case", str(count)),
        ("reference: broker transit p50 / p99", f"{ms(results['broker'], 50)} / {ms(results['broker'], 99)}"),
        ("reference: panel awake, displayed_at p50 / p99", f"{ms(results['awake'], 50)} / {ms(results['awake'], 99)}"),
        ("panel asleep, displayed_at p50 / p99", f"{ms(results['asleep'], 50)} / {ms(results['asleep'], 99)}"),
        ("panel asleep, PNG on disk lit p50 / p99",
         f"{ms(results['asleep_png'], 50)} / {ms(results['asleep_png'], 99)}"),
        ("first alert after start (fonts built on first use)", "-" if first is None else f"{first * 1000:.1f} ms"),
        ("goal", goal.line()),
    ])
    return {name: percentile(v, 99) for name, v in results.items()} | {"goals": [goal]}


def run(seconds: float = 10.0, count: int = 50, size: tuple[int, int] = GOAL_SIZE) -> dict[str, Any]:
    still = idle(seconds, size)
    wake = wake_latency(count, size)
    return {"idle": still, "wake": wake, "goals": still["goals"] + wake["goals"]}
