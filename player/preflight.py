"""Preflight: ``panel-player check --config FILE --preflight`` checks the machine, not only the config.

One :class:`CheckResult` per item, in this order: config, display (device and
geometry), font (every French glyph), gpio (the pin factory gpiozero uses, and
whether lgpio and spidev import), each sensor (its first reading), broker
(TCP, then an MQTT CONNECT with the configured TLS and credentials), trust (the
keys whose signatures are accepted, and what must be signed), clock (NTP
synchronised), disk (free space on ``state_dir``), state folder (writable)::

    results = run_preflight(load_config(Path("/etc/panel-player/config.yaml")))
    code = print_report(results)          # 0 all ok, 1 warnings only, 2 a failure

Nothing here writes anything but a temporary file, removed at once, in the
state folder and in the png output's folder. Every network and sensor step
gives up after ``timeout`` seconds, so the whole check takes seconds.

:func:`probe_broker` is shared with the test card, which shows its answer live.
"""

from __future__ import annotations

import dataclasses

import os
import socket
import ssl
import string
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # keep the report free of pygame's banner

from .config import Config, MqttConfig  # noqa: E402
from .errors import ConfigError, PanelError  # noqa: E402

OK, WARN, FAIL = "ok", "warn", "fail"
EXIT_OK, EXIT_WARN, EXIT_FAIL = 0, 1, 2
DISK_WARN_MB = 100
DISK_FAIL_MB = 20
CPU_WARN_C = 80.0
_SYMBOLS = {OK: "✓", WARN: "!", FAIL: "✗"}
_ASCII = {OK: "[ OK ]", WARN: "[WARN]", FAIL: "[FAIL]"}
# Besides FRENCH_SAMPLE, the ASCII a panel's texts are made of.
_ASCII_TEXT = string.ascii_letters + string.digits + "!\"#$%&'()*+,-./:;<=>?@[]_"


@dataclass(frozen=True)
class CheckResult:
    """One line of the report. ``status`` is ``ok``, ``warn`` or ``fail``; ``fix`` says
    what to do about a warning or a failure ("" when there is nothing to add)."""

    name: str
    status: str
    detail: str
    fix: str = ""


# -- broker --------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerProbe:
    """What one connection attempt found.

    ``state``: ``connected`` (CONNACK success), ``refused`` (the broker or the TLS
    handshake said no), ``unreachable`` (no TCP connection or no answer), ``error``
    (a local problem: unreadable password or TLS file), ``disabled`` (mqtt.enabled false).
    """

    state: str
    detail: str
    host: str = ""
    port: int = 0
    fix: str = ""  # what to do, when the probe knows better than its state
    protocol_refused: bool = False  # closed before CONNACK, or CONNACK "unsupported protocol version"

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def __str__(self) -> str:
        return self.state if not self.detail else f"{self.state}: {self.detail}"


def _socket_reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, socket.gaierror):
        return "host name not found (check mqtt.host and the DNS)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on that port)"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


PROTOCOL_FIX = 'set mqtt.protocol: "3.1.1" in the panel config'


def probe_broker(m: MqttConfig, client_id: str, timeout: float = 3.0) -> BrokerProbe:
    """Connect to the configured broker once, with a clean session and no will, then leave.

    First a TCP connection, then an MQTT CONNECT (TLS and credentials as configured)
    waiting at most ``timeout`` seconds for each. ``client_id`` must differ from the
    panel's own id, or the broker would take the running panel's session away.

    With ``mqtt.protocol: "5"``, a CONNECT closed before any CONNACK or refused as an
    unsupported protocol version is tried again with MQTT 3.1.1, and the answer says in
    words whether the broker accepts that instead (RabbitMQ before 3.13 closes an MQTT 5
    CONNECT without a word).
    """
    probe = _probe_once(m, client_id, timeout)
    if m.protocol != "5" or not probe.protocol_refused:
        return probe
    older = _probe_once(dataclasses.replace(m, protocol="3.1.1"), client_id, timeout)
    where = f"{m.host}:{m.port}"
    if older.connected:
        return BrokerProbe("refused", f"{where}: the broker does not accept MQTT 5 but accepts MQTT 3.1.1: "
                                      'set mqtt.protocol: "3.1.1" (RabbitMQ before 3.13 and other MQTT 3.1.1 '
                                      f"brokers; MQTT 5 answer: {probe.detail.removeprefix(where + ': ')})",
                           m.host, m.port, fix=PROTOCOL_FIX)
    if older.state == "refused" and not older.protocol_refused:
        return BrokerProbe("refused", f"{where}: the broker does not accept MQTT 5; with MQTT 3.1.1 it answered: "
                                      f"{older.detail.removeprefix(where + ': ')}",
                           m.host, m.port, fix=PROTOCOL_FIX + ", and check mqtt.username and its password")
    return probe


