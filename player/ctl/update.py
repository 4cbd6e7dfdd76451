"""``panelctl release build`` and ``panelctl update``: make a signed bundle, roll it out to panels.

A roll-out (:func:`rollout`):

1. the bundle is verified here with the public half of ``--key`` (the key that signs
   the commands must be the one that signed the bundle, which the panels trust);
2. the targets come from the broker's retained heartbeats (``--all``: every panel
   that has one; ``--group G``: those whose heartbeat lists G; ``--panel ID``: that
   panel, heartbeat or not). A target whose heartbeat already reports the bundle's
   version is counted as updated and gets no command;
3. the bundle is cut into parts of ``--part-kb`` KiB (default 1024, at most panelctl's
   ``max_asset_kb``), each published retained on ``P/assets/<sha256 of the part>``, then
   the parts index (:func:`player.bundle.index_json`) on ``P/assets/<sha256 of the
   index>`` (unless the broker holds that index already: it is published last);
4. the signed ``update`` command goes to the canaries first (``--canary N``: the first
   N targets that are online, in the order of ``--panel`` then by panel id), and the
   roll-out waits for their outcome; if one fails, rolls back or does not finish
   within ``--timeout``, no other panel gets the command and panelctl exits 1. Then
   the rest get it and panelctl waits for them;
5. outcomes come from the panels' events (``update.applied``, ``update.failed``,
   ``update.rolled_back``, ``command.failed``) and live heartbeats (``firmware``,
   ``update.state``), shown as a progress line
   (``3 of 20 updated, 1 failed, 0 rolled back, 16 waiting``) redrawn in place on a
   terminal, one line per change otherwise, then a table.

Exit status 0 only if every target runs the bundle's version at the end.

The parts and the index stay retained after the roll-out: a panel that was offline gets
its command from its broker session when it reconnects and still finds the bytes.
``--clear`` removes them once the roll-out is over (a panel that has not fetched them by
then waits for them in vain).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from ..bundle import DEFAULT_PART_SIZE, BundleError, Manifest, PartsIndex, index_json, split_bundle, verify_bundle
from ..errors import ValidationError
from ..net.protocol import parse_command
from ..net.topics import Topics
from ..store import sha256_file
from ..trust import load_private_key
from .client import PACKET_OVERHEAD, CtlClient, CtlError, Message
from .settings import CtlSettings
from .signing import Signer
from .status import PanelState, format_table, read_fleet
from .track import Progress

DEFAULT_TIMEOUT = 900.0  # seconds per wave: download, install, restart and the panel's health_s (120 s)
PROGRESS_TICK = 0.2

# a target's state; the terminal ones end its wait
WAITING, SENT, UPDATED, ALREADY, FAILED, ROLLED_BACK, HELD = (
    "waiting", "sent", "updated", "already", "failed", "rolled back", "not sent")
TERMINAL = {UPDATED, ALREADY, FAILED, ROLLED_BACK}


class Streams(Protocol):
    out: IO[str]
    err: IO[str]


@dataclass
class PanelRun:
    """One target of a roll-out."""

    id: str
    online: bool | None
    before: str | None  # firmware in its retained heartbeat
    state: str = WAITING
    request: str | None = None
    detail: str = ""
    firmware: str | None = None
    phase: str | None = None  # the heartbeat's update.state while it works
    acknowledged: bool = False  # command.done received
    sent_at: float = 0.0
    events: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest
    sha256: str
    size: int


def verify_local(path: Path, signer: Signer) -> Bundle:
    """The bundle checked with the public half of the signing key; :class:`ValidationError` if refused."""
    try:
        manifest = verify_bundle(path, {signer.kid: signer.key.public_key()})
    except BundleError as exc:
        raise ValidationError([f"{path}: {exc}"], "bundle") from None
    return Bundle(path, manifest, sha256_file(path), path.stat().st_size)


def choose_targets(fleet: dict[str, PanelState], panels: list[str], groups: list[str],
                   everyone: bool) -> list[PanelRun]:
    """Targets in roll-out order: the ``--panel`` ids as given, then the others by id."""
    chosen: dict[str, None] = dict.fromkeys(panels)
    for pid in sorted(fleet):
        hb = fleet[pid].heartbeat
        if hb is None:
            continue
        member_of = hb.get("groups")
        if everyone or (groups and isinstance(member_of, list) and set(groups) & set(map(str, member_of))):
            chosen.setdefault(pid)
    runs = []
    for pid in chosen:
        state = fleet.get(pid)
        hb = (state.heartbeat if state else None) or {}
        firmware = hb.get("firmware")
        runs.append(PanelRun(pid, state.online if state else None, firmware if isinstance(firmware, str) else None))
    return runs


def pick_canaries(runs: list[PanelRun], n: int) -> list[PanelRun]:
    """The first ``n`` targets still to update, online ones first (each group in roll-out order)."""
    todo = [r for r in runs if r.state == WAITING]
    return ([r for r in todo if r.online is True] + [r for r in todo if r.online is not True])[:n]


class Rollout:
    """Follows the targets' events and heartbeats (on the client's network thread)."""

    def __init__(self, client: CtlClient, prefix: str, runs: list[PanelRun], version: str,
                 progress: Progress) -> None:
        self.client = client
        self.topics = Topics(prefix)
        self.head = f"{prefix}/panels/"
        self.runs = {r.id: r for r in runs}
        self.version = version
        self.progress = progress
        self._cond = threading.Condition()

    def start(self) -> None:
        self.client.listen(self._take)
        self.client.subscribe([self.topics.all_panels("events"), self.topics.all_panels("heartbeat")])

    def stop(self) -> None:
        self.client.listen(None)

    # -- network thread ------------------------------------------------------------------------
    def _take(self, msg: Message) -> None:
        if msg.retained or not msg.topic.startswith(self.head):
            return  # a retained heartbeat is the past: the fleet was read before
        pid, _, leaf = msg.topic[len(self.head):].partition("/")
        run = self.runs.get(pid)
        if run is None or run.state not in (SENT,):
            return
        try:
            data = json.loads(msg.payload)
        except (ValueError, UnicodeDecodeError):
            return
        if not isinstance(data, dict):
            return
        with self._cond:
            if leaf == "events":
                self._event(run, data)
            elif leaf == "heartbeat":
                self._heartbeat(run, data)
            if run.state in TERMINAL:
                self._cond.notify_all()

    def _event(self, run: PanelRun, event: dict[str, Any]) -> None:
        kind = event.get("type")
        reason = str(event.get("reason") or "")
        if kind in ("command.done", "command.failed") and event.get("request") == run.request:
            if kind == "command.failed":
                run.state, run.detail = FAILED, f"command refused: {reason}"
            else:
                run.acknowledged = True
        elif kind == "update.applied" and event.get("to") == self.version:
            run.state, run.firmware = UPDATED, self.version
            run.detail = f"from {event.get('from') or run.before or '?'}"
        elif kind == "update.failed" and event.get("version") == self.version:
            run.state, run.detail = FAILED, reason
        elif kind == "update.rolled_back" and event.get("from") == self.version:
            run.state = ROLLED_BACK
            to = event.get("to")
            run.firmware = to if isinstance(to, str) else run.firmware
            run.detail = reason + (f" (runs {to} again)" if isinstance(to, str) else "")

    def _heartbeat(self, run: PanelRun, hb: dict[str, Any]) -> None:
        firmware = hb.get("firmware")
        if isinstance(firmware, str):
            run.firmware = firmware
        upd = hb.get("update")
        state = upd.get("state") if isinstance(upd, dict) and upd.get("version") == self.version else None
        run.phase = state if isinstance(state, str) else None
        if firmware == self.version and state in (None, "applied"):
            run.state = UPDATED
            run.detail = run.detail or f"from {run.before or '?'}"
        elif run.acknowledged and state in ("failed", "rolled_back"):
            run.state = FAILED if state == "failed" else ROLLED_BACK
            run.detail = str(upd.get("reason") or "") if isinstance(upd, dict) else ""

    # -- caller's thread -------------------------------------------------------------------------
    def sent(self, run: PanelRun, request: str) -> None:
        with self._cond:
            run.request, run.state, run.sent_at = request, SENT, time.monotonic()

    def hold(self, runs: list[PanelRun]) -> None:
        """``runs`` will not be sent the command (a canary failed)."""
        with self._cond:
            for r in runs:
                r.state = HELD

    def counts(self) -> dict[str, int]:
        with self._cond:
            states = [r.state for r in self.runs.values()]
        return {s: states.count(s) for s in (UPDATED, ALREADY, FAILED, ROLLED_BACK, SENT, WAITING, HELD)}

    def line(self) -> str:
        c = self.counts()
        waiting = c[SENT] + c[WAITING] + c[HELD]
        text = (f"{c[UPDATED] + c[ALREADY]} of {len(self.runs)} updated, {c[FAILED]} failed, "
                f"{c[ROLLED_BACK]} rolled back, {waiting} waiting")
        return text

    def wait(self, wave: list[PanelRun], timeout: float) -> None:
        """Until every run of ``wave`` is terminal or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                pending = [r for r in wave if r.state not in TERMINAL]
            text = self.line()
            self.progress.update(text, text)
            now = time.monotonic()
            if not pending or now >= deadline:
                break
            with self._cond:
                self._cond.wait_for(lambda: all(r.state in TERMINAL for r in wave), min(deadline - now, PROGRESS_TICK))


