"""Over-the-air updates of the real project in a temporary install root.

Wheels of this very tree are built at several versions (A, B and B variants that crash
at start, never connect or never draw), bundled with the locked dependency wheels of
this machine (downloaded once, cached in ~/.cache/panel-player-tests) and signed; each
version is installed in a real venv by the real updater. systemd is replaced by
tests/supervisor.py, which runs the shipped units' commands; the broker is a real
mosquitto; the player draws into a PNG file.

The install root is shared by the tests of this module (venvs are not relocatable and
cost about 10 s each): each test starts from A as current and good.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures_broker import Broker, Sub
from supervisor import Supervisor

from player.bundle import index_json, split_bundle, write_bundle
from player.trust import load_private_key, new_key_files
from player.update import OUTCOME, REQUEST, TRIAL, linked_version
from player.updater import KILL_ENV, switch

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("PANEL_TEST_CACHE", Path.home() / ".cache" / "panel-player-tests"))
PREFIX = "signage"
PANEL = "upd1"
A, B = "90.0.0", "90.0.1"
HEALTH_S = 6
PART_SIZE = 2**20
# A variant of the tree: (file, text, replacement) edits on the copy.
VARIANTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    A: (), B: (),
    "90.0.2": (("player/app.py", "\nclass Player:", "\nraise RuntimeError('this version is broken at start')\n\n"
                                                   "class Player:"),),
    "90.0.3": (("player/app_ops.py", "    def start_link(self) -> None:\n",
                "    def start_link(self) -> None:\n        return  # this version never connects\n"),),
    "90.0.4": (("player/app.py", "    def draw(self, now: float) -> None:\n",
                "    def draw(self, now: float) -> None:\n        return  # this version never draws\n"),),
}
CRASH, NO_CONNECT, NO_DRAW = "90.0.2", "90.0.3", "90.0.4"

pytestmark = pytest.mark.timeout(600)


# -- the kit: wheels, key, bundles ------------------------------------------------------------

def dependency_wheels() -> tuple[list[Path], str]:
    """The wheels of requirements/panel.txt for this machine (downloaded once, with their
    hashes checked, into the cache) and the lock's text (the bundle's constraints)."""
    lock = ROOT / "requirements" / "panel.txt"
    text = lock.read_text()
    folder = CACHE / f"wheels-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    if not (folder / ".complete").exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--require-hashes", "--no-deps",
                        "--only-binary=:all:", "-r", str(lock), "-d", str(folder)], check=True)
        (folder / ".complete").write_text("")
    return sorted(folder.glob("*.whl")), text


def build_wheel(version: str, edits: tuple[tuple[str, str, str], ...], work: Path) -> Path:
    """A wheel of this tree at ``version`` with ``edits`` applied to the copy."""
    tree = work / f"tree-{version}"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in listed:
        source = ROOT / name
        if not name or name.startswith(("tests/", "bench/")) or not source.is_file() or source.is_symlink():
            continue
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, tree / name)
    init = tree / "player" / "__init__.py"
    init.write_text(re.sub(r'(?m)^__version__ = .*$', f'__version__ = "{version}"', init.read_text()))
    assert f'__version__ = "{version}"\n' in init.read_text()
    for name, old, new in edits:
        path = tree / name
        text = path.read_text()
        assert old in text, f"variant {version}: {old!r} not found in {name}"
        path.write_text(text.replace(old, new, 1))
    out = work / f"wheel-{version}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(tree)],
                   check=True, env=env, cwd=work)
    (wheel,) = out.glob("panel_player-*.whl")
    return wheel


@dataclass
class Kit:
    folder: Path
    deps_folder: Path
    pub: Path
    bundles: dict[str, Path]
    other_key_bundle: Path  # B signed by a key the panel does not trust
    tampered_bundle: Path   # B with a wheel's bytes changed after signing
    deps: list[Path]
    constraints: str


def platforms_of(wheels: list[Path]) -> list[str]:
    tags = {w.name[:-4].split("-")[-1] for w in wheels}
    return sorted({t for tag in tags for t in tag.split(".") if t != "any"})


def tamper(src: Path, dest: Path) -> None:
    """Flip one byte inside the project wheel's member: the manifest's hash no longer matches."""
    import tarfile

    with tarfile.open(src) as tar:
        (member,) = [m for m in tar.getmembers() if m.name.startswith("wheels/panel_player-")]
    data = bytearray(src.read_bytes())
    data[member.offset_data + member.size // 2] ^= 0xFF
    dest.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    started = time.monotonic()
    folder = tmp_path_factory.mktemp("update-kit")
    deps, constraints = dependency_wheels()
    priv, pub = new_key_files(folder, "release-test")
    key, kid = load_private_key(priv)
    other_priv, _ = new_key_files(folder, "stranger")
    other_key, other_kid = load_private_key(other_priv)
    plats = platforms_of(deps)
    bundles = {}
    wheels = {}
    for version, edits in VARIANTS.items():
        wheels[version] = build_wheel(version, edits, folder)
        out = folder / f"panel-player-{version}.bundle"
        write_bundle(out, version=version, wheel=wheels[version], dependency_wheels=deps, constraints=constraints,
                     key=key, kid=kid, platforms=plats)
        bundles[version] = out
    other = folder / "other-key.bundle"
    write_bundle(other, version=B, wheel=wheels[B], dependency_wheels=deps, constraints=constraints,
                 key=other_key, kid=other_kid, platforms=plats)
    tampered = folder / "tampered.bundle"
    tamper(bundles[B], tampered)
    print(f"\nupdate kit built in {time.monotonic() - started:.1f} s")
    return Kit(folder, deps[0].parent, pub, bundles, other, tampered, deps, constraints)


# -- the install root ---------------------------------------------------------------------------

@dataclass
class Root:
    top: Path     # the tree --root stands for
    opt: Path     # <top>/opt/panel-player
    state: Path   # <top>/var/lib/panel-player
    config: Path  # <top>/etc/panel-player/config.yaml
    png: Path

    @property
    def updates(self) -> Path:
        return self.state / "updates"


@pytest.fixture(scope="module")
def ubroker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    # mosquitto 2.1's default packet limit: the bundle travels in parts of 1 MiB
    b = Broker(tmp_path_factory.mktemp("update-broker"), max_packet_size=2_000_000)
    b.start()
    yield b
    b.stop()


ETC_FILES = {"passwd": "root:x:0:0:root:/root:/bin/bash\n", "group": "root:x:0:\nvideo:x:44:\ngpio:x:997:\n",
             "shadow": "root:*:19000:0:99999:7:::\n", "gshadow": "root:*::\nvideo:!::\ngpio:!::\n"}


@pytest.fixture(scope="module")
def root(kit: Kit, ubroker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Root:
    """A tree made by the real ``scripts/install.sh --root TOP`` from the copy of this
    tree at version A, offline from the cached wheels (versions/A/venv, current and good,
    the units in /etc/systemd/system, /etc/panel-player, /var/lib/panel-player)."""
    top = tmp_path_factory.mktemp("panel-root")
    r = Root(top, top / "opt" / "panel-player", top / "var" / "lib" / "panel-player",
             top / "etc" / "panel-player" / "config.yaml", top / "frame.png")
    (top / "etc").mkdir()
    for name, text in ETC_FILES.items():
        (top / "etc" / name).write_text(text)
    started = time.monotonic()
    env = dict(os.environ, PANEL_PYTHON=sys.executable,
               PANEL_PIP_ARGS=f"--no-index --find-links {kit.deps_folder}")
    run = subprocess.run(["bash", str(ROOT / "scripts" / "install.sh"), "--root", str(top), "--source",
                          str(kit.folder / f"tree-{A}"), "--no-apt", "--no-enable"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    print(f"\nversion A installed by install.sh in {time.monotonic() - started:.1f} s")
    assert linked_version(r.opt, "current") == A and linked_version(r.opt, "good") == A
    assert json.loads((r.opt / "versions" / A / "installed.json").read_text())["by"] == "install.sh"
    assert (top / "etc" / "systemd" / "system" / "panel-player-update.path").is_file()
    cfg = {
        "panel": {"id": PANEL, "timezone": "Europe/Paris"},
        "display": {"output": "png", "size": [96, 54], "path": str(r.png), "layout": "fullscreen",
                    "transition": "cut"},
        "mqtt": {"host": "127.0.0.1", "port": ubroker.port, "prefix": PREFIX},
        "state_dir": str(r.state),
        "trust": {"keys": [str(kit.pub)], "require": []},
        "update": {"health_s": HEALTH_S},
        "brightness": {"fallback": {"day": 100, "night": 100}},
    }
    r.config.write_text(yaml.safe_dump(cfg))
    return r


def reset(r: Root, keep: tuple[str, ...] = (A,)) -> None:
    """Back to A as current and good, no previous, no update under way."""
    switch(r.opt, "current", A)
    switch(r.opt, "good", A)
    switch(r.opt, "previous", None)
    shutil.rmtree(r.updates, ignore_errors=True)
    for entry in (r.opt / "versions").iterdir():
        if entry.name not in keep:
            shutil.rmtree(entry)


class Panel:
    """The supervisor of the root and a subscriber on the panel's topics."""

    def __init__(self, r: Root, broker: Broker, auto_update: bool = True) -> None:
        self.r = r
        self.broker = broker
        self.topic = f"{PREFIX}/panels/{PANEL}"
        self.sub: Sub = broker.sub(f"{self.topic}/#")
        self.sup = Supervisor(r.top, env={"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy",
                                          "GPIOZERO_PIN_FACTORY": "mock"},
                              log_dir=r.top / "logs", auto_update=auto_update,
                              units=r.top / "etc" / "systemd" / "system")  # as install.sh installed them

    def __enter__(self) -> Panel:
        self.sup.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sup.stop()
        self.sub.close()

    def heartbeat(self, firmware: str, after: int = 0, timeout: float = 30, state: str | None = None) -> dict[str, Any]:
        """The first heartbeat (from ``after``) of ``firmware``, with that update ``state`` if given."""
        def match(m: Any) -> bool:
            hb = json.loads(m.payload)
            return bool(hb.get("firmware") == firmware and (state is None or (hb.get("update") or {}).get("state") == state))

        try:
            m = self.sub.wait_for(f"{self.topic}/heartbeat", after=after, timeout=timeout, where=match)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.sup.log_text()}") from None
        return json.loads(m.payload)

    def event(self, kind: str, after: int = 0, timeout: float = 60, **fields: Any) -> dict[str, Any]:
        def match(m: Any) -> bool:
            data = json.loads(m.payload)
            return data.get("type") == kind and all(data.get(k) == v for k, v in fields.items())

        try:
            m = self.sub.wait_for(f"{self.topic}/events", after=after, where=match, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.sup.log_text()}") from None
        return json.loads(m.payload)

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in self.sub.messages[after:] if m.topic == f"{self.topic}/events"]

    def send_update(self, bundle: Path, version: str, request: str, asset: bool = True) -> str:
        """The bundle's parts and index retained on their asset topics (unless ``asset``
        is false), then the command naming the index."""
        index = split_bundle(bundle, PART_SIZE)[0]
        if asset:
            self.publish_asset(bundle)
        parts = hashlib.sha256(index_json(index)).hexdigest()
        self.broker.publish(f"{self.topic}/cmd", json.dumps({"id": request, "cmd": "update", "bundle": f"sha256:{index.bundle}",
                                                             "size": index.size, "version": version,
                                                             "parts": f"sha256:{parts}"}))
        return index.bundle

    def publish_asset(self, bundle: Path) -> None:
        """As ``panelctl update`` does: each part, then the index."""
        index, parts = split_bundle(bundle, PART_SIZE)
        for sha, data in parts:
            self.broker.publish(f"{PREFIX}/assets/{sha}", data, retain=True, timeout=60)
        data = index_json(index)
        self.broker.publish(f"{PREFIX}/assets/{hashlib.sha256(data).hexdigest()}", data, retain=True)


