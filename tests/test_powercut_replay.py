"""Power cuts at every point of a playlist apply, an alert store, a trust-seen save, an asset download.

A SIGKILL keeps the page cache, so it never loses what was written but not
fsynced; a power cut does. Here the real code (the in-process player with MQTT
off, the state store, the asset download) runs under :mod:`crashsim`, which
logs every file system operation it makes in the state folder. For every cut
point (after 0, 1, ... n operations) every state a cut may leave is built in a
fresh folder (unsynced data lost, truncated, zero-filled or garbage; folder
entries not fsynced lost in order) and the real player is started on it. What it
finds must be complete and valid: the old state or the new one, never a torn
one, and the new one once the operation has returned.

The last tests remove one fsync from the real code and check that this test
then finds lost or torn states: it can fail.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from crashsim import Recorder, Report, check_every_cut
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

import player.net.fetch as fetch_module
import player.store as store_module
from player.app import Player
from player.config import Config, config_from_data
from player.content import parse_playlist
from player.ctl.signing import Signer
from player.net.fetch import fetch_url
from player.net.protocol import Inbound
from player.net.topics import PanelTopics
from player.store import StateStore, sha256_file
from player.trust import ReplayGuard, b64url

PANEL = "quai-nord"
PREFIX = "signage"
KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"powercut replay key").digest())
TOPICS = PanelTopics(PREFIX, PANEL)


# -- material -------------------------------------------------------------------
def picture(seed: int, size: tuple[int, int] = (48, 32)) -> bytes:
    """An incompressible PNG: its bytes cannot be mistaken for another's."""
    rng = random.Random(seed)
    img = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=0)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def playlist(version: int, asset: str, url: str | None = None) -> bytes:
    image: dict[str, Any] = {"id": "image", "type": "image", "duration": 3600, "asset": f"sha256:{asset}",
                             "fit": "stretch"}
    if url:
        image["url"] = url
    return json.dumps({"id": "coupure", "version": version, "layout": "fullscreen", "slides": [
        image, {"id": "texte", "type": "text", "duration": 10, "title": f"Version {version}"}]}).encode()


def player_config(state: Path, screen: Path, **extra: Any) -> Config:
    return config_from_data({
        "panel": {"id": PANEL},
        "display": {"output": "png", "path": str(screen), "size": [64, 32], "transition": "cut"},
        "mqtt": {"enabled": False, "prefix": PREFIX},
        "state_dir": str(state),
        **extra,
    })


class WatchedPlayer(Player):
    """The real player; keeps the events it would publish."""

    sent: list[dict[str, Any]]

    def event(self, event: dict[str, Any], limit: bool = True) -> None:
        self.sent.append(event)
        super().event(event, limit)


