"""Animated frame cost of the real ``panel-player run`` process: landscape 1920x1080, ticker at 60 fps, fbdev.

1. **The real process** (the figure the goal is about): ``panel-player run`` with the
   fbdev output on a fake framebuffer (a plain file for ``/dev/fb0``, a fake sysfs tree
   for its geometry, XRGB8888), the ``landscape`` layout with its ticker scrolling,
   ``display.fps: 60``, MQTT on to a local mosquitto for its heartbeat only. CPU time of
   every thread of the process from the kernel (``/proc/PID/task/*/schedstat``) over
   whole heartbeat periods (5 s), divided by the frames it drew in them: each
   heartbeat's ``fps`` is the player's own count of frames handed to the output over
   the last 5 s, so ``fps × the time since the previous heartbeat`` is what it drew.
   Everything the process does while it animates is in it: the loop, waking, the
   clock, paho's thread and the heartbeat itself (one every 5 s).
2. **The renderer alone, in this process** (named as such, not the goal's figure): the
   same layout and ticker drawn by :class:`player.render.compositor.Renderer` and
   handed to the fbdev output in a tight loop, CPU per frame. The difference with 1. is
   what the program around the renderer costs per frame.
3. **Reference, same run**: one full-frame blit of 1920x1080, the least a loop that
   redraws everything would pay.

Goal: ≤ 2 ms of CPU per animated frame for the real process (``--goal frame_cost=…``).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from . import goals
from .common import cpu_seconds, report, start_player, stop, store_playlist, wait_for, write_config
from .goals import Goal
from fake_framebuffer import make_fb  # noqa: E402,I001 - tests/ is on the path once .common is imported
from fixtures_broker import Broker, connect_client  # noqa: E402

DRIVES = ("a real `panel-player run` process (fbdev on a fake framebuffer, landscape 1920x1080, ticker at "
          "60 fps, MQTT on for its heartbeat); then the renderer alone in this process, for comparison")
GOAL_SIZE = (1920, 1080)
FPS = 60
HEARTBEAT_S = 5.0  # the player's fps figure covers the last 5 s
TICKER = ["Collecte des encombrants jeudi 3 décembre",
          "Inscriptions sur les listes électorales jusqu’au 31 décembre"]
PREFIX = "bench"

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


class Heartbeats:
    """The player's heartbeats as they arrive, each with the process's CPU time read on arrival."""

    def __init__(self, broker: Broker, panel: str) -> None:
        self.pid: int | None = None
        self.seen: list[tuple[float, float, dict[str, Any]]] = []  # (arrival, cpu s, heartbeat)
        self._cond = threading.Condition()
        subscribed = threading.Event()
        self.client = connect_client(broker, f"bench-hb-{uuid.uuid4().hex[:8]}", on_message=self._on_message)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.subscribe(f"{PREFIX}/panels/{panel}/heartbeat", qos=1)
        if not subscribed.wait(5):
            raise RuntimeError("no SUBACK for the heartbeat subscription")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if self.pid is None or not message.payload:
            return
        cpu = cpu_seconds(self.pid)
        with self._cond:
            self.seen.append((time.monotonic(), cpu, json.loads(message.payload)))
            self._cond.notify_all()

    def wait(self, count: int, timeout: float) -> list[tuple[float, float, dict[str, Any]]]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.seen) >= count, timeout):
                raise TimeoutError(f"{len(self.seen)} heartbeats of {count} within {timeout:g} s")
            return list(self.seen)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def real_process(seconds: float, size: tuple[int, int] = GOAL_SIZE) -> dict[str, float]:
    """CPU ms per frame of ``panel-player run`` animating its ticker, over ``seconds`` (whole
    heartbeat periods, at least one)."""
    periods = max(1, round(seconds / HEARTBEAT_S))
    with tempfile.TemporaryDirectory(prefix="frame-cost-") as tmp:
        folder = Path(tmp)
        broker = Broker(folder / "broker")
        broker.start()
        player = None
        beats = None
        try:
            device, sysfs = make_fb(folder, *size, 32)
            store_playlist(folder, {"id": "ticker", "version": 1, "ticker": TICKER, "slides": [
                {"id": "s", "type": "text", "duration": 3600, "title": "Marché de Noël",
                 "body": "Place de la Mairie\ndu 12 au 24 décembre"}]})
            config = write_config(folder, size=size, layout="landscape", fps=FPS, extra={
                "panel": {"id": "bench"},
                "display": {"output": "fbdev", "device": device, "transition": "cut"},
                "mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "prefix": PREFIX},
                "heartbeat": {"interval": HEARTBEAT_S},
                # Full brightness at any hour: dimming (the default at night) is done while
                # copying and would make the figure depend on the time of the run.
                "brightness": {"fallback": {"day": 100, "night": 100}},
            })
            beats = Heartbeats(broker, "bench")
            player = start_player(config, {"PANEL_PLAYER_SYSFS_ROOT": str(sysfs)})
            beats.pid = player.pid
            wait_for(lambda: bool(beats and beats.seen), 30, "the first heartbeat", player)
            # From the first heartbeat a whole period after start-up (its transition, the
            # first strips and fonts): the fps of the next one then counts only animation.
            first = len(beats.wait(2, 3 * HEARTBEAT_S))
            seen = beats.wait(first + periods, (periods + 2) * HEARTBEAT_S)[first - 1:first + periods]
            if player.poll() is not None:
                raise RuntimeError("the player exited during the measurement")
        finally:
            if beats is not None:
                beats.close()
            if player is not None:
                stop(player)
            broker.stop()
    frames = 0.0
    for (_, _, before), (_, _, after) in zip(seen, seen[1:]):
        gap = (_ts(after) - _ts(before))
        frames += float(after.get("fps") or 0.0) * gap
    cpu = seen[-1][1] - seen[0][1]
    wall = seen[-1][0] - seen[0][0]
    if frames < 1:
        raise RuntimeError(f"the player drew no frames (heartbeats: {[b.get('fps') for _, _, b in seen]})")
    return {"cpu_ms": 1000 * cpu / frames, "frames": frames, "fps": frames / wall, "seconds": wall,
            "cpu_pct": 100 * cpu / wall}


def _ts(heartbeat: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(heartbeat["ts"]).replace("Z", "+00:00")).timestamp()


def in_process(frames: int, size: tuple[int, int] = GOAL_SIZE) -> dict[str, float]:
    """The renderer and the fbdev output alone, in this process: CPU ms per frame; and the
    full-frame blit reference."""
    import pygame

    from player.content import Style, TextSlide
    from player.layout import load_layout
    from player.render.compositor import Renderer
    from player.render.outputs import init_display, open_output

    init_display("fbdev", None)
    with tempfile.TemporaryDirectory() as tmp:
        device, sysfs = make_fb(Path(tmp), *size, 32)
        out = open_output("fbdev", size=None, device=device, sysfs_root=sysfs)
        renderer = Renderer(out.size, load_layout("landscape"), tz=ZoneInfo("Europe/Paris"), fps=FPS,
                            transition="cut")
        renderer.set_ticker(TICKER, 0.0)
        renderer.show(TextSlide(id="s", title="Marché de Noël", body="Place de la Mairie\ndu 12 au 24 décembre",
                                style=Style((0, 51, 102), (255, 255, 255), "center")), 0.0, None)
        wall = datetime(2026, 12, 1, 10, 0, 30, tzinfo=timezone.utc)
        now = 0.0
        drawn = 0
        # Warm-up: the first frame (text fitting, strip rendering) is start-up, not steady state.
        for _ in range(5):
            now += 1 / FPS
            result = renderer.render(now, wall)
            if result:
                out.show(*result)
        cpu0 = time.process_time()
        for _ in range(frames):
            now += 1 / FPS
            result = renderer.render(now, wall)
            if result is not None:
                out.show(*result)
                drawn += 1
        cpu = (time.process_time() - cpu0) / max(1, drawn) * 1000
        src = pygame.Surface(size).convert()
        dst = pygame.Surface(size).convert()
        cpu1 = time.process_time()
        for _ in range(frames):
            dst.blit(src, (0, 0))
        ref = (time.process_time() - cpu1) / max(1, frames) * 1000
        out.close()
        renderer.close()
    return {"cpu_ms": cpu, "drawn": drawn, "blit_ms": ref}


def run(seconds: float = 30.0, frames: int = 600, size: tuple[int, int] = GOAL_SIZE) -> dict[str, Any]:
    alone = in_process(frames, size)
    real = real_process(seconds, size)
    budget = 1000 / FPS
    at = f"{size[0]}x{size[1]}"
    goal = Goal("frame_cost", "real process, CPU per frame", real["cpu_ms"], goals.value("frame_cost"), "ms",
                measured_at=at, goal_at=f"{GOAL_SIZE[0]}x{GOAL_SIZE[1]}")
    report(f"animated frame cost, landscape {at}, ticker at {FPS} fps, fbdev XRGB8888", [
        ("panel-player run: CPU per frame", f"{real['cpu_ms']:.3f} ms ({100 * real['cpu_ms'] / budget:.1f} % of a "
                                            f"{FPS} fps budget)"),
        ("panel-player run: frames counted", f"{real['frames']:.0f} in {real['seconds']:.1f} s "
                                             f"({real['fps']:.1f} fps, from its heartbeats)"),
        ("panel-player run: CPU", f"{real['cpu_pct']:.2f} % of one core"),
        ("renderer alone, in this process", f"{alone['cpu_ms']:.3f} ms per frame ({alone['drawn']} frames)"),
        ("reference: one full-frame blit", f"{alone['blit_ms']:.3f} ms"),
        ("goal (real process)", goal.line()),
    ])
    return {"process_cpu_ms": real["cpu_ms"], "process_fps": real["fps"], "renderer_cpu_ms": alone["cpu_ms"],
            "blit_ms": alone["blit_ms"], "goals": [goal]}
