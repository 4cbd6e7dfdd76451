"""The state folder (``state_dir``): last applied playlist, active alerts, small settings, assets.

Panels lose power every night, often in the middle of a write. Every file here
is therefore written by :func:`atomic_write` (temporary file in the same
folder, fsync, rename, fsync of the folder), and the folders it creates are
fsynced in their parent (:func:`make_dirs`), so after a cut each file is either
the old or the new version, complete. State files also carry a sha256 of their
content: one damaged by the card itself is ignored with a warning rather than
half-used.

Layout of ``state_dir``::

    playlist.state        last applied playlist (raw JSON bytes + metadata)
    alerts.state          active alerts
    settings/NAME.state   small JSON values (brightness override, ...)
    assets/SHA256         image files, named by the lowercase hex sha256 of their bytes

Example::

    store = StateStore(Path("/var/lib/panel-player"))
    store.save_playlist(raw, {"topic": "signage/panels/p1/playlist", "applied_at": ts})
    raw, meta = store.load_playlist() or (None, None)
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import AssetError, StateError

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".part"
SHA_RE = re.compile(r"[0-9a-f]{64}")
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_MAGIC = b"panel-player-state 1"
_CHUNK = 1 << 20




def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a power cut leaves the old or the new file.

    A temporary file in the same folder is written, flushed and fsynced, renamed
    over ``path`` with :func:`os.replace`, then the folder itself is fsynced so
    the rename is on the card too.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        unlink_quietly(Path(tmp_name))
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make the entries of ``folder`` (renames, deletions) durable."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents so that a power cut cannot take them back.

    A new folder is only an entry in its parent until the parent is fsynced: without
    that, a cut could remove the folder with every file later written and fsynced in it.
    """
    folder = Path(folder)
    if folder.is_dir():
        return
    make_dirs(folder.parent)
    try:
        folder.mkdir()
    except FileExistsError:
        if folder.is_dir():
            return  # made by someone else meanwhile
        raise
    try:
        fsync_dir(folder.parent)
    except PermissionError:  # a parent we may write but not read (mode 0711): nothing more we can do
        log.warning("cannot fsync %s: the new folder %s may not survive a power cut", folder.parent, folder.name)


def clean_temp_files(folder: Path) -> list[Path]:
    """Remove the temporary files a crash left in ``folder``; returns them."""
    removed = []
    for entry in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        if entry.is_file():
            unlink_quietly(entry)
            removed.append(entry)
    return removed


