"""Over-the-air updates, the player's side: the ``update`` and ``rollback`` commands.

The player (an unprivileged service user; ``/opt`` is read-only for it) never installs
anything. For ``{"cmd": "update", "bundle": "sha256:<hex>", "size": N, "version": V,
"parts": "sha256:<index hex>"}`` it downloads the bundle in parts, as assets (subscribed
to only while wanted, beside the playlists' assets): first the parts index
(``P/assets/<index hex>``, checked against the command, :func:`player.bundle.parse_index`),
then each part in order, one at a time (``P/assets/<part hex>``, its hash checked by the
link), appended to ``state_dir/updates/bundles/<hex>.part``; a part is never held in
memory beyond its own message, and the bundle never is. After the last part the file's
size and sha256 are checked and it is renamed ``<hex>.bundle``; then its signature and
hashes are verified (:func:`player.bundle.verify_bundle` with ``trust.keys``), the disk
space checked, and ``updates/request.json`` written for the root updater (``panel-player
update-run``, :mod:`player.updater`, started by ``panel-player-update.path``) before
``command.done``. Storing, hashing and verifying run in a worker thread: the main loop
only gets the result (a :class:`~player.app.Call` on the inbox).

``download.json`` records the parts stored (``done``); a player restarted mid-download
cuts ``<hex>.part`` back to ``done`` parts and fetches only the others (any mismatch:
the partial file is deleted and the download starts again).

During a trial (``updates/trial.json`` names this version as ``to``) the player writes
its health record ``updates/health.json``: started, first frame drawn, broker connected,
heartbeat published. The updater keeps the version once all are true within
``update.health_s``, else switches back. Its verdict (``updates/outcome.json``) is
published as an event by the version it names (``update.applied`` by the new one,
``update.rolled_back`` by the old one once it runs again, ``update.failed`` by the
running one when the install failed).

Files of ``state_dir/updates`` (JSON, each replaced atomically):
``download.json`` (the update being downloaded and its parts done: survives a restart),
``bundles/<hex>.index`` (its parts index), ``bundles/<hex>.part`` (the parts so far), ``bundles/<hex>.bundle``,
``request.json`` (player -> updater), ``trial.json`` (updater), ``health.json`` (player),
``outcome.json`` (updater -> player), ``last.json`` (the last outcome, for the heartbeat).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .net.protocol import VERSION_PATTERN
from .store import atomic_write, make_dirs, sha256_file, unlink_quietly

if TYPE_CHECKING:
    from .app import Player
    from .bundle import PartsIndex
    from .net.protocol import Command

log = logging.getLogger("panel-player")

UPDATES = "updates"
REQUEST = "request.json"
TRIAL = "trial.json"
HEALTH = "health.json"
OUTCOME = "outcome.json"
DOWNLOAD = "download.json"
LAST = "last.json"
BUNDLES = "bundles"
VERSION_RE = re.compile(VERSION_PATTERN)  # a version names a folder: versions/<V>
LATER = "\x00answered later"  # a command handler's "no answer yet" (see OpsPart.command)
OUTCOME_POLL_S = 1.0
SPACE_FACTOR = 4  # free space asked for on the install's file system: the bundle, extracted, installed
SPACE_MARGIN = 64 * 2**20


# -- shared with the updater --------------------------------------------------------

def updates_dir(state_dir: Path) -> Path:
    return Path(state_dir) / UPDATES


def install_root(prefix: str | None = None) -> Path | None:
    """The install root (``/opt/panel-player``) when this interpreter is an installed
    version's venv (``<root>/versions/<V>/venv``), else None (a checkout, a dev venv)."""
    venv = Path(prefix or sys.prefix).resolve()
    if venv.name == "venv" and venv.parent.parent.name == "versions":
        return venv.parent.parent.parent
    return None


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    make_dirs(Path(path).parent)
    atomic_write(Path(path), json.dumps(data, indent=1, sort_keys=True).encode() + b"\n")


