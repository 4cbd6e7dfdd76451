"""An update's bundle in parts, fetched by a real ``panel-player run`` process from a real
mosquitto (packet limit 2 MB, mosquitto 2.1's default), png output.

The player runs from a versions/<V>/venv layout (a venv made of links to the test's own
interpreter and packages), so that it accepts updates. The broker logs every
subscription: what the player asked for is counted there.

- Resume: a player killed (SIGKILL) after k of n parts, started again, subscribes to
  the n - k other parts only (not to the index, nor to a part already stored) and ends
  with the bundle verified and handed over.
- Memory: the player's peak resident size (VmHWM) while it downloads and verifies a
  30 MB bundle in parts of 1 MiB rises by less than 20 MB.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures_broker import Broker, wait_until
from fixtures_player import PREFIX, PanelProcess

from player.bundle import PartsIndex, index_json, split_bundle, write_bundle
from player.trust import load_private_key, new_key_files
from player.update import DOWNLOAD, REQUEST

ROOT = Path(__file__).resolve().parents[1]
VERSION = "91.0.0"
PANEL = "parts1"


@pytest.fixture
def pbroker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", max_packet_size=2_000_000)
    b.conf.write_text(b.conf.read_text() + "log_type subscribe\n")
    b.start()
    yield b
    b.stop()


def versioned_python(top: Path) -> Path:
    """``top/opt/versions/0.0.1/venv/bin/python``: a venv whose packages are this test's own."""
    venv = top / "opt" / "versions" / "0.0.1" / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "lib" / "python3.11").mkdir(parents=True)
    here = Path(sys.prefix)
    (venv / "pyvenv.cfg").write_text((here / "pyvenv.cfg").read_text())
    os.symlink(os.path.realpath(sys.executable), venv / "bin" / "python")
    site = here / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    os.symlink(site, venv / "lib" / "python3.11" / "site-packages")
    return venv / "bin" / "python"


def make_bundle(folder: Path, size_mb: float) -> tuple[Path, Path]:
    priv, pub = new_key_files(folder, "release")
    key, kid = load_private_key(priv)
    wheel = folder / f"panel_player-{VERSION}-py3-none-any.whl"
    wheel.write_bytes(os.urandom(int(size_mb * 2**20)))
    out = folder / "update.bundle"
    write_bundle(out, version=VERSION, wheel=wheel, dependency_wheels=[], constraints="", key=key, kid=kid,
                 platforms=[])
    return out, pub


class Player(PanelProcess):
    """``panel-player run`` from the versioned layout."""

    def __init__(self, broker: Broker, folder: Path, python: Path, pub: Path) -> None:
        self.python = python
        super().__init__(broker, folder, PANEL, start=False, size=(320, 180),
                         extra={"trust": {"keys": [str(pub)], "require": []}})

    def start(self, wait_online: bool = True) -> None:
        env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", GPIOZERO_PIN_FACTORY="mock")
        env.pop("NOTIFY_SOCKET", None)
        mark = self.sub.mark()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(self.python), "-m", "player.cli", "run", "--config", str(self.config)],
                                         cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        if wait_online:
            self.sub.wait_for(f"{self.topic}/online", b"true", after=mark, timeout=20)

    def status(self, key: str) -> int:
        """A field of /proc/PID/status, in kB."""
        assert self.proc is not None
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
        assert match, text
        return int(match.group(1))


def publish_parts(broker: Broker, bundle: Path, part_size: int) -> tuple[PartsIndex, str]:
    """As ``panelctl update`` does: every part, then the index, retained."""
    index, parts = split_bundle(bundle, part_size)
    for sha, data in parts:
        broker.publish(f"{PREFIX}/assets/{sha}", data, retain=True)
    data = index_json(index)
    index_sha = hashlib.sha256(data).hexdigest()
    broker.publish(f"{PREFIX}/assets/{index_sha}", data, retain=True)
    return index, index_sha