def _probe_once(m: MqttConfig, client_id: str, timeout: float) -> BrokerProbe:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    if not m.enabled:
        return BrokerProbe("disabled", "mqtt.enabled is false", m.host, m.port)
    where = f"{m.host}:{m.port}"
    try:
        socket.create_connection((m.host, m.port), timeout=timeout).close()
    except OSError as exc:
        return BrokerProbe("unreachable", f"{where}: {_socket_reason(exc, timeout)}", m.host, m.port)

    v5 = m.protocol == "5"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else True)
    if m.username is not None:
        password = None
        if m.password_file is not None:
            from .net.link import read_password

            try:
                password = read_password(m.password_file)
            except ConfigError as exc:
                return BrokerProbe("error", "; ".join(exc.errors), m.host, m.port)
        client.username_pw_set(m.username, password)
    if m.tls is not None:
        try:
            client.tls_set(ca_certs=str(m.tls.ca_file) if m.tls.ca_file else None,
                           certfile=str(m.tls.cert_file) if m.tls.cert_file else None,
                           keyfile=str(m.tls.key_file) if m.tls.key_file else None)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            return BrokerProbe("error", f"mqtt.tls: {exc}", m.host, m.port)
    answer: list[BrokerProbe] = []
    done = threading.Event()

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            unsupported = "protocol" in str(rc).lower()  # "Unsupported protocol version"
            answer.append(BrokerProbe("refused", f"{where}: {rc}", m.host, m.port, protocol_refused=unsupported))
        else:
            answer.append(BrokerProbe("connected", f"{where}{' (TLS)' if m.tls else ''}", m.host, m.port))
        done.set()

    def on_disconnect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not answer:
            answer.append(BrokerProbe("refused", f"{where}: connection closed before CONNACK ({rc})",
                                      m.host, m.port, protocol_refused=True))
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.connect_timeout = timeout
    try:
        client.connect(m.host, m.port, keepalive=max(5, int(timeout * 4)))
    except ssl.SSLError as exc:
        return BrokerProbe("refused", f"{where}: TLS: {exc.reason or exc}", m.host, m.port)
    except OSError as exc:
        return BrokerProbe("unreachable", f"{where}: {_socket_reason(exc, timeout)}", m.host, m.port)
    client.loop_start()
    try:
        if not done.wait(timeout):
            return BrokerProbe("unreachable", f"{where}: no MQTT answer within {timeout:g} s "
                                              "(is it an MQTT port? TLS on a plain port or the reverse?)",
                               m.host, m.port)
        return answer[0]
    finally:
        client.disconnect()
        client.loop_stop()


def check_broker(cfg: Config, timeout: float) -> CheckResult:
    m = cfg.mqtt
    probe = probe_broker(m, f"{cfg.panel.id}-preflight-{os.getpid()}", timeout)
    if probe.state == "disabled":
        return CheckResult("broker", OK, "not used (mqtt.enabled: false): the panel plays its last content")
    if probe.connected:
        who = f" as {m.username}" if m.username else ""
        return CheckResult("broker", OK, f"connected to {probe.detail}{who}")
    fixes = {
        "unreachable": "check the network cable or Wi-Fi, mqtt.host and mqtt.port, and the firewall",
        "refused": "check mqtt.username and its password, and the TLS files (CA, client certificate)",
        "error": "fix the file named above (it must be readable by the panel-player user)",
    }
    return CheckResult("broker", FAIL, str(probe), probe.fix or fixes.get(probe.state, ""))


