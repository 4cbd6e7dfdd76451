"""Packaging: the wheel built from pyproject.toml carries the layouts, demo content, fonts and
licences; the locks in requirements/ pin and hash every package pyproject.toml asks for."""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import player

ROOT = Path(__file__).resolve().parent.parent
REQ = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)")


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of a pip-compile --generate-hashes file."""
    out: dict[str, tuple[str, int]] = {}
    name = ""
    for line in path.read_text().splitlines():
        m = PIN.match(line)
        if m:
            name = m.group(1).lower().replace("_", "-")
            out[name] = (m.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, n = out[name]
            out[name] = (version, n + 1)
    return out


def requirement_name(spec: str) -> str:
    m = re.match(r"[A-Za-z0-9._-]+", spec)
    assert m, spec
    return m.group(0).lower().replace("_", "-")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what a build reads from the checkout (pip builds in place)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("player", "layouts", "content", "requirements"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    return src


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of the checkout's copy, built without build isolation."""
    src = source
    out = tmp_path_factory.mktemp("wheel")
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "--no-index", "-w", str(out), str(src)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    assert run.returncode == 0, run.stdout + run.stderr
    (built,) = out.glob("*.whl")
    return built


def test_wheel_carries_layouts_demo_fonts_and_licences(wheel: Path) -> None:
    assert wheel.name == f"panel_player-{player.__version__}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    for layout in (ROOT / "layouts").glob("*.yaml"):
        assert f"player/data/layouts/{layout.name}" in names
    for demo in (ROOT / "content" / "demo").iterdir():
        assert f"player/data/demo/{demo.name}" in names
    for font in (ROOT / "player" / "data" / "fonts").iterdir():
        assert f"player/data/fonts/{font.name}" in names
    assert "player/py.typed" in names and "player/cli.py" in names and "player/net/link.py" in names
    dist = f"panel_player-{player.__version__}.dist-info"
    assert f"{dist}/licenses/LICENSE" in names
    assert f"{dist}/licenses/player/data/fonts/LICENSE-Terminus.txt" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "content/", "layouts/"))]
    assert not [n for n in names if "__pycache__" in n]


def test_wheel_carries_the_console_pages(wheel: Path) -> None:
    """`panelctl console` renders its pages from the package: every template, style and script."""
    names = set(zipfile.ZipFile(wheel).namelist())
    console = ROOT / "player" / "console"
    expected = [f"player/console/templates/{t.name}" for t in (console / "templates").glob("*.html")]
    expected += [f"player/console/static/{f.name}" for f in (console / "static").iterdir()]
    assert "player/console/templates/fleet.html" in expected and "player/console/static/console.js" in expected
    assert [n for n in expected if n not in names] == []
    assert "player/console/web.py" in names


def test_a_wheel_built_from_the_sdist_has_them_too(source: Path, wheel: Path, tmp_path: Path) -> None:
    """`python -m build` makes the wheel from the sdist: the sdist must carry layouts/ and content/demo."""
    src = source
    sdist = subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta as b; "
                            "print(b.build_sdist(sys.argv[1]))", str(tmp_path)],
                           capture_output=True, text=True, cwd=src, timeout=120)
    assert sdist.returncode == 0, sdist.stderr
    name = sdist.stdout.strip().splitlines()[-1]
    shutil.unpack_archive(tmp_path / name, tmp_path / "unpacked")
    (tree,) = (tmp_path / "unpacked").iterdir()
    out = tmp_path / "wheel"
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "--no-index", "-w", str(out), str(tree)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    assert run.returncode == 0, run.stdout + run.stderr
    (built,) = out.glob("*.whl")
    assert set(zipfile.ZipFile(built).namelist()) == set(zipfile.ZipFile(wheel).namelist())
    assert (tree / "requirements" / "panel.txt").is_file()


def test_wheel_metadata(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        dist = f"panel_player-{player.__version__}.dist-info"
        meta = email.parser.Parser().parsestr(z.read(f"{dist}/METADATA").decode())
        entry_points = z.read(f"{dist}/entry_points.txt").decode()
    assert meta["Name"] == "panel-player" and meta["Version"] == player.__version__
    assert meta["License-Expression"] == "MIT AND OFL-1.1"
    assert meta["Requires-Python"] == ">=3.11"
    requires = {requirement_name(r) for r in meta.get_all("Requires-Dist") if "extra ==" not in r}
    assert {"pygame-ce", "paho-mqtt", "gpiozero", "lgpio", "cryptography", "pyphen"} <= requires
    assert "panel-player = player.cli:main" in entry_points and "panelctl = player.ctl.cli:main" in entry_points
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def test_locks_pin_and_hash_what_pyproject_asks_for() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    panel, console, test = locked(REQ / "panel.txt"), locked(REQ / "console.txt"), locked(REQ / "test.txt")
    runtime = {requirement_name(d) for d in project["dependencies"]}
    web = {requirement_name(d) for d in project["optional-dependencies"]["console"]}
    tools = {requirement_name(d) for d in project["optional-dependencies"]["test"]}
    assert runtime <= panel.keys(), runtime - panel.keys()
    assert not web & panel.keys(), "the panels carry none of the console's web stack"
    assert (runtime | web) <= console.keys(), (runtime | web) - console.keys()
    assert (runtime | web | tools) <= test.keys(), (runtime | web | tools) - test.keys()
    assert {"setuptools", "pip"} <= panel.keys()  # the build needs nothing unlocked
    for lock in (panel, console, test):
        for name, (version, hashes) in lock.items():
            assert hashes >= 1, f"{name}=={version} has no hash"
    # One resolution: what the files hold in common is the same version.
    for bigger in (console, test):
        assert {n: v for n, (v, _) in bigger.items() if n in panel} == {n: v for n, (v, _) in panel.items()}
    assert {n: v for n, (v, _) in test.items() if n in console} == {n: v for n, (v, _) in console.items()}
    assert re.fullmatch(r"\d+(\.\d+)+", test["mypy"][0])
    for path in (REQ / "panel.txt", REQ / "console.txt", REQ / "test.txt"):
        assert "#    requirements/lock.sh\n" in path.read_text()


def test_the_venv_runs_the_locked_versions() -> None:
    """What scripts/bootstrap.sh installed is what test.txt says (run after editing a lock: bootstrap again)."""
    from importlib.metadata import version

    for name, (want, _) in locked(REQ / "test.txt").items():
        if name in ("pip", "setuptools"):
            continue
        assert version(name) == want, name
