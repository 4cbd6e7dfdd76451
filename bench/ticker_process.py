"""CPU of real ``panel-player run`` processes scrolling a ticker (landscape 1920x1080, 60 fps), next to a Chromium kiosk showing the same page.

What runs, one after the other, each for the same measured time after a warm-up:

1. ``panel-player run``, fbdev output on a fake framebuffer (a plain file for
   ``/dev/fb0``, a fake sysfs tree for its geometry, XRGB8888): the ``landscape``
   layout, a text slide, the ticker at its 160 px/s, ``display.fps: 60``, MQTT on to a
   local mosquitto for its heartbeat.
2. The same player with the ``sdl`` output in a window of an X server (Xvfb,
   1920x1080, 24 bits), as on a desktop or a kiosk PC.
3. The floor, same run: a process that only wakes 60 times a second and draws the
   ticker's new rows into a fake framebuffer with the player's own drawing call
   (:mod:`bench.ticker_floor`): what no 60 fps program in Python goes under here.
4. Reference, same run: Chromium in kiosk mode (Debian's ``chromium --kiosk``, without
   GPU, as a signage kiosk on such a machine runs) on the same X server, showing the
   same picture as an HTML page: the header with the title and the clock, the text,
   and the ticker as a CSS animation at the same speed.

CPU is read from the kernel (``/proc/PID/task/*/schedstat``) for every thread of the
process, and for Chromium of every process of its tree (browser, renderer, GPU and
utility processes). The X server's own CPU is printed beside the SDL and Chromium
figures (the work of showing the pixels), and not counted in either.

Goal (``--goal ticker_process=RATIO``): each player's CPU ≤ 1/10 of Chromium's
(fbdev and SDL both). Without Chromium or Xvfb the rows that need them say so and
their goals are not judged (``apt-get install chromium xvfb``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import goals
from .common import ROOT, cpu_seconds, report, start_player, stop, store_playlist, write_config
from .goals import Goal
from fake_framebuffer import make_fb  # noqa: E402,I001 - tests/ is on the path once .common is imported
from fixtures_broker import Broker  # noqa: E402
from fixtures_x11 import XServer  # noqa: E402

DRIVES = ("real `panel-player run` processes (fbdev on a fake framebuffer, then sdl on an Xvfb X server; "
          "landscape 1920x1080, ticker at 60 fps), next to a Chromium kiosk showing the same page on the "
          "same X server")
SIZE = (1920, 1080)
FPS = 60
TICKER = ["Collecte des encombrants jeudi 3 décembre",
          "Inscriptions sur les listes électorales jusqu’au 31 décembre"]
TITLE, BODY = "Marché de Noël", "Place de la Mairie\ndu 12 au 24 décembre"
SPEED = 160  # px/s: the landscape layout's ticker
PREFIX = "bench"

PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>panel</title><style>
html, body {{ margin: 0; width: {w}px; height: {h}px; overflow: hidden; background: #0b1d33;
  font-family: "FreeSans", "DejaVu Sans", sans-serif; font-weight: bold; }}
#header {{ position: absolute; left: 0; top: 0; width: {w}px; height: {hh}px; background: #003366;
  color: #fff; font-size: {hf}px; line-height: {hh}px; }}
#title {{ position: absolute; left: 24px; }}
#clock {{ position: absolute; right: 24px; }}
#main {{ position: absolute; left: 0; top: {hh}px; width: {w}px; height: {mh}px; display: flex;
  align-items: center; justify-content: center; text-align: center; color: #fff; font-size: {mf}px; }}
#ticker {{ position: absolute; left: 0; top: {ty}px; width: {w}px; height: {th}px; background: #ffcc00;
  color: #000; font-size: {tf}px; line-height: {th}px; overflow: hidden; white-space: nowrap; }}
#strip {{ display: inline-block; animation: scroll {period}s linear infinite; will-change: transform; }}
@keyframes scroll {{ from {{ transform: translateX(0); }} to {{ transform: translateX(-50%); }} }}
</style></head><body>
<div id="header"><span id="title">{title}</span><span id="clock"></span></div>
<div id="main"><div>{body}</div></div>
<div id="ticker"><div id="strip">{items}{items}</div></div>
<script>
function tick() {{
  const d = new Date();
  document.getElementById("clock").textContent =
    String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  setTimeout(tick, 60000 - d.getSeconds() * 1000 - d.getMilliseconds());
}}
tick();
// The strip's period follows its width so that it moves at {speed} px/s.
const strip = document.getElementById("strip");
strip.style.animationDuration = (strip.scrollWidth / 2 / {speed}) + "s";
</script></body></html>
"""