def run_until(player: Player, done: Callable[[], bool], timeout: float = 20.0) -> None:
    """Run the player's loop until ``done()``; each pass waits for its next message."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the player did not get there in time"
        player.step()


def inbound(topic: str, payload: bytes) -> Inbound:
    return Inbound(TOPICS.parse_inbound(topic), payload, True, time.monotonic())


class Web:
    """A loopback HTTP server of the bytes in ``files`` (path -> bytes)."""

    def __init__(self) -> None:
        files: dict[str, bytes] = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.files = files
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def web() -> Iterator[Web]:
    server = Web()
    yield server
    server.close()


def check(rec: Recorder, observe: Callable[[Path], dict[str, Any]], tmp_path: Path, name: str) -> Report:
    report = check_every_cut(rec, observe, tmp_path / "replay")
    print(f"\n{name}: {report.cuts} cut points, {report.states} states checked "
          f"({report.distinct} distinct), {report.seconds:.1f} s")
    return report


def untracked(rec: Recorder) -> list[str]:
    return [str(op) for op in rec.ops if op.kind == "untracked"]


# -- what a restart finds -----------------------------------------------------------
def damaged_assets(store: StateStore) -> tuple[str, ...]:
    """Assets the cache would serve (``has``) whose bytes are not the ones named."""
    return tuple(s for s in store.assets.shas() if store.assets.has(s) and sha256_file(store.assets.path(s)) != s)


def observe_playlist(folder: Path) -> dict[str, Any]:
    """The state a restart finds: the stored playlist (complete or not) and what the player shows."""
    state = folder / "state"
    store = StateStore(state)
    stored = store.load_playlist()
    found: Any = None
    if stored is not None:
        pl = parse_playlist(stored[0])
        missing = [s for s in pl.assets() if not store.assets.has(s)]
        found = pl.version if not missing else ("without its image", pl.version)
    player = Player(player_config(state, folder / "screen.png"))
    try:
        player.start()
        deadline = time.monotonic() + 10
        while player.content.waiting and time.monotonic() < deadline:
            player.step()  # an image slide is on screen once its picture is decoded (off the main loop)
        current = player.content.manager.current
        assert current is not None and current.playlist is not None
        shown = (current.source, current.playlist.version, player.content.slide_id)
    finally:
        player.close()
    return {"playlist": found, "shown": shown, "damaged assets": damaged_assets(store)}


def test_playlist_apply_power_cut_at_every_point(tmp_path: Path, web: Web) -> None:
    world, state = tmp_path / "world", tmp_path / "world" / "state"
    old, downloaded, retained = picture(1), picture(2, (256, 192)), picture(3)
    store = StateStore(state)
    store.assets.put(sha(old), old)
    store.save_playlist(playlist(1, sha(old)), {"source": "panel", "applied_at": "2026-01-05T22:00:00+00:00"})
    web.files["/affiche.png"] = downloaded

    player = WatchedPlayer(player_config(state, tmp_path / "screen.png"))
    player.sent = []
    topic = f"{PREFIX}/panels/{PANEL}/playlist"

    def applied(version: int) -> Callable[[], bool]:
        return lambda: any(e["type"] == "playlist.applied" and e.get("version") == version for e in player.sent)

    try:
        player.start()
        assert player.content.manager.current is not None
        assert player.content.manager.current.playlist.version == 1
        initial = {"playlist": 1, "shown": ("stored", 1, "image"), "damaged assets": ()}
        with Recorder(world, initial) as rec:
            with rec.step("playlist v2, image downloaded from its url") as step:
                player.inbox.put(inbound(topic, playlist(2, sha(downloaded), web.url("/affiche.png"))))
                run_until(player, applied(2))
                step.values = {"playlist": 2, "shown": ("stored", 2, "image")}
            with rec.step("playlist v3, image from its retained asset topic") as step:
                player.inbox.put(inbound(topic, playlist(3, sha(retained))))
                player.step()
                player.inbox.put(inbound(f"{PREFIX}/assets/{sha(retained)}", retained))
                run_until(player, applied(3))
                step.values = {"playlist": 3, "shown": ("stored", 3, "image")}
    finally:
        player.close()

    kinds = [op.kind for op in rec.ops]
    assert kinds.count("write") >= 5, rec.ops  # the download (147 kB) came in several writes
    assert "unlink" in kinds, rec.ops  # the old images were collected
    assert not untracked(rec)
    assert store.assets.shas() == [sha(retained)]
    report = check(rec, observe_playlist, tmp_path, "playlist apply")
    assert not report.violations, report.describe()


def test_alert_store_and_replay_guard_power_cut_at_every_point(tmp_path: Path) -> None:
    world, state = tmp_path / "world", tmp_path / "world" / "state"
    StateStore(state)
    trust = {"trust": {"keys": [{"kid": "central", "key": b64url(KEY.public_key().public_bytes_raw())}]}}
    player = Player(player_config(state, tmp_path / "screen.png", **trust))
    signer = Signer(KEY, "central")

    def active(records: list[dict[str, Any]]) -> tuple[str, ...]:
        return tuple(sorted(str(r.get("id")) for r in records if not r.get("ended")))

    def observe(folder: Path) -> dict[str, Any]:
        store = StateStore(folder / "state")
        found = {"alerts": active(store.load_alerts()), "trust-seen": store.load_json("trust-seen")}
        restarted = Player(player_config(folder / "state", folder / "screen.png", **trust))
        try:
            restarted.start()
            found["shown alerts"] = tuple(sorted(a.id for a in restarted.alerts.board.active()))
            found["replay guard"] = restarted.trust.guard.to_json()
        finally:
            restarted.close()
        return found

    def seen(topic: str) -> Any:
        """What the stored replay guard holds for ``topic``."""
        return (player.store.load_json("trust-seen") or {}).get("seen", {}).get(topic)

    def send(alert: str, body: dict[str, Any] | None) -> None:
        topic = f"{PREFIX}/panels/{PANEL}/alerts/{alert}"
        payload = json.dumps(body).encode() if body is not None else b""
        player.inbox.put(inbound(topic, signer.seal(topic, payload)))

    try:
        player.start()
        empty_guard = player.trust.guard.to_json()
        initial = {"alerts": (), "trust-seen": None, "shown alerts": (), "replay guard": empty_guard}
        with Recorder(world, initial) as rec:
            for label, alert, body, expected in (
                    ("alert crue", "crue", {"level": "critical", "title": "CRUE", "body": "Évitez les berges."},
                     ("crue",)),
                    ("alert vent", "vent", {"level": "warning", "title": "VENT", "body": "Rafales à 90 km/h."},
                     ("crue", "vent")),
                    ("cancel crue", "crue", None, ("vent",))):
                with rec.step(label) as step:
                    send(alert, body)
                    topic = f"{PREFIX}/panels/{PANEL}/alerts/{alert}"
                    seen_before = seen(topic)
                    run_until(player, lambda: active(player.store.load_alerts()) == expected
                              and seen(topic) not in (None, seen_before))
                    guard = player.store.load_json("trust-seen")
                    step.values = {"alerts": expected, "trust-seen": guard, "shown alerts": expected,
                                   "replay guard": guard}
    finally:
        player.close()

    assert not untracked(rec)
    assert [op.kind for op in rec.ops].count("fsync-dir") >= 6  # three alert saves, three guard saves
    report = check(rec, observe, tmp_path, "alert store + replay guard")
    assert not report.violations, report.describe()


# -- store level: first start, asset download -------------------------------------------
GUARD_1 = {"floor": 0.0, "seen": {f"{PREFIX}/panels/{PANEL}/alerts/crue": [1767650000.0, "abcdefghijklmnop", False]}}
GUARD_2 = {"floor": 0.0, "seen": {f"{PREFIX}/panels/{PANEL}/alerts/crue": [1767650100.5, "qrstuvwxyzabcdef", False]}}


def record_first_start(world: Path) -> Recorder:
    """A panel's first start on an empty card: the state folder is created, then the guard saved twice."""
    world.mkdir()
    with Recorder(world, {"trust-seen": None, "replay guard": {"floor": 0.0, "seen": {}}}) as rec:
        with rec.step("first start: the state folder is created"):
            store = StateStore(world / "state")
        with rec.step("trust-seen saved") as step:
            store.save_json("trust-seen", GUARD_1)
            step.values = {"trust-seen": GUARD_1, "replay guard": GUARD_1}
        with rec.step("trust-seen saved again") as step:
            store.save_json("trust-seen", GUARD_2)
            step.values = {"trust-seen": GUARD_2, "replay guard": GUARD_2}
    return rec


