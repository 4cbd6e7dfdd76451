"""Helpers shared by the benchmarks: a player process on a config of our choosing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
# The benchmarks drive the same stand-ins as the tests (broker, player process, framebuffer).
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))


def write_config(folder: Path, *, size=(1920, 1080), layout: str = "fullscreen", fps: int = 30,
                 extra: dict[str, Any] | None = None) -> Path:
    """A png-output config with MQTT off and its state in ``folder``."""
    cfg: dict[str, Any] = {
        "panel": {"id": "bench", "timezone": "Europe/Paris"},
        "display": {"output": "png", "size": list(size), "path": str(folder / "frame.png"), "layout": layout,
                    "fps": fps},
        "mqtt": {"enabled": False},
        "state_dir": str(folder / "state"),
    }
    for key, value in (extra or {}).items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def store_playlist(folder: Path, playlist: dict[str, Any], assets: dict[str, bytes] | None = None) -> None:
    """Seed the state folder as if the playlist had been applied before (the player starts on it)."""
    from player.store import StateStore

    store = StateStore(folder / "state")
    for sha, data in (assets or {}).items():
        store.assets.put(sha, data)
    store.save_playlist(json.dumps(playlist).encode(), {"source": "panel"})


def start_player(config: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    full = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", GPIOZERO_PIN_FACTORY="mock")
    full.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "player.cli", "run", "--config", str(config)],
                            cwd=ROOT, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> float:
    """Poll ``predicate`` until true; returns the time it took. Raises with the player's stderr on failure."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"player exited ({proc.returncode}) before {what}: "
                               + (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")[-2000:])
        time.sleep(0.005)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of a process, in seconds, to the nanosecond (schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that just ended
    return total / 1e9


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def report(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n== {title}")
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")
    sys.stdout.flush()