def send_update(broker: Broker, index: PartsIndex, index_sha: str, request: str) -> None:
    broker.publish(f"{PREFIX}/panels/{PANEL}/cmd", json.dumps({
        "id": request, "cmd": "update", "bundle": f"sha256:{index.bundle}", "size": index.size,
        "version": VERSION, "parts": f"sha256:{index_sha}"}))


def subscribed_assets(broker: Broker, after: int) -> list[str]:
    """The asset hashes subscribed to, in the broker's log from byte ``after``."""
    text = broker.log.read_bytes()[after:].decode(errors="replace")
    return re.findall(rf" {PREFIX}/assets/([0-9a-f]{{64}})$", text, re.M)


def test_resume_after_a_kill_fetches_only_the_missing_parts(pbroker: Broker, tmp_path: Path) -> None:
    bundle, pub = make_bundle(tmp_path, 3)
    index, index_sha = publish_parts(pbroker, bundle, 32 * 1024)
    n = len(index.parts)
    assert n == 97
    updates = tmp_path / "state" / "updates"
    p = Player(pbroker, tmp_path, versioned_python(tmp_path), pub)
    try:
        p.start()
        log_mark = pbroker.log.stat().st_size
        send_update(pbroker, index, index_sha, "req-1")

        def done() -> int:
            try:
                return int(json.loads((updates / DOWNLOAD).read_text())["done"])
            except (OSError, ValueError, KeyError):
                return 0

        wait_until(lambda: done() >= 10, 20, "10 parts stored", step=0.002)
        p.kill()
        k = done()
        assert 10 <= k < n, k
        first = subscribed_assets(pbroker, log_mark)
        assert first[0] == index_sha and first[1:] == list(index.parts[:len(first) - 1])
        stored = (updates / "bundles" / f"{index.bundle}.part").stat().st_size
        assert stored >= k * 32 * 1024  # a part written but not yet counted is cut off again
        mark = p.sub.mark()
        log_mark = pbroker.log.stat().st_size
        p.start()  # the command is not sent again: download.json names the update
        done_event = p.wait_event("command.done", mark, timeout=30, where=lambda e: e.get("request") == "req-1")
        assert done_event["cmd"] == "update"
        again = subscribed_assets(pbroker, log_mark)
    finally:
        if p.proc is not None and p.proc.poll() is None:
            p.stop()
        p.sub.close()
    print(f"\nkilled after {k} of {n} parts; the restarted player fetched {len(again)}")
    assert again == list(index.parts[k:]), (k, len(again))  # neither the index nor a stored part again
    request = json.loads((updates / REQUEST).read_text())
    assert (request["version"], request["sha256"]) == (VERSION, index.bundle)
    assert hashlib.sha256(Path(request["bundle"]).read_bytes()).hexdigest() == index.bundle
    assert not (updates / DOWNLOAD).exists()


def test_peak_memory_while_a_30_mb_bundle_arrives_in_parts(pbroker: Broker, tmp_path: Path) -> None:
    bundle, pub = make_bundle(tmp_path, 30)
    part = 2**20
    index, index_sha = publish_parts(pbroker, bundle, part)
    p = Player(pbroker, tmp_path, versioned_python(tmp_path), pub)
    try:
        p.start()
        p.sub.wait_for(f"{p.topic}/heartbeat", timeout=20)
        time.sleep(2)  # drawn, connected, settled
        before = p.status("VmHWM")
        mark = p.sub.mark()
        started = time.monotonic()
        send_update(pbroker, index, index_sha, "req-m")
        p.wait_event("command.done", mark, timeout=60, where=lambda e: e.get("request") == "req-m")
        took = time.monotonic() - started
        after = p.status("VmHWM")
        rss = p.status("VmRSS")
    finally:
        p.stop()
        p.sub.close()
    print(f"\n{index.size / 2**20:.1f} MB bundle in {len(index.parts)} parts of {part // 1024} KiB, downloaded "
          f"and verified in {took:.1f} s: VmHWM {before / 1024:.1f} MB before, {after / 1024:.1f} MB after "
          f"(+{(after - before) / 1024:.1f} MB), VmRSS {rss / 1024:.1f} MB")
    assert after - before < 20 * 1024, (before, after)

