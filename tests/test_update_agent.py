"""The update agent inside a real player (this process, png output, no broker).

The bundle (60 MB) arrives in parts (its index, then each part as the agent asks for it)
while the ticker scrolls: the parts are appended, the whole hashed and verified in a
worker thread, and the frames keep coming; then the request for the updater is written
and the command answered. An index that does not match the command, or parts that do
not make the bundle, end in update.failed. A bundle signed by a stranger is refused
before anything is handed over; a bundle stored before a restart is checked again, not
downloaded again. The updater's verdict is published by the version it names, and only
by it. Messages go through the player's own dispatch (``Player.handle``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from player.app import Player
from player.bundle import PartsIndex, index_json, split_bundle, write_bundle
from player.config import config_from_data
from player.net.protocol import Inbound
from player.net.topics import PanelTopics
from player.trust import load_private_key, new_key_files
from player.update import DOWNLOAD, REQUEST

PANEL = "agent1"
VERSION = "91.0.0"
TOPICS = PanelTopics("signage", PANEL, [])
PART_SIZE = 2 * 2**20  # the panel's default mqtt.max_asset_kb


def make_bundle(folder: Path, key_name: str, size_mb: int = 60) -> tuple[Path, Path]:
    """A signed bundle holding one incompressible wheel of ``size_mb``; returns it and the .pub."""
    priv, pub = new_key_files(folder, key_name)
    key, kid = load_private_key(priv)
    wheel = folder / f"panel_player-{VERSION}-py3-none-any.whl"
    with open(wheel, "wb") as f:
        for _ in range(size_mb):
            f.write(os.urandom(2**20))
    out = folder / f"{key_name}.bundle"
    write_bundle(out, version=VERSION, wheel=wheel, dependency_wheels=[], constraints="", key=key, kid=kid,
                 platforms=[])
    return out, pub


def make_player(tmp_path: Path, pub: Path) -> Player:
    cfg = config_from_data({
        "panel": {"id": PANEL, "timezone": "Europe/Paris"},
        "display": {"output": "png", "path": str(tmp_path / "frame.png"), "size": [320, 180],
                    "transition": "cut", "fps": 30},
        "mqtt": {"enabled": False}, "state_dir": str(tmp_path / "state"),
        "trust": {"keys": [str(pub)], "require": []},
        "brightness": {"fallback": {"day": 100, "night": 100}},
    })
    player = Player(cfg)
    playlist = {"id": "p", "version": 1, "layout": "landscape",
                "slides": [{"id": "t", "type": "text", "duration": 3600, "title": "Mairie"}],
                "ticker": ["Collecte des encombrants jeudi 3 décembre, pensez à sortir vos objets la veille"]}
    player.store.save_playlist(json.dumps(playlist).encode(), {"source": "panel"})
    root = tmp_path / "opt"
    (root / "versions").mkdir(parents=True, exist_ok=True)
    player.ops.update.root = root  # as if run from <root>/versions/<V>/venv
    return player


def inbound(topic: str, payload: bytes) -> Inbound:
    return Inbound(TOPICS.parse_inbound(topic), payload, False, time.monotonic())


class Parts:
    """A bundle's parts and index, as ``panelctl update`` publishes them: ``assets`` by sha256."""

    def __init__(self, bundle: Path, part_size: int = PART_SIZE) -> None:
        index, parts = split_bundle(bundle, part_size)
        self.index = index
        self.assets = dict(parts)
        self.set_index(index_json(index))

    def set_index(self, data: bytes) -> None:
        self.index_sha = hashlib.sha256(data).hexdigest()
        self.assets[self.index_sha] = data


def command(parts: Parts, request: str) -> Inbound:
    body = {"id": request, "cmd": "update", "bundle": f"sha256:{parts.index.bundle}", "size": parts.index.size,
            "version": VERSION, "parts": f"sha256:{parts.index_sha}"}
    return inbound(f"signage/panels/{PANEL}/cmd", json.dumps(body).encode())


def feed(player: Player, parts: Parts, timeout: float, until: Any = None) -> list[str]:
    """Turn the loop, handing the player each asset its update agent asks for, as the
    broker would on subscription, until it wants nothing more (or ``until()``); returns
    the topics' hashes handed, in order."""
    handed: list[str] = []
    end = time.monotonic() + timeout
    while True:
        assert time.monotonic() < end, "timed out"
        player.step()
        if until and until():
            break
        agent = player.ops.update
        if agent.job is None:
            break
        for sha in sorted(agent.wanted()):
            handed.append(sha)
            player.handle(inbound(f"signage/assets/{sha}", parts.assets[sha]), time.monotonic())
    return handed


def events(player: Player, kind: str) -> list[dict[str, Any]]:
    return [e for e in player.early_events if e["type"] == kind]


def run_until(player: Player, done: Any, timeout: float) -> list[float]:
    """Turn the loop until ``done()``; returns the times frames were drawn."""
    frames = []
    end = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < end, "timed out"
        count = player.frames
        player.step()
        if player.frames != count:
            frames.append(time.monotonic())
    return frames