def sha256_file(path: Path) -> str:
    """Lowercase hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class AssetStore:
    """Image files named by their sha256, verified before they are kept.

    ``quota_bytes`` bounds the folder: the caller asks :meth:`room_for` before
    fetching a new asset and calls :meth:`collect` once a playlist is applied.
    Writing never checks the quota itself, because the assets of the playlist
    on screen and of the one being fetched must coexist until the switch.
    """

    def __init__(self, root: Path, quota_bytes: int) -> None:
        self.root = Path(root)
        self.quota_bytes = quota_bytes
        make_dirs(self.root)

    def path(self, sha: str) -> Path:
        """Where the asset ``sha`` (64 lowercase hex digits) lives, present or not."""
        if not isinstance(sha, str) or not SHA_RE.fullmatch(sha):
            raise ValueError(f"not a lowercase hex sha256: {sha!r}")
        return self.root / sha

    def has(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def temp_path(self) -> Path:
        """A fresh temporary file in this folder for a streamed download; pass it to
        :meth:`put_file`. Left-overs are removed when the store next starts."""
        fd, name = tempfile.mkstemp(dir=self.root, prefix=".incoming.", suffix=TEMP_SUFFIX)
        os.close(fd)
        return Path(name)

    def put(self, sha: str, data: bytes) -> Path:
        """Store ``data`` as asset ``sha``; :class:`AssetError` if its hash differs."""
        target = self.path(sha)
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            raise AssetError(f"asset {sha}: content hashes to {actual}")
        if self._intact(target, sha, len(data)):
            return target  # spare the card a rewrite: retained assets arrive again on every connect
        atomic_write(target, data)
        return target

    def put_file(self, sha: str, tmp: Path) -> Path:
        """Move a downloaded file into place once its hash is checked.

        ``tmp`` is consumed either way: renamed into the store, or removed with
        an :class:`AssetError` when its hash differs.
        """
        target = self.path(sha)
        tmp = Path(tmp)
        try:
            actual = sha256_file(tmp)
        except OSError as exc:
            unlink_quietly(tmp)
            raise AssetError(f"asset {sha}: cannot read {tmp}: {exc}") from exc
        if actual != sha:
            unlink_quietly(tmp)
            raise AssetError(f"asset {sha}: content hashes to {actual}")
        try:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                unlink_quietly(tmp)
                raise
            try:
                self._copy_in(tmp, target)
            finally:  # consumed even when the copy fails (a full card): nothing else would remove it
                unlink_quietly(tmp)
        fsync_dir(self.root)
        return target

    def verify(self, sha: str) -> bool:
        """Re-hash asset ``sha``; a corrupt file is removed. ``False`` if absent or corrupt."""
        target = self.path(sha)
        try:
            actual = sha256_file(target)
        except FileNotFoundError:
            return False
        if actual == sha:
            return True
        log.warning("asset %s is corrupt (hashes to %s); removed", sha, actual)
        unlink_quietly(target)
        return False

    def shas(self) -> list[str]:
        """Every asset present, sorted."""
        return sorted(entry.name for entry in self.root.iterdir()
                      if SHA_RE.fullmatch(entry.name) and entry.is_file())

    def usage(self) -> int:
        """Bytes used by the assets present."""
        return sum(self._size(sha) for sha in self.shas())

    def collect(self, keep: Iterable[str]) -> list[str]:
        """Remove every asset not in ``keep``; returns the removed shas, sorted."""
        kept = set(keep)
        removed = [sha for sha in self.shas() if sha not in kept]
        for sha in removed:
            unlink_quietly(self.root / sha)
        if removed:
            fsync_dir(self.root)
        return removed

    def room_for(self, size: int, keep: Iterable[str]) -> bool:
        """Whether ``size`` more bytes fit in the quota once every asset not in ``keep``
        is collected. Removes nothing."""
        kept = set(keep)
        used = sum(self._size(sha) for sha in self.shas() if sha in kept)
        return used + size <= self.quota_bytes

    def _size(self, sha: str) -> int:
        try:
            return (self.root / sha).stat().st_size
        except FileNotFoundError:
            return 0

    @staticmethod
    def _intact(target: Path, sha: str, size: int) -> bool:
        try:
            return target.stat().st_size == size and sha256_file(target) == sha
        except FileNotFoundError:
            return False

    def _copy_in(self, source: Path, target: Path) -> None:
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                os.fchmod(out.fileno(), 0o644)
                shutil.copyfileobj(src, out, _CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            unlink_quietly(Path(tmp_name))
            raise


class StateStore:
    """Everything the panel keeps across restarts and power cuts, under ``root``.

    The constructor creates the folder tree, removes temporary files a crash
    left behind and checks that the folder is writable, raising
    :class:`StateError` with the reason when it is not.
    """

    PLAYLIST = "playlist.state"
    ALERTS = "alerts.state"
    SETTINGS = "settings"
    ASSETS = "assets"

    def __init__(self, root: Path, asset_quota_bytes: int = 512 * 2**20) -> None:
        self.root = Path(root)
        try:
            for folder in (self.root, self.root / self.SETTINGS, self.root / self.ASSETS):
                make_dirs(folder)
                for stale in clean_temp_files(folder):
                    log.info("removed %s, left by an interrupted write", stale)
            # Creating a file is the only reliable test (read-only mounts, root
            # bypassing permission bits); the probe never reaches the card's blocks.
            fd, probe = tempfile.mkstemp(dir=self.root, prefix=".probe.", suffix=TEMP_SUFFIX)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            reason = f"{exc.strerror}: {exc.filename}" if exc.strerror else str(exc)
            raise StateError(exc.errno or errno.EIO, f"state_dir {self.root} is not usable ({reason})") from exc
        self.assets = AssetStore(self.root / self.ASSETS, asset_quota_bytes)

    # -- playlist -------------------------------------------------------
    def save_playlist(self, raw: bytes, meta: dict[str, Any]) -> None:
        """Persist the playlist just applied: its exact JSON bytes and JSON-able ``meta``
        (e.g. ``{"topic": ..., "applied_at": ...}``)."""
        header = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self._write(self.root / self.PLAYLIST, header + b"\n" + bytes(raw))

    def load_playlist(self) -> tuple[bytes, dict[str, Any]] | None:
        """``(raw, meta)`` of the last applied playlist; ``None`` if none or damaged."""
        body = self._read(self.root / self.PLAYLIST)
        if body is None:
            return None
        header, _, raw = body.partition(b"\n")
        try:
            meta = json.loads(header)
        except ValueError:
            meta = None
        if not isinstance(meta, dict):
            log.warning("%s: bad metadata; ignored", self.root / self.PLAYLIST)
            return None
        return raw, meta

    def clear_playlist(self) -> None:
        """Forget the persisted playlist (the bundled content plays next start)."""
        self._remove(self.root / self.PLAYLIST)

    # -- alerts ---------------------------------------------------------
    def save_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Persist the active alerts (JSON-able mappings), replacing the previous list."""
        self._write(self.root / self.ALERTS, _dump(alerts))

    def load_alerts(self) -> list[dict[str, Any]]:
        """The persisted alerts; ``[]`` if none or damaged."""
        value = self._read_json(self.root / self.ALERTS)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            log.warning("%s: not a list of alerts; ignored", self.root / self.ALERTS)
            return []
        return value

    # -- small settings ---------------------------------------------------
    def save_json(self, name: str, data: Any) -> None:
        """Persist a small JSON-able value under ``name`` (``[a-z0-9][a-z0-9_-]*``)."""
        self._write(self._setting(name), _dump(data))

    def load_json(self, name: str) -> Any | None:
        """The value saved under ``name``; ``None`` if none or damaged."""
        return self._read_json(self._setting(name))

    def delete_json(self, name: str) -> None:
        self._remove(self._setting(name))

    # -- file format --------------------------------------------------------
    def _setting(self, name: str) -> Path:
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise ValueError(f"bad state name {name!r}: expected [a-z0-9][a-z0-9_-]*, at most 64 characters")
        return self.root / self.SETTINGS / f"{name}.state"

    @staticmethod
    def _write(path: Path, body: bytes) -> None:
        # First line: magic, sha256 and length of the rest, so a damaged file is detected.
        head = b"%s %s %d\n" % (_MAGIC, hashlib.sha256(body).hexdigest().encode(), len(body))
        atomic_write(path, head + body)

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("%s: cannot be read (%s); ignored", path, exc)
            return None
        head, newline, body = data.partition(b"\n")
        parts = head.rsplit(b" ", 2)
        if (not newline or len(parts) != 3 or parts[0] != _MAGIC or not parts[2].isdigit()
                or int(parts[2]) != len(body) or hashlib.sha256(body).hexdigest().encode() != parts[1]):
            log.warning("%s: damaged (checksum or length mismatch); ignored", path)
            return None
        return body

    def _read_json(self, path: Path) -> Any | None:
        body = self._read(path)
        if body is None:
            return None
        try:
            return json.loads(body)
        except ValueError:
            log.warning("%s: not valid JSON; ignored", path)
            return None

    @staticmethod
    def _remove(path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(path.parent)


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