def _command(bundle: Bundle, index_sha: str) -> dict[str, Any]:
    return {"id": f"ctl-{uuid.uuid4().hex[:12]}", "cmd": "update", "bundle": f"sha256:{bundle.sha256}",
            "size": bundle.size, "version": bundle.manifest.version, "parts": f"sha256:{index_sha}"}


def upload_parts(client: CtlClient, topics: Topics, bundle: Bundle, part_size: int,
                 err: IO[str]) -> tuple[PartsIndex, str]:
    """The bundle's parts, then its index, retained on their asset topics (nothing when the
    broker holds the index already: it is published after every part); returns the index
    and its sha256."""
    index, parts = split_bundle(bundle.path, part_size)
    if index.bundle != bundle.sha256:
        raise CtlError(f"{bundle.path} changed since it was verified")
    data = index_json(index)
    sha = hashlib.sha256(data).hexdigest()
    limit = client.payload_limit(1 << 40)
    if max(index.part_length(0), len(data)) > limit:
        raise CtlError(f"a part of the bundle is {max(index.part_length(0), len(data))} bytes and the broker accepts "
                       f"packets up to {limit + PACKET_OVERHEAD} bytes: give a smaller --part-kb")
    topic = topics.asset(sha)
    held = client.retained([topic], keep=False).get(topic)
    if held == data:
        err.write(f"the bundle's {len(index.parts)} parts and index are already on the broker ({topic})\n")
        return index, sha
    err.write(f"uploading the bundle in {len(index.parts)} part(s) of at most {part_size} bytes, "
              f"then its index to {topic}\n")
    for part_sha, part in parts:
        client.publish(topics.asset(part_sha), part, retain=True, timeout=120)
    client.publish(topic, data, retain=True, timeout=120)
    return index, sha