def test_bundle_checked_off_the_main_loop_then_handed_over(tmp_path: Path) -> None:
    bundle, pub = make_bundle(tmp_path, "release")
    parts = Parts(bundle)
    n = len(parts.index.parts)
    player = make_player(tmp_path, pub)
    updates = tmp_path / "state" / "updates"
    sha = parts.index.bundle
    try:
        player.start()
        player.handle(command(parts, "req-1"), time.monotonic())
        assert json.loads((updates / DOWNLOAD).read_text())["request"] == "req-1"
        assert player.ops.update.wanted() == {parts.index_sha}  # the index first
        assert player.ops.heartbeat(time.monotonic())["update"] == {
            "state": "downloading", "version": VERSION, "reason": None, "parts": [0, None]}
        run_until(player, lambda: player.frames > 5, 5)
        agent = player.ops.update
        handed = feed(player, parts, 60, until=lambda: agent.job and agent.job.done == n - 1 and not agent.working)
        assert json.loads((updates / DOWNLOAD).read_text())["done"] == n - 1
        assert handed == [parts.index_sha, *parts.index.parts[:n - 1]]  # in order, one at a time
        assert player.ops.heartbeat(time.monotonic())["update"]["parts"] == [n - 1, n]
        assert (updates / "bundles" / f"{sha}.part").stat().st_size == (n - 1) * PART_SIZE
        arrived = time.monotonic()
        assert feed(player, parts, 5, until=lambda: not player.ops.update.wanted()) == [parts.index.parts[-1]]
        frames = [arrived] + run_until(player, lambda: (updates / REQUEST).exists(), 30)
        took = time.monotonic() - arrived
        run_until(player, lambda: events(player, "command.done"), 5)
    finally:
        player.close()
    request = json.loads((updates / REQUEST).read_text())
    assert (request["action"], request["version"], request["request"], request["sha256"]) == (
        "update", VERSION, "req-1", sha)
    assert Path(request["bundle"]).read_bytes() == bundle.read_bytes()
    assert not (updates / DOWNLOAD).exists()
    assert events(player, "command.done")[0]["request"] == "req-1"
    gaps = [b - a for a, b in zip(frames, frames[1:])]
    assert not list((updates / "bundles").glob("*.part")) and not list((updates / "bundles").glob("*.index"))
    print(f"\n60 MB bundle ({n} parts): the last part stored, the whole hashed and verified in {took:.2f} s, {len(frames) - 1} frames meanwhile; "
          f"longest gap between frames {max(gaps) * 1000:.0f} ms")
    # Done on the main loop, the check would draw no frame until the hand-over, and leave
    # a gap as long as itself; here the ticker goes on (30 frames a second) meanwhile.
    assert len(frames) - 1 >= 2, f"{len(frames) - 1} frames while the bundle was checked for {took:.2f} s"
    assert max(gaps) < 0.25, f"the main loop stalled {max(gaps):.2f} s (the check took {took:.2f} s)"


def test_stranger_signature_refused_and_stored_bundle_not_fetched_again(tmp_path: Path) -> None:
    ours, pub = make_bundle(tmp_path, "release", size_mb=2)
    (tmp_path / "stranger").mkdir()
    theirs, _ = make_bundle(tmp_path / "stranger", "stranger", size_mb=2)
    player = make_player(tmp_path, pub)
    updates = tmp_path / "state" / "updates"
    try:
        player.start()
        player.handle(command(Parts(theirs, 2**19), "req-bad"), time.monotonic())
        feed(player, Parts(theirs, 2**19), 10)
        run_until(player, lambda: events(player, "command.failed"), 10)
        failed = events(player, "update.failed")[0]
        assert "stranger" in failed["reason"] and failed["version"] == VERSION, failed
        assert events(player, "command.failed")[0]["request"] == "req-bad"
        assert not (updates / REQUEST).exists() and not list((updates / "bundles").glob("*"))
        # Our bundle: stored, then the player restarts before it is checked.
        player.handle(command(Parts(ours), "req-good"), time.monotonic())
        sha = hashlib.sha256(ours.read_bytes()).hexdigest()
        (updates / "bundles").mkdir(exist_ok=True)
        (updates / "bundles" / f"{sha}.bundle").write_bytes(ours.read_bytes())
    finally:
        player.close()
    again = make_player(tmp_path, pub)  # the same state folder
    try:
        again.start()  # resumes the download: the stored copy is checked, nothing is asked of the broker
        assert again.ops.update.wanted() == set()
        run_until(again, lambda: (updates / REQUEST).exists(), 10)
        run_until(again, lambda: events(again, "command.done"), 5)
    finally:
        again.close()
    assert json.loads((updates / REQUEST).read_text())["request"] == "req-good"
    assert events(again, "command.done")[0]["request"] == "req-good"