def observe_guard(folder: Path) -> dict[str, Any]:
    """What a restart finds: the stored guard, and the one the real player's trust gate starts with."""
    found = {"trust-seen": StateStore(folder / "state").load_json("trust-seen")}
    restarted = Player(player_config(folder / "state", folder / "screen.png"))
    try:
        restarted.start()
        found["replay guard"] = restarted.trust.guard.to_json()
    finally:
        restarted.close()
    return found


def observe_stored_guard(folder: Path) -> dict[str, Any]:
    """As :func:`observe_guard`, the guard built by the trust code without a whole player start
    (the mutants below are caught without it)."""
    stored = StateStore(folder / "state").load_json("trust-seen")
    return {"trust-seen": stored, "replay guard": ReplayGuard.from_json(stored).to_json()}


def test_first_start_and_trust_seen_power_cut_at_every_point(tmp_path: Path) -> None:
    rec = record_first_start(tmp_path / "world")
    assert [op.kind for op in rec.ops].count("mkdir") == 3  # state, state/settings, state/assets
    report = check(rec, observe_guard, tmp_path, "first start + trust-seen")
    assert not report.violations, report.describe()


def record_downloads(world: Path, web: Web) -> tuple[Recorder, list[str]]:
    """An asset downloaded from its url (as the fetcher and the main loop do), then one from its topic."""
    kept, downloaded, retained = picture(11), picture(12, (256, 192)), picture(13)
    store = StateStore(world / "state")
    store.assets.put(sha(kept), kept)
    web.files["/plan.png"] = downloaded
    shas = [sha(kept), sha(downloaded), sha(retained)]
    with Recorder(world, {"assets": (shas[0],), "damaged assets": ()}) as rec:
        with rec.step("download") as step:
            path = fetch_url(web.url("/plan.png"), "sha256:" + shas[1], store.assets.root, timeout=10)
            store.assets.put_file(shas[1], path)
            step.values = {"assets": tuple(sorted(shas[:2]))}
        with rec.step("retained asset stored") as step:
            store.assets.put(shas[2], retained)
            step.values = {"assets": tuple(sorted(shas))}
    return rec, shas


def observe_assets(folder: Path) -> dict[str, Any]:
    store = StateStore(folder / "state")
    damaged = damaged_assets(store)
    return {"assets": tuple(s for s in store.assets.shas() if s not in damaged), "damaged assets": damaged}


