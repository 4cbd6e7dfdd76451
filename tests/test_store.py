"""The state folder (player.store): atomic writes, power cuts, assets, quota, damaged files."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from player.errors import AssetError, PanelError
from player.store import AssetStore, StateError, StateStore, atomic_write

ROOT = Path(__file__).resolve().parent.parent


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def temp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.name.endswith(".part"))


# -- atomic_write -------------------------------------------------------------

def test_atomic_write_replaces_content_with_mode(tmp_path: Path) -> None:
    target = tmp_path / "frame.bin"
    atomic_write(target, b"old")
    atomic_write(target, b"new content", mode=0o600)
    assert target.read_bytes() == b"new content"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert temp_files(tmp_path) == []


def test_atomic_write_fsyncs_file_then_renames_then_fsyncs_folder(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, ...]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        kind = "folder" if stat.S_ISDIR(info.st_mode) else "file"
        # What the file holds at fsync time must already be the whole payload.
        size = str(info.st_size) if kind == "file" else ""
        events.append(("fsync", kind, str(info.st_ino), size))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        events.append(("replace", Path(src).parent.name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "playlist.state"
    payload = b"x" * 10_000
    atomic_write(target, payload)
    folder_ino = str(tmp_path.stat().st_ino)
    file_ino = str(target.stat().st_ino)
    assert events == [
        ("fsync", "file", file_ino, str(len(payload))),   # the temp file that became the target
        ("replace", tmp_path.name, "playlist.state"),     # renamed from the same folder
        ("fsync", "folder", folder_ino, ""),
    ]


def test_atomic_write_failure_keeps_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "alerts.state"
    atomic_write(target, b"old")
    with pytest.raises(TypeError):
        atomic_write(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert temp_files(tmp_path) == []


# -- power cuts -----------------------------------------------------------------

WRITER = textwrap.dedent("""
    import hashlib, sys
    from pathlib import Path
    from player.store import StateStore

    store = StateStore(Path(sys.argv[1]))
    last = store.load_playlist()
    n = last[1]["n"] + 1 if last else 0
    print("ready", flush=True)
    while True:
        filler = "é".encode() * (1000 + (n * 7919) % 200_000)
        raw = b'{"id": "p", "version": %d, "slides": [{"id": "s", "type": "text", "title": "%s"}]}' % (n, filler)
        store.save_playlist(raw, {"n": n, "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()})
        sys.stdout.write("saved %d" % n + chr(10))  # one write: a kill cannot split the line
        sys.stdout.flush()
        n += 1
""")


def test_power_cut_leaves_old_or_new_playlist_complete(tmp_path: Path) -> None:
    state = tmp_path / "state"
    rng = random.Random(2026)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    last_saved: int | None = None
    cut_mid_write = 0
    for _ in range(30):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(state)], stdout=subprocess.PIPE,
                                 env=env, cwd=ROOT, text=True)
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        # Kill at a random moment: after 0-2 completed saves, then up to 3 ms more.
        for _ in range(rng.randrange(3)):
            line = child.stdout.readline()
            assert line.startswith("saved"), line
            last_saved = int(line.split()[1])
        time.sleep(rng.uniform(0, 0.003))
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL
        for line in rest.splitlines():
            last_saved = int(line.split()[1])
        if temp_files(state):
            cut_mid_write += 1

        loaded = StateStore(state).load_playlist()
        assert temp_files(state) == []                  # cleaned at start
        if loaded is None:
            assert last_saved is None                   # nothing ever completed
            continue
        raw, meta = loaded
        assert len(raw) == meta["size"] and sha(raw) == meta["sha256"]
        assert json.loads(raw)["version"] == meta["n"]
        # The last one reported as saved, or the next one if the kill came between
        # its rename and the report.
        expected = {0} if last_saved is None else {last_saved, last_saved + 1}
        assert meta["n"] in expected
        last_saved = meta["n"]
    assert last_saved is not None
    # Proof the test cut writes in progress, not only idle moments between them.
    assert cut_mid_write > 0, "no kill landed during a write"
    print(f"{cut_mid_write}/30 kills interrupted a write")


# -- assets -----------------------------------------------------------------------

def test_asset_put_verifies_hash(tmp_path: Path) -> None:
    assets = AssetStore(tmp_path / "assets", quota_bytes=10_000)
    data = b"\x89PNG fake image"
    path = assets.put(sha(data), data)
    assert path == assets.path(sha(data)) and path.read_bytes() == data
    assert assets.has(sha(data))
    other = b"something else"
    with pytest.raises(AssetError, match=sha(other)):
        assets.put(sha(data + b"!"), other)
    assert not assets.has(sha(data + b"!"))
    assert assets.shas() == [sha(data)]
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize("bad", ["../../etc/passwd", "A" * 64, "0" * 63, "sha256:" + "0" * 64, ""])
def test_asset_names_must_be_lowercase_hex_sha256(tmp_path: Path, bad: str) -> None:
    assets = AssetStore(tmp_path, quota_bytes=100)
    with pytest.raises(ValueError):
        assets.path(bad)


def test_asset_put_file_moves_a_verified_download(tmp_path: Path) -> None:
    assets = AssetStore(tmp_path / "assets", quota_bytes=10**6)
    data = os.urandom(50_000)
    tmp = assets.temp_path()
    tmp.write_bytes(data)
    assert assets.put_file(sha(data), tmp) == assets.path(sha(data))
    assert not tmp.exists()
    assert assets.verify(sha(data))

    bad = assets.temp_path()
    bad.write_bytes(data[:-1])
    with pytest.raises(AssetError):
        assets.put_file(sha(b"wanted"), bad)
    assert not bad.exists() and not assets.has(sha(b"wanted"))
    assert temp_files(tmp_path) == []


def test_asset_put_file_from_another_filesystem(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second filesystem")
    data = os.urandom(3000)
    source = shm / f"panel-player-test-{os.getpid()}.bin"
    source.write_bytes(data)
    try:
        assets = AssetStore(tmp_path, quota_bytes=10**6)
        assets.put_file(sha(data), source)
        assert assets.path(sha(data)).read_bytes() == data
        assert not source.exists()
    finally:
        source.unlink(missing_ok=True)


def test_asset_verify_removes_a_corrupt_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assets = AssetStore(tmp_path, quota_bytes=10**6)
    data = b"affiche du marche de noel" * 100
    path = assets.put(sha(data), data)
    assert assets.verify(sha(data))
    with open(path, "r+b") as handle:   # one flipped bit, as a worn SD card does
        handle.seek(1234)
        byte = handle.read(1)
        handle.seek(1234)
        handle.write(bytes([byte[0] ^ 0x01]))
    with caplog.at_level(logging.WARNING, logger="player.store"):
        assert not assets.verify(sha(data))
    assert "corrupt" in caplog.text
    assert not assets.has(sha(data))
    assert not assets.verify(sha(data))   # absent


def test_asset_put_repairs_a_corrupt_copy(tmp_path: Path) -> None:
    assets = AssetStore(tmp_path, quota_bytes=10**6)
    data = b"0123456789" * 10
    path = assets.put(sha(data), data)
    path.write_bytes(b"X" * len(data))
    assets.put(sha(data), data)
    assert path.read_bytes() == data


def test_asset_usage_quota_and_collect(tmp_path: Path) -> None:
    assets = AssetStore(tmp_path, quota_bytes=1000)
    blobs = {name: bytes([i]) * size for i, (name, size) in enumerate({"a": 300, "b": 400, "c": 200}.items())}
    shas = {name: assets.put(sha(data), data).name for name, data in blobs.items()}
    assert assets.usage() == 900
    assert assets.room_for(100, keep=shas.values())
    assert not assets.room_for(101, keep=shas.values())
    assert assets.room_for(600, keep=[shas["b"]])          # a and c would go
    assert not assets.room_for(601, keep=[shas["b"]])
    assert assets.usage() == 900                            # room_for removes nothing
    removed = assets.collect(keep=[shas["b"], "f" * 64])
    assert removed == sorted([shas["a"], shas["c"]])
    assert assets.shas() == [shas["b"]]
    assert assets.usage() == 400
    assert assets.collect(keep=[shas["b"]]) == []


# -- the state store ----------------------------------------------------------------

def test_state_store_creates_its_tree(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "var" / "lib" / "panel-player", asset_quota_bytes=1234)
    assert (store.root / "assets").is_dir() and (store.root / "settings").is_dir()
    assert store.assets.quota_bytes == 1234
    assert store.load_playlist() is None
    assert store.load_alerts() == []
    assert store.load_json("brightness") is None


def test_state_store_refuses_an_unusable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StateError, match="not usable") as info:
        StateStore(blocker / "state")
    assert isinstance(info.value, PanelError) and isinstance(info.value, OSError)
    assert str(blocker / "state") in str(info.value)


NOBODY = 65534  # the service user stand-in when the suite runs as root (as CI does)


def as_service_user(work: Callable[[], object]) -> object:
    """``work()``'s JSON-able result, run as a user that permission bits stop.

    Panels run the player as a service user; root ignores a folder's mode. When the
    suite runs as root (as CI does), ``work`` runs in a forked child that drops to
    ``nobody`` first (no exec: the modules are loaded already), and its result or the
    exception it raised comes back through a pipe."""
    if os.geteuid() != 0:
        return work()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                answer = {"result": work()}
            except BaseException as exc:  # reported to the parent, which raises it again
                answer = {"error": type(exc).__name__, "errno": getattr(exc, "errno", None), "text": str(exc)}
            with os.fdopen(write_end, "w") as pipe:
                json.dump(answer, pipe)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        answer = json.loads(pipe.read() or "{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and answer, "the child running as nobody failed"
    if "error" in answer:
        raise ServiceUserError(answer["error"], answer["errno"], answer["text"])
    return answer["result"]


class ServiceUserError(Exception):
    """An exception raised by :func:`as_service_user`'s work, as the parent sees it."""

    def __init__(self, kind: str, errno: int | None, text: str) -> None:
        super().__init__(f"{kind}: {text}")
        self.kind, self.errno, self.text = kind, errno, text


@contextmanager
def service_user_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder the service user owns: ``tmp_path`` itself, or as root a folder outside
    root's private ``tmp_path`` (mode 0700) that ``nobody`` can reach, removed after.
    Whatever the test made read-only in it is made writable again first."""
    import shutil
    import tempfile
    base = tmp_path
    if os.geteuid() == 0:
        base = Path(tempfile.mkdtemp(prefix="panel-player-ro-"))
        base.chmod(0o755)
        os.chown(base, NOBODY, NOBODY)
    try:
        yield base
    finally:
        for path in base.rglob("*"):
            if path.is_dir():
                path.chmod(0o700)
        if base != tmp_path:
            shutil.rmtree(base)


def owned_like(path: Path, base: Path) -> None:
    """``path`` owned by ``base``'s owner (the service user)."""
    os.chown(path, os.stat(base).st_uid, os.stat(base).st_gid)


def _refusal(folder: Path) -> tuple[int | None, str]:
    def start() -> str:
        StateStore(folder)
        return "accepted"

    try:
        outcome = as_service_user(start)
    except StateError as exc:
        return exc.errno, str(exc)
    except ServiceUserError as exc:
        assert exc.kind == "StateError", exc
        return exc.errno, exc.text
    raise AssertionError(f"a read-only state folder was {outcome}")


def test_state_store_refuses_a_read_only_folder(tmp_path: Path) -> None:
    """As the panel's service user (not root, whom permission bits do not stop)."""
    with service_user_folder(tmp_path) as base:
        folder = base / "state"
        folder.mkdir()
        owned_like(folder, base)
        folder.chmod(0o500)
        code, text = _refusal(folder)
        assert code == errno.EACCES
        assert text.startswith(f"[Errno 13] state_dir {folder} is not usable (Permission denied: {folder}/settings")


def test_the_write_probe_is_made_in_the_state_folder_itself(tmp_path: Path) -> None:
    """The folder's tree is there (a previous start made it) but the folder has become
    read-only: only the write probe can tell, and the error names the probe it tried."""
    with service_user_folder(tmp_path) as base:
        folder = base / "state"
        StateStore(folder)
        for path in (folder, folder / "settings", folder / "assets"):
            owned_like(path, base)
        folder.chmod(0o500)
        code, text = _refusal(folder)
        assert code == errno.EACCES
        pattern = rf"\[Errno 13\] state_dir {re.escape(str(folder))} is not usable \(Permission denied: "
        pattern += rf"{re.escape(str(folder))}/\.probe\.[^/ ]+\.part\)"
        assert re.fullmatch(pattern, text), text


def test_a_write_probe_left_by_a_power_cut_is_removed_at_the_next_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    with monkeypatch.context() as patch:  # the power goes between the probe's creation and removal
        patch.setattr(os, "unlink", lambda path, *args, **kwargs: None)
        StateStore(state)
    left = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert len(left) == 1 and left[0].parent == state and left[0].name.startswith(".probe.")
    with caplog.at_level(logging.INFO, logger="player.store"):
        StateStore(state)  # the next start
    assert not left[0].exists()
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, f"removed {left[0]}, left by an interrupted write")]


