"""panelctl: the central-server and maintenance tool for panel-player panels.

Exit status: 0 success; 1 failure, refusal by a panel or time-out; 2 usage or
validation error (nothing was published).

Example::

    panelctl --broker mqtt.ville.example push hiver.yaml --group centre-ville
    panelctl status
    panelctl cmd mairie-entree identify --seconds 60
    panelctl wake mairie-entree --seconds 600
    panelctl alert send --id crue-1 --all --level critical --title "ALERTE CRUE" --ttl 3600
    panelctl preview hiver.yaml --size 128x64 --led -o hiver.png
    panelctl release build --key release-2026.key --out dist/
    panelctl update dist/panel-player-0.2.0.bundle --all --canary 2 --key release-2026.key
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from .. import __version__
from ..errors import ValidationError
from ..net.protocol import CommandError, parse_command
from ..net.topics import Topics
from . import alerts as ctl_alerts
from ..errors import ConfigError
from ..trust import b64url
from . import client as ctl_client
from .client import CtlClient, CtlError
from .signing import Signer, seal
from .preview import add_preview_parser
from .push import load_document, prepare_playlist, push
from .update import _positive, add_release_parsers
from .settings import CtlSettings, load_settings
from .status import FLEET_COLUMNS, fleet_rows, format_table, note_panels, read_fleet, row_cells

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVENT_TYPES = ("playlist.applied", "playlist.rejected", "alert.displayed", "alert.ended", "alert.rejected",
               "command.done", "command.failed", "error", "online")


# -- parser -----------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    """Connection flags, accepted before or after the sub-command."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("broker connection (flags override the config file)")
    s = argparse.SUPPRESS
    g.add_argument("--config", metavar="FILE", default=s,
                   help="YAML settings (default: $PANELCTL_CONFIG, else ~/.config/panelctl.yaml)")
    g.add_argument("--broker", metavar="HOST[:PORT]", default=s, help="default 127.0.0.1:1883 (8883 with TLS)")
    g.add_argument("--protocol", choices=("5", "3.1.1", "auto"), default=s,
                   help="MQTT version (default auto: 5, else 3.1.1 when the broker refuses 5)")
    g.add_argument("--prefix", default=s, help="topic root, the panels' mqtt.prefix (default signage)")
    g.add_argument("--username", default=s)
    g.add_argument("--password-file", metavar="FILE", default=s, help="its first line is the password")
    g.add_argument("--tls", action="store_true", default=s, help="use TLS with the system's CA bundle")
    g.add_argument("--tls-ca", metavar="FILE", default=s, help="CA certificate (turns TLS on)")
    g.add_argument("--tls-cert", metavar="FILE", default=s, help="client certificate")
    g.add_argument("--tls-key", metavar="FILE", default=s, help="client key")
    g.add_argument("--key", metavar="FILE", default=s,
                   help="sign every alert, cancel, playlist and command with this private key "
                        "(NAME.key from 'panelctl keys new'; default: $PANELCTL_KEY)")
    return p