def bootable(r: Root) -> str:
    """``current`` names a complete version whose panel-player --version runs: its version."""
    version = linked_version(r.opt, "current")
    assert version is not None, f"current -> {os.readlink(r.opt / 'current')} is not a complete version"
    out = subprocess.run([str(r.opt / "current" / "venv" / "bin" / "panel-player"), "--version"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split() == ["panel-player", version], out
    return version


# -- the tests ------------------------------------------------------------------------------------

def test_update_a_to_b_then_rollback_command(root: Root, kit: Kit, ubroker: Broker) -> None:
    reset(root)
    with Panel(root, ubroker) as panel:
        panel.heartbeat(A)
        mark = panel.sub.mark()
        started = time.monotonic()
        # The command first: the bundle is not on the broker yet, and the player restarts
        # meanwhile; the download goes on after the restart.
        panel.send_update(kit.bundles[B], B, "req-b", asset=False)
        hb = panel.heartbeat(A, mark, state="downloading")
        assert hb["update"]["parts"] == [0, None], hb  # the parts index is not there yet
        mark_restart = panel.sub.mark()
        panel.sup.restart_player()
        panel.heartbeat(A, mark_restart, state="downloading")
        panel.publish_asset(kit.bundles[B])
        panel.event("command.done", mark, request="req-b", cmd="update")
        applied = panel.event("update.applied", mark, timeout=120)
        took = time.monotonic() - started
        assert (applied["from"], applied["to"]) == (A, B)
        hb = panel.heartbeat(B, mark, state="applied")
        assert hb["update"] == {"state": "applied", "version": B, "reason": None}
        assert (linked_version(root.opt, "current"), linked_version(root.opt, "good"),
                linked_version(root.opt, "previous")) == (B, B, A)
        assert bootable(root) == B
        assert not any((root.updates / n).exists() for n in (REQUEST, TRIAL, OUTCOME))
        print(f"\nA -> B applied in {took:.1f} s (download, verify, install, restart, health)")

        # Manual roll-back: back to A (previous), answered before the restart.
        mark = panel.sub.mark()
        panel.broker.publish(f"{panel.topic}/cmd", json.dumps({"id": "req-back", "cmd": "rollback"}))
        done = panel.event("command.done", mark, request="req-back", cmd="rollback")
        back = panel.event("update.rolled_back", mark)
        assert (back["from"], back["to"]) == (B, A) and "rollback command req-back" in back["reason"]
        assert done["ts"] <= back["ts"]
        panel.heartbeat(A, mark)
        assert (linked_version(root.opt, "current"), linked_version(root.opt, "previous"),
                linked_version(root.opt, "good")) == (A, B, A)


def test_sigkill_at_each_step_leaves_a_bootable_version(root: Root, kit: Kit, ubroker: Broker) -> None:
    """The updater SIGKILLs itself at each named step; ``current`` is then a complete version
    that runs, and the next run finishes the update (or rolls it back)."""
    from player.trust import load_public_key
    from player.update import write_json

    raw, kid = load_public_key(kit.pub)
    results: dict[str, str] = {}

    def request() -> None:
        bundles = root.updates / "bundles"
        bundles.mkdir(parents=True, exist_ok=True)
        sha = hashlib.sha256(kit.bundles[B].read_bytes()).hexdigest()
        path = bundles / f"{sha}.bundle"
        shutil.copy(kit.bundles[B], path)
        # What the player writes once it verified the bundle (player.update.UpdateAgent.finish).
        write_json(root.updates / REQUEST, {"action": "update", "request": "req-k", "from": A, "version": B,
                                            "bundle": str(path), "sha256": sha, "size": path.stat().st_size})

    steps = ["extracted", "venv", "installed", "trial", "previous", "current", "restarted", "verdict", "good",
             "outcome"]
    reset(root)
    request()
    with Panel(root, ubroker, auto_update=False) as panel:
        panel.heartbeat(A)
        for step in steps:
            if step not in ("extracted", "venv", "installed"):
                reset(root, keep=(A, B))  # B stays installed: the switch steps only
                request()
                panel.sup.restart_player()
            code = panel.sup.run_updater({KILL_ENV: step})
            assert code == -9, f"{step}: the updater was not killed there (exit {code})\n{panel.sup.log_text()}"
            assert bootable(root) in (A, B), step
            # The path unit would start it again: a request or a trial file is still there.
            assert (root.updates / REQUEST).exists() or (root.updates / TRIAL).exists(), step
            if step in ("extracted", "venv"):
                assert not (root.opt / "versions" / B / "installed.json").exists()
                continue  # the next step's run goes on from here
            mark = panel.sub.mark()
            code = panel.sup.run_updater()
            assert code == 0, f"after {step}: exit {code}\n{panel.sup.log_text()}"
            assert not (root.updates / TRIAL).exists() and not (root.updates / REQUEST).exists(), step
            final = bootable(root)
            results[step] = "applied" if final == B else "rolled back"
            if final == B:
                assert linked_version(root.opt, "good") == B
                panel.heartbeat(B, mark)
            assert linked_version(root.opt, "good") == final
    print(f"\nafter SIGKILL at each step: {results}")
    assert set(results) == set(steps) - {"extracted", "venv"}


def test_bad_bundles_refused_before_anything_is_installed(root: Root, kit: Kit, ubroker: Broker) -> None:
    reset(root)
    with Panel(root, ubroker) as panel:
        panel.heartbeat(A)
        for bundle, words in ((kit.other_key_bundle, "stranger"), (kit.tampered_bundle, "sha256")):
            mark = panel.sub.mark()
            panel.send_update(bundle, B, f"req-{words}")
            failed = panel.event("update.failed", mark)
            answer = panel.event("command.failed", mark, request=f"req-{words}", cmd="update")
            assert failed["version"] == B and words in failed["reason"], failed
            assert answer["reason"] == failed["reason"]
            assert not (root.opt / "versions" / B).exists()
            assert not (root.updates / REQUEST).exists() and not list((root.updates / "bundles").glob("*"))
            assert (linked_version(root.opt, "current"), linked_version(root.opt, "good")) == (A, A)
        assert panel.sup.updater_exits == [] and panel.sup.updater is None  # never started


@pytest.mark.parametrize("version, words", [(CRASH, "crash at start"), (NO_CONNECT, "never connected"),
                                            (NO_DRAW, "never drew")])
def test_failing_version_rolled_back(root: Root, kit: Kit, ubroker: Broker, version: str, words: str) -> None:
    reset(root)
    with Panel(root, ubroker) as panel:
        panel.heartbeat(A)
        mark = panel.sub.mark()
        panel.send_update(kit.bundles[version], version, f"req-{version}")
        panel.event("command.done", mark, request=f"req-{version}")
        back = panel.event("update.rolled_back", mark, timeout=120)
        assert (back["from"], back["to"]) == (version, A) and back["reason"].startswith(words), back
        panel.sup.wait(lambda: panel.sup.updater is None, 60, "the updater's end")
        hb = panel.heartbeat(A, mark, state="rolled_back")
        assert hb["update"] == {"state": "rolled_back", "version": version, "reason": back["reason"]}
        assert not [e for e in panel.events(mark) if e["type"] == "update.applied"]
        assert (linked_version(root.opt, "current"), linked_version(root.opt, "good")) == (A, A)
        assert not (root.opt / "versions" / version).exists()  # removed with the failed trial
        assert bootable(root) == A