def page(folder: Path) -> Path:
    """The kiosk's HTML page: the landscape layout's picture, its ticker as a CSS animation."""
    w, h = SIZE
    hh, th = round(h * 0.12), round(h * 0.10)
    items = "".join(f"<span>{t}&nbsp;&nbsp;•&nbsp;&nbsp;</span>" for t in TICKER)
    html = PAGE.format(w=w, h=h, hh=hh, hf=round(hh * 0.6), mh=round(h * 0.78), mf=round(h * 0.09),
                       ty=round(h * 0.90), th=th, tf=round(th * 0.7), title=TITLE,
                       body=BODY.replace("\n", "<br>"), items=items, period=60, speed=SPEED)
    path = folder / "kiosk.html"
    path.write_text(html, encoding="utf-8")
    return path


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        try:
            total += cpu_seconds(pid)
        except OSError:
            pass  # ended meanwhile
        todo.extend(children.get(pid, []))
    return total


def measure(pids: dict[str, int], seconds: float, trees: frozenset[str] = frozenset()) -> dict[str, float]:
    """% of one core of each named process (whole tree for those in ``trees``) over ``seconds``."""
    def read() -> dict[str, float]:
        return {name: (tree_cpu(pid) if name in trees else cpu_seconds(pid)) for name, pid in pids.items()}

    before, start = read(), time.monotonic()
    time.sleep(seconds)
    after, wall = read(), time.monotonic() - start
    return {name: 100 * (after[name] - before[name]) / wall for name in pids}


def _player(folder: Path, broker: Broker, output: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    store_playlist(folder, {"id": "ticker", "version": 1, "ticker": TICKER, "slides": [
        {"id": "s", "type": "text", "duration": 3600, "title": TITLE, "body": BODY}]})
    display: dict[str, Any] = {"transition": "cut"}
    if output == "fbdev":
        device, sysfs = make_fb(folder, *SIZE, 32)
        display.update(output="fbdev", device=device)
        env = {**env, "PANEL_PLAYER_SYSFS_ROOT": str(sysfs)}
    else:
        display.update(output="sdl")
    config = write_config(folder, size=SIZE, layout="landscape", fps=FPS, extra={
        "panel": {"id": f"bench-{output}"},
        "display": display,
        "mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "prefix": PREFIX},
        "heartbeat": {"interval": 5},
        # Full brightness at any hour: night dimming would be done while copying.
        "brightness": {"fallback": {"day": 100, "night": 100}},
    })
    return start_player(config, env)


def _chromium(folder: Path, display: str, html: Path) -> subprocess.Popen[bytes]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser is not None
    args = [browser, "--kiosk", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--disable-translate", "--disable-features=Translate", "--lang=fr", "--noerrdialogs", "--password-store=basic",
            f"--user-data-dir={folder / 'chromium-profile'}", f"--window-size={SIZE[0]},{SIZE[1]}",
            "--window-position=0,0", html.as_uri()]
    env = dict(os.environ, DISPLAY=display)
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=(folder / "chromium.log").open("wb"),
                            start_new_session=True)


def _check_animates(x: XServer, what: str) -> None:
    band = (round(SIZE[1] * 0.90) + 2, SIZE[1] - 2)  # inside the ticker band
    if not x.animates(*band):
        raise RuntimeError(f"{what}: the ticker band does not move on the X server's screen; "
                           "the figure would be of a still picture")