def _send(client: CtlClient, topics: Topics, signer: Signer, bundle: Bundle, index_sha: str, wave: list[PanelRun],
          follow: Rollout, err: IO[str]) -> None:
    for run in wave:
        command = _command(bundle, index_sha)
        parse_command(json.dumps(command))
        topic = topics.cmd_of(run.id)
        follow.sent(run, command["id"])
        client.publish(topic, signer.seal(topic, json.dumps(command).encode("utf-8")), retain=False)
        if not follow.progress.tty:
            err.write(f"sent update {bundle.manifest.version} to {run.id} ({command['id']})"
                      + ("" if run.online else ", offline: it runs when the panel reconnects") + "\n")


def _finish(runs: list[PanelRun]) -> None:
    for run in runs:
        if run.state == SENT:
            phase = f" (last state: {run.phase})" if run.phase else ""
            run.detail = ("no outcome before the time-out" + phase) if run.acknowledged else \
                ("the command was not acknowledged before the time-out"
                 + ("" if run.online else ": the panel is offline") + phase)


RESULT_WORDS = {UPDATED: "updated", ALREADY: "updated", FAILED: "failed", ROLLED_BACK: "rolled back",
                SENT: "no outcome", WAITING: "not sent", HELD: "not sent"}


def table(runs: list[PanelRun]) -> str:
    rows = []
    for r in runs:
        detail = r.detail or ("already ran it" if r.state == ALREADY else "")
        rows.append([r.id, RESULT_WORDS[r.state], r.before or "—", r.firmware or r.before or "—", detail])
    return format_table(("PANEL", "RESULT", "BEFORE", "NOW", "DETAIL"), rows)