def test_asset_download_power_cut_at_every_point(tmp_path: Path, web: Web) -> None:
    rec, _ = record_downloads(tmp_path / "world", web)
    assert [op.kind for op in rec.ops].count("write") >= 3  # 147 kB, read at most 64 kB at a time
    assert not untracked(rec)
    report = check(rec, observe_assets, tmp_path, "asset download")
    assert not report.violations, report.describe()


# -- the test can fail: one fsync removed from the real code ----------------------------
class _OsWithoutFileFsync:
    """The ``os`` module as a module of ours sees it, except that fsync of a regular file does nothing."""

    def __getattr__(self, name: str) -> Any:
        import os

        return getattr(os, name)

    @staticmethod
    def fsync(fd: int) -> None:
        import os
        import stat

        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.fsync(fd)


def test_without_the_folder_fsync_a_completed_save_is_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "fsync_dir", lambda folder: None)
    rec = record_first_start(tmp_path / "world")
    report = check(rec, observe_stored_guard, tmp_path, "mutant: no folder fsync")
    lost = [v for v in report.violations if isinstance(v.found, dict) and v.found["trust-seen"] == GUARD_1
            and v.allowed["trust-seen"] == [GUARD_2]]
    assert lost, report.describe()
    assert "earlier entry list" in lost[0].state


def test_without_the_file_fsync_before_the_rename_a_state_file_is_torn(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "os", _OsWithoutFileFsync())
    rec = record_first_start(tmp_path / "world")
    report = check(rec, observe_stored_guard, tmp_path, "mutant: no file fsync in atomic_write")
    torn = [v for v in report.violations if isinstance(v.found, dict) and v.found["trust-seen"] is None
            and "trust-seen.state:" in v.state]
    assert torn, report.describe()
    assert any(word in v.state for v in torn for word in ("never fsynced", "truncated", "zero-filled", "garbage"))


def test_without_the_fsync_in_the_download_a_torn_asset_is_served(tmp_path: Path, web: Web,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_module, "os", _OsWithoutFileFsync())
    rec, shas = record_downloads(tmp_path / "world", web)
    report = check(rec, observe_assets, tmp_path, "mutant: no fsync in fetch_url")
    served = [v for v in report.violations if isinstance(v.found, dict) and shas[1] in v.found["damaged assets"]]
    assert served, report.describe()


# -- the model itself -----------------------------------------------------------------
def test_the_model_loses_unsynced_data_and_unsynced_folder_entries(tmp_path: Path) -> None:
    """Written, renamed and the folder fsynced, but the file never fsynced: a cut may leave it
    empty, truncated, zero-filled or complete; before the folder fsync, also the old name."""
    import os

    world = tmp_path / "world"
    world.mkdir()
    data = bytes(range(256)) * 40
    with Recorder(world, {}) as rec:
        fd = os.open(world / "new.part", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(world / "new.part", world / "file")
        dir_fd = os.open(world, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(dir_fd)
        os.close(dir_fd)
    assert [op.kind for op in rec.ops] == ["create", "write", "rename", "fsync-dir"]

    def contents(rec: Recorder, cut: int) -> set[bytes | None]:
        out: set[bytes | None] = set()
        for state in rec.states_at(cut):
            entries = state.tree[""]
            out.add(state.files[entries["file"][1]] if "file" in entries else None)
        return out

    after_rename, after_fsync = contents(rec, 3), contents(rec, 4)
    assert None in after_rename and None not in after_fsync  # the rename is durable only once fsynced
    assert {b"", data, data[:len(data) // 2], bytes(len(data))} <= after_fsync
    assert data[:4096] in after_fsync  # truncated at a page boundary

    # The same with the file fsynced before the rename: only the complete file can come back.
    with Recorder(world, {}) as synced:
        fd = os.open(world / "new.part", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data[::-1])
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(world / "new.part", world / "file")
        dir_fd = os.open(world, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(dir_fd)
        os.close(dir_fd)
    assert [op.kind for op in synced.ops] == ["create", "write", "fsync", "rename", "fsync-dir"]
    assert contents(synced, 5) == {data[::-1]}
    assert contents(synced, 4) == {data, data[::-1]}  # renamed, folder not yet fsynced: the old file or the new


def test_recording_leaves_os_as_it_was(tmp_path: Path) -> None:
    import os

    before = (os.open, os.fsync, os.replace, os.fdopen)
    (tmp_path / "w").mkdir()
    with Recorder(tmp_path / "w", {}):
        assert os.fsync is not before[1]
    assert (os.open, os.fsync, os.replace, os.fdopen) == before