# -- trust ---------------------------------------------------------------------------


def _kinds(kinds: Sequence[str]) -> str:
    """``alerts``, ``alerts and playlists``, ``alerts, playlists and commands``."""
    return kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} and {kinds[-1]}"


def check_trust(cfg: Config) -> CheckResult:
    """The key ids the panel trusts and which kinds must be signed; a warning for what is accepted unsigned."""
    from .trust import CATEGORIES

    t = cfg.trust
    if not t.keys:
        return CheckResult("trust", WARN, f"no trust.keys: {_kinds(CATEGORIES)} are accepted unsigned",
                           "anyone who may publish on the broker can show an alert: list the central server's "
                           "public keys in trust.keys (panelctl keys new; provision --trust-key)")
    n = len(t.keys)
    keys = f"{n} key{'s' if n > 1 else ''} ({', '.join(t.kids)})"
    signed = [c for c in CATEGORIES if t.requires(c)]
    unsigned = [c for c in CATEGORIES if not t.requires(c)]
    if not unsigned:
        return CheckResult("trust", OK, f"{keys}; {_kinds(signed)} must be signed")
    must = f"{_kinds(signed)} must be signed, " if signed else ""
    return CheckResult("trust", WARN, f"{keys}; {must}{_kinds(unsigned)} are accepted "
                       "unsigned (trust.require)",
                       "once the central server signs them, add them to trust.require (or remove trust.require: "
                       "all three)")


# -- display -------------------------------------------------------------------------


def _under(dev_root: Path, device: str) -> Path:
    """``device`` (such as /dev/fb0) seen below ``dev_root``."""
    path = Path(device)
    try:
        return dev_root / path.relative_to("/dev")
    except ValueError:
        return path