def rollout(client: CtlClient, prefix: str, bundle: Bundle, signer: Signer, runs: list[PanelRun], *,
            canary: int, timeout: float, clear: bool, io: Streams, part_size: int = DEFAULT_PART_SIZE) -> int:
    """Publish (in parts of ``part_size`` bytes), command, follow; returns the exit status."""
    topics = Topics(prefix)
    version = bundle.manifest.version
    for run in runs:
        if run.before == version:
            run.state, run.firmware = ALREADY, version
    todo = [r for r in runs if r.state == WAITING]
    io.err.write(f"bundle {bundle.path.name}: panel-player {version}, {bundle.size} bytes, "
                 f"sha256:{bundle.sha256[:16]}…, verified with key {signer.kid}\n")
    io.err.write(f"{len(runs)} target(s): {len(todo)} to update, {len(runs) - len(todo)} already on {version}\n")
    index: PartsIndex | None = None
    index_sha = ""
    if todo:
        index, index_sha = upload_parts(client, topics, bundle, part_size, io.err)
    progress = Progress(io.err)
    follow = Rollout(client, prefix, runs, version, progress)
    follow.start()
    stopped: list[PanelRun] = []
    try:
        waves: list[list[PanelRun]] = []
        if canary > 0 and todo:
            first = pick_canaries(runs, canary)
            waves = [first, [r for r in todo if r not in first]]
            io.err.write(f"canaries: {', '.join(r.id for r in first)}\n")
        else:
            waves = [todo]
        for n, wave in enumerate(waves):
            if not wave:
                continue
            _send(client, topics, signer, bundle, index_sha, wave, follow, io.err)
            follow.wait(wave, timeout)
            if n == 0 and len(waves) > 1:
                bad = [r for r in wave if r.state != UPDATED]
                if bad:
                    stopped = waves[1]
                    follow.hold(stopped)
                    break
    finally:
        follow.stop()
        text = follow.line()
        if progress.tty:  # the last counts stay on screen above the table
            progress.done()
            io.err.write(text + "\n")
            io.err.flush()
        else:
            progress.update(text, text, final=True)
    _finish(runs)
    io.out.write(table(runs) + "\n")
    if stopped:
        bad = [r for r in runs if r.state in (FAILED, ROLLED_BACK, SENT)]
        io.err.write(f"roll-out stopped: canary {', '.join(f'{r.id} {RESULT_WORDS[r.state]}' for r in bad)}; "
                     f"{len(stopped)} other panel(s) were not sent the update\n")
    if index is None:
        pass
    elif clear:
        client.publish(topics.asset(index_sha), b"", retain=True)  # the index first: no panel starts on it now
        for part_sha in dict.fromkeys(index.parts):
            client.publish(topics.asset(part_sha), b"", retain=True)
        io.err.write(f"cleared the retained bundle: its index on {topics.asset(index_sha)} and "
                     f"its {len(index.parts)} part(s)\n")
    else:
        io.err.write(f"the bundle's {len(index.parts)} part(s) and index stay retained, the index on "
                     f"{topics.asset(index_sha)} (panels that were offline fetch them later; --clear removes them)\n")
    ok = all(r.state in (UPDATED, ALREADY) for r in runs)
    return 0 if ok else 1


# -- command line ---------------------------------------------------------------------------------


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds greater than 0, got {text!r}")
    return value


def _part_kb(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,7}", text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a part size in KiB (1 or more), got {text!r}")
    return int(text)


def _count(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,6}", text):
        raise argparse.ArgumentTypeError(f"expected a number of panels, got {text!r}")
    return int(text)


