"""panelctl update: roll-outs to 20 simulated panels on a real mosquitto, panelctl run as a subprocess.

Each simulated panel is a small MQTT client speaking the panel's protocol: retained
``online`` and heartbeat (with ``firmware``), its ``cmd`` topic subscribed; on a
command it checks the signature (player.trust), reads it (parse_command), fetches
the parts index and then each part from their ``P/assets/<sha256>`` topics, as the
player does (player.bundle.parse_index), reassembles the bundle, verifies it
(player.bundle.verify_bundle),
answers ``command.done``, then plays its script: the update applies, fails or
rolls back, told with the real event builders and a new heartbeat.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures_broker import Broker, connect_client, wait_until
from player.bundle import BundleError, index_json, parse_index, split_bundle, verify_bundle, write_bundle
from player.ctl.cli import main as cli_main
from player.ctl.status import PanelState
from player.ctl.update import choose_targets, pick_canaries
from player.net.protocol import (event_command_done, event_command_failed, event_update_applied,
                                 event_update_failed, event_update_rolled_back, iso_now, parse_command)
from player.trust import SignatureError, load_private_key, load_public_key, new_key_files, open_envelope

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "signage"
OLD, NEW = "0.1.0", "0.2.0"
MARKER = b"test-marker"


class SimPanel:
    """One simulated panel; ``script`` is what its update does: ``ok``, ``fail`` or ``rollback``."""

    def __init__(self, broker: Broker, pid: str, keys: dict[str, Any], script: str = "ok",
                 firmware: str = OLD, groups: tuple[str, ...] = ("centre",)) -> None:
        self.broker, self.id, self.keys, self.script = broker, pid, keys, script
        self.firmware = firmware
        self.groups = list(groups)
        self.commands: list[bytes] = []  # every update command received
        self.markers = 0
        self.verified: list[str] = []  # versions of the bundles it fetched and verified
        self.fetched: list[str] = []  # asset topics it fetched (the index, then the parts)
        self.problems: list[str] = []
        self.base = f"{PREFIX}/panels/{pid}"
        self._assets: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._subscribed = threading.Event()
        self.client = connect_client(broker, pid, on_message=self._on_message)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.will_set(f"{self.base}/online", b"false", qos=1, retain=True)
        self.client.subscribe(f"{self.base}/cmd", qos=1)
        assert self._subscribed.wait(5)
        self._publish("online", b"true", retain=True)
        self.heartbeat(None)

    def _publish(self, leaf: str, payload: bytes | dict[str, Any], retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(f"{self.base}/{leaf}", data, qos=1, retain=retain).wait_for_publish(5)

    def heartbeat(self, update: dict[str, Any] | None) -> None:
        self._publish("heartbeat", {"panel": self.id, "ts": iso_now(), "firmware": self.firmware,
                                    "groups": self.groups, "uptime_s": 10, "update": update, "errors": []},
                      retain=True)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if msg.topic.startswith(f"{PREFIX}/assets/"):
            self._assets.put((msg.topic, bytes(msg.payload)))
        elif msg.payload == MARKER:
            self.markers += 1
        else:
            self.commands.append(bytes(msg.payload))
            threading.Thread(target=self._handle, args=(bytes(msg.payload),), daemon=True).start()

    def _handle(self, payload: bytes) -> None:
        try:
            self._update(payload)
        except Exception as exc:  # noqa: BLE001 - recorded, the test fails on it
            self.problems.append(f"{type(exc).__name__}: {exc}")

    def _update(self, payload: bytes) -> None:
        try:
            signed = open_envelope(payload, self.keys, f"{self.base}/cmd")
        except SignatureError as exc:
            self._publish("events", event_command_failed(None, None, exc.reason))
            return
        cmd = parse_command(signed.payload)
        assert cmd.cmd == "update" and cmd.bundle and cmd.version and cmd.size and cmd.parts
        sha = cmd.bundle.removeprefix("sha256:")
        self.heartbeat({"state": "downloading", "version": cmd.version, "reason": None, "parts": [0, None]})
        index = parse_index(self._fetch(cmd.parts.removeprefix("sha256:")), bundle=sha, size=cmd.size,
                            max_part=2048 * 1024)
        path = Path(self.broker.folder) / f"{self.id}-{cmd.version}.bundle"
        with path.open("wb") as f:
            for n, part in enumerate(index.parts):
                f.write(self._fetch(part))
                self.heartbeat({"state": "downloading", "version": cmd.version, "reason": None,
                                "parts": [n + 1, len(index.parts)]})
        assert path.stat().st_size == cmd.size and hashlib.sha256(path.read_bytes()).hexdigest() == sha
        try:
            manifest = verify_bundle(path, self.keys)
        except BundleError as exc:
            self._publish("events", event_command_failed(cmd.id, "update", str(exc)))
            return
        assert manifest.version == cmd.version
        self.verified.append(manifest.version)
        self._publish("events", event_command_done(cmd.id, "update"))
        if self.script == "fail":
            self._publish("events", event_update_failed(cmd.version, "no room left on /opt (12 MB free)"))
            self.heartbeat({"state": "failed", "version": cmd.version, "reason": "no room left on /opt"})
            return
        self.heartbeat({"state": "installing", "version": cmd.version, "reason": None})
        time.sleep(0.05)
        self.heartbeat({"state": "trial", "version": cmd.version, "reason": None})
        old = self.firmware
        if self.script == "rollback":
            reason = "no frame drawn within update.health_s (120 s)"
            self._publish("events", event_update_rolled_back(cmd.version, old, reason))
            self.heartbeat({"state": "rolled_back", "version": cmd.version, "reason": reason})
            return
        self.firmware = cmd.version
        self._publish("events", event_update_applied(old, cmd.version))
        self.heartbeat({"state": "applied", "version": cmd.version, "reason": None})

    def _fetch(self, sha: str) -> bytes:
        """The retained asset on ``P/assets/<sha>``, its hash checked (as the panel's link does)."""
        topic = f"{PREFIX}/assets/{sha}"
        self.client.subscribe(topic, qos=1)
        try:
            while True:
                got_topic, data = self._assets.get(timeout=10)
                if got_topic == topic:
                    break
        finally:
            self.client.unsubscribe(topic)
        assert hashlib.sha256(data).hexdigest() == sha, topic
        self.fetched.append(sha)
        return data

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """A release key and a small signed bundle of version NEW (fake wheels: the panels only verify it)."""
    folder = tmp_path_factory.mktemp("release")
    private, public = new_key_files(folder, "release-1")
    key, kid = load_private_key(private)
    own = folder / f"panel_player-{NEW}-py3-none-any.whl"
    own.write_bytes(b"PK" + os.urandom(20000))
    dep = folder / "paho_mqtt-2.2.0-py3-none-any.whl"
    dep.write_bytes(b"PK" + os.urandom(5000))
    bundle = folder / f"panel-player-{NEW}.bundle"
    write_bundle(bundle, version=NEW, wheel=own, dependency_wheels=[dep], constraints="paho-mqtt==2.2.0\n",
                 key=key, kid=kid, platforms=["manylinux_2_36_aarch64"])
    raw, _ = load_public_key(public)
    from player.trust import public_keys
    return private, bundle, public_keys({kid: raw})


@pytest.fixture
def fleet(broker: Broker, release: tuple[Path, Path, dict[str, Any]]) -> Iterator[dict[str, SimPanel]]:
    panels: dict[str, SimPanel] = {}

    def make(scripts: dict[str, str], n: int = 20, firmware: dict[str, str] | None = None) -> dict[str, SimPanel]:
        for i in range(1, n + 1):
            pid = f"p{i:02d}"
            panels[pid] = SimPanel(broker, pid, release[2], scripts.get(pid, "ok"), (firmware or {}).get(pid, OLD))
        return panels

    yield make  # type: ignore[misc]
    for p in panels.values():
        p.close()


def panelctl(broker: Broker, key: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PANELCTL_KEY", "PANELCTL_CONFIG")}
    return subprocess.run([sys.executable, "-m", "player.ctl.cli", "--broker", f"{broker.host}:{broker.port}",
                           "--prefix", PREFIX, "--key", str(key), *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def table(stdout: str) -> dict[str, list[str]]:
    rows = {}
    for line in stdout.splitlines()[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells[1:]
    return rows


def delivered_all(broker: Broker, panels: dict[str, SimPanel]) -> None:
    """Every message the broker accepted for the panels' cmd topics before now has reached them."""
    for p in panels.values():
        broker.publish(f"{p.base}/cmd", MARKER)
    wait_until(lambda: all(p.markers for p in panels.values()), 10, "the markers")


def test_canaries_that_roll_back_stop_the_rollout(broker: Broker, fleet: Any,
                                                 release: tuple[Path, Path, dict[str, Any]]) -> None:
    panels = fleet({"p01": "rollback", "p02": "rollback"})
    key, bundle, _ = release
    start = time.monotonic()
    proc = panelctl(broker, key, "update", str(bundle), "--all", "--canary", "2", "--timeout", "20")
    took = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    delivered_all(broker, panels)
    assert all(not p.problems for p in panels.values()), {p.id: p.problems for p in panels.values()}
    # the canaries got one signed command each, fetched and verified the bundle, and rolled back
    for pid in ("p01", "p02"):
        assert len(panels[pid].commands) == 1 and panels[pid].verified == [NEW]
    # the 18 others never received an update command
    others = [p for pid, p in panels.items() if pid not in ("p01", "p02")]
    assert len(others) == 18 and all(p.commands == [] for p in others)
    rows = table(proc.stdout)
    assert rows["p01"][:3] == ["rolled back", OLD, OLD] and "no frame drawn" in rows["p01"][3]
    assert rows["p02"][0] == "rolled back"
    assert all(rows[p.id] == ["not sent", OLD, OLD] for p in others), proc.stdout
    assert "canaries: p01, p02" in proc.stderr
    assert "roll-out stopped: canary p01 rolled back, p02 rolled back; 18 other panel(s) were not sent the update" \
        in proc.stderr
    assert "0 of 20 updated, 0 failed, 2 rolled back, 18 waiting" in proc.stderr
    assert took < 15


def test_rollout_where_everything_succeeds(broker: Broker, fleet: Any,
                                          release: tuple[Path, Path, dict[str, Any]]) -> None:
    panels = fleet({}, firmware={"p20": NEW})  # p20 already runs it
    key, bundle, _ = release
    proc = panelctl(broker, key, "update", str(bundle), "--all", "--canary", "2", "--timeout", "20",
                    "--part-kb", "8")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    delivered_all(broker, panels)
    assert all(not p.problems for p in panels.values())
    # the bundle travelled in parts of 8 KiB: each panel fetched the index, then every part in order
    index, parts = split_bundle(bundle, 8192)
    index_sha = hashlib.sha256(index_json(index)).hexdigest()
    assert len(index.parts) == -(-bundle.stat().st_size // 8192) >= 3
    assert [len(data) for _, data in parts][:-1] == [8192] * (len(index.parts) - 1)
    assert all(p.fetched == [index_sha, *index.parts] for pid, p in panels.items() if pid != "p20")
    assert all(len(p.commands) == 1 and p.firmware == NEW for pid, p in panels.items() if pid != "p20")
    assert panels["p20"].commands == []
    rows = table(proc.stdout)
    assert all(rows[f"p{i:02d}"][:3] == ["updated", OLD, NEW] for i in range(1, 20))
    assert rows["p20"] == ["updated", NEW, NEW, "already ran it"]
    lines = proc.stderr.splitlines()
    # one line per change (not a terminal): the counts only grow, ending with every panel updated
    progress = [ln for ln in lines if re.fullmatch(r"\d+ of 20 updated, .*", ln)]
    assert progress[0] == "1 of 20 updated, 0 failed, 0 rolled back, 19 waiting"
    assert progress[-1] == "20 of 20 updated, 0 failed, 0 rolled back, 0 waiting"
    assert "3 of 20 updated, 0 failed, 0 rolled back, 17 waiting" in progress  # both canaries, before the rest
    assert f"the bundle's {len(index.parts)} part(s) and index stay retained, the index on " \
        f"{PREFIX}/assets/{index_sha}" in proc.stderr


def test_progress_line_redrawn_on_a_terminal(broker: Broker, fleet: Any,
                                             release: tuple[Path, Path, dict[str, Any]]) -> None:
    import pty
    panels = fleet({}, n=4)
    key, bundle, _ = release
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("PANELCTL_KEY", "PANELCTL_CONFIG")}
    proc = subprocess.Popen([sys.executable, "-m", "player.ctl.cli", "--broker", f"{broker.host}:{broker.port}",
                             "--prefix", PREFIX, "--key", str(key), "update", str(bundle), "--all", "--canary", "1",
                             "--timeout", "20"], stdout=subprocess.PIPE, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the other side closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=60)
    reader.join(5)
    os.close(master)
    err = b"".join(chunks).decode()
    assert proc.returncode == 0, err
    assert all(p.firmware == NEW for p in panels.values())
    redraws = err.split("\r\x1b[K")
    assert len(redraws) > 3  # drawn in place, not a line per change
    assert "sent update" not in err  # no per-panel lines on a terminal
    # the last counts stay on screen (a line of their own, the terminal turns \n into \r\n)
    assert "\r\x1b[K4 of 4 updated, 0 failed, 0 rolled back, 0 waiting\r\n" in err
    assert "updated" in out.decode()


def test_failure_outside_the_canaries_is_reported(broker: Broker, fleet: Any,
                                                  release: tuple[Path, Path, dict[str, Any]]) -> None:
    panels = fleet({"p07": "fail", "p12": "rollback"})
    key, bundle, _ = release
    proc = panelctl(broker, key, "update", str(bundle), "--group", "centre", "--canary", "2", "--timeout", "20",
                    "--clear")
    assert proc.returncode == 1, proc.stderr
    delivered_all(broker, panels)
    assert all(len(p.commands) == 1 for p in panels.values())
    rows = table(proc.stdout)
    assert rows["p07"][0] == "failed" and "no room left on /opt" in rows["p07"][3]
    assert rows["p12"][0] == "rolled back"
    assert sum(r[0] == "updated" for r in rows.values()) == 18
    assert "18 of 20 updated, 1 failed, 1 rolled back, 0 waiting" in proc.stderr
    assert "roll-out stopped" not in proc.stderr
    index = split_bundle(bundle, 1024 * 1024)[0]  # the default --part-kb: one part here
    index_sha = hashlib.sha256(index_json(index)).hexdigest()
    assert f"cleared the retained bundle: its index on {PREFIX}/assets/{index_sha} and its 1 part(s)" in proc.stderr
    with broker.sub(f"{PREFIX}/assets/#") as sub:
        time.sleep(0.3)  # a retained message would arrive at once after the SUBACK
        assert sub.messages == []


def test_silent_canary_and_refusals(broker: Broker, fleet: Any, release: tuple[Path, Path, dict[str, Any]],
                                    tmp_path: Path) -> None:
    panels = fleet({}, n=3)
    key, bundle, _ = release
    panels["p01"].client.unsubscribe(f"{PREFIX}/panels/p01/cmd")  # it never hears the command
    time.sleep(0.2)
    proc = panelctl(broker, key, "update", str(bundle), "--panel", "p01", "--panel", "p02", "--panel", "p03",
                    "--canary", "1", "--timeout", "1")
    assert proc.returncode == 1
    rows = table(proc.stdout)
    assert rows["p01"][0] == "no outcome" and "not acknowledged" in rows["p01"][3]
    assert rows["p02"][0] == rows["p03"][0] == "not sent"
    assert panels["p02"].commands == [] and panels["p03"].commands == []
    # refused here, before anything is published (in-process: no roll-out happens)
    def run(*args: str) -> tuple[int, str]:
        err = io.StringIO()
        code = cli_main(["--broker", f"{broker.host}:{broker.port}", "--prefix", PREFIX, *args],
                        out=io.StringIO(), err=err)
        return code, err.getvalue()

    other, _ = new_key_files(tmp_path, "someone")
    code, err = run("--key", str(other), "update", str(bundle), "--all")
    assert code == 2 and "signed with key 'release-1', which this panel does not trust" in err
    code, err = run("--key", str(key), "update", str(bundle))
    assert code == 2 and "give the targets" in err
    tampered = tmp_path / "t.bundle"
    data = bytearray(bundle.read_bytes())
    data[-20000] ^= 1
    tampered.write_bytes(bytes(data))
    code, err = run("--key", str(key), "update", str(tampered), "--all")
    assert code == 2 and "sha256 differs" in err
    code, err = run("update", str(bundle), "--all")
    assert code == 2 and "update needs the release key" in err
    code, err = run("--key", str(key), "update", str(bundle), "--all", "--part-kb", "4096")
    assert code == 2 and "--part-kb 4096 is above max_asset_kb (2048)" in err
    with broker.sub(f"{PREFIX}/panels/+/cmd") as sub:
        time.sleep(0.2)
        assert sub.messages == []


def test_bundle_larger_than_the_broker_accepts(tmp_path: Path, release: tuple[Path, Path, dict[str, Any]]) -> None:
    small = Broker(tmp_path / "small", max_packet_size=16 * 1024)  # the bundle is 40 KiB
    small.start()
    try:
        panel = SimPanel(small, "p01", release[2])
        key, bundle, _ = release
        proc = panelctl(small, key, "update", str(bundle), "--panel", "p01")  # one part of 40 KiB
        assert proc.returncode == 1
        assert re.search(r"a part of the bundle is \d+ bytes and the broker accepts packets up to 16384 bytes: "
                         r"give a smaller --part-kb", proc.stderr), proc.stderr
        delivered_all(small, {"p01": panel})
        assert panel.commands == []
        # in parts of 8 KiB it goes through that broker
        proc = panelctl(small, key, "update", str(bundle), "--panel", "p01", "--part-kb", "8", "--timeout", "20")
        assert proc.returncode == 0, proc.stderr
        assert panel.verified == [NEW] and not panel.problems
        panel.close()
    finally:
        small.stop()


def test_update_events_builders() -> None:
    assert {k: v for k, v in event_update_applied("0.1.0", "0.2.0").items() if k != "ts"} == \
        {"type": "update.applied", "from": "0.1.0", "to": "0.2.0"}
    assert {k: v for k, v in event_update_failed("0.2.0", "bad signature").items() if k != "ts"} == \
        {"type": "update.failed", "version": "0.2.0", "reason": "bad signature"}
    event = event_update_rolled_back("0.2.0", "0.1.0", "never connected")
    assert list(event) == ["type", "ts", "from", "to", "reason"] and event["reason"] == "never connected"


def test_targets_and_canaries_order() -> None:
    def state(pid: str, online: bool | None, groups: list[str] | None, firmware: str = OLD) -> PanelState:
        hb: dict[str, Any] = {"panel": pid, "firmware": firmware}
        if groups is not None:
            hb["groups"] = groups
        return PanelState(pid, online, hb)

    fleet = {"a": state("a", True, ["nord"]), "b": state("b", False, ["nord", "sud"]), "c": state("c", True, ["sud"]),
             "d": state("d", True, None), "e": PanelState("e", True, None)}
    assert [r.id for r in choose_targets(fleet, [], [], True)] == ["a", "b", "c", "d"]  # e: no heartbeat
    assert [r.id for r in choose_targets(fleet, [], ["nord"], False)] == ["a", "b"]
    assert [r.id for r in choose_targets(fleet, ["zz", "c"], ["nord"], False)] == ["zz", "c", "a", "b"]
    runs = choose_targets(fleet, ["b", "d"], ["sud"], False)
    assert [r.id for r in runs] == ["b", "d", "c"] and runs[0].online is False and runs[0].before == OLD
    assert [r.id for r in pick_canaries(runs, 2)] == ["d", "c"]  # online ones first, in roll-out order
    assert [r.id for r in pick_canaries(runs, 5)] == ["d", "c", "b"]