@pytest.mark.parametrize("change, words", [({"version": "0.1.0"}, "already running"),
                                           ({"size": 200 * 2**20}, "update.max_bundle_mb")])
def test_refused_at_once(tmp_path: Path, change: dict[str, Any], words: str) -> None:
    from player import __version__

    _, pub = new_key_files(tmp_path, "k")
    player = make_player(tmp_path, pub)
    body = {"id": "r", "cmd": "update", "bundle": "sha256:" + "0" * 64, "size": 10, "version": VERSION,
            "parts": "sha256:" + "1" * 64, **change}
    if body["version"] == "0.1.0":
        body["version"] = __version__
    try:
        player.start()
        player.handle(inbound(f"signage/panels/{PANEL}/cmd", json.dumps(body).encode()), time.monotonic())
    finally:
        player.close()
    assert words in events(player, "command.failed")[0]["reason"]
    assert words in events(player, "update.failed")[0]["reason"]
    assert not (tmp_path / "state" / "updates" / DOWNLOAD).exists()


@pytest.mark.parametrize("result, kind", [("failed", "update.failed"), ("rolled_back", "update.rolled_back"),
                                          ("applied", "update.applied")])
def test_the_updaters_verdict_is_published_by_the_version_it_names(tmp_path: Path, result: str, kind: str) -> None:
    from player import __version__
    from player.update import LAST, OUTCOME, write_json

    _, pub = new_key_files(tmp_path, "k")
    updates = tmp_path / "state" / "updates"
    verdict = {"result": result, "from": "0.0.9", "to": __version__, "reason": "pip install failed (exit 1)",
               "report_by": __version__, "request": "req-7", "token": "t1"}
    write_json(updates / OUTCOME, verdict)
    player = make_player(tmp_path, pub)
    try:
        player.start()
        hb = player.ops.heartbeat(time.monotonic())
    finally:
        player.close()
    (event,) = [e for e in player.early_events if e["type"].startswith("update.")]
    assert event["type"] == kind
    assert hb["update"]["state"] == result
    assert not (updates / OUTCOME).exists()
    assert json.loads((updates / LAST).read_text())["outcome"]["token"] == "t1"
    # A verdict naming another version waits for it.
    write_json(updates / OUTCOME, {**verdict, "report_by": "0.0.9"})
    other = make_player(tmp_path, pub)
    try:
        other.start()
    finally:
        other.close()
    assert not [e for e in other.early_events if e["type"].startswith("update.")]
    assert (updates / OUTCOME).exists()


def _bad_index(p: Parts) -> None:
    ix = p.index
    p.set_index(index_json(PartsIndex(ix.bundle, ix.size, ix.part_size, ix.parts[:-1])))


def _changed_part(p: Parts) -> None:
    """The index lists, as its second part, other bytes of the same length (on their own
    topic, so the link's hash check passes): the parts no longer make the bundle."""
    ix = p.index
    other = os.urandom(ix.part_length(1))
    sha = hashlib.sha256(other).hexdigest()
    p.assets[sha] = other
    p.set_index(index_json(PartsIndex(ix.bundle, ix.size, ix.part_size, (ix.parts[0], sha, *ix.parts[2:]))))


def _huge_parts(p: Parts) -> None:
    ix = p.index
    p.set_index(index_json(PartsIndex(ix.bundle, ix.size, ix.size, (ix.bundle,))))


def _not_json(p: Parts) -> None:
    p.set_index(b"\xff" * 100)


@pytest.mark.parametrize("spoil, words", [
    (_bad_index, "parts refused: parts index must list 4 parts"),
    (_changed_part, "the parts do not make the bundle"),
    (_huge_parts, "is not within 1 to 2097152 bytes (mqtt.max_asset_kb)"),
    (_not_json, "parts refused: parts index is not UTF-8 JSON"),
])
def test_bad_index_or_changed_part_refused(tmp_path: Path, spoil: Any, words: str) -> None:
    bundle, pub = make_bundle(tmp_path, "release", size_mb=3)
    parts = Parts(bundle, 2**20)  # 3 MB and its manifest: 4 parts
    assert len(parts.index.parts) == 4
    spoil(parts)
    player = make_player(tmp_path, pub)
    updates = tmp_path / "state" / "updates"
    try:
        player.start()
        player.handle(command(parts, "req-x"), time.monotonic())
        feed(player, parts, 20)
        run_until(player, lambda: events(player, "command.failed"), 10)
    finally:
        player.close()
    failed = events(player, "update.failed")[0]
    assert words in failed["reason"] and failed["version"] == VERSION, failed
    assert events(player, "command.failed")[0]["reason"] == failed["reason"]
    assert not (updates / REQUEST).exists() and not (updates / DOWNLOAD).exists()
    assert not list((updates / "bundles").glob("*")) if (updates / "bundles").exists() else True
    assert player.ops.heartbeat(time.monotonic())["update"]["state"] == "failed"