def _targets(p: argparse.ArgumentParser, everyone: bool = False) -> None:
    p.add_argument("--panel", action="append", metavar="ID", help="a panel id (repeatable)")
    p.add_argument("--group", action="append", metavar="G", help="a group (repeatable)")
    if everyone:
        p.add_argument("--all", action="store_true", dest="everyone", help="every panel")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="panelctl", parents=[common],
        description="Central-server and maintenance tool for panel-player panels (MQTT).",
        epilog="Exit status: 0 success, 1 failure or time-out, 2 usage or validation error.")
    parser.add_argument("--version", action="version", version=f"panelctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_text: str, **kw: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_text, description=help_text, **kw)

    p = add("push", "Validate a playlist (YAML or JSON), upload its images, publish it retained "
                    "and wait for the panels to apply it.",
            epilog="An image slide may give 'file: path.png' instead of 'asset'; a missing "
                   "'version' becomes the current time in seconds.")
    p.add_argument("file", type=Path, metavar="FILE")
    _targets(p)
    p.add_argument("--timeout", type=_positive, default=60.0, help="seconds to wait for answers (default 60)")
    p.add_argument("--no-wait", action="store_true", help="publish and return at once")
    p.set_defaults(func=cmd_push)

    p = add("status", "The fleet table from the retained online and heartbeat messages.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--interval", type=_positive, default=30.0,
                   help="the panels' heartbeat.interval in seconds (default 30)")
    p.add_argument("--stale-factor", type=_positive, default=3.0,
                   help="a heartbeat older than this many intervals is stale (default 3)")
    p.add_argument("--listen", type=_positive, metavar="S", default=0.0,
                   help="also listen S seconds for live heartbeats (finds panels the fleet index "
                        "does not list yet, on a broker that keeps retained messages from wildcards)")
    p.set_defaults(func=cmd_status)

    p = add("watch", "Print the panels' events and online changes as they come, until Ctrl-C.")
    p.add_argument("--panel", metavar="ID", help="only this panel")
    p.add_argument("--types", metavar="A,B", help=f"only these types ({', '.join(EVENT_TYPES)})")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--count", type=int, metavar="N", help="stop after N lines")
    p.add_argument("--seconds", type=_positive, metavar="S", help="stop after S seconds")
    p.set_defaults(func=cmd_watch)

    p = add("screenshot", "Save a PNG of what a panel shows.")
    p.add_argument("panel", metavar="ID")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    p.add_argument("--timeout", type=_positive, default=10.0, help="seconds (default 10)")
    p.set_defaults(func=cmd_screenshot)

    p = add("cmd", "Send a command to a panel and wait for its answer.")
    p.add_argument("panel", metavar="ID")
    leaf = argparse.ArgumentParser(add_help=False)
    leaf.add_argument("--timeout", type=_positive, default=10.0, help="seconds to wait for the answer (default 10)")
    cmds = p.add_subparsers(dest="cmd", metavar="CMD", required=True)

    def add_cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        return cmds.add_parser(name, parents=[common, leaf], help=help_text, description=help_text)

    c = add_cmd("identify", "show the panel id, addresses and connection state on screen")
    c.add_argument("--seconds", type=int, help="how long (default: the panel's, 30)")
    add_cmd("reload", "re-read the config and show the playlist again")
    add_cmd("restart", "restart the player (systemd starts it again)")
    c = add_cmd("brightness", "manual brightness override, 0 to 100 percent")
    c.add_argument("value", type=int, metavar="VALUE")
    c.add_argument("--seconds", type=int, help="override length (default: until the next one)")
    for name, (help_text, seconds_help) in SCREEN_COMMANDS.items():
        add_cmd(name, help_text).add_argument("--seconds", type=int, help=seconds_help)
    p.set_defaults(func=cmd_cmd)

    for name, (help_text, seconds_help) in SCREEN_COMMANDS.items():
        p = add(name, help_text[0].upper() + help_text[1:] + ".")
        p.add_argument("panel", metavar="ID")
        p.add_argument("--seconds", type=int, help=seconds_help)
        p.add_argument("--timeout", type=_positive, default=10.0, help="seconds to wait for the answer (default 10)")
        p.set_defaults(func=cmd_cmd, cmd=name)

    add_preview_parser(add)

    p = add("keys", "Make signing keys.")
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    k = ksub.add_parser("new", parents=[common], help="write NAME.key (private, mode 0600) and NAME.pub",
                        description="Write NAME.key (the private key, mode 0600: keep it on the central server) "
                                    "and NAME.pub (the public key, for the panels' trust.keys). NAME is the key id.")
    k.add_argument("name", metavar="NAME")
    k.add_argument("--dir", type=Path, default=Path("."), help="where to write them (default: here)")
    k.set_defaults(func=cmd_keys_new)

    p = add("alert", "Send, cancel or list alerts.")
    asub = p.add_subparsers(dest="alert_command", metavar="ACTION", required=True)
    a = asub.add_parser("send", parents=[common], help="send (or update) an alert, retained",
                        description="Send (or update) an alert as JSON, or a CAP 1.2 file with --cap.")
    a.add_argument("--id", required=True, dest="alert_id", metavar="A", help="the alert id (last topic level)")
    _targets(a, everyone=True)
    a.add_argument("--level", choices=("critical", "warning", "info"))
    a.add_argument("--title")
    a.add_argument("--body")
    ends = a.add_mutually_exclusive_group()
    ends.add_argument("--ttl", type=_positive, metavar="S", help="seconds from receipt")
    ends.add_argument("--expires", metavar="ISO", help="e.g. 2026-11-26T12:00:00+01:00")
    a.add_argument("--asset", type=Path, metavar="FILE", help="an image shown with the alert")
    a.add_argument("--exercise", action="store_true", help="a drill (shown only where allowed)")
    a.add_argument("--cap", type=Path, metavar="FILE", help="send this CAP 1.2 XML file as is")
    a.add_argument("--timeout", type=_positive, default=10.0, help="seconds to wait for alert.displayed")
    a.add_argument("--no-wait", action="store_true", help="publish and return at once")
    a.set_defaults(func=cmd_alert_send)
    a = asub.add_parser("cancel", parents=[common], help="cancel an alert (empty retained payload)")
    a.add_argument("--id", required=True, dest="alert_id", metavar="A")
    _targets(a, everyone=True)
    a.set_defaults(func=cmd_alert_cancel)
    a = asub.add_parser("list", parents=[common], help="the alerts retained on the broker")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_alert_list)

    add_release_parsers(add, common)
    add_console_parser(add, common)
    return parser


