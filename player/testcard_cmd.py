"""``panel-player testcard --config FILE [--seconds N]``: the test card, full screen, updated live.

Runs the config's real display output (fbdev, sdl, png or ledmatrix, with its
rotation) and shows :class:`player.render.testcard.TestCard`: colour bars, grey
ramp, grid, orientation marks, and the information block with the panel id,
firmware, IP addresses, broker state, trusted keys, resolution, clock and sensor
readings.

Like the player, one thread owns pygame: :class:`TestCardRunner` blocks on its
inbox until the next deadline (the clock's next second, the png output's write
window, the end). Beside it, a :class:`~player.hw.sampler.Sampler` reads the
sensors every second and a prober thread tries the broker (a clean session under
its own client id, never the panel's), re-reads the addresses, the clock
synchronisation and the free disk space every few seconds; both only post
results on the inbox.

Stop the panel-player service first: two programs cannot drive one display.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from .config import Config, TrustConfig  # noqa: E402
from .errors import ConfigError, PanelError  # noqa: E402
from .inbox import Inbox  # noqa: E402

log = logging.getLogger("panel-player.testcard")

EXIT_OK, EXIT_NO_DISPLAY, EXIT_INVALID = 0, 1, 2
SENSOR_INTERVAL_S = 1.0
PROBE_INTERVAL_S = 10.0
PROBE_TIMEOUT_S = 3.0

# How the broker states read on the (French) screen.
BROKER_STATES = {"refused": "refusé", "unreachable": "injoignable", "error": "erreur"}
# The kinds of trust.require, on the screen.
SIGNED_KINDS = {"alerts": "alertes", "playlists": "playlists", "commands": "commandes"}


@dataclass(frozen=True)
class _Stop:
    code: int
    reason: str


@dataclass(frozen=True)
class Surroundings:
    """What the prober found: broker, addresses, clock and disk (posted every few seconds)."""

    broker: Any  # player.preflight.BrokerProbe
    addresses: tuple[str, ...]
    clock_synced: bool | None
    disk_free_mb: int | None


class _Prober:
    """Background thread: probes the broker and the machine, posts :class:`Surroundings`."""

    def __init__(self, cfg: Config, inbox: queue.Queue[object], interval: float, timeout: float) -> None:
        self.cfg = cfg
        self.inbox = inbox
        self.interval = interval
        self.timeout = timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="testcard-prober", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def once(self) -> Surroundings:
        from .hw.health import clock_synced, disk_free_mb
        from .preflight import probe_broker
        from .render.identify import describe_addresses

        probe = probe_broker(self.cfg.mqtt, f"{self.cfg.panel.id}-testcard-{os.getpid()}", self.timeout)
        folder = self.cfg.state_dir
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return Surroundings(probe, tuple(describe_addresses()), clock_synced(), disk_free_mb(folder))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.inbox.put(self.once())
            except Exception:  # the card must keep running whatever the probe meets
                log.exception("probe failed")
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()


def trust_text(trust: TrustConfig) -> str:
    """The "Clés" row: the trusted key ids, and what is accepted unsigned.

    ``"central-2026, central-2027"``; ``"central-2026 ; non signés acceptés : commandes"``;
    ``"aucune (messages non signés acceptés)"``.
    """
    if not trust.keys:
        return "aucune (messages non signés acceptés)"
    unsigned = [word for kind, word in SIGNED_KINDS.items() if not trust.requires(kind)]
    kids = ", ".join(trust.kids)
    return f"{kids} ; non signés acceptés : {', '.join(unsigned)}" if unsigned else kids


def readings_of(sensors: Any, last: Any, around: Surroundings | None,
                trust: TrustConfig | None = None) -> dict[str, object]:
    """The card's reading rows: broker state, trusted keys, configured sensors only, then clock, disk, and faults."""
    out: dict[str, object] = {}
    if around is not None and not around.broker.connected and around.broker.state != "disabled":
        state = BROKER_STATES.get(around.broker.state, around.broker.state)
        detail = around.broker.detail.split(": ", 1)[-1] if ": " in around.broker.detail else around.broker.detail
        out["État MQTT"] = f"{state} : {detail}"
    if trust is not None:
        out["Clés"] = trust_text(trust)
    if sensors is not None:
        if sensors.light is not None:
            out["ambient"] = last.ambient if last is not None else None
        if sensors.cpu_temp is not None:
            out["cpu_temp_c"] = last.cpu_temp_c if last is not None else None
        if sensors.door is not None:
            out["door_open"] = last.door_open if last is not None else None
        if sensors.throttle is not None:
            flags = last.throttled if last is not None else None
            out["Sous-tension"] = None if flags is None else bool(flags.get("under_voltage"))
    if around is not None:
        out["clock_synced"] = around.clock_synced
        out["disk_free_mb"] = around.disk_free_mb
    faults = list(last.faults) if last is not None else list(getattr(sensors, "open_faults", []) or [])
    if faults:
        out["Défauts"] = ", ".join(faults)
    return out