def now_iso(when: float | None = None) -> str:
    """``when`` (a ``time.time()``; default: now) in ISO 8601 UTC to the second, ``…Z``."""
    moment = datetime.now(timezone.utc) if when is None else datetime.fromtimestamp(when, timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def linked_version(root: Path, name: str) -> str | None:
    """The version ``root/name`` (current, good, previous) points to, if it is complete."""
    try:
        target = os.readlink(root / name)
    except OSError:
        return None
    version = Path(target).name
    return version if (root / "versions" / version / "installed.json").is_file() else None


# -- the agent on the main loop ------------------------------------------------------

CONTINUE = "\x00continue"  # a worker's "stored, go on downloading"
RETRY = "retry"  # a worker's "damaged copy deleted: download it again"


@dataclass
class Job:
    request: str
    sha: str  # bare hex
    size: int
    version: str
    parts: str  # bare hex of the parts index
    done: int = 0  # parts stored in <sha>.part
    index: PartsIndex | None = None  # once received and checked


class UpdateAgent:
    """The player's side of updates; lives in :class:`~player.app_ops.OpsPart`."""

    def __init__(self, player: Player) -> None:
        self.p = player
        self.version: str = player.version
        self.dir = updates_dir(player.cfg.state_dir)
        self.bundles = self.dir / BUNDLES
        self.root = install_root()  # None: not an installed version, which cannot be updated
        self.job: Job | None = None
        self.working = False  # a worker thread hashes or verifies the bundle
        self.installing: str | None = None  # the version handed to the updater
        self.poll_due: float | None = None
        last = read_json(self.dir / LAST)
        self.status: dict[str, Any] | None = last.get("status") if last else None
        # A trial of this very version: prove health (see health_changed).
        trial = read_json(self.dir / TRIAL)
        self.trial = trial if trial and trial.get("to") == self.version and trial.get("kind") == "update" else None
        self.health: dict[str, Any] = {}
        if self.trial is not None:
            old = read_json(self.dir / HEALTH) or {}
            starts = old.get("starts", 0) if old.get("token") == self.trial.get("token") else 0
            self.health = {"token": self.trial.get("token"), "version": self.version, "pid": os.getpid(),
                           "starts": int(starts) + 1, "drawn": False, "connected": False, "heartbeat": False}
            self._write_health()
            self.status = {"state": "trial", "version": self.version, "reason": None}
        request = read_json(self.dir / REQUEST)
        if request is not None and request.get("from") == self.version:
            self.installing = str(request.get("version") or "")
            self.status = {"state": "installing", "version": self.installing or None, "reason": None}

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> None:
        """After the first frame and the link's start: report a verdict meant for this
        version, resume an interrupted download, note that the frame is drawn."""
        self.report_outcome()
        saved = read_json(self.dir / DOWNLOAD)
        if saved is not None and self.installing is None:
            try:
                job = Job(str(saved["request"]), str(saved["sha"]), int(saved["size"]), str(saved["version"]),
                          str(saved["parts"]), done=int(saved.get("done", 0)))
            except (KeyError, TypeError, ValueError):
                unlink_quietly(self.dir / DOWNLOAD)
            else:
                log.info("resuming the download of update %s", job.version)
                self.begin(job)
        # In the sleep hours nothing is drawn: the display opened is what can be proven then.
        if self.p.first_frame_at is not None or self.p.screen.asleep:
            self.progress("drawn")
        if self.trial is not None or self.installing:
            self.poll_due = time.monotonic() + OUTCOME_POLL_S

    # -- health during a trial --------------------------------------------------------------
    def progress(self, what: str) -> None:
        """``drawn``, ``connected`` or ``heartbeat`` is now true for this run."""
        if self.trial is None or self.health.get(what):
            return
        self.health[what] = True
        self._write_health()

    def _write_health(self) -> None:
        try:
            write_json(self.dir / HEALTH, {**self.health, "at": now_iso()})
        except OSError as exc:
            log.error("cannot write the health record: %s", exc)

    # -- verdicts ----------------------------------------------------------------------------
    def report_outcome(self) -> None:
        """Publish the updater's verdict when it is this version's to tell."""
        from .net import protocol

        outcome = read_json(self.dir / OUTCOME)
        if outcome is None or outcome.get("report_by") != self.version:
            return
        result = outcome.get("result")
        reason = str(outcome.get("reason") or "")
        old, new = str(outcome.get("from") or ""), str(outcome.get("to") or "")
        if result == "applied":
            self.p.event(protocol.event_update_applied(old, new))
            self.status = {"state": "applied", "version": new, "reason": None}
        elif result == "rolled_back":
            self.p.event(protocol.event_update_rolled_back(old, new, reason))
            self.status = {"state": "rolled_back", "version": old, "reason": reason}
        else:
            self.p.event(protocol.event_update_failed(new, reason or "the updater failed"))
            self.status = {"state": "failed", "version": new, "reason": reason}
        try:
            write_json(self.dir / LAST, {"status": self.status, "outcome": outcome})
            unlink_quietly(self.dir / OUTCOME)
            if self.trial is not None and result == "applied":
                unlink_quietly(self.dir / HEALTH)
            shutil.rmtree(self.bundles, ignore_errors=True)
        except OSError as exc:
            log.error("cannot tidy the update files: %s", exc)
        self.trial = None
        self.installing = None
        self.poll_due = None
        self.p.ops.notable(f"update {self.status['state']}")

    def tick(self, now: float) -> None:
        if self.poll_due is not None and now >= self.poll_due:
            self.poll_due = now + OUTCOME_POLL_S
            if (self.dir / OUTCOME).exists():
                self.report_outcome()

    def deadlines(self) -> list[float | None]:
        return [self.poll_due]

    def heartbeat_field(self) -> dict[str, Any] | None:
        job = self.job
        if job is not None:
            return {"state": "downloading", "version": job.version, "reason": None,
                    "parts": [job.done, len(job.index.parts) if job.index is not None else None]}
        return self.status

    # -- commands ----------------------------------------------------------------------------
    def busy(self) -> str | None:
        if self.installing or (self.dir / REQUEST).exists():
            return "an update is being installed"
        if (self.dir / TRIAL).exists():
            return "an update is on trial"
        return None

    def command_update(self, cmd: Command) -> str | None:
        """Start an update; returns a refusal, or :data:`LATER` (answered once handed over)."""
        assert cmd.bundle is not None and cmd.size is not None and cmd.version is not None and cmd.parts is not None
        job = Job(cmd.id, cmd.bundle.removeprefix("sha256:"), cmd.size, cmd.version, cmd.parts.removeprefix("sha256:"))
        refusal = self.refusal(job)
        if refusal is not None:
            self.fail(job, refusal)
            return refusal
        if self.job is not None:
            if self.job.sha == job.sha and self.job.parts == job.parts:
                self.job.request = job.request  # the same bundle asked again: answer this request
                return LATER
            return f"an update to {self.job.version} is already being downloaded"
        self.begin(job)
        return LATER

    def refusal(self, job: Job) -> str | None:
        if job.version == self.version:
            return f"version {job.version} is already running"
        busy = self.busy()
        if busy:
            return busy
        if self.root is None:
            return "this player does not run from an installed version (versions/<V>/venv): it cannot be updated"
        if not self.p.cfg.trust.keys:
            return "no trust.keys: the bundle's signature cannot be checked"
        limit = self.p.cfg.update.max_bundle_mb * 2**20
        if job.size > limit:
            return f"bundle of {job.size} bytes is over update.max_bundle_mb ({limit} bytes)"
        return None

    def command_rollback(self, cmd: Command) -> str | None:
        busy = self.busy()
        if busy:
            return busy
        if self.root is None:
            return "this player does not run from an installed version: nothing to roll back to"
        previous = linked_version(self.root, "previous")
        if previous is None:
            return "no previous version is installed"
        write_json(self.dir / REQUEST, {"action": "rollback", "request": cmd.id, "from": self.version,
                                        "version": previous, "at": now_iso()})
        self.installing = previous
        self.status = {"state": "installing", "version": previous, "reason": None}
        self.poll_due = time.monotonic() + OUTCOME_POLL_S
        return None

    def fail(self, job: Job, reason: str) -> None:
        from .net.protocol import event_update_failed

        self.p.event(event_update_failed(job.version, reason))
        self.status = {"state": "failed", "version": job.version, "reason": reason}
        self.p.ops.notable("update failed")

    # -- download, verification, hand-over ------------------------------------------------------
    def bundle_path(self, sha: str) -> Path:
        return self.bundles / f"{sha}.bundle"

    def part_path(self, sha: str) -> Path:
        return self.bundles / f"{sha}.part"

    def index_path(self, sha: str) -> Path:
        return self.bundles / f"{sha}.index"

    def _save(self, job: Job) -> None:
        write_json(self.dir / DOWNLOAD, {"request": job.request, "sha": job.sha, "size": job.size,
                                         "version": job.version, "parts": job.parts, "done": job.done})

    def begin(self, job: Job) -> None:
        self.job = job
        self._save(job)
        self.p.ops.notable("update downloading")
        path = self.bundle_path(job.sha)
        if path.exists():  # stored before a restart: checked again, not downloaded again
            self.work(lambda: self._check_stored(job, path))
        elif job.done or self.index_path(job.sha).exists():
            self.work(lambda: self._resume(job))  # a download cut by a restart: its parts kept
        else:
            self._clear_partial(job)

    def _clear_partial(self, job: Job) -> None:
        unlink_quietly(self.part_path(job.sha))
        unlink_quietly(self.index_path(job.sha))
        job.done, job.index = 0, None

    def wanted(self) -> set[str]:
        """Asset topics to subscribe to for the update (beside the playlists' own): the
        parts index, then the next part, one at a time."""
        job = self.job
        if job is None or self.working:
            return set()
        if job.index is None:
            return {job.parts}
        return {job.index.parts[job.done]} if job.done < len(job.index.parts) else set()

    def asset_arrived(self, sha: str, data: bytes) -> bool:
        """An asset from the broker (its hash already checked): True when it is the
        update's index or part (taken)."""
        job = self.job
        if job is None:
            return False
        if job.index is None and sha == job.parts:
            if not self.working:
                self.work(lambda: self._take_index(job, data))
            return True
        if job.index is None or sha not in job.index.parts:
            return False
        if not self.working and job.done < len(job.index.parts) and sha == job.index.parts[job.done]:
            n = job.done
            self.work(lambda: self._append(job, n, data))
        return True  # otherwise a part already stored, sent again (a reconnect): ignored

    def work(self, fn: Callable[[], str | None]) -> None:
        """Run ``fn`` (store, hash, verify) in a thread; its result comes back on the main loop."""
        from .app import Call

        self.working = True
        job = self.job

        def run() -> None:
            try:
                reason = fn()
            except Exception as exc:  # noqa: BLE001 - reported as the update's failure
                log.exception("update check failed")
                reason = f"{type(exc).__name__}: {exc}"
            self.p.inbox.put(Call(lambda: self._checked(job, reason)))

        threading.Thread(target=run, name="update-check", daemon=True).start()

    # -- in the worker thread --------------------------------------------------------------
    def _index(self, job: Job, data: bytes) -> PartsIndex:
        from .bundle import parse_index

        return parse_index(data, bundle=job.sha, size=job.size, max_part=self.p.cfg.mqtt.max_asset_kb * 1024)

    def _take_index(self, job: Job, data: bytes) -> str | None:
        from .bundle import BundleError

        try:
            index = self._index(job, data)
        except BundleError as exc:
            return f"parts refused: {exc}"
        make_dirs(self.bundles)
        atomic_write(self.index_path(job.sha), data, mode=0o640)
        unlink_quietly(self.part_path(job.sha))
        job.done, job.index = 0, index
        self._save(job)
        return CONTINUE

    def _resume(self, job: Job) -> str | None:
        """After a restart: the stored index checked again, the part file cut back to the
        parts recorded; any mismatch starts the download again from nothing."""
        from .bundle import BundleError

        try:
            data = self.index_path(job.sha).read_bytes()
            if hashlib.sha256(data).hexdigest() != job.parts:
                raise BundleError("the stored parts index differs from the command's")
            index = self._index(job, data)
            keep = job.done * index.part_size
            if not 0 <= job.done < len(index.parts):
                raise BundleError(f"{job.done} parts recorded of {len(index.parts)}")
            path = self.part_path(job.sha)
            if job.done and path.stat().st_size < keep:
                raise BundleError("the partial file is shorter than the parts recorded")
            with open(path, "ab") as f:
                f.truncate(keep)
                os.fsync(f.fileno())
        except (OSError, BundleError) as exc:
            log.warning("update download starts again: %s", exc)
            self._clear_partial(job)
        else:
            job.index = index
            log.info("update download resumes after %d of %d parts", job.done, len(index.parts))
        self._save(job)
        return CONTINUE

    def _append(self, job: Job, n: int, data: bytes) -> str | None:
        assert job.index is not None
        if len(data) != job.index.part_length(n):
            self._clear_partial(job)
            self._save(job)
            return f"part {n + 1} of {len(job.index.parts)} is {len(data)} bytes, the index says " \
                   f"{job.index.part_length(n)}"
        path = self.part_path(job.sha)
        make_dirs(self.bundles)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o640)
        try:
            os.ftruncate(fd, n * job.index.part_size)  # whatever a cut write left after the last part
            os.lseek(fd, 0, os.SEEK_END)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        job.done = n + 1
        self._save(job)
        if job.done < len(job.index.parts):
            return CONTINUE
        if path.stat().st_size != job.size or sha256_file(path) != job.sha:
            self._clear_partial(job)
            self._save(job)
            return "the parts do not make the bundle: its size or sha256 differs from the command's"
        os.replace(path, self.bundle_path(job.sha))
        unlink_quietly(self.index_path(job.sha))
        return self._verify(job, self.bundle_path(job.sha))

    def _check_stored(self, job: Job, path: Path) -> str | None:
        if path.stat().st_size != job.size or sha256_file(path) != job.sha:
            unlink_quietly(path)
            self._clear_partial(job)
            self._save(job)
            return RETRY  # a damaged copy: downloaded again
        return self._verify(job, path)

    def _verify(self, job: Job, path: Path) -> str | None:
        from .bundle import BundleError, verify_bundle
        from .trust import public_keys

        try:
            manifest = verify_bundle(path, public_keys(dict(self.p.cfg.trust.keys)))
        except BundleError as exc:
            return f"bundle refused: {exc}"
        if manifest.version != job.version:
            return f"bundle holds version {manifest.version}, the command says {job.version}"
        if not VERSION_RE.fullmatch(manifest.version):
            return f"bundle version {manifest.version!r} is not a usable folder name"
        assert self.root is not None
        need = job.size * SPACE_FACTOR + SPACE_MARGIN
        free = shutil.disk_usage(self.root).free
        if free < need:
            return f"not enough disk space: {free // 2**20} MB free, {need // 2**20} MB needed"
        return None

    def _checked(self, job: Job | None, reason: str | None) -> None:
        """On the main loop: the worker's verdict on ``job``."""
        self.working = False
        if job is None or job is not self.job:
            return
        if reason in (RETRY, CONTINUE):
            return  # wanted() asks for what comes next
        self.finish(job, reason)

    def finish(self, job: Job, reason: str | None) -> None:
        from .net.protocol import event_command_done, event_command_failed

        self.job = None
        unlink_quietly(self.dir / DOWNLOAD)
        if reason is not None:
            unlink_quietly(self.bundle_path(job.sha))
            self._clear_partial(job)
            self.fail(job, reason)
            self.p.event(event_command_failed(job.request, "update", reason))
            return
        write_json(self.dir / REQUEST, {"action": "update", "request": job.request, "from": self.version,
                                        "version": job.version, "bundle": str(self.bundle_path(job.sha)),
                                        "sha256": job.sha, "size": job.size, "at": now_iso()})
        self.installing = job.version
        self.status = {"state": "installing", "version": job.version, "reason": None}
        self.poll_due = time.monotonic() + OUTCOME_POLL_S
        self.p.ops.notable("update installing")
        self.p.event(event_command_done(job.request, "update"))
