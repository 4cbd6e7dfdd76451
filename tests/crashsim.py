"""Power cuts, simulated: every state a card may hold when the power goes at any point.

A killed process keeps the page cache, so SIGKILL tests never lose a byte that
was written but not fsynced. A power cut does. This module records the file
system operations our real code performs under one folder, then builds, for
every cut point (after 0, 1, ... n operations), the states a cut could leave
behind, in the manner of ALICE (Pillai et al., OSDI 2014):

- a regular file's content is what it held at its last fsync (empty if it never
  was fsynced) or any later content: what each write left, the whole unsynced
  data, and torn versions of it (the unsynced tail truncated, zero-filled or
  garbage, as when the size reached the journal but the data blocks did not);
- a folder's entries are those at its last fsync or as left by any later
  operation on it, in order (creations, renames and removals in one folder are
  journaled in order; different folders are independent of each other);
- a folder created and not yet named in a durable entry of its parent is gone
  with everything in it.

Recording runs the code unchanged: while a :class:`Recorder` is active,
``os.open`` (O_CREAT), ``os.fdopen`` (the files it returns for writing),
``os.write``, ``os.fsync``, ``os.fdatasync``, ``os.replace``, ``os.rename``,
``os.unlink``, ``os.remove``, ``os.mkdir``, ``os.rmdir``, ``os.truncate`` and
``os.ftruncate`` are wrapped, and those touching the recorded folder are logged
with a snapshot of the folder after each one. ``tempfile``, ``pathlib`` and our
modules all reach these through the ``os`` module, so they are seen too. A
change made some other way is caught by comparing the folder before each
operation with the last snapshot, and logged as an ``untracked`` operation.

Example::

    with Recorder(world, initial={"alerts": ()}) as rec:
        with rec.step() as step:
            store.save_alerts([{"id": "crue"}])
            step.values = {"alerts": ("crue",)}
    report = check_every_cut(rec, observe, tmp_path / "replay")
    assert not report.violations, report.describe()
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Listing = Mapping[str, tuple[str, int]]  # name -> ("f", uid) or ("d", 0)
PAGE = 4096


@dataclass(frozen=True)
class Op:
    kind: str  # create, write, truncate, fsync, fsync-dir, rename, unlink, mkdir, rmdir, untracked
    path: str  # relative to the recorded folder
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.path}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class Snapshot:
    dirs: Mapping[str, Listing]  # "" is the recorded folder itself
    files: Mapping[int, bytes]  # uid -> content


@dataclass
class Step:
    """A stretch of operations after which ``values`` must be what a restart finds."""

    label: str
    begin: int
    end: int = -1
    values: dict[str, Any] = field(default_factory=dict)


class _RecordedFile:
    """A file object from ``os.fdopen`` whose every write reaches the kernel and is logged."""

    def __init__(self, recorder: Recorder, raw: Any, rel: str) -> None:
        self._rec, self._raw, self._rel = recorder, raw, rel

    def write(self, data: Any) -> int:
        def do() -> int:
            n = int(self._raw.write(data))
            self._raw.flush()
            return n
        return int(self._rec._do(Op("write", self._rel, f"{len(data)} bytes"), do))

    def __enter__(self) -> _RecordedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class Recorder:
    """Logs the file system operations under ``root`` while active (a context manager).

    ``root`` must exist; its content when recording starts is taken as durable
    (the panel has been running for a while). ``initial`` holds the values a
    restart must find before the first step.
    """

    def __init__(self, root: Path, initial: Mapping[str, Any]) -> None:
        self.root = Path(root).resolve()
        self.initial = dict(initial)
        self.ops: list[Op] = []
        self.steps: list[Step] = []
        self.file_syncs: list[tuple[int, int]] = []  # (operations done, uid)
        self.dir_syncs: list[tuple[int, str]] = []  # (operations done, folder)
        self._ino_uid: dict[int, int] = {}
        self._next_uid = 1
        self._blobs: dict[bytes, bytes] = {}
        self._lock = threading.RLock()
        self._saved: dict[str, Any] = {}
        self.snaps: list[Snapshot] = [self._snapshot(set())]

    # -- recording ------------------------------------------------------------
    def __enter__(self) -> Recorder:
        self._saved = {name: getattr(os, name) for name in (
            "open", "fdopen", "write", "fsync", "fdatasync", "replace", "rename", "unlink", "remove",
            "mkdir", "rmdir", "truncate", "ftruncate")}
        real = self._saved

        def _open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
            rel = self._rel(path) if dir_fd is None else None
            if rel is None or not flags & (os.O_CREAT | os.O_TRUNC):
                return int(real["open"](path, flags, mode, dir_fd=dir_fd))
            existed = os.path.lexists(path)
            kind = "create" if not existed else "open-trunc" if flags & os.O_TRUNC else "open"
            if kind == "open":
                return int(real["open"](path, flags, mode))
            return int(self._do(Op(kind, rel), lambda: real["open"](path, flags, mode),
                                fresh=None if existed else path))

        def _fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            raw = real["fdopen"](fd, mode, *args, **kwargs)
            rel = self._fd_rel(fd)
            if rel is None or not any(c in mode for c in "wa+"):
                return raw
            return _RecordedFile(self, raw, rel)

        def _write(fd: int, data: Any) -> int:
            rel = self._fd_rel(fd)
            if rel is None:
                return int(real["write"](fd, data))
            return int(self._do(Op("write", rel, f"{len(data)} bytes"), lambda: real["write"](fd, data)))

        def _sync(name: str) -> Callable[[int], None]:
            def sync(fd: int) -> None:
                rel = self._fd_rel(fd)
                if rel is None:
                    real[name](fd)
                    return
                st = os.fstat(fd)
                if stat.S_ISDIR(st.st_mode):
                    self._do(Op("fsync-dir", rel or "."), lambda: real[name](fd), synced_dir=rel)
                else:
                    self._do(Op(name, rel), lambda: real[name](fd), synced_ino=st.st_ino)
            return sync

        def _two(name: str) -> Callable[..., None]:
            def move(src: Any, dst: Any, **kwargs: Any) -> None:
                a, b = self._rel(src), self._rel(dst)
                if kwargs or (a is None and b is None):
                    real[name](src, dst, **kwargs)
                    return
                self._do(Op("rename", f"{a} -> {b}"), lambda: real[name](src, dst))
            return move

        def _one(name: str, kind: str) -> Callable[..., None]:
            def change(path: Any, *args: Any, **kwargs: Any) -> None:
                rel = self._rel(path)
                if rel is None or kwargs:
                    real[name](path, *args, **kwargs)
                    return
                self._do(Op(kind, rel), lambda: real[name](path, *args))
            return change

        def _ftruncate(fd: int, length: int) -> None:
            rel = self._fd_rel(fd)
            if rel is None:
                real["ftruncate"](fd, length)
                return
            self._do(Op("truncate", rel, f"to {length}"), lambda: real["ftruncate"](fd, length))

        patched = {"open": _open, "fdopen": _fdopen, "write": _write, "fsync": _sync("fsync"),
                   "fdatasync": _sync("fdatasync"), "replace": _two("replace"), "rename": _two("rename"),
                   "unlink": _one("unlink", "unlink"), "remove": _one("remove", "unlink"),
                   "mkdir": _one("mkdir", "mkdir"), "rmdir": _one("rmdir", "rmdir"),
                   "truncate": _one("truncate", "truncate"), "ftruncate": _ftruncate}
        for name, fn in patched.items():
            setattr(os, name, fn)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, fn in self._saved.items():
            setattr(os, name, fn)

    @contextlib.contextmanager
    def step(self, label: str = "") -> Iterator[Step]:
        """Operations done inside belong to one step; set ``values`` before it ends."""
        with self._lock:
            current = Step(label or f"step {len(self.steps) + 1}", len(self.ops))
        yield current
        with self._lock:
            self._catch_up()
            current.end = len(self.ops)
            self.steps.append(current)

    def _rel(self, path: Any) -> str | None:
        if isinstance(path, int):
            return None
        full = os.path.abspath(os.fsdecode(path))
        root = str(self.root)
        if full == root:
            return ""
        if full.startswith(root + os.sep):
            return full[len(root) + 1:]
        return None

    def _fd_rel(self, fd: int) -> str | None:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
        return self._rel(target.removesuffix(" (deleted)"))

    def _do(self, op: Op, fn: Callable[[], Any], *, fresh: Any = None, synced_dir: str | None = None,
            synced_ino: int | None = None) -> Any:
        with self._lock:
            self._catch_up()
            result = fn()
            new = {os.stat(fresh).st_ino} if fresh is not None else set()
            self.ops.append(op)
            self.snaps.append(self._snapshot(new))
            done = len(self.ops)
            if synced_dir is not None:
                self.dir_syncs.append((done, synced_dir))
            if synced_ino is not None and synced_ino in self._ino_uid:
                self.file_syncs.append((done, self._ino_uid[synced_ino]))
            return result

    def _catch_up(self) -> None:
        """Log, as an ``untracked`` operation, any change made since the last snapshot."""
        now = self._snapshot(set())
        if now != self.snaps[-1]:
            self.ops.append(Op("untracked", "?"))
            self.snaps.append(now)

    def _snapshot(self, fresh: set[int]) -> Snapshot:
        dirs: dict[str, dict[str, tuple[str, int]]] = {}
        files: dict[int, bytes] = {}

        def walk(rel: str, folder: str) -> None:
            entries: dict[str, tuple[str, int]] = {}
            dirs[rel] = entries
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    entries[entry.name] = ("d", 0)
                    walk(f"{rel}/{entry.name}" if rel else entry.name, entry.path)
                elif stat.S_ISREG(st.st_mode):
                    if st.st_ino in fresh or st.st_ino not in self._ino_uid:
                        self._ino_uid[st.st_ino] = self._next_uid
                        self._next_uid += 1
                    uid = self._ino_uid[st.st_ino]
                    entries[entry.name] = ("f", uid)
                    with open(entry.path, "rb") as handle:
                        data = handle.read()
                    files[uid] = self._blobs.setdefault(hashlib.sha256(data).digest(), data)

        walk("", str(self.root))
        return Snapshot(dirs, files)

    # -- expectations -----------------------------------------------------------
    def allowed(self, cut: int) -> dict[str, list[Any]]:
        """The values a restart may find after ``cut`` operations: the last completed
        step's, and the next step's too while it is under way."""
        current = dict(self.initial)
        for step in self.steps:
            if cut >= step.end:
                current.update(step.values)
            elif cut > step.begin:
                return {name: _unique([value, step.values.get(name, value)]) for name, value in current.items()}
            else:
                break
        return {name: [value] for name, value in current.items()}

    # -- crash states -------------------------------------------------------------
    def states_at(self, cut: int) -> Iterator[CrashState]:
        """Every state the card may hold if the power goes after ``cut`` operations."""
        dir_from: dict[str, int] = {}
        for done, folder in self.dir_syncs:
            if done <= cut:
                dir_from[folder] = done
        file_from: dict[int, int] = {}
        for done, uid in self.file_syncs:
            if done <= cut:
                file_from[uid] = done

        def dir_options(folder: str) -> list[Listing]:
            options: list[Listing] = []
            for j in range(dir_from.get(folder, 0), cut + 1):
                listing = self.snaps[j].dirs.get(folder)
                if listing is not None and listing not in options:
                    options.append(listing)
            return options or [{}]

        def trees(folder: str) -> Iterator[dict[str, Listing]]:
            for listing in dir_options(folder):
                subs = [f"{folder}/{name}" if folder else name
                        for name, (kind, _) in listing.items() if kind == "d"]
                for combo in itertools.product(*(list(trees(sub)) for sub in subs)):
                    tree = {folder: listing}
                    for part in combo:
                        tree.update(part)
                    yield tree

        cache: dict[int, list[tuple[bytes, str]]] = {}
        for tree in trees(""):
            uids = sorted({uid for listing in tree.values() for kind, uid in listing.values() if kind == "f"})
            for uid in uids:
                if uid not in cache:
                    cache[uid] = self._contents(uid, cut, file_from.get(uid))
            for choice in itertools.product(*(cache[uid] for uid in uids)):
                yield CrashState(cut, tree, {uid: data for uid, (data, _) in zip(uids, choice)},
                                 {uid: how for uid, (_, how) in zip(uids, choice)})

    def _contents(self, uid: int, cut: int, synced_at: int | None) -> list[tuple[bytes, str]]:
        """What a file may hold: durable content, each later write, torn unsynced data."""
        if synced_at is None and uid in self.snaps[0].files:
            synced_at = 0
        durable = self.snaps[synced_at].files.get(uid, b"") if synced_at is not None else b""
        options = [(durable, "as last fsynced" if synced_at is not None else "never fsynced: empty")]
        latest = durable
        for j in range(synced_at or 0, cut + 1):
            data = self.snaps[j].files.get(uid)
            if data is not None and data != latest:
                latest = data
                options.append((data, f"as after operation {j}"))
        if latest != durable:
            kept = _common_prefix(durable, latest)
            tail = len(latest) - kept
            if tail > 0:
                mid = kept + tail // 2
                for n in sorted({mid, (kept // PAGE + 1) * PAGE, len(latest) - 1}):
                    if kept < n < len(latest):
                        options.append((latest[:n], f"unsynced tail truncated to {n} of {len(latest)} bytes"))
                options.append((latest[:kept] + bytes(tail), f"unsynced {tail} bytes zero-filled"))
                options.append((latest[:mid] + bytes(len(latest) - mid),
                                f"last {len(latest) - mid} unsynced bytes zero-filled"))
                options.append((latest[:kept] + b"\xa5" * tail, f"unsynced {tail} bytes garbage"))
        unique: list[tuple[bytes, str]] = []
        for data, how in options:
            if all(data != seen for seen, _ in unique):
                unique.append((data, how))
        return unique


@dataclass(frozen=True)
class CrashState:
    """One state of the recorded folder after a power cut."""

    cut: int
    tree: Mapping[str, Listing]
    files: Mapping[int, bytes]
    hows: Mapping[int, str]

    def key(self) -> bytes:
        digest = hashlib.sha256()
        for folder in sorted(self.tree):
            digest.update(b"D" + folder.encode() + b"\0")
            for name, (kind, uid) in sorted(self.tree[folder].items()):
                digest.update(f"{name}\0{kind}\0".encode())
                if kind == "f":
                    digest.update(hashlib.sha256(self.files[uid]).digest())
        return digest.digest()

    def describe(self, rec: Recorder) -> str:
        latest = rec.snaps[self.cut]
        parts = []
        for folder in sorted(self.tree):
            now = latest.dirs.get(folder, {})
            if self.tree[folder] != now:
                lost = sorted(name for name in now if self.tree[folder].get(name) != now[name])
                back = sorted(name for name in self.tree[folder] if name not in now)
                parts.append(f"folder {folder or '.'}/ not durable: an earlier entry list"
                             + (f" without {', '.join(lost)}" if lost else "")
                             + (f" with {', '.join(back)}" if back else ""))
            for name, (kind, uid) in sorted(self.tree[folder].items()):
                if kind == "f" and self.files[uid] != latest.files.get(uid):
                    parts.append(f"{folder + '/' if folder else ''}{name}: {self.hows[uid]}")
        return "; ".join(parts) or "as written"

    def materialise(self, into: Path) -> None:
        """Write this state into the empty folder ``into``."""
        for folder in sorted(self.tree, key=lambda f: f.count("/") if f else -1):
            base = into / folder if folder else into
            base.mkdir(parents=True, exist_ok=True)
            for name, (kind, uid) in self.tree[folder].items():
                if kind == "f":
                    (base / name).write_bytes(self.files[uid])


@dataclass
class Violation:
    cut: int
    after: str
    state: str
    found: Any
    allowed: Any


@dataclass
class Report:
    cuts: int = 0
    states: int = 0  # (cut point, state) pairs checked
    distinct: int = 0  # distinct states restarted on
    seconds: float = 0.0
    violations: list[Violation] = field(default_factory=list)

    def describe(self, limit: int = 8) -> str:
        lines = [f"{len(self.violations)} torn or lost states out of {self.states} "
                 f"({self.cuts} cut points, {self.distinct} distinct states):"]
        for v in self.violations[:limit]:
            lines.append(f"- cut after {v.after}: {v.state}\n    found {v.found!r}, expected one of {v.allowed!r}")
        return "\n".join(lines)


Observe = Callable[[Path], dict[str, Any]]


def check_every_cut(rec: Recorder, observe: Observe, workdir: Path, *,
                    max_states_per_cut: int = 20_000) -> Report:
    """Restart on every state at every cut point; ``observe(folder)`` returns what the
    restart found (name -> value) or raises. Each distinct state is restarted on once.

    ``observe`` gets the materialised copy of the recorded folder.
    """
    started = time.perf_counter()
    report = Report(cuts=len(rec.ops) + 1)
    seen: dict[bytes, Any] = {}
    for cut in range(len(rec.ops) + 1):
        allowed = rec.allowed(cut)
        after = "nothing (start)" if cut == 0 else f"operation {cut}: {rec.ops[cut - 1]}"
        for n, state in enumerate(rec.states_at(cut)):
            if n >= max_states_per_cut:
                raise AssertionError(f"more than {max_states_per_cut} states at cut {cut}")
            report.states += 1
            key = state.key()
            if key not in seen:
                if workdir.exists():
                    shutil.rmtree(workdir)
                workdir.mkdir(parents=True)
                state.materialise(workdir)
                try:
                    seen[key] = observe(workdir)
                except Exception as exc:  # noqa: BLE001 - a crash at restart is a finding
                    seen[key] = f"restart failed: {type(exc).__name__}: {exc}"
            found = seen[key]
            bad = not isinstance(found, dict) or any(found.get(name) not in values
                                                     for name, values in allowed.items())
            if bad:
                report.violations.append(Violation(cut, after, state.describe(rec), found, allowed))
    report.distinct = len(seen)
    report.seconds = time.perf_counter() - started
    return report


def _common_prefix(a: bytes, b: bytes) -> int:
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _unique(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if value not in out:
            out.append(value)
    return out
