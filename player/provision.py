"""``panel-player provision``: write a validated config from command-line flags.

An installer on a ladder types one command instead of editing YAML::

    sudo panel-player provision --id mairie-entree --group centre-ville \\
        --broker mqtt.ville.example:8883 --tls-ca ca.crt \\
        --username mairie-entree --password-stdin --output fbdev \\
        --trust-key central-2026.pub

Everything is validated with the player's own config loader before anything
is written; errors name the flag and the config key
(``--broker: mqtt.port: expected an integer, got "abc"``) and exit with
status 2, leaving the previous config untouched. Secrets (the MQTT password,
the TLS client key) are copied into files next to the config, mode 0600,
owned by the service user; the config itself is 0640 root:panel-player.
The public keys of ``--trust-key`` (the central server's, whose signatures
the panel accepts) go to ``keys/KID.pub``, 0644 and owned by root like the
config: they decide who may command the panel, so the service must not be
able to change them.
Every file is replaced atomically (temporary file, fsync, rename, fsync of
the folder), so a power cut leaves the old or the new file, never half.
"""

from __future__ import annotations

import argparse
import copy
import getpass
import json
import os
import pwd
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from . import __version__
from .errors import ConfigError
from .store import fsync_dir

DEFAULT_CONFIG = Path("/etc/panel-player/config.yaml")
SERVICE_USER = "panel-player"
PASSWORD_NAME = "mqtt-password"
TLS_NAMES = {"ca_file": "ca.crt", "cert_file": "client.crt", "key_file": "client.key"}
KEYS_DIR = "keys"  # trusted public keys, next to the config: keys/KID.pub
REPORT_NAME = "boot-import.json"  # written by the boot-partition import, cleared by provision
CONFIG_MODE = 0o640
SECRET_MODE = 0o600
PUBLIC_MODE = 0o644
EXIT_INVALID = 2

SMALL_PANEL_PX = 128
"""A panel whose smaller side is at most this many pixels is an LED matrix (or as small as
one): it gets the ``led-matrix`` layout, its pixel fonts and no anti-aliasing."""


def layout_for(output: str, size: tuple[int, int] | None, rotation: int = 0) -> str:
    """The built-in layout that fits a panel, from its output, size and mounting.

    ``led-matrix`` for a ``ledmatrix`` output or a panel whose smaller side is at most
    :data:`SMALL_PANEL_PX`; ``portrait`` when the picture is taller than wide (``size``
    is the output's, ``rotation`` 90 or 270 turns it); ``landscape`` otherwise. An
    output whose size is read from the device (fbdev) is taken as a landscape screen,
    turned upright by a rotation of 90 or 270::

        layout_for("ledmatrix", (128, 64))          # "led-matrix"
        layout_for("png", (1080, 1920))             # "portrait"
        layout_for("fbdev", None, rotation=90)      # "portrait"
    """
    if output == "ledmatrix":
        return "led-matrix"
    turned = rotation in (90, 270)
    if size is None:
        return "portrait" if turned else "landscape"
    w, h = (size[1], size[0]) if turned else size
    if min(w, h) <= SMALL_PANEL_PX:
        return "led-matrix"
    return "portrait" if h > w else "landscape"


# Config key prefix -> the flag that sets it, so an error names what the installer typed.
_FLAGS: tuple[tuple[str, str], ...] = (
    ("panel.id", "--id"),
    ("panel.name", "--name"),
    ("panel.groups", "--group"),
    ("panel.timezone", "--timezone"),
    ("panel.location.lat", "--lat"),
    ("panel.location.lon", "--lon"),
    ("panel.location", "--lat/--lon"),
    ("display.output", "--output"),
    ("display.size", "--size"),
    ("display.rotation", "--rotation"),
    ("display.layout", "--layout"),
    ("display.device", "--device"),
    ("display.path", "--png-path"),
    ("mqtt.host", "--broker"),
    ("mqtt.port", "--broker"),
    ("mqtt.prefix", "--prefix"),
    ("mqtt.username", "--username"),
    ("mqtt.password_file", "--password-file/--password-stdin"),
    ("mqtt.tls.ca_file", "--tls-ca"),
    ("mqtt.tls.cert_file", "--tls-cert"),
    ("mqtt.tls.key_file", "--tls-key"),
    ("mqtt.tls", "--tls-cert/--tls-key"),
    ("sensors.light.type", "--light-sensor"),
    ("sensors.light.channel", "--light-channel"),
    ("sensors.light.pin", "--light-pin"),
    ("sensors.door.pin", "--door-pin"),
    ("state_dir", "--state-dir"),
    ("trust.keys", "--trust-key"),
    ("trust.require", "--trust-require"),
)


