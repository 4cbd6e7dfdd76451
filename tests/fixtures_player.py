"""A real panel-player process for end-to-end tests: png output, real broker, real state folder.

Example::

    def test_x(panel):
        p = panel(groups=["centre"])            # starts `panel-player run` on a free broker
        p.wait_event("playlist.applied")
        assert p.pixel(10, 10) == (0, 0, 0)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures_broker import Broker, Sub
from fixtures_rabbit import RabbitBroker

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "signage"


def text_playlist(pid: str, version: int, background: str = "#12ab34", title: str = "Bonjour",
                  layout: str = "fullscreen", **extra: Any) -> dict[str, Any]:
    """A one-slide text playlist whose background colour identifies it on screen."""
    return {"id": pid, "version": version, "layout": layout,
            "slides": [{"id": "s1", "type": "text", "duration": 3600, "title": title,
                        "style": {"background": background, "color": "#ffffff"}}], **extra}


def rgb(hexcolour: str) -> tuple[int, int, int]:
    return tuple(int(hexcolour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


class PanelProcess:
    """One player process and a subscriber on everything it publishes."""

    def __init__(self, broker: Broker | RabbitBroker, folder: Path, panel_id: str = "p1",
                 groups: list[str] | None = None, size: tuple[int, int] = (160, 90), keepalive: int = 30, extra: dict[str, Any] | None = None,
                 start: bool = True) -> None:
        self.broker = broker
        self.folder = folder
        self.id = panel_id
        self.png = folder / "frame.png"
        self.topic = f"{PREFIX}/panels/{panel_id}"
        cfg: dict[str, Any] = {
            "panel": {"id": panel_id, "groups": groups or [], "timezone": "Europe/Paris"},
            "display": {"output": "png", "size": list(size), "path": str(self.png), "layout": "fullscreen",
                        "transition": "cut"},
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "prefix": PREFIX, "keepalive": keepalive},
            "state_dir": str(folder / "state"),
            "heartbeat": {"interval": 30},
            # Full brightness day and night: colours checked by the tests must not
            # depend on the hour the suite runs at (the default dims to 20 % at night).
            "brightness": {"fallback": {"day": 100, "night": 100}},
        }
        # The broker's protocol and login (RabbitMQ: MQTT 3.1.1, "<vhost>:guest"); mosquitto's
        # anonymous MQTT 5 adds nothing.
        protocol = getattr(broker, "protocol", "5")
        if protocol != "5":
            cfg["mqtt"]["protocol"] = protocol
        if broker.username is not None and broker.password_file is not None:
            cfg["mqtt"].update(username=broker.username, password_file=str(broker.password_file))
        for key, value in (extra or {}).items():
            if isinstance(value, dict):
                cfg.setdefault(key, {}).update(value)
            else:
                cfg[key] = value
        self.config = folder / "config.yaml"
        self.config.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
        self.sub: Sub = broker.sub(f"{self.topic}/#")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "player.log"
        if start:
            self.start()

    # -- process ---------------------------------------------------------------
    def start(self, wait_online: bool = True) -> None:
        env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", GPIOZERO_PIN_FACTORY="mock")
        env.pop("NOTIFY_SOCKET", None)
        mark = self.sub.mark()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "player.cli", "run", "--config", str(self.config)],
                                         cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        if wait_online:
            self.sub.wait_for(f"{self.topic}/online", b"true", after=mark, timeout=20)

    def stop(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("player did not stop on SIGTERM within the time-out")
        return self.proc.returncode

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # -- what it publishes ------------------------------------------------------
    def events(self, after: int = 0) -> list[dict[str, Any]]:
        out = []
        for m in self.sub.messages[after:]:
            if m.topic == f"{self.topic}/events":
                out.append(json.loads(m.payload))
        return out

    def wait_event(self, kind: str, after: int = 0, timeout: float = 10.0,
                   where: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        def match(m: Any) -> bool:
            data = json.loads(m.payload)
            return data.get("type") == kind and (where is None or where(data))

        try:
            m = self.sub.wait_for(f"{self.topic}/events", after=after, where=match, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- player log ---\n{self.log_text()[-3000:]}") from None
        return json.loads(m.payload)

    # -- what it shows ----------------------------------------------------------------
    def picture(self) -> Any:
        """The PNG output as a Pillow RGB image (the file is replaced atomically)."""
        from PIL import Image

        with Image.open(self.png) as img:
            return img.convert("RGB")

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        return self.picture().getpixel((x, y))

    def wait_colour(self, colour: tuple[int, int, int], at: tuple[int, int] = (5, 5), timeout: float = 5.0) -> float:
        """Wait until the PNG shows ``colour`` at ``at``; returns the time it took."""
        start = time.monotonic()
        seen = None
        while time.monotonic() - start < timeout:
            if self.png.exists():
                try:
                    seen = self.pixel(*at)
                except OSError:
                    seen = None
                if seen == colour:
                    return time.monotonic() - start
            time.sleep(0.02)
        raise AssertionError(f"PNG never showed {colour} at {at} within {timeout} s (last {seen})\n"
                             f"--- player log ---\n{self.log_text()[-3000:]}")

    def publish(self, leaf: str, payload: Any, retain: bool = False) -> None:
        """Publish below the prefix; dicts are sent as JSON."""
        data = json.dumps(payload).encode() if isinstance(payload, (dict, list)) else payload
        self.broker.publish(f"{PREFIX}/{leaf}", data, retain=retain)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        self.sub.close()


@pytest.fixture
def panel(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., PanelProcess]]:
    """A factory of player processes on the test broker; each is killed at teardown.

    The test broker is ``any_broker`` when the test uses it (mosquitto, then RabbitMQ),
    else ``rabbit`` when the test uses that one, otherwise ``broker``.
    """
    name = next((n for n in ("any_broker", "rabbit") if n in request.fixturenames), "broker")
    broker: Broker | RabbitBroker = request.getfixturevalue(name)
    made: list[PanelProcess] = []

    def make(panel_id: str = "p1", **kwargs: Any) -> PanelProcess:
        folder = tmp_path / panel_id
        folder.mkdir(exist_ok=True)
        p = PanelProcess(broker, folder, panel_id, **kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