def _end_tree(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


GOAL_SECONDS = 20.0  # each process measured at least this long for the goal to be judged


def run(seconds: float = GOAL_SECONDS, warmup: float = 8.0) -> dict[str, Any]:
    have_x = shutil.which("Xvfb") is not None
    have_chromium = have_x and (shutil.which("chromium") or shutil.which("chromium-browser")) is not None
    figures: dict[str, float | None] = {"fbdev": None, "floor": None, "sdl": None, "sdl_x": None,
                                        "chromium": None, "chromium_x": None}
    with tempfile.TemporaryDirectory(prefix="ticker-process-") as tmp:
        folder = Path(tmp)
        broker = Broker(folder / "broker")
        broker.start()
        try:
            (folder / "fbdev").mkdir()
            player = _player(folder / "fbdev", broker, "fbdev", {})
            try:
                time.sleep(warmup)
                if player.poll() is not None:
                    raise RuntimeError("the fbdev player exited during its warm-up")
                figures["fbdev"] = measure({"p": player.pid}, seconds)["p"]
            finally:
                stop(player)
            (folder / "floor").mkdir()
            device, sysfs = make_fb(folder / "floor", *SIZE, 32)
            floor = subprocess.Popen([sys.executable, "-m", "bench.ticker_floor", device, str(sysfs)], cwd=ROOT,
                                     env=dict(os.environ, SDL_VIDEODRIVER="dummy"), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
            try:
                time.sleep(warmup)
                if floor.poll() is not None:
                    raise RuntimeError("the floor loop exited: " + (floor.stderr.read() if floor.stderr else b"")
                                       .decode(errors="replace")[-800:])
                figures["floor"] = measure({"p": floor.pid}, seconds)["p"]
            finally:
                stop(floor)
            if have_x:
                x = XServer(folder, SIZE)
                try:
                    (folder / "sdl").mkdir()
                    player = _player(folder / "sdl", broker, "sdl", {"DISPLAY": x.display, "SDL_VIDEODRIVER": "x11"})
                    try:
                        time.sleep(warmup)
                        if player.poll() is not None:
                            raise RuntimeError("the sdl player exited during its warm-up: "
                                               + (player.stderr.read() if player.stderr else b"").decode()[-800:])
                        _check_animates(x, "the sdl player's window")
                        got = measure({"p": player.pid, "x": x.proc.pid}, seconds)
                        figures["sdl"], figures["sdl_x"] = got["p"], got["x"]
                    finally:
                        stop(player)
                    if have_chromium:
                        kiosk = _chromium(folder, x.display, page(folder))
                        try:
                            time.sleep(warmup)
                            if kiosk.poll() is not None:
                                raise RuntimeError("chromium exited during its warm-up: "
                                                   + (folder / "chromium.log").read_text()[-800:])
                            _check_animates(x, "the Chromium kiosk")
                            got = measure({"c": kiosk.pid, "x": x.proc.pid}, seconds, trees=frozenset({"c"}))
                            figures["chromium"], figures["chromium_x"] = got["c"], got["x"]
                        finally:
                            _end_tree(kiosk)
                finally:
                    x.close()
        finally:
            broker.stop()
    return _report(figures, seconds, have_x, have_chromium)


def _report(f: dict[str, float | None], seconds: float, have_x: bool, have_chromium: bool) -> dict[str, Any]:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f} % of one core"

    ratio = goals.value("ticker_process")
    chromium = f["chromium"]
    found: list[Goal] = []
    rows = [("panel-player run, fbdev", pct(f["fbdev"])),
            ("floor: 60 wake-ups a second and the ticker's draw, nothing else", pct(f["floor"]))]
    if have_x:
        rows.append(("panel-player run, sdl on Xvfb", f"{pct(f['sdl'])} (the X server: {pct(f['sdl_x'])})"))
    else:
        rows.append(("panel-player run, sdl on Xvfb", "not measured: Xvfb is not installed (apt-get install xvfb)"))
    if have_chromium:
        rows.append(("reference: Chromium kiosk on Xvfb", f"{pct(chromium)} (the X server: {pct(f['chromium_x'])})"))
    else:
        rows.append(("reference: Chromium kiosk on Xvfb",
                     "not measured: Chromium is not installed (apt-get install chromium xvfb)"))
    for name, label in (("fbdev", "fbdev"), ("sdl", "sdl on Xvfb")):
        value = f[name]
        if value is None:
            continue
        limit = ratio * chromium if chromium is not None else 0.0
        goal = Goal("ticker_process", f"{label}, CPU vs the Chromium kiosk", value, limit, "%",
                    measured_at=f"1920x1080, {seconds:g} s", goal_at=f"1920x1080, ≥ {GOAL_SECONDS:g} s",
                    at_goal_size=seconds >= GOAL_SECONDS)
        if chromium is not None:
            rows.append((f"goal ({label})", goal.line()))
            found.append(goal)
    report(f"ticker at {FPS} fps, landscape {SIZE[0]}x{SIZE[1]}, CPU over {seconds:g} s each", rows)
    return {**{k: v for k, v in f.items()}, "goals": found}