def flag_for(error: str) -> str:
    """Prefix a config error (``key.path: message``) with the flag that set that key."""
    key = error.split(":", 1)[0]
    for prefix, flag in sorted(_FLAGS, key=lambda item: -len(item[0])):
        if key == prefix or key.startswith((prefix + ".", prefix + "[")):
            return f"{flag}: {error}"
    return error


# -- files ---------------------------------------------------------------------

@dataclass(frozen=True)
class Owner:
    """The service account that must read the config and own its secrets."""

    name: str
    uid: int
    gid: int


def find_owner(name: str | None) -> tuple[Owner | None, str | None]:
    """``(owner, error)`` for ``--owner``; ``None`` picks ``panel-player`` when it exists and we are root."""
    wanted = name or SERVICE_USER
    try:
        entry = pwd.getpwnam(wanted)
    except KeyError:
        return None, (f'--owner: no such user "{wanted}"' if name else None)
    if os.geteuid() != 0:
        if entry.pw_uid == os.geteuid():
            return Owner(wanted, entry.pw_uid, entry.pw_gid), None
        return None, (f'--owner: only root can give files to "{wanted}"' if name else None)
    return Owner(wanted, entry.pw_uid, entry.pw_gid), None


def write_file(path: Path, data: bytes, mode: int, uid: int = -1, gid: int = -1) -> None:
    """Replace ``path`` atomically with ``data``, already at ``mode`` and owner when it appears.

    ``-1`` keeps the current user or group. Mode and owner are set on the
    temporary file before the rename, so a secret is never readable by others
    even for an instant.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            if uid != -1 or gid != -1:
                os.fchown(handle.fileno(), uid, gid)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def ensure_config_dir(folder: Path, owner: Owner | None) -> None:
    """Create the config folder (0750, group of the service user) when it is missing."""
    if folder.is_dir():
        return
    folder.mkdir(mode=0o750, parents=True)
    if owner is not None:
        os.chown(folder, -1, owner.gid)


@dataclass
class Secret:
    """A file to install next to the config.

    ``service_owned``: given to the service user (its secrets); otherwise it stays
    root's, readable by the service's group, like the config (trusted keys).
    """

    path: Path
    data: bytes
    mode: int
    service_owned: bool = True


def trusted_key_file(source: Path, folder: Path) -> tuple[Secret, str]:
    """The ``keys/KID.pub`` to install in ``folder`` for the public key file ``source``, and its id.

    Raises :class:`ConfigError` (one message, naming ``source``) when ``source`` is
    not an Ed25519 public JWK, or is a private key (a ``.key`` file: it holds
    ``d``, and a panel must never hold the server's private key). The installed
    file holds only ``kty``, ``crv``, ``kid`` and ``x``.
    """
    from .trust import b64url, load_public_key

    raw, kid = load_public_key(source)
    if "d" in json.loads(source.read_text(encoding="utf-8")):
        raise ConfigError([f"{source}: a private key (it holds \"d\"): give the .pub file made with it; "
                           "the private key stays on the central server"])
    jwk = {"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64url(raw)}
    data = (json.dumps(jwk) + "\n").encode("utf-8")
    return Secret(folder / KEYS_DIR / f"{kid}.pub", data, PUBLIC_MODE, service_owned=False), kid


@dataclass
class Plan:
    """What provisioning will write: the config data and its companion files."""

    data: dict[str, Any]
    files: list[Secret] = field(default_factory=list)


class _Dumper(yaml.SafeDumper):
    """Block style for mappings (easy to edit by hand), flow style for short lists: ``size: [1920, 1080]``."""


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    flow = all(not isinstance(v, (dict, list)) for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def config_text(data: dict[str, Any], how: str, target: Path) -> str:
    """The YAML of ``data`` under a comment saying what wrote it and when."""
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = str(os.geteuid())
    header = (
        f"# panel-player config, written by {how} (panel-player {__version__})\n"
        f"# at {now} by {who} on {socket.gethostname()}.\n"
        f"# Check it after any edit: panel-player check --config {target}\n"
        "# Every key is described in docs/config.md. Secrets are in the files named\n"
        "# below (mode 0600), never in this file.\n"
    )
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
                     width=100)
    return header + body


def install(plan: Plan, target: Path, owner: Owner | None, how: str) -> list[Path]:
    """Write the companion files, then the config (last, so a failure leaves the old one in use).

    Returns the paths written, config last. Clears a stale boot-import report.
    """
    ensure_config_dir(target.parent, owner)
    written = []
    for secret in plan.files:
        ensure_config_dir(secret.path.parent, owner)  # keys/
        uid, gid = ((owner.uid, owner.gid) if secret.service_owned else (-1, owner.gid)) if owner else (-1, -1)
        write_file(secret.path, secret.data, secret.mode, uid, gid)
        written.append(secret.path)
    text = config_text(plan.data, how, target)
    write_file(target, text.encode("utf-8"), CONFIG_MODE, -1, owner.gid if owner else -1)
    written.append(target)
    report = target.parent / REPORT_NAME
    if report.exists():
        report.unlink()
        fsync_dir(target.parent)
    return written


# -- flags ---------------------------------------------------------------------

def add_provision_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``provision`` to ``panel-player``'s sub-commands; ``args.handler`` is :func:`cmd_provision`."""
    p = subparsers.add_parser(
        "provision", help="write a validated config from flags",
        description="Write a validated panel config from flags. Nothing is written unless every value is "
                    "valid; the previous config then stays in place. Secrets go to 0600 files next to it.")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"the config to write (default {DEFAULT_CONFIG})")
    p.add_argument("--owner", help=f"service user owning the secrets (default {SERVICE_USER} when it exists)")
    g = p.add_argument_group("panel")
    g.add_argument("--id", required=True, help="panel id: lowercase letters, digits, dashes")
    g.add_argument("--name", help="human name shown on the test card")
    g.add_argument("--group", action="append", default=[], help="a group (repeat; order = precedence)")
    g.add_argument("--timezone", help="IANA name such as Europe/Paris (default: the system's)")
    g.add_argument("--lat", type=float, help="latitude, for CAP alert areas")
    g.add_argument("--lon", type=float, help="longitude, for CAP alert areas")
    g.add_argument("--state-dir", help="state folder (default /var/lib/panel-player)")
    d = p.add_argument_group("display")
    d.add_argument("--output", choices=("fbdev", "sdl", "png", "ledmatrix"), default="fbdev",
                   help="default fbdev (an HDMI or DSI screen)")
    d.add_argument("--size", help="WIDTHxHEIGHT; required for sdl and png")
    d.add_argument("--rotation", type=int, help="0, 90, 180 or 270")
    d.add_argument("--layout", help="built-in layout name or a layout YAML path (default: the one that fits "
                                    "the panel: led-matrix for LED matrices and panels 128 px or less across, "
                                    "portrait when taller than wide, else landscape)")
    d.add_argument("--device", help="fbdev device (default /dev/fb0)")
    d.add_argument("--png-path", help="png output: the picture file")
    m = p.add_argument_group("broker")
    m.add_argument("--broker", help="HOST[:PORT] of the MQTT broker ([v6addr]:PORT for IPv6)")
    m.add_argument("--no-broker", action="store_true", help="run without MQTT (local content only)")
    m.add_argument("--prefix", help="topic root (default signage)")
    m.add_argument("--username")
    pw = m.add_mutually_exclusive_group()
    pw.add_argument("--password-file", type=Path, help="read the MQTT password from this file")
    pw.add_argument("--password-stdin", action="store_true", help="read the MQTT password from standard input")
    m.add_argument("--tls-ca", type=Path, help="CA certificate (PEM); enables TLS")
    m.add_argument("--tls-cert", type=Path, help="client certificate (PEM)")
    m.add_argument("--tls-key", type=Path, help="client key (PEM); stored 0600")
    s = p.add_argument_group("sensors")
    s.add_argument("--light-sensor", choices=("none", "mcp3008", "mcp3002", "lightsensor"),
                   help="ambient light sensor type")
    s.add_argument("--light-channel", type=int, help="ADC channel of the light sensor")
    s.add_argument("--light-pin", help="GPIO pin of a lightsensor (LDR and capacitor)")
    s.add_argument("--door-pin", help="GPIO pin of the door switch")
    t = p.add_argument_group("signed messages")
    t.add_argument("--trust-key", type=Path, action="append", default=[], metavar="FILE.pub",
                   help="a public key (made by `panelctl keys new`) whose signatures the panel accepts; "
                        "repeat during a key rotation. Installed as keys/KID.pub next to the config")
    t.add_argument("--trust-require", metavar="KINDS",
                   help="which messages must be signed: some of alerts,playlists,commands, or none "
                        "(default: all three once a --trust-key is given)")
    p.set_defaults(handler=cmd_provision)
    return p


