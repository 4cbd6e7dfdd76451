"""``panelctl console``: build the console's parts and serve them with uvicorn.

:func:`run` makes the fleet model, the history database, the MQTT bridge, the notice
engine and the metrics, starts a once-a-second tick (stale states by heartbeat age,
notices), and serves :func:`player.console.web.create_app` on
``listen_host:listen_port`` until SIGINT or SIGTERM, then stops everything in order.

Example::

    run(load_console_settings(raw.get("console"), base), ctl_settings)
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..ctl.settings import CtlSettings
from .settings import ConsoleSettings

log = logging.getLogger("panelctl.console")
TICK_S = 1.0
# The notice rules count in minutes: every 10 s is soon enough, and each pass reads every
# panel's row (about 14 ms for 2,000 panels: once a second that was 1.4 % of a core).
NOTICE_EVERY_S = 10.0


@dataclass
class Console:
    """The parts of a running console (returned by :func:`build`)."""

    settings: ConsoleSettings
    fleet: Any
    history: Any
    bridge: Any
    notices: Any
    metrics: Any
    app: Any


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build(settings: ConsoleSettings, ctl: CtlSettings) -> Console:
    from ..ctl.signing import Signer
    from .bridge import Bridge
    from .fleet import Fleet
    from .history import History
    from .web import create_app

    fleet = Fleet(interval=settings.heartbeat_interval, stale_factor=settings.stale_factor)
    history = History(settings.db, retention_days=settings.retention_days,
                      thresholds={"cpu_temp_c": settings.notices.temp_c})
    signer = Signer.from_file(ctl.key_file) if ctl.key_file is not None else None
    screens = Path(settings.screenshot_dir)
    screens.mkdir(parents=True, exist_ok=True)
    bridge = Bridge(ctl, fleet, history, screens, signer=signer)
    notices: Any = None
    try:
        from .notices import NoticeEngine, senders_from

        notices = NoticeEngine(fleet, settings.notices, senders_from(settings.notices))
    except ImportError:  # pragma: no cover - the module ships with the console
        log.warning("console: notices unavailable")
    metrics: Any = None
    try:
        from .metrics import Metrics

        metrics = Metrics(fleet, notices=notices, connected=lambda: bool(bridge.connected))
    except ImportError:
        log.warning("console: /metrics unavailable (prometheus-client is missing)")
    app = create_app(settings, fleet, history, bridge, notices, metrics, ctl=ctl)
    return Console(settings, fleet, history, bridge, notices, metrics, app)


class Ticker(threading.Thread):
    """Once a second the fleet's stale states; every NOTICE_EVERY_S the notices."""

    def __init__(self, console: Console) -> None:
        super().__init__(name="console-tick", daemon=True)
        self.console = console
        self.stopping = threading.Event()

    def run(self) -> None:
        next_notices = 0.0
        while not self.stopping.wait(TICK_S):
            try:
                self.console.fleet.tick()
                now = time.monotonic()
                if self.console.notices is not None and now >= next_notices:
                    next_notices = now + NOTICE_EVERY_S
                    self.console.notices.evaluate()
            except Exception:  # noqa: BLE001 - one bad tick must not stop the next ones
                log.exception("console: tick failed")


def run(settings: ConsoleSettings, ctl: CtlSettings, err: IO[str] | None = None) -> int:
    """Serve the console until interrupted; returns the exit status."""
    import sys

    import uvicorn

    err = err or sys.stderr
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, port = settings.listen_host, settings.listen_port
    if not is_loopback(host) and not settings.secure_cookies:
        err.write(f"panelctl console: warning: listening on {host}, not only on this machine, with "
                  "secure_cookies off: the session cookie and passwords travel in clear unless a TLS "
                  "reverse proxy is in front (docs/console.md)\n")
    if not Path(settings.users_file).exists():
        err.write(f"panelctl console: no users file yet ({settings.users_file}): create a user with "
                  "'panelctl console user add NAME --role operator'\n")
    console = build(settings, ctl)
    console.bridge.start()
    ticker = Ticker(console)
    ticker.start()
    where = f"[{host}]" if ":" in host else host
    err.write(f"panelctl console: http://{where}:{port}/ (broker {ctl.address}, prefix {ctl.prefix})\n")
    err.flush()
    config = uvicorn.Config(console.app, host=host, port=port, access_log=False, log_level="warning",
                            timeout_graceful_shutdown=3, lifespan="on")
    server = uvicorn.Server(config)
    started = time.monotonic()
    try:
        server.run()
    finally:
        ticker.stopping.set()
        ticker.join(5)
        console.bridge.stop()
        if console.notices is not None:
            console.notices.close()
        console.history.close()
    if not server.started and time.monotonic() - started < 5:
        err.write(f"panelctl console: could not listen on {host}:{port}\n")
        return 1
    return 0