class TestCardRunner:
    """Shows the test card on the config's output until :meth:`stop` or ``seconds``.

    Example::

        runner = TestCardRunner(load_config(Path("config.yaml")))
        install_stop_signals(runner.inbox)      # SIGTERM/SIGINT end it, without a lock
        sys.exit(runner.run(seconds=60))

    ``card`` is the live :class:`~player.render.testcard.TestCard` (None before :meth:`run`).
    """

    __test__ = False

    def __init__(self, cfg: Config, *, sysfs_root: Path = Path("/sys"),
                 sensor_interval: float = SENSOR_INTERVAL_S, probe_interval: float = PROBE_INTERVAL_S,
                 probe_timeout: float = PROBE_TIMEOUT_S) -> None:
        self.cfg = cfg
        self.sysfs_root = sysfs_root
        self.sensor_interval = sensor_interval
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.inbox = Inbox()  # a signal handler may post to it (player/inbox.py)
        self.card: Any = None
        self.frames = 0
        self._exit: int | None = None
        self._sensors: Any = None
        self._readings: Any = None
        self._around: Surroundings | None = None
        self._addresses: tuple[str, ...] = ()

    def stop(self, code: int = EXIT_OK, reason: str = "stop requested") -> None:
        """Thread- and signal-safe: end the loop."""
        self.inbox.put(_Stop(code, reason))

    # -- set-up --------------------------------------------------------------------------
    def _open_output(self) -> Any:
        from .render.outputs import init_display, open_configured

        d = self.cfg.display
        init_display(d.output, d.size)
        return open_configured(d, wait_s=d.wait_s, sysfs_root=self.sysfs_root)

    def _start_sensors(self) -> Any:
        from .hw.sampler import Sampler
        from .hw.sensors import open_sensors

        try:
            self._sensors = open_sensors(self.cfg.sensors)
        except (PanelError, OSError) as exc:
            log.warning("sensors: %s", exc)
            return None
        cfg = dataclasses.replace(self.cfg.sensors, interval=self.sensor_interval)
        sampler = Sampler(self._sensors, cfg, self.inbox)
        sampler.start()
        return sampler

    def panel_info(self) -> Any:
        from .render.identify import PanelInfo

        c, around = self.cfg, self._around
        return PanelInfo(panel_id=c.panel.id, name=c.panel.name,
                         addresses=around.addresses if around is not None else self._addresses,
                         broker=f"{c.mqtt.host}:{c.mqtt.port}" if c.mqtt.enabled else "",
                         connected=None if around is None or not c.mqtt.enabled else around.broker.connected)

    # -- loop ------------------------------------------------------------------------------
    def run(self, seconds: float | None = None) -> int:
        """Run until stopped or for ``seconds``; 0 on a clean stop.

        Raises what :func:`~player.render.outputs.open_output` raises when the display
        cannot be opened (DisplayUnavailable, MissingDependency, OutputError).
        """
        from .hw.sampler import SensorReadings
        from .render.compositor import Renderer
        from .render.fonts import screen_style
        from .render.identify import describe_addresses
        from .render.testcard import TestCard

        d = self.cfg.display
        layout = self.cfg.layout()
        tz = self.cfg.panel.tz()
        output = self._open_output()
        renderer = sampler = prober = None
        try:
            renderer = Renderer(output.size, layout, tz=tz, rotation=d.rotation, fps=d.fps, transition="cut",
                                font=d.font, antialias=d.antialias, language=self.cfg.panel.language)
            start = time.monotonic()
            end = start + seconds if seconds is not None else None
            self._addresses = tuple(describe_addresses())
            font, led = screen_style(renderer.logical_size, d.font or layout.font,
                                     ledmatrix=d.output == "ledmatrix", layout_antialias=layout.antialias)
            self.card = TestCard(self.panel_info(), readings={}, font=font,
                                 antialias=d.antialias, led=led, tz=tz, start=start)
            renderer.set_overlay(self.card)
            sampler = self._start_sensors()
            self.card.update(readings_of(self._sensors, None, None, self.cfg.trust))
            prober = _Prober(self.cfg, self.inbox, self.probe_interval, self.probe_timeout)
            prober.start()
            while self._exit is None:
                now = time.monotonic()
                self._draw(renderer, output, now)
                output.flush(now)
                if getattr(output, "closed_by_user", False):
                    break
                due = [t for t in (renderer.next_deadline(now, datetime.now(timezone.utc)),
                                   output.next_deadline(), end) if t is not None]
                timeout = max(0.0, min(due) - time.monotonic()) if due else 3600.0
                try:
                    msg: object | None = self.inbox.get(timeout=timeout)
                except queue.Empty:
                    msg = None
                while (signum := self.inbox.take_signal()) is not None:
                    log.info("stopping: %s", signal.Signals(signum).name)
                    self._exit = EXIT_OK
                changed = False
                while msg is not None:
                    if isinstance(msg, _Stop):
                        log.info("stopping: %s", msg.reason)
                        self._exit = msg.code
                    elif isinstance(msg, SensorReadings):
                        self._readings, changed = msg, True
                    elif isinstance(msg, Surroundings):
                        self._around, changed = msg, True
                    try:
                        msg = self.inbox.get_nowait()
                    except queue.Empty:
                        msg = None
                if changed:
                    self._refresh(renderer)
                if end is not None and time.monotonic() >= end and self._exit is None:
                    self._exit = EXIT_OK
            self._draw(renderer, output, time.monotonic())
        finally:
            if prober is not None:
                prober.stop()
            if sampler is not None:
                sampler.stop()
            if self._sensors is not None:
                self._sensors.close()
            if renderer is not None:
                renderer.close()
            output.close()  # a png output writes its last picture first
        return self._exit or EXIT_OK

    def _refresh(self, renderer: Any) -> None:
        before = self.card.revision
        self.card.set_panel(self.panel_info())
        self.card.update(readings_of(self._sensors, self._readings, self._around, self.cfg.trust))
        if self.card.revision != before:
            renderer.set_overlay(self.card)  # drawn at once, not at the next second

    def _draw(self, renderer: Any, output: Any, now: float) -> None:
        drawn = renderer.render(now, datetime.now(timezone.utc))
        if drawn is not None:
            output.show(*drawn)
            self.frames += 1