def _writable_folder(folder: Path) -> str | None:
    """None when a file can be created (and is removed) in ``folder``, else the reason."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    if probe != folder:
        return f"{folder} does not exist"
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".preflight-")
    except OSError as exc:
        return f"cannot create a file in {folder}: {exc.strerror or exc}"
    os.close(fd)
    os.unlink(tmp)
    return None


def check_display(cfg: Config, sysfs_root: Path, dev_root: Path) -> CheckResult:
    from .render.outputs import read_info
    from .render.outputs.fbdev import sysfs_dir

    d = cfg.display
    if d.output == "fbdev":
        dev = _under(dev_root, d.device)
        if not dev.exists():
            return CheckResult("display", FAIL, f"fbdev: no {d.device}",
                               "connect the screen and reboot: under KMS the framebuffer exists only if a "
                               "screen was connected at boot")
        try:
            info = read_info(d.device, sysfs_root)
        except PanelError as exc:
            return CheckResult("display", FAIL, f"fbdev {d.device}: {exc}",
                               f"check {sysfs_dir(d.device, sysfs_root)} (virtual_size, bits_per_pixel, stride)")
        if not os.access(dev, os.R_OK | os.W_OK):
            return CheckResult("display", FAIL, f"fbdev {d.device}: {info.describe()}, but not writable by this user",
                               "add the panel-player user to the 'video' group")
        if d.size is not None and tuple(d.size) != (info.width, info.height):
            return CheckResult("display", WARN, f"fbdev {d.device}: {info.describe()}; display.size "
                               f"{d.size[0]}x{d.size[1]} is ignored", "remove display.size (fbdev uses the device's)")
        return CheckResult("display", OK, f"fbdev {d.device}: {info.describe()}")
    if d.output == "png":
        problem = _writable_folder(d.path.parent)
        size = f"{d.size[0]}x{d.size[1]}" if d.size else "?"
        if problem:
            return CheckResult("display", FAIL, f"png {d.path}: {problem}", "set display.path in a writable folder")
        return CheckResult("display", OK, f"png: writes {d.path} ({size})")
    if d.output == "ledmatrix":
        led = d.led
        geometry = (f"{led.cols}x{led.rows} panels, chain {led.chain_length}, parallel {led.parallel}: "
                    f"{led.cols * led.chain_length}x{led.rows * led.parallel}")
        from .render.outputs.ledmatrix import board_model, is_pi5, missing_driver, resolve_driver

        model = board_model()
        chosen_driver = resolve_driver(led.driver, model)
        problem = missing_driver(led.driver, model=model)
        if problem is not None:
            # The message's first line says what is missing, the next ones how to install it.
            what, _, how = problem.partition("\n")
            what = what.removeprefix("display.output: ledmatrix: ")
            return CheckResult("display", FAIL, f"ledmatrix ({geometry}): {what}", how or "see docs/install.md")
        chosen = f"driver {chosen_driver}" + (" (auto)" if led.driver == "auto" else "")
        colours = "" if led.colors == "rgb" else f", colours {led.colors}" + (
            f" {led.mono_color}" if led.colors == "mono" else "")
        what = f"ledmatrix ({geometry}, mapping {led.hardware_mapping}, {chosen}{colours})"
        if chosen_driver == "piomatter":
            from .render.outputs.piomatter import wiring_problems

            wiring = wiring_problems(led.rows, led.parallel, led.hardware_mapping)
            if wiring:
                return CheckResult("display", FAIL, f"{what}: {'; '.join(wiring)}", "see docs/install.md")
        if model and (chosen_driver == "piomatter") != is_pi5(model):
            fits = "display.led.driver: piomatter (or auto)" if is_pi5(model) else \
                "display.led.driver: rgbmatrix (or auto)"
            return CheckResult("display", WARN, f"{what}: this board is a {model}, which the {chosen_driver} driver "
                               "does not drive", f"set {fits}")
        return CheckResult("display", OK, what)
    # sdl
    size = f"{d.size[0]}x{d.size[1]}" if d.size else "full screen"
    driver = os.environ.get("SDL_VIDEODRIVER")
    if driver == "dummy":
        return CheckResult("display", WARN, f"sdl ({size}): SDL_VIDEODRIVER=dummy shows nothing",
                           "unset SDL_VIDEODRIVER")
    if driver or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        where = driver or ("wayland" if os.environ.get("WAYLAND_DISPLAY") else "x11")
        return CheckResult("display", OK, f"sdl ({size}) on {where}")
    cards = sorted(p.name for p in (dev_root / "dri").glob("card*")) if (dev_root / "dri").is_dir() else []
    if not cards:
        return CheckResult("display", FAIL, f"sdl ({size}): no desktop and no /dev/dri/card* for kmsdrm",
                           "enable KMS (dtoverlay=vc4-kms-v3d in config.txt) or use display.output fbdev")
    return CheckResult("display", OK, f"sdl ({size}) on kmsdrm: /dev/dri/{', /dev/dri/'.join(cards)}")


# -- font ----------------------------------------------------------------------------


def _char_name(c: str) -> str:
    """The character itself, or its Unicode name when it does not show (spaces)."""
    return unicodedata.name(c, f"U+{ord(c):04X}").lower() if c.isspace() or not c.isprintable() else c


def check_font(cfg: Config) -> CheckResult:
    from .render.fonts import FRENCH_SAMPLE, open_face

    spec = cfg.display.font
    origin = "display.font"
    if spec is None:
        try:
            spec = cfg.layout().font
        except ConfigError as exc:
            return CheckResult("font", FAIL, "; ".join(exc.errors))
        origin = f"layout {cfg.display.layout}"
    name = spec or "pygame's bundled font (FreeSans)"
    try:
        face = open_face(spec)
    except ConfigError as exc:
        return CheckResult("font", FAIL, "; ".join(exc.errors), "choose a TTF/OTF/BDF file that exists")
    missing = face.missing_glyphs(_ASCII_TEXT + FRENCH_SAMPLE)
    if missing:
        shown = " ".join(_char_name(c) for c in missing)
        return CheckResult("font", FAIL, f"{name} ({origin}) has no glyph for {len(missing)} "
                           f"character{'s' if len(missing) > 1 else ''}: {shown}",
                           "choose a font with the French accents, e.g. DejaVu Sans "
                           "(/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf)")
    approx = face.approximated(FRENCH_SAMPLE)
    note = f"; drawn with a stand-in: {', '.join(_char_name(c) for c in approx)}" if approx else ""
    return CheckResult("font", OK, f"{name} ({origin}): every French character{note}")


# -- GPIO back-end -------------------------------------------------------------------

# gpiozero 2's own order when GPIOZERO_PIN_FACTORY is not set.
GPIOZERO_DEFAULT_ORDER = ("lgpio", "rpigpio", "pigpio", "native")


def _import_state(module: str) -> str:
    """``imports``, ``not installed`` or ``does not load (reason)`` for a Python module."""
    import importlib

    try:
        importlib.import_module(module)
    except ModuleNotFoundError:
        return "not installed"
    except Exception as exc:  # a compiled module for another machine, a missing library...
        return f"does not load ({type(exc).__name__}: {exc})"
    return "imports"


def pin_factory() -> tuple[str | None, str, list[str]]:
    """The gpiozero pin factory this process uses: (its class name, or None when none loads;
    why it is that one; the reasons gpiozero gave for passing over the ones before it).

    Choosing it is what gpiozero does on a first device anyway (``Device.ensure_pin_factory``):
    the sensors opened afterwards use the same factory.
    """
    import warnings

    from gpiozero import Device
    from gpiozero.exc import PinFactoryFallback

    name = os.environ.get("GPIOZERO_PIN_FACTORY")
    why = (f"GPIOZERO_PIN_FACTORY={name}" if name
           else "gpiozero's default order: " + ", ".join(GPIOZERO_DEFAULT_ORDER))
    if Device.pin_factory is not None:
        if not name:
            why = "set by this process before the check"
        return type(Device.pin_factory).__name__, why, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PinFactoryFallback)
        try:
            Device.ensure_pin_factory()
            error = None
        except Exception as exc:  # BadPinFactory, or the named factory failing to load
            error = f"{type(exc).__name__}: {exc}"
    fallbacks = [str(w.message) for w in caught if issubclass(w.category, PinFactoryFallback)]
    if error is not None:
        return None, why, [*fallbacks, error]
    return type(Device.pin_factory).__name__, why, fallbacks


def _lgpio_workdir() -> None:
    """lgpio makes its notification pipes (``.lgd-nfy0``...) in the working directory, or in
    ``LG_WD``, when imported: its import fails where that is not writable (the check run by
    hand as the service's user from someone's home folder), and in the state folder they
    would be the running service's own pipes. The check gives it a folder of its own,
    removed when it ends (unless ``LG_WD`` is set already)."""
    if "LG_WD" not in os.environ:
        import atexit
        import shutil

        folder = tempfile.mkdtemp(prefix="panel-player-lgpio-")
        atexit.register(shutil.rmtree, folder, True)
        os.environ["LG_WD"] = folder


def check_gpio(cfg: Config | None = None) -> CheckResult:
    """One line: the active gpiozero pin factory (class name and why), and whether the
    ``lgpio`` and ``spidev`` modules import. gpiozero's ``LGPIOFactory`` is the one a panel
    should use: every Raspberry Pi including the Pi 5, PWM, and hardware SPI through lgpio
    itself (``spidev`` is used only by the other factories)."""
    _lgpio_workdir()
    factory, why, fallbacks = pin_factory()
    spidev = _import_state("spidev")
    if spidev == "not installed":
        spidev += " (LGPIOFactory does not need it)"
    modules = f"lgpio {_import_state('lgpio')}, spidev {spidev}"
    passed = "; ".join(fallbacks)
    needs_pins = cfg is not None and (cfg.sensors.light.type != "none" or cfg.sensors.door is not None)
    if factory is None:
        detail = f"no pin factory loads ({why}: {passed}); {modules}"
        if needs_pins:
            return CheckResult("gpio", FAIL, detail, "on a Raspberry Pi: sudo scripts/install.sh installs lgpio "
                               "into the player's venv; the service's user needs the gpio group")
        return CheckResult("gpio", OK, detail + "; no configured sensor needs one")
    detail = f"{factory} ({why}){': passed over ' + passed if passed else ''}; {modules}"
    if factory in ("LGPIOFactory", "MockFactory"):
        return CheckResult("gpio", OK, detail)
    return CheckResult("gpio", WARN, detail,
                       "lgpio is the pin factory for panels (the others do not know the Raspberry Pi 5; "
                       "native drives SPI in software): sudo scripts/install.sh installs it into the "
                       "player's venv")


# -- sensors -------------------------------------------------------------------------


def _read_within(read: Callable[[], Any], timeout: float) -> tuple[Any, str | None]:
    """``(value, None)`` or ``(None, reason)``; a read still running after ``timeout`` is abandoned."""
    box: list[tuple[Any, str | None]] = []

    def run() -> None:
        try:
            box.append((read(), None))
        except Exception as exc:
            box.append((None, str(exc) or type(exc).__name__))

    worker = threading.Thread(target=run, name="preflight-sensor", daemon=True)
    worker.start()
    worker.join(timeout)
    return box[0] if box else (None, f"no answer within {timeout:g} s")


def check_sensors(cfg: Config, timeout: float) -> list[CheckResult]:
    from .hw.sensors import open_sensors

    s = cfg.sensors
    try:
        sensors = open_sensors(s)
    except Exception as exc:
        return [CheckResult("sensors", FAIL, f"cannot open the sensors: {exc}")]
    out: list[CheckResult] = []
    try:
        for fault in sensors.open_faults:
            name = fault.split(":", 1)[0]
            out.append(CheckResult(f"sensor {name}", FAIL, fault,
                                   "check the wiring, that SPI/GPIO is enabled (raspi-config) and the user's "
                                   "groups (gpio, spi)"))
        if sensors.light is not None:
            value, problem = _read_within(sensors.light.read, timeout)
            light = s.light
            if problem is not None:
                out.append(CheckResult("sensor light", FAIL, f"{light.type}: {problem}", "check the wiring and SPI"))
            elif not light.min_valid <= value <= light.max_valid:
                out.append(CheckResult("sensor light", FAIL, f"{light.type}: reading {value:.3f} outside "
                                       f"[{light.min_valid}, {light.max_valid}]"))
            elif value in (0.0, 1.0):
                out.append(CheckResult("sensor light", WARN, f"{light.type}: reading {value:.0f}, at a rail",
                                       "a cut wire or a short reads 0 or 1: check the divider, then cover "
                                       "and uncover the sensor and check again"))
            else:
                out.append(CheckResult("sensor light", OK, f"{light.type} channel {light.channel}: "
                                       f"reading {value:.3f}"))
        if sensors.cpu_temp is not None:
            value, problem = _read_within(sensors.cpu_temp.read, timeout)
            if problem is not None:
                out.append(CheckResult("sensor cpu_temp", FAIL, problem))
            elif value >= CPU_WARN_C:
                out.append(CheckResult("sensor cpu_temp", WARN, f"{value:.1f} °C: hot",
                                       "check the enclosure's ventilation; the Pi slows down from 80-85 °C"))
            else:
                out.append(CheckResult("sensor cpu_temp", OK, f"{value:.1f} °C"))
        if sensors.door is not None:
            door = sensors.door
            is_open, problem = _read_within(lambda: door.is_open, timeout)
            if problem is not None:
                out.append(CheckResult("sensor door", FAIL, problem))
            elif is_open:
                out.append(CheckResult("sensor door", WARN, "open",
                                       "close the door and check again: it must then read closed"))
            else:
                out.append(CheckResult("sensor door", OK, "closed"))
        if sensors.throttle is not None:
            flags, problem = _read_within(sensors.throttle.read, timeout)
            if problem is not None or flags is None:
                out.append(CheckResult("sensor power", WARN, "the firmware's throttling flags are unreadable"))
            elif flags["under_voltage"]:
                out.append(CheckResult("sensor power", FAIL, "under-voltage now",
                                       "use a 5.1 V supply of the right power and a short, thick cable"))
            elif flags["under_voltage_occurred"] or flags["throttled_occurred"]:
                out.append(CheckResult("sensor power", WARN, "under-voltage or throttling happened since boot",
                                       "check the power supply and the cable"))
            else:
                out.append(CheckResult("sensor power", OK, "no under-voltage, no throttling"))
    finally:
        sensors.close()
    if not out:
        out.append(CheckResult("sensors", OK, "none configured"))
    return out


# -- clock, disk, state folder -------------------------------------------------------


def check_clock(clock: Callable[[], bool | None]) -> CheckResult:
    synced = clock()
    if synced is None:
        return CheckResult("clock", WARN, "synchronisation unknown (neither adjtimex nor timedatectl answered)")
    if not synced:
        return CheckResult("clock", WARN, f"not synchronised yet (now {time.strftime('%Y-%m-%d %H:%M:%S %Z')})",
                           "schedules and alert expiry need the right time: check the network and "
                           "`timedatectl timesync-status`; a Pi without a battery clock syncs after boot")
    return CheckResult("clock", OK, "synchronised (NTP)")


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(state_dir: Path) -> CheckResult:
    from .hw.health import disk_free_mb

    where = _existing(state_dir)
    free = disk_free_mb(where)
    if free is None:
        return CheckResult("disk", WARN, f"free space on {where} unknown")
    detail = f"{free} MB free on {where}"
    if free < DISK_FAIL_MB:
        return CheckResult("disk", FAIL, detail, "free some space: the panel needs room for its assets and state")
    if free < DISK_WARN_MB:
        return CheckResult("disk", WARN, detail, f"under {DISK_WARN_MB} MB: large images will not fit")
    return CheckResult("disk", OK, detail)


def check_state_dir(state_dir: Path) -> CheckResult:
    if not state_dir.exists():
        base = _existing(state_dir)
        if base.is_dir():
            return CheckResult("state folder", WARN, f"{state_dir} does not exist yet",
                               "the service creates it (StateDirectory=); elsewhere create it, owned by the "
                               "player's user")
    problem = _writable_folder(state_dir)
    if problem:
        return CheckResult("state folder", FAIL, problem, "state_dir must be a folder the player's user can write")
    return CheckResult("state folder", OK, f"{state_dir} is writable")


# -- all together --------------------------------------------------------------------


def check_config(path: Path) -> tuple[Config | None, CheckResult]:
    """Load ``path``; the result line lists every error when it is invalid."""
    from .config import load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        n = len(exc.errors)
        return None, CheckResult("config", FAIL, f"{path}: {n} error{'s' if n > 1 else ''}:\n"
                                 + "\n".join(exc.errors), "fix each key named above; nothing else was checked")
    return cfg, CheckResult("config", OK, f"{path}: valid (panel {cfg.panel.id}, output {cfg.display.output}, "
                            f"layout {cfg.display.layout})")


def run_preflight(cfg: Config, *, sysfs_root: Path = Path("/sys"), dev_root: Path = Path("/dev"),
                  timeout: float = 3.0, clock: Callable[[], bool | None] | None = None) -> list[CheckResult]:
    """Every machine check for a valid ``cfg`` (the config line is :func:`check_config`'s).

    ``clock`` answers "is the clock synchronised?" (default :func:`player.hw.health.clock_synced`).
    """
    from .hw.health import clock_synced

    results = [check_display(cfg, sysfs_root, dev_root), check_font(cfg), check_gpio(cfg)]
    results += check_sensors(cfg, timeout)
    results.append(check_broker(cfg, timeout))
    results.append(check_trust(cfg))
    results.append(check_clock(clock or clock_synced))
    results.append(check_disk(cfg.state_dir))
    results.append(check_state_dir(cfg.state_dir))
    return results


def exit_status(results: Sequence[CheckResult]) -> int:
    """0 when every item is ok, 1 when the worst is a warning, 2 when any failed."""
    statuses = {r.status for r in results}
    return EXIT_FAIL if FAIL in statuses else EXIT_WARN if WARN in statuses else EXIT_OK


def _unicode_ok(stream: TextIO) -> bool:
    encoding = getattr(stream, "encoding", None)
    if encoding is None:
        return True  # an in-memory text stream takes any character
    try:
        "✓✗→°é".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def format_report(results: Sequence[CheckResult], unicode: bool = True) -> str:
    """The report: a line per item (status mark, name, detail), fixes indented below, a summary."""
    marks = _SYMBOLS if unicode else _ASCII
    arrow = "→" if unicode else "->"
    width = max((len(r.name) for r in results), default=0)
    lines = []
    for r in results:
        first, *more = r.detail.split("\n")
        lines.append(f"{marks[r.status]} {r.name.ljust(width)}  {first}")
        pad = " " * (len(marks[r.status]) + 1 + width + 2)
        lines += [f"{pad}  {extra}" for extra in more]
        if r.fix and r.status != OK:
            first_fix, *more_fix = r.fix.split("\n")
            lines.append(f"{pad}{arrow} {first_fix}")
            lines += [f"{pad}{' ' * len(arrow)} {extra}" for extra in more_fix]
    counts = {s: sum(1 for r in results if r.status == s) for s in (OK, WARN, FAIL)}

    def plural(n: int, word: str) -> str:
        return f"{n} {word}{'s' if n != 1 else ''}"

    code = exit_status(results)
    verdict = {EXIT_OK: "all good", EXIT_WARN: "usable, see the warnings", EXIT_FAIL: "NOT ready"}[code]
    lines.append(f"{plural(len(results), 'check')}: {counts[OK]} ok, {plural(counts[WARN], 'warning')}, "
                 f"{plural(counts[FAIL], 'failure')}: {verdict} (exit {code})")
    text = "\n".join(lines) + "\n"
    if not unicode:
        text = text.encode("ascii", "replace").decode("ascii")
    return text


def print_report(results: Sequence[CheckResult], stream: TextIO | None = None) -> int:
    """Write :func:`format_report` to ``stream`` (ASCII when it cannot take UTF-8); returns the exit status."""
    stream = stream or sys.stdout
    stream.write(format_report(results, _unicode_ok(stream)))
    stream.flush()
    return exit_status(results)


def cmd_preflight(path: Path, *, timeout: float = 3.0, sysfs_root: Path = Path("/sys"),
                  dev_root: Path = Path("/dev"), stream: TextIO | None = None) -> int:
    """``panel-player check --config FILE --preflight``: the report, and its exit status."""
    cfg, line = check_config(path)
    results = [line]
    if cfg is not None:
        results += run_preflight(cfg, sysfs_root=sysfs_root, dev_root=dev_root, timeout=timeout)
    return print_report(results, stream)


def add_preflight_arguments(check: Any) -> None:
    """Add ``--preflight`` and ``--timeout`` to the ``check`` sub-command's parser."""
    check.add_argument("--preflight", action="store_true",
                       help="also check this machine: display, font, gpio, sensors, broker, trust, clock, disk, "
                            "state folder "
                            "(exit 0 all ok, 1 warnings only, 2 any failure)")
    check.add_argument("--timeout", type=float, default=3.0, metavar="S",
                       help="seconds each network or sensor step may take (default 3)")


def main(argv: list[str] | None = None) -> int:
    """``python -m player.preflight --config FILE``: the same as ``check --preflight``."""
    import argparse

    parser = argparse.ArgumentParser(prog="panel-player check --preflight")
    parser.add_argument("--config", required=True, type=Path)
    add_preflight_arguments(parser)
    args = parser.parse_args(argv)
    return cmd_preflight(args.config, timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