def test_a_folder_made_under_a_parent_it_cannot_read_is_made_with_a_warning(tmp_path: Path) -> None:
    """``/var/lib`` may be mode 0711 for the service user: the new folder is made, but its
    parent cannot be fsynced; the log says that it may not survive a power cut."""
    from player.store import make_dirs

    def make(parent: Path) -> list[list[object]]:
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logger = logging.getLogger("player.store")
        logger.addHandler(handler)
        try:
            make_dirs(parent / "panel-player")
        finally:
            logger.removeHandler(handler)
        return [[r.levelno, r.getMessage()] for r in records]

    with service_user_folder(tmp_path) as base:
        parent = base / "lib"
        parent.mkdir()
        owned_like(parent, base)
        parent.chmod(0o311)
        assert make(base / "readable") == []  # in this process too, where mutmut sees it
        assert as_service_user(lambda: make(parent)) == [[logging.WARNING, f"cannot fsync {parent}: the new folder "
                                                          "panel-player may not survive a power cut"]]
        parent.chmod(0o711)
        assert (parent / "panel-player").is_dir()


def test_a_header_whose_length_is_not_a_number_is_damage_not_a_crash(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = StateStore(tmp_path)
    alerts = tmp_path / "alerts.state"
    body = b"[]"
    alerts.write_bytes(b"panel-player-state 1 " + sha(body).encode() + b" two\n" + body)
    with caplog.at_level(logging.WARNING, logger="player.store"):
        assert store.load_alerts() == []
    assert caplog.messages == [f"{alerts}: damaged (checksum or length mismatch); ignored"]


def test_bad_names_are_refused_saying_what_is_expected(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    with pytest.raises(ValueError, match=r"^bad state name '\.\./x': expected \[a-z0-9\]\[a-z0-9_-\]\*"):
        store.save_json("../x", 1)
    with pytest.raises(ValueError, match=r"^not a lowercase hex sha256: 'ABC'$"):
        store.assets.path("ABC")


def test_a_copy_from_another_filesystem_that_fails_leaves_nothing_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The card is full during the copy: the error goes up, the half copy and the
    download (which may sit on another filesystem, out of the start-up clean-up) are gone."""
    import errno as errno_module
    import shutil
    state, downloads = tmp_path / "state", tmp_path / "downloads"
    downloads.mkdir()
    assets = StateStore(state).assets
    data = b"photo" * 100
    tmp = downloads / "incoming.bin"
    tmp.write_bytes(data)

    def replace(src: str | Path, dst: str | Path) -> None:
        raise OSError(errno_module.EXDEV, "Invalid cross-device link")

    def copy(src: object, dst: object, length: int = 0) -> None:
        raise OSError(errno_module.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", replace)
        patch.setattr(shutil, "copyfileobj", copy)
        with pytest.raises(OSError, match="No space left"):
            assets.put_file(sha(data), tmp)
    assert list(downloads.iterdir()) == [] and list((state / "assets").iterdir()) == []


def test_clean_temp_files_returns_what_it_removed(tmp_path: Path) -> None:
    from player.store import clean_temp_files
    left = tmp_path / ".playlist.state.x1.part"
    left.write_bytes(b"half")
    (tmp_path / "keep.part").write_bytes(b"not hidden: not ours")
    assert clean_temp_files(tmp_path) == [left]
    assert clean_temp_files(tmp_path) == []


def test_playlist_round_trip_is_byte_exact(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    raw = '{"id": "hiver", "version": 3, "ticker": ["Collecte jeudi\u00a0!"]}\n'.encode()
    meta = {"topic": "signage/panels/mairie/playlist", "applied_at": "2026-11-25T18:00:00+01:00"}
    store.save_playlist(raw, meta)
    assert StateStore(tmp_path).load_playlist() == (raw, meta)
    store.save_playlist(b'{"id": "ete"}', {"topic": "t"})
    assert StateStore(tmp_path).load_playlist() == (b'{"id": "ete"}', {"topic": "t"})
    store.clear_playlist()
    assert store.load_playlist() is None


def test_alerts_and_settings_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    alerts = [{"id": "crue-1", "level": "critical", "title": "ALERTE CRUE", "expires": None}]
    store.save_alerts(alerts)
    store.save_json("brightness", {"value": 40, "until": "2026-11-25T18:10:00Z"})
    again = StateStore(tmp_path)
    assert again.load_alerts() == alerts
    assert again.load_json("brightness") == {"value": 40, "until": "2026-11-25T18:10:00Z"}
    again.save_alerts([])
    assert again.load_alerts() == []
    again.delete_json("brightness")
    assert again.load_json("brightness") is None
    with pytest.raises(ValueError):
        again.save_json("../escape", 1)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x20
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "flipped byte": _flip,
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:-5]),
    "empty": lambda p: p.write_bytes(b""),
    "garbage": lambda p: p.write_bytes(os.urandom(200)),
    "plain json": lambda p: p.write_bytes(b'[{"id": "x"}]'),
}


@pytest.mark.parametrize("damage", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_damaged_state_files_are_ignored_with_a_warning(tmp_path: Path, damage: object,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    store = StateStore(tmp_path)
    store.save_playlist(b'{"id": "p", "version": 1, "slides": []}', {"topic": "t"})
    store.save_alerts([{"id": "a", "level": "info", "title": "Info"}])
    store.save_json("brightness", {"value": 40})
    files = [tmp_path / "playlist.state", tmp_path / "alerts.state", tmp_path / "settings" / "brightness.state"]
    for path in files:
        damage(path)  # type: ignore[operator]
    with caplog.at_level(logging.WARNING, logger="player.store"):
        assert store.load_playlist() is None
        assert store.load_alerts() == []
        assert store.load_json("brightness") is None
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == len(files)
    for path in files:
        assert any(str(path) in message for message in warned), (path, warned)


def test_well_sealed_but_wrong_shape_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = StateStore(tmp_path)
    store.save_json("alerts-shape", {"not": "a list"})
    # Same sealed format, wrong content: alerts must be a list of mappings.
    (tmp_path / "settings" / "alerts-shape.state").replace(tmp_path / "alerts.state")
    with caplog.at_level(logging.WARNING, logger="player.store"):
        assert store.load_alerts() == []
    assert "not a list of alerts" in caplog.text


def test_temp_files_from_a_crash_are_removed_at_start(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save_json("brightness", 40)
    leftovers = [tmp_path / ".playlist.state.k2j3.part", tmp_path / "settings" / ".brightness.state.x.part",
                 tmp_path / "assets" / ".incoming.abc.part"]
    for path in leftovers:
        path.write_bytes(b"half")
    keep = tmp_path / "notes.txt"
    keep.write_text("installer notes")
    again = StateStore(tmp_path)
    assert not any(p.exists() for p in leftovers)
    assert keep.exists()
    assert again.load_json("brightness") == 40


# -- pinned down one by one (each kills a mutant the tests above let live) ----------------------

def _crash_before_rename(monkeypatch: pytest.MonkeyPatch) -> None:
    """The power goes at the rename: nothing after it runs, no clean-up either."""
    import player.store as store_module

    def replace(src: str | Path, dst: str | Path) -> None:
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(store_module, "unlink_quietly", lambda path: None)


def test_a_write_cut_before_its_rename_leaves_a_temp_the_next_start_removes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    StateStore(state)
    with monkeypatch.context() as patch:
        _crash_before_rename(patch)
        with pytest.raises(KeyboardInterrupt):
            atomic_write(state / "playlist.state", b"half")
        with pytest.raises(KeyboardInterrupt):
            AssetStore(state / "assets", 10**6).put(sha(b"img"), b"img")
    left = temp_files(tmp_path)
    assert [p.parent for p in left] == [state, state / "assets"]  # in the target's own folder
    assert left[0].name.startswith(".playlist.state.") and left[1].name.startswith(f".{sha(b'img')}.")
    StateStore(state)  # the next start
    assert temp_files(tmp_path) == []


def test_download_temp_files_and_a_cross_filesystem_copy_are_cleaned_after_a_cut(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno as errno_module
    state = tmp_path / "state"
    assets = StateStore(state).assets
    tmp = assets.temp_path()
    assert tmp.parent == state / "assets" and tmp.name.startswith(".incoming.") and tmp.name.endswith(".part")
    data = b"photo" * 100
    tmp.write_bytes(data)
    real_replace = os.replace
    calls: list[str] = []

    def replace(src: str | Path, dst: str | Path) -> None:
        calls.append(Path(src).name)
        if len(calls) == 1:  # the download's own rename: another filesystem
            raise OSError(errno_module.EXDEV, "Invalid cross-device link")
        raise KeyboardInterrupt("power cut")  # the copy's rename

    import player.store as store_module
    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", replace)
        patch.setattr(store_module, "unlink_quietly", lambda path: None)
        with pytest.raises(KeyboardInterrupt):
            assets.put_file(sha(data), tmp)
    assert calls[1].startswith(f".{sha(data)}.") and calls[1].endswith(".part")
    assert sorted(p.name for p in temp_files(state / "assets")) == sorted([tmp.name, calls[1]])
    StateStore(state)
    assert temp_files(tmp_path) == [] and os.replace is real_replace


def test_assets_are_world_readable_whichever_way_they_arrive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno as errno_module
    assets = AssetStore(tmp_path, quota_bytes=10**6)
    atomic_write(tmp_path / "plain", b"x")
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o644
    put = assets.put(sha(b"a"), b"a")
    tmp = assets.temp_path()
    tmp.write_bytes(b"b")
    moved = assets.put_file(sha(b"b"), tmp)
    real_replace = os.replace
    calls = []

    def replace(src: str | Path, dst: str | Path) -> None:
        calls.append(src)
        if len(calls) == 1:
            raise OSError(errno_module.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    tmp = assets.temp_path()
    tmp.write_bytes(b"c" * 3_000_000)  # more than one copy chunk
    monkeypatch.setattr(os, "replace", replace)
    copied = assets.put_file(sha(b"c" * 3_000_000), tmp)
    assert copied.read_bytes() == b"c" * 3_000_000 and not tmp.exists()
    for path in (put, moved, copied):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_put_spares_an_intact_copy_and_rewrites_a_damaged_one(tmp_path: Path) -> None:
    assets = AssetStore(tmp_path, quota_bytes=10**6)
    data = b"0123456789" * 10
    path = assets.put(sha(data), data)
    inode = path.stat().st_ino
    assert assets.put(sha(data), data).stat().st_ino == inode  # not written again
    path.write_bytes(data[:50])  # truncated by a cut of the card
    assets.put(sha(data), data)
    assert path.read_bytes() == data


def test_only_files_named_by_a_sha_count_as_assets(tmp_path: Path) -> None:
    assets = AssetStore(tmp_path, quota_bytes=10**6)
    assets.put(sha(b"a"), b"a")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ("b" * 64)).mkdir()
    assert assets.shas() == [sha(b"a")] and assets.usage() == 1


def test_put_file_refusals_say_why_and_consume_the_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    assets = AssetStore(tmp_path, quota_bytes=10**6)
    missing = tmp_path / ".incoming.gone.part"
    with pytest.raises(AssetError, match=f"^asset {sha(b'x')}: cannot read {missing}: "):
        assets.put_file(sha(b"x"), missing)
    tmp = assets.temp_path()
    tmp.write_bytes(b"y")
    with pytest.raises(AssetError, match=f"^asset {sha(b'x')}: content hashes to {sha(b'y')}$"):
        assets.put_file(sha(b"x"), tmp)
    assert not tmp.exists()
    tmp = assets.temp_path()
    tmp.write_bytes(b"x")

    def replace(src: str | Path, dst: str | Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(PermissionError):
        assets.put_file(sha(b"x"), tmp)
    assert not tmp.exists() and temp_files(tmp_path) == []
    monkeypatch.undo()
    path = assets.put(sha(b"z"), b"z")
    path.write_bytes(b"w")
    with caplog.at_level(logging.WARNING, logger="player.store"):
        assert not assets.verify(sha(b"z"))
    assert f"asset {sha(b'z')} is corrupt (hashes to {sha(b'w')}); removed" in caplog.messages


def _framed(body: bytes, magic: bytes = b"panel-player-state 1") -> bytes:
    return magic + b" " + sha(body).encode() + b" " + str(len(body)).encode() + b"\n" + body


def test_state_files_are_compact_utf8_and_refuse_nan(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save_json("note", {"texte": "Crue de l'Isère", "n": [1, 2]})
    body = (tmp_path / "settings" / "note.state").read_bytes().partition(b"\n")[2]
    assert body == '{"texte":"Crue de l\'Isère","n":[1,2]}'.encode()
    store.save_playlist(b'{"id":"p"}', {"topic": "signage/panels/é"})
    body = (tmp_path / "playlist.state").read_bytes().partition(b"\n")[2]
    assert body == '{"topic":"signage/panels/é"}\n{"id":"p"}'.encode()
    with pytest.raises(ValueError):
        store.save_json("bad", float("nan"))
    with pytest.raises(ValueError):
        store.save_alerts([{"ttl": float("inf")}])


def test_damaged_or_odd_state_files_are_ignored_with_a_warning(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    store = StateStore(tmp_path)
    alerts = tmp_path / "alerts.state"
    cases = [
        (_framed(b'[1, "x"]'), "not a list of alerts; ignored"),
        (_framed(b"{"), "not valid JSON; ignored"),
        (_framed(b"[]", magic=b"panel-player-state 2"), "damaged (checksum or length mismatch); ignored"),
        (_framed(b"[]").replace(b"\n", b" "), "damaged (checksum or length mismatch); ignored"),
    ]
    for content, message in cases:
        alerts.write_bytes(content)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="player.store"):
            assert store.load_alerts() == []
        assert caplog.messages == [f"{alerts}: {message}"], content
    (tmp_path / "playlist.state").write_bytes(_framed(b'[1]\n{"id":"p"}'))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="player.store"):
        assert store.load_playlist() is None
    assert caplog.messages == [f"{tmp_path / 'playlist.state'}: bad metadata; ignored"]
    alerts.unlink()
    alerts.mkdir()  # unreadable as a file
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="player.store"):
        assert store.load_alerts() == []
    assert len(caplog.messages) == 1 and caplog.messages[0].startswith(f"{alerts}: cannot be read (")
    assert "Is a directory" in caplog.messages[0] and caplog.messages[0].endswith("); ignored")