def _pin(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def parse_broker(text: str) -> tuple[str, int | str | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address → (host, port or None).

    A port that is not a number is returned as text so the config check reports it.
    """
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, None
    if port is None:
        return host, None
    return host, int(port) if port.isdigit() else port


def _read_secret(path: Path, flag: str, errors: list[str]) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        errors.append(f"{flag}: cannot read {path}: {exc.strerror or exc}")
        return None
    if not data.strip():
        errors.append(f"{flag}: {path} is empty")
        return None
    return data


def build_plan(args: argparse.Namespace, stdin: Any = None) -> tuple[Plan, dict[str, Any], list[str]]:
    """From the flags: the plan to write, the data to validate it with, and flag errors.

    The validation data names the TLS files where they are now (the config
    check looks for them); the plan names them where they will be installed.
    """
    errors: list[str] = []
    folder = Path(args.config).absolute().parent
    panel: dict[str, Any] = {"id": args.id}
    if args.name:
        panel["name"] = args.name
    if args.group:
        panel["groups"] = list(args.group)
    if args.timezone:
        panel["timezone"] = args.timezone
    if (args.lat is None) != (args.lon is None):
        errors.append("--lat/--lon: give both or neither")
    elif args.lat is not None:
        panel["location"] = {"lat": args.lat, "lon": args.lon}
    data: dict[str, Any] = {"panel": panel}

    display: dict[str, Any] = {"output": args.output}
    if args.size:
        w, sep, h = args.size.lower().partition("x")
        if sep and w.isdigit() and h.isdigit():
            display["size"] = [int(w), int(h)]
        else:
            errors.append(f"--size: expected WIDTHxHEIGHT such as 1920x1080, got {args.size!r}")
    for flag, key in (("rotation", "rotation"), ("layout", "layout"), ("device", "device"), ("png_path", "path")):
        if getattr(args, flag) is not None:
            display[key] = getattr(args, flag)
    if args.layout is None:
        size = display.get("size")
        rotation = args.rotation if args.rotation in (0, 90, 180, 270) else 0
        display["layout"] = layout_for(args.output, (size[0], size[1]) if size else None, rotation)
    data["display"] = display

    mqtt: dict[str, Any] = {}
    files: list[Secret] = []
    if args.no_broker:
        mqtt["enabled"] = False
        if args.broker:
            errors.append("--no-broker: conflicts with --broker")
    if args.broker:
        host, port = parse_broker(args.broker)
        mqtt["host"] = host
        if port is not None:
            mqtt["port"] = port
    if args.prefix:
        mqtt["prefix"] = args.prefix
    if args.username:
        mqtt["username"] = args.username
    password: bytes | None = None
    if args.password_file is not None:
        password = _read_secret(args.password_file, "--password-file", errors)
    elif args.password_stdin:
        text = (stdin or sys.stdin).read()
        password = text.encode("utf-8") if isinstance(text, str) else text
        if not password or not password.strip():
            errors.append("--password-stdin: no password on standard input")
            password = None
    if password is not None:
        password = password.rstrip(b"\r\n")
        files.append(Secret(folder / PASSWORD_NAME, password + b"\n", SECRET_MODE))
        mqtt["password_file"] = str(folder / PASSWORD_NAME)
    check_tls: dict[str, str] = {}
    final_tls: dict[str, str] = {}
    for key, flag, source in (("ca_file", "--tls-ca", args.tls_ca), ("cert_file", "--tls-cert", args.tls_cert),
                              ("key_file", "--tls-key", args.tls_key)):
        if source is None:
            continue
        blob = _read_secret(source, flag, errors)
        check_tls[key] = str(source)
        final_tls[key] = str(folder / TLS_NAMES[key])
        if blob is not None:
            files.append(Secret(folder / TLS_NAMES[key], blob, SECRET_MODE if key == "key_file" else PUBLIC_MODE))
    if mqtt or final_tls:
        data["mqtt"] = mqtt
    check = copy.deepcopy(data)
    if final_tls:
        mqtt["tls"] = final_tls
        check.setdefault("mqtt", {})["tls"] = check_tls

    light: dict[str, Any] = {}
    if args.light_sensor:
        light["type"] = args.light_sensor
    if args.light_channel is not None:
        light["channel"] = args.light_channel
    if args.light_pin is not None:
        light["pin"] = _pin(args.light_pin)
    sensors: dict[str, Any] = {}
    if light:
        sensors["light"] = light
    if args.door_pin is not None:
        sensors["door"] = {"pin": _pin(args.door_pin)}
    if args.state_dir:
        data["state_dir"] = check["state_dir"] = args.state_dir
    if sensors:
        data["sensors"] = sensors
        check["sensors"] = copy.deepcopy(sensors)
    _trust_flags(args, folder, data, check, files, errors)
    return Plan(data, files), check, errors


def _trust_flags(args: argparse.Namespace, folder: Path, data: dict[str, Any], check: dict[str, Any],
                 files: list[Secret], errors: list[str]) -> None:
    """``--trust-key`` and ``--trust-require`` into ``trust:``; the check data names the keys where they are now."""
    installed: list[str] = []
    given: list[str] = []
    kids: dict[str, Path] = {}
    for source in args.trust_key:
        try:
            secret, kid = trusted_key_file(source, folder)
        except ConfigError as exc:
            errors += [f"--trust-key: {err}" for err in exc.errors]
            continue
        if kid in kids:
            errors.append(f'--trust-key: {source} and {kids[kid]} both hold key id "{kid}"')
            continue
        kids[kid] = source
        files.append(secret)
        installed.append(str(secret.path))
        given.append(str(source))
    trust: dict[str, Any] = {}
    check_trust: dict[str, Any] = {}
    if args.trust_key:
        trust["keys"], check_trust["keys"] = installed, given
    if args.trust_require is not None:
        kinds = [k.strip() for k in args.trust_require.split(",") if k.strip()]
        if kinds == ["none"]:
            kinds = []
        elif not kinds:
            errors.append("--trust-require: expected some of alerts,playlists,commands, or none")
        trust["require"] = check_trust["require"] = kinds
    if trust:
        data["trust"], check["trust"] = trust, check_trust


def validate(check: dict[str, Any]) -> list[str]:
    """Every problem the player's own config loader finds, each prefixed with its flag."""
    from .config import config_from_data

    try:
        config_from_data(check)
    except ConfigError as exc:
        return [flag_for(err) for err in exc.errors]
    return []


def cmd_provision(args: argparse.Namespace, stdin: Any = None) -> int:
    """Run ``panel-player provision``: 0 when written, 2 when a flag is invalid (nothing written)."""
    target = Path(args.config).absolute()
    owner, owner_error = find_owner(args.owner)
    plan, check, errors = build_plan(args, stdin)
    if owner_error:
        errors.insert(0, owner_error)
    flagged = {err.split(":", 1)[0] for err in errors}
    errors += [err for err in validate(check) if err.split(":", 1)[0] not in flagged]
    if errors:
        print(f"panel-player provision: nothing written, {len(errors)} error{'s' if len(errors) > 1 else ''}:",
              file=sys.stderr)
        for err in errors:
            print(f"  {err}", file=sys.stderr)
        if target.exists():
            print(f"The previous config {target} is unchanged.", file=sys.stderr)
        return EXIT_INVALID
    try:
        written = install(plan, target, owner, "`panel-player provision`")
    except OSError as exc:
        print(f"panel-player provision: cannot write {exc.filename or target}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    given = {f.path for f in plan.files if f.service_owned}
    for path in written:
        mode = path.stat().st_mode & 0o777
        print(f"wrote {path} (mode {mode:04o}{', owner ' + owner.name if owner and path in given else ''})")
    print(f"Check it: panel-player check --config {target}")
    if target == DEFAULT_CONFIG:
        print("Apply it: sudo systemctl restart panel-player")
    return 0