def add_release_parsers(add: Callable[..., argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = add("release", "Build signed release bundles (panel-player and its locked wheels).")
    rsub = p.add_subparsers(dest="release_command", metavar="ACTION", required=True)
    r = rsub.add_parser(
        "build", parents=[common], help="build one signed bundle",
        description="Build the project's wheel, fetch the locked dependency wheels for each platform, and "
                    "write panel-player-VERSION.bundle signed with --key.",
        epilog="Platforms: aarch64 and armv7l (Raspberry Pi OS Bookworm, glibc 2.36; the default), native "
               "(this machine), or a wheel platform tag. A platform for which some locked package has no "
               "wheel is left out and named in the manifest's 'incomplete' (an error with --strict).")
    r.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="where to write it (default: here)")
    r.add_argument("--platform", action="append", metavar="TAG", help="a target platform (repeatable)")
    r.add_argument("--wheelhouse", type=Path, metavar="DIR",
                   help="take the wheels (and the build backend) from this folder instead of PyPI")
    r.add_argument("--source", type=Path, default=Path("."), metavar="DIR",
                   help="panel-player's source tree (default: here)")
    r.add_argument("--lock", type=Path, metavar="FILE", help="default: SOURCE/requirements/panel.txt")
    r.add_argument("--strict", action="store_true", help="fail when a platform is not covered")
    r.set_defaults(func=cmd_release_build)

    p = add("update", "Roll a signed bundle out to panels and follow their updates.",
            epilog="Exit status 0 only if every target runs the bundle's version at the end.")
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    p.add_argument("--panel", action="append", metavar="ID", help="a panel id (repeatable)")
    p.add_argument("--group", action="append", metavar="G", help="the panels whose heartbeat lists G (repeatable)")
    p.add_argument("--all", action="store_true", dest="everyone", help="every panel with a retained heartbeat")
    p.add_argument("--canary", type=_count, default=0, metavar="N",
                   help="update the first N online targets first; stop if one of them fails or rolls back")
    p.add_argument("--timeout", type=_positive, default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"seconds to wait for each wave (canaries, then the rest; default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--part-kb", type=_part_kb, default=DEFAULT_PART_SIZE // 1024, metavar="KIB",
                   help="publish the bundle in parts of at most this many KiB (default "
                        f"{DEFAULT_PART_SIZE // 1024}; at most max_asset_kb, and within the panels' mqtt.max_asset_kb)")
    p.add_argument("--clear", action="store_true",
                   help="remove the retained bundle (its parts and index) from the broker at the end")
    p.set_defaults(func=cmd_update)


def _signer(s: CtlSettings, what: str) -> Signer:
    if s.key_file is None:
        raise ValidationError([f"{what} needs the release key: --key FILE (or $PANELCTL_KEY, key_file)"], "arguments")
    key, kid = load_private_key(s.key_file)
    return Signer(key, kid)


def cmd_release_build(args: argparse.Namespace, s: CtlSettings, io: Streams) -> int:
    from .release import DEFAULT_PLATFORMS, build_release, summary

    signer = _signer(s, "release build")
    lock = args.lock if args.lock is not None else args.source / "requirements" / "panel.txt"
    result = build_release(source=args.source, lock=lock, out=args.out,
                           platforms=args.platform or list(DEFAULT_PLATFORMS), key=signer.key, kid=signer.kid,
                           wheelhouse=args.wheelhouse, err=io.err, strict=args.strict)
    io.out.write(summary(result) + "\n")
    return 0


def cmd_update(args: argparse.Namespace, s: CtlSettings, io: Streams) -> int:
    if not (args.panel or args.group or args.everyone):
        raise ValidationError(["give the targets: --panel ID, --group G or --all"], "arguments")
    topics = Topics(s.prefix)
    for p in args.panel or []:
        topics.cmd_of(p)
    for g in args.group or []:
        topics.group_playlist(g)
    if args.part_kb > s.max_asset_kb:
        raise ValidationError([f"--part-kb {args.part_kb} is above max_asset_kb ({s.max_asset_kb})"], "arguments")
    signer = _signer(s, "update")
    bundle = verify_local(args.bundle, signer)
    with CtlClient(s) as client:
        fleet = read_fleet(client, s.prefix, io.err)  # the wildcards, and P/fleet on other brokers
        runs = choose_targets(fleet, args.panel or [], args.group or [], args.everyone)
        if not runs:
            raise ValidationError([f"no target: no panel under {s.prefix}/panels/ matches (a heartbeat is needed "
                                   "for --group and --all)"], "arguments")
        return rollout(client, s.prefix, bundle, signer, runs, canary=args.canary, timeout=args.timeout,
                       clear=args.clear, io=io, part_size=args.part_kb * 1024)