# -- command line -------------------------------------------------------------------------


def add_testcard_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``testcard`` to ``panel-player``; ``args.handler`` is :func:`cmd_testcard`."""
    p = subparsers.add_parser(
        "testcard", help="show the test card on the configured display",
        description="Show a full-screen test pattern with the panel's id, addresses, broker state, "
                    "trusted keys, resolution and sensor readings, updated live, until Ctrl-C / SIGTERM or --seconds. "
                    "Stop the panel-player service first.")
    p.add_argument("--config", required=True, type=Path, help="the panel's YAML config")
    p.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(handler=cmd_testcard)
    return p


def cmd_testcard(args: argparse.Namespace) -> int:
    """0 on a clean stop; 1 when the display cannot be opened; 2 for an invalid config."""
    from .config import load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: invalid config", file=sys.stderr)
        for err in exc.errors:
            print(f"  {err}", file=sys.stderr)
        return EXIT_INVALID
    logging.basicConfig(level=getattr(logging, cfg.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from .cli import install_stop_signals

    runner = TestCardRunner(cfg)
    install_stop_signals(runner.inbox)
    where = f" ({cfg.display.path})" if cfg.display.output == "png" else ""
    until = f" for {args.seconds:g} s" if args.seconds is not None else " until Ctrl-C"
    print(f"Test card on {cfg.display.output}{where}{until}.", flush=True)
    try:
        return runner.run(args.seconds)
    except PanelError as exc:
        print(f"cannot open the display: {exc}", file=sys.stderr)
        return EXIT_NO_DISPLAY


def main(argv: list[str] | None = None) -> int:
    """``python -m player.testcard_cmd --config FILE [--seconds N]`` (same as ``panel-player testcard``)."""
    parser = argparse.ArgumentParser(prog="panel-player")
    add_testcard_parser(parser.add_subparsers(dest="command", required=True))
    return int(cmd_testcard(parser.parse_args(["testcard", *(sys.argv[1:] if argv is None else argv)])))


if __name__ == "__main__":
    sys.exit(main())