# -- helpers ------------------------------------------------------------------------------


class Io:
    """Where a command writes (``sys.stdout``/``sys.stderr`` unless a test gives others)."""

    def __init__(self, out: IO[str] | None = None, err: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr


def settings_from(args: argparse.Namespace) -> CtlSettings:
    overrides = {key: getattr(args, key, None) for key in
                 ("broker", "protocol", "prefix", "username", "password_file", "tls", "tls_ca", "tls_cert", "tls_key", "key")}
    return load_settings(getattr(args, "config", None), overrides)


def signer_of(s: CtlSettings) -> Signer | None:
    """The signer of ``--key`` / ``$PANELCTL_KEY`` / ``key_file``, or None (unsigned)."""
    return Signer.from_file(s.key_file) if s.key_file is not None else None


def request_id() -> str:
    return f"ctl-{uuid.uuid4().hex[:12]}"


def _need_targets(args: argparse.Namespace, everyone: bool = False) -> None:
    if not (args.panel or args.group or (everyone and args.everyone)):
        more = " or --all" if everyone else ""
        raise ValidationError([f"give at least one target: --panel ID, --group G{more}"], "arguments")


def _check_targets(topics: Topics, args: argparse.Namespace) -> None:
    for p in args.panel or []:
        topics.panel_playlist_of(p)
    for g in args.group or []:
        topics.group_playlist(g)


# -- commands -----------------------------------------------------------------------------


def cmd_push(args: argparse.Namespace, s: CtlSettings, io: Io) -> int:
    _need_targets(args)
    _check_targets(Topics(s.prefix), args)
    data = load_document(args.file)
    prepared = prepare_playlist(data, args.file.parent, max_asset_bytes=s.max_asset_kb * 1024,
                                max_message_bytes=s.max_message_kb * 1024)
    signer = signer_of(s)
    with CtlClient(s) as client:
        return push(client, s.prefix, prepared, panels=args.panel or [], groups=args.group or [],
                    timeout=args.timeout, wait=not args.no_wait, max_asset_bytes=s.max_asset_kb * 1024,
                    out=io.out, err=io.err, signer=signer, max_message_bytes=s.max_message_kb * 1024)


def cmd_status(args: argparse.Namespace, s: CtlSettings, io: Io) -> int:
    with CtlClient(s) as client:
        fleet = read_fleet(client, s.prefix, io.err, listen=args.listen)
    rows = fleet_rows(fleet, now=datetime.now(timezone.utc), interval=args.interval,
                      stale_factor=args.stale_factor)
    if args.json:
        io.out.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    elif not rows:
        io.out.write(f"no panel has reported under {s.prefix}/panels/ on {s.address}\n")
    else:
        io.out.write(format_table(FLEET_COLUMNS, [row_cells(r) for r in rows]) + "\n")
    return 0


def _watch_line(ts: str, panel: str, kind: str, event: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        plain = isinstance(v, (int, float)) and not isinstance(v, bool)
        return str(v) if plain else json.dumps(v, ensure_ascii=False)

    rest = " ".join(f"{k}={value(v)}" for k, v in event.items() if k not in ("type", "ts"))
    return f"{ts}  {panel}  {kind}  {rest}".rstrip()


def cmd_watch(args: argparse.Namespace, s: CtlSettings, io: Io) -> int:
    topics = Topics(s.prefix)
    panel = args.panel
    types = {t.strip() for t in args.types.split(",") if t.strip()} if args.types else None
    if panel is not None:
        topics.events_of(panel)
    filters = ([topics.events_of(panel), topics.online_of(panel)] if panel
               else [topics.all_panels("events"), topics.all_panels("online")])
    head = f"{s.prefix}/panels/"
    shown = 0
    end = time.monotonic() + args.seconds if args.seconds else None
    with CtlClient(s) as client:
        client.subscribe(filters)
        io.err.write(f"watching {', '.join(filters)} on {s.address} (Ctrl-C to stop)\n")
        io.err.flush()
        try:
            while args.count is None or shown < args.count:
                msg = client.next_message(end if end is not None else time.monotonic() + 3600)
                if msg is None:
                    if end is not None and time.monotonic() >= end:
                        break
                    continue
                if msg.retained or not msg.topic.startswith(head):
                    continue  # retained online flags are state, not changes
                pid, _, leaf = msg.topic[len(head):].partition("/")
                if leaf == "online":
                    event: dict[str, Any] = {"type": "online",
                                             "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                                             "online": msg.payload == b"true"}
                else:
                    try:
                        event = json.loads(msg.payload)
                    except (ValueError, UnicodeDecodeError):
                        event = {"type": "(unreadable)", "ts": "",
                                 "payload": msg.payload[:80].decode("utf-8", "replace")}
                    if not isinstance(event, dict):
                        continue
                kind = str(event.get("type", "?"))
                if types is not None and kind not in types:
                    continue
                if args.json:
                    io.out.write(json.dumps({"panel": pid, **event}, ensure_ascii=False) + "\n")
                else:
                    io.out.write(_watch_line(str(event.get("ts", "")), pid, kind, event) + "\n")
                io.out.flush()
                shown += 1
        except KeyboardInterrupt:
            pass
    return 0


def _answer(client: CtlClient, events_topic: str, request: str, deadline: float,
            extra_topic: str | None = None) -> tuple[dict[str, Any] | None, bytes | None]:
    """Wait for the command.done/failed carrying ``request`` (and a message on ``extra_topic``)."""
    answer: dict[str, Any] | None = None
    extra: bytes | None = None
    while answer is None or (extra_topic is not None and extra is None and answer.get("type") == "command.done"):
        msg = client.next_message(deadline)
        if msg is None:
            break
        if msg.topic == extra_topic and extra is None:
            extra = msg.payload
        elif msg.topic == events_topic:
            try:
                event = json.loads(msg.payload)
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(event, dict) and event.get("request") == request and \
                    event.get("type") in ("command.done", "command.failed"):
                answer = event
    return answer, extra


def _offline_note(client: CtlClient, topics: Topics, panel: str, io: Io) -> None:
    online = client.retained([topics.online_of(panel)], keep=False).get(topics.online_of(panel))
    if online == b"false":
        io.err.write(f"{panel} is offline: the command waits on the broker in its session and runs when "
                     "it reconnects\n")
    elif online is None:
        io.err.write(f"{panel} has never reported to this broker (check the id and --prefix)\n")


def send_command(s: CtlSettings, panel: str, command: dict[str, Any], timeout: float, io: Io,
                 extra_leaf: str | None = None) -> tuple[dict[str, Any] | None, bytes | None]:
    """Validate, publish and wait for the answer; :class:`CommandError` when invalid."""
    parse_command(json.dumps(command))
    topics = Topics(s.prefix)
    cmd_topic = topics.cmd_of(panel)
    events = topics.events_of(panel)
    extra = f"{s.prefix}/panels/{panel}/{extra_leaf}" if extra_leaf else None
    payload = seal(signer_of(s), cmd_topic, json.dumps(command).encode("utf-8"))
    with CtlClient(s) as client:
        _offline_note(client, topics, panel, io)
        client.subscribe([events] + ([extra] if extra else []))
        deadline = time.monotonic() + timeout
        client.publish(cmd_topic, payload, retain=False)
        answer, got = _answer(client, events, command["id"], deadline, extra)
        if answer is not None:  # it answered: the fleet index lists it from now on
            note_panels(client, s.prefix, {panel}, io.err)
        return answer, got


SCREEN_COMMANDS = {
    "wake": ("light a sleeping screen (sleep hours) for a while",
             "how long (default: the panel's, 900 s)"),
    "sleep": ("switch the screen off now",
              "how long (default: until its sleep hours next end; without sleep hours, until wake)"),
}


def cmd_cmd(args: argparse.Namespace, s: CtlSettings, io: Io) -> int:
    command: dict[str, Any] = {"id": request_id(), "cmd": args.cmd}
    if args.cmd == "brightness":
        command["value"] = args.value
    if getattr(args, "seconds", None) is not None:
        command["seconds"] = args.seconds
    answer, _ = send_command(s, args.panel, command, args.timeout, io)
    return _report_answer(answer, args.panel, command, args.timeout, io)


def _report_answer(answer: dict[str, Any] | None, panel: str, command: dict[str, Any], timeout: float,
                   io: Io) -> int:
    if answer is None:
        io.err.write(f"{panel}: no answer to {command['cmd']} ({command['id']}) within {timeout:g} s\n")
        return 1
    if answer["type"] == "command.failed":
        io.err.write(f"{panel}: {command['cmd']} failed: {answer.get('reason', '')}\n")
        return 1
    io.out.write(f"{panel}: {command['cmd']} done ({command['id']})\n")
    return 0


def png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR, or ``None`` when ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def cmd_screenshot(args: argparse.Namespace, s: CtlSettings, io: Io) -> int:
    command = {"id": request_id(), "cmd": "screenshot"}
    answer, png = send_command(s, args.panel, command, args.timeout, io, extra_leaf="screenshot")
    if answer is not None and answer["type"] == "command.failed":
        return _report_answer(answer, args.panel, command, args.timeout, io)
    if png is None:
        io.err.write(f"{args.panel}: no screenshot within {args.timeout:g} s\n")
        return 1
    size = png_size(png)
    if size is None:
        io.err.write(f"{args.panel}: the screenshot is not a PNG\n")
        return 1
    tmp = args.output.with_name(args.output.name + ".part")
    tmp.write_bytes(png)
    tmp.replace(args.output)
    io.out.write(f"{args.output}: {size[0]}x{size[1]} PNG from {args.panel}\n")
    return 0


def cmd_alert_send(args: argparse.Namespace, s: CtlSettings, io: Io) -> int:
    _need_targets(args, everyone=True)
    targets = ctl_alerts.targets_from(args.panel, args.group, args.everyone)
    topics = Topics(s.prefix)
    for t in targets:
        t.topic(topics, args.alert_id)
    asset_file = None
    if args.cap is not None:
        json_flags = [f for f in ("level", "title", "body", "ttl", "expires", "asset")
                      if getattr(args, f) is not None] + (["exercise"] if args.exercise else [])
        if json_flags:
            raise ValidationError([f"--cap sends the CAP file as is: drop --{', --'.join(json_flags)}"],
                                  "arguments")
        try:
            payload = args.cap.read_bytes()
        except OSError as exc:
            raise ValidationError([f"--cap: cannot read {args.cap}: {exc.strerror or exc}"], "arguments") from None
        parsed = ctl_alerts.check_cap(args.alert_id, payload)
    else:
        missing = [f"--{f}" for f in ("level", "title") if getattr(args, f) is None]
        if missing:
            raise ValidationError([f"{' and '.join(missing)} required (or --cap FILE)"], "arguments")
        asset = None
        if args.asset is not None:
            asset = ctl_alerts.check_asset_file(args.asset, s.max_asset_kb * 1024)
            asset_file = args.asset
        expires = ctl_alerts.parse_expires(args.expires) if args.expires else None
        data = ctl_alerts.build_alert(level=args.level, title=args.title, body=args.body, ttl=args.ttl,
                                      expires=expires, asset=asset, exercise=args.exercise)
        parsed = ctl_alerts.check_json_alert(args.alert_id, targets, data)
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    signer = signer_of(s)
    with CtlClient(s) as client:
        return ctl_alerts.send(client, s.prefix, args.alert_id, targets, payload, parsed, asset_file=asset_file,
                               max_asset_bytes=s.max_asset_kb * 1024, wait=not args.no_wait,
                               timeout=args.timeout, out=io.out, err=io.err, signer=signer,
                               max_message_bytes=s.max_message_kb * 1024)


def cmd_alert_cancel(args: argparse.Namespace, s: CtlSettings, io: Io) -> int:
    _need_targets(args, everyone=True)
    targets = ctl_alerts.targets_from(args.panel, args.group, args.everyone)
    topics = Topics(s.prefix)
    for t in targets:
        t.topic(topics, args.alert_id)
    signer = signer_of(s)
    with CtlClient(s) as client:
        return ctl_alerts.cancel(client, s.prefix, args.alert_id, targets, io.err, signer=signer)


def cmd_keys_new(args: argparse.Namespace, s: CtlSettings, io: Io) -> int:
    from ..trust import load_public_key, new_key_files

    try:
        private, public = new_key_files(args.dir, args.name)
    except ConfigError as exc:
        raise ValidationError(exc.errors, "key name") from None
    raw, kid = load_public_key(public)
    io.out.write(f"{private}: the private key (mode 0600): keep it on the central server, "
                 "sign with panelctl --key or $PANELCTL_KEY\n"
                 f"{public}: the public key, for the panels (trust.keys: [{public.name}] or inline):\n"
                 f"  trust:\n    keys:\n      - {{kid: {kid}, key: {b64url(raw)}}}\n")
    return 0


def cmd_alert_list(args: argparse.Namespace, s: CtlSettings, io: Io) -> int:
    with CtlClient(s) as client:
        rows = ctl_alerts.list_alerts(client, s.prefix)
    if args.json:
        io.out.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    elif not rows:
        io.out.write("no alert is retained on the broker, and no panel shows one\n")
    else:
        io.out.write(format_table(ctl_alerts.ALERT_COLUMNS, [ctl_alerts.alert_cells(r) for r in rows]) + "\n")
    return 0


# -- the web console (optional extra) -----------------------------------------------------------

CONSOLE_MISSING = "the console is an optional extra: pip install panel-player[console] (or requirements/console.txt)"


def add_console_parser(add: Any, common: argparse.ArgumentParser) -> None:
    p = add("console", "Serve the web console (fleet, history, screenshots, alerts, playlists) and manage "
                       "its users.",
            epilog="Settings: the console: section of the config file (docs/console.md). Listens on "
                   "127.0.0.1:8470 by default; put a TLS reverse proxy in front to reach it from elsewhere.")
    p.add_argument("--listen", metavar="HOST:PORT", help="address to listen on (default: console.listen_host "
                                                         "and listen_port, 127.0.0.1:8470)")
    p.set_defaults(func=cmd_console)
    csub = p.add_subparsers(dest="console_command", metavar="ACTION")
    u = csub.add_parser("user", parents=[common], help="add, remove or list the console's users",
                        description="The users file (console.users_file): name, role and Argon2 hash a line.")
    usub = u.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    a = usub.add_parser("add", parents=[common], help="add a user or change its role and password",
                        description="Add a user, or replace its role and password. The password is asked "
                                    "twice, or read from the first line of stdin with --password-stdin.")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--role", choices=("viewer", "operator"), required=True,
                   help="viewer: sees everything; operator: may also send alerts and push playlists")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a.set_defaults(func=cmd_console_user)
    r = usub.add_parser("remove", parents=[common], help="remove a user (its sessions end at once)")
    r.add_argument("name", metavar="NAME")
    r.set_defaults(func=cmd_console_user)
    ls = usub.add_parser("list", parents=[common], help="the users and their roles")
    ls.set_defaults(func=cmd_console_user)


def console_settings_of(s: CtlSettings, listen: str | None = None) -> Any:
    """The console: section of the config file panelctl read (defaults without one)."""
    from ..console.settings import load_console_settings
    from .settings import _read_file, parse_broker

    raw: dict[str, Any] = {}
    if s.source is not None:
        section = _read_file(s.source).get("console")
        if section is not None and not isinstance(section, dict):
            raise ConfigError([f"{s.source}: console: expected a mapping"])
        raw = dict(section or {})
    if listen:
        try:
            host, port = parse_broker(listen)
        except ValueError as exc:
            raise ValidationError([f"--listen: {str(exc).replace('broker ', '')}"], "arguments") from None
        raw["listen_host"] = host
        if port is not None:
            raw["listen_port"] = port
    return load_console_settings(raw, s.source.parent if s.source is not None else None)


def cmd_console(args: argparse.Namespace, s: CtlSettings, io: Io) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
        from ..console import server
    except ImportError as exc:
        io.err.write(f"panelctl console: {CONSOLE_MISSING} ({exc.name} is missing)\n")
        return 2
    try:
        settings = console_settings_of(s, args.listen)
    except ConfigError as exc:
        raise ValidationError(exc.errors, "console settings") from None
    return server.run(settings, s, io.err)


def _ask_password(io: Io, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValidationError(["the two passwords differ"], "password")
    return first


def cmd_console_user(args: argparse.Namespace, s: CtlSettings, io: Io) -> int:
    try:
        from ..console.auth import UsersFile
    except ImportError as exc:
        io.err.write(f"panelctl console: {CONSOLE_MISSING} ({exc.name} is missing)\n")
        return 2
    try:
        users = UsersFile(console_settings_of(s).users_file)
        if args.user_command == "list":
            listed = users.list()
            for user in listed:
                io.out.write(f"{user.name}\t{user.role}\n")
            if not listed:
                io.err.write(f"no user in {users.path}\n")
            return 0
        if args.user_command == "remove":
            if not users.remove(args.name):
                io.err.write(f"panelctl console: no user {args.name} in {users.path}\n")
                return 1
            io.out.write(f"{args.name} removed from {users.path}\n")
            return 0
        password = _ask_password(io, args.password_stdin)
        new = users.add(args.name, args.role, password)
    except ConfigError as exc:
        raise ValidationError(exc.errors, "console settings") from None
    except ValueError as exc:
        raise ValidationError([str(exc)], "user") from None
    io.out.write(f"{args.name} ({args.role}) {'added to' if new else 'updated in'} {users.path}\n")
    return 0


# -- entry point ----------------------------------------------------------------------------


def main(argv: list[str] | None = None, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Run panelctl; returns the exit status (argparse usage errors raise ``SystemExit(2)``)."""
    io = Io(out, err)
    args = build_parser().parse_args(argv)
    ctl_client.reset_detection()  # "does not accept MQTT 5" is said once per command
    previous, ctl_client.notice_stream = ctl_client.notice_stream, io.err
    try:
        settings = settings_from(args)
        return int(args.func(args, settings, io))
    except CommandError as exc:
        io.err.write("panelctl: invalid command:\n" + "".join(f"  {e}\n" for e in exc.errors))
        return 2
    except ValidationError as exc:
        io.err.write(f"panelctl: invalid {exc.what}:\n" + "".join(f"  {e}\n" for e in exc.errors))
        return 2
    except CtlError as exc:
        io.err.write(f"panelctl: {exc}\n")
        return 1
    except KeyboardInterrupt:
        io.err.write("panelctl: interrupted\n")
        return 130
    except OSError as exc:
        io.err.write(f"panelctl: {exc}\n")
        return 1
    finally:
        ctl_client.notice_stream = previous


if __name__ == "__main__":
    sys.exit(main())
