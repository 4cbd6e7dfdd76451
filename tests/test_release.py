"""panelctl release build: a real bundle of this repository, built offline from a wheelhouse.

The wheelhouse holds the lock's own files (requirements/panel.txt) for this machine,
fetched once with pip download into ~/.cache/panel-player-tests and reused; the
tests are skipped when that folder cannot be made (no network on a first run).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import player
from player.bundle import BundleError, verify_bundle
from player.ctl.release import Locked, needed_on, normalise, read_lock, target
from player.trust import load_public_key, new_key_files

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "panel.txt"
CACHE = Path(os.environ.get("PANEL_TEST_CACHE", Path.home() / ".cache" / "panel-player-tests"))


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    if not LOCK.is_file():
        pytest.skip("requirements/panel.txt is not there")
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]
    folder = CACHE / f"wheelhouse-{digest}"
    if (folder / ".complete").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                           "--require-hashes", "-r", str(LOCK), "-d", str(folder)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"cannot fetch the locked wheels once into {folder}: {proc.stderr.strip()[-300:]}")
    (folder / ".complete").write_text("")
    return folder


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return new_key_files(tmp_path_factory.mktemp("keys"), "release-test")


def panelctl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PANELCTL_KEY"}
    return subprocess.run([sys.executable, "-m", "player.ctl.cli", *args], capture_output=True, text=True,
                          timeout=600, env=env, cwd=cwd or ROOT)


@pytest.fixture(scope="module")
def built(wheelhouse: Path, keys: tuple[Path, Path],
          tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("release")
    proc = panelctl("release", "build", "--key", str(keys[0]), "--source", str(ROOT), "--out", str(out),
                    "--platform", "native", "--wheelhouse", str(wheelhouse))
    return proc, out


def test_release_build_makes_a_bundle_that_verifies(built: tuple[subprocess.CompletedProcess[str], Path],
                                                    keys: tuple[Path, Path]) -> None:
    proc, out = built
    assert proc.returncode == 0, proc.stderr
    path = out / f"panel-player-{player.__version__}.bundle"
    assert sorted(p.name for p in out.iterdir()) == [path.name]  # nothing else left behind
    data = path.read_bytes()
    summary = dict(re.findall(r"(?m)^(\w+)\s+(.+)$", proc.stdout))
    assert summary["version"] == player.__version__
    assert summary["file"] == str(path)
    assert summary["sha256"] == hashlib.sha256(data).hexdigest()
    assert summary["size"].startswith(f"{len(data)} bytes")
    native = target("native").tag
    assert summary["platforms"] == native
    # progress: what is built and fetched, with sizes
    assert f"building the panel-player wheel from {ROOT}" in proc.stderr
    assert re.search(rf"fetching \d+ locked packages for {native} \(from .*wheelhouse", proc.stderr)
    assert re.search(r"(?m)^  pygame_ce-\S+\.whl  [\d.]+ MiB$", proc.stderr), proc.stderr

    raw, kid = load_public_key(keys[1])
    manifest = verify_bundle(path, {kid: raw})
    assert manifest.version == player.__version__ and manifest.platforms == (native,)
    assert manifest.wheel == f"wheels/panel_player-{player.__version__}-py3-none-any.whl"
    assert manifest.incomplete == ()
    # every locked package is there, as the very file the lock hashes
    lock = read_lock(LOCK)
    hashes = set(re.findall(r"sha256:([0-9a-f]{64})", LOCK.read_text()))
    deps = [f for f in manifest.files if f.path.startswith("wheels/") and f.path != manifest.wheel]
    assert sorted(normalise(Path(f.path).name.split("-")[0]) for f in deps) == sorted(normalise(e.name) for e in lock)
    assert all(f.sha256 in hashes for f in deps)
    with tarfile.open(path) as tar:
        constraints = tar.extractfile("constraints.txt").read().decode()  # type: ignore[union-attr]
        own = tar.extractfile(manifest.wheel).read()  # type: ignore[union-attr]
    pins = [ln.split(" ;")[0] for ln in constraints.splitlines() if ln and not ln.startswith("#")]
    assert sorted(pins) == sorted(e.pin for e in lock)
    assert "--hash" not in constraints
    with zipfile.ZipFile(__import__("io").BytesIO(own)) as wheel:
        names = wheel.namelist()
    assert "player/bundle.py" in names and "player/ctl/release.py" in names
    assert any(n.startswith("player/data/layouts/") for n in names)  # the build hooks ran

    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(BundleError, match="bad signature"):
        verify_bundle(path, {kid: other})
    with pytest.raises(BundleError, match="does not trust"):
        verify_bundle(path, {"someone-else": other})
    body = json.loads(tarfile.open(path).extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert body["format"] == "panel-player-bundle/1" and body["python_requires"] == ">=3.11"


def test_platform_without_wheels_is_named_and_strict_refuses(wheelhouse: Path, keys: tuple[Path, Path],
                                                              tmp_path: Path) -> None:
    # the wheelhouse holds this machine's wheels only: for the Pi's armv7l only the pure-Python ones fit
    proc = panelctl("release", "build", "--key", str(keys[0]), "--source", str(ROOT), "--out", str(tmp_path),
                    "--platform", "armv7l", "--wheelhouse", str(wheelhouse), "--strict")
    assert proc.returncode == 1, proc.stderr
    binary = {"pygame-ce", "pillow", "cryptography", "pyyaml", "cffi"}
    for entry in read_lock(LOCK):
        if normalise(entry.name) in binary:
            assert f"no wheel of {entry.pin} for manylinux_2_36_armv7l" in proc.stderr
    assert f"error: manylinux_2_36_armv7l left out: {wheelhouse} has no wheel of" in proc.stderr
    assert "panelctl: --strict: 1 platform(s) not covered by wheels" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_release_build_usage_errors(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    proc = panelctl("release", "build", "--source", str(ROOT), "--out", str(tmp_path))
    assert proc.returncode == 2 and "release build needs the release key: --key FILE" in proc.stderr
    proc = panelctl("release", "build", "--key", str(keys[0]), "--source", str(tmp_path), "--out", str(tmp_path),
                    "--lock", str(LOCK))
    assert proc.returncode == 2 and "is not panel-player's source tree" in proc.stderr
    proc = panelctl("release", "build", "--key", str(keys[0]), "--platform", "x86-64!", "--out", str(tmp_path))
    assert proc.returncode == 2 and "--platform 'x86-64!'" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_platform_names() -> None:
    pi = target("aarch64")
    assert pi.tag == "manylinux_2_36_aarch64"
    assert {"manylinux_2_17_aarch64", "manylinux_2_28_aarch64", "manylinux2014_aarch64", "linux_aarch64"} <= \
        set(pi.pip_tags)
    assert "manylinux_2_16_aarch64" not in pi.pip_tags and not any("musllinux" in t for t in pi.pip_tags)
    assert target("armv7l").pip_tags[-1] == "linux_armv7l"
    assert target("manylinux_2_28_aarch64").pip_tags[0] == "manylinux_2_28_aarch64"
    assert "manylinux_2_29_aarch64" not in target("manylinux_2_28_aarch64").pip_tags


def test_markers_are_judged_for_the_panel() -> None:
    pi, arm = target("aarch64"), target("armv7l")

    def locked(marker: str | None) -> Locked:
        return Locked("x", "1", marker, "x==1 --hash=sha256:" + "0" * 64)

    assert needed_on(locked(None), pi)
    assert needed_on(locked('sys_platform == "linux"'), pi)  # also when the release is built on a Mac
    assert not needed_on(locked('sys_platform == "win32"'), pi)
    assert needed_on(locked('platform_machine == "armv7l"'), arm) and not needed_on(locked('platform_machine == "armv7l"'), pi)
    assert needed_on(locked('python_version >= "3.11"'), pi) and not needed_on(locked('python_version < "3.11"'), pi)
    lgpio = [e for e in read_lock(LOCK) if e.name == "lgpio"] if LOCK.is_file() else []
    for entry in lgpio:
        assert entry.marker and needed_on(entry, pi) and "--hash=sha256:" in entry.text and ";" not in entry.text
