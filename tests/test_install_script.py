"""scripts/install.sh into a temporary root: files, unit, user and group entries, idempotence, uninstall."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "install.sh"

PASSWD = "root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n" \
         "systemd-network:x:999:999:systemd Network Management:/:/usr/sbin/nologin\n"
GROUP = "root:x:0:\nvideo:x:44:pi\ngpio:x:997:pi\npi:x:1000:\nsystemd-network:x:999:\n"
SHADOW = "root:*:19000:0:99999:7:::\npi:$y$j9T$abc:19000:0:99999:7:::\nsystemd-network:!*:19000::::::\n"
GSHADOW = "root:*::\nvideo:!::pi\ngpio:!::pi\npi:!::\nsystemd-network:!::\n"
LOGIN_DEFS = "# excerpt\nSYS_UID_MIN\t\t  100\nSYS_UID_MAX\t\t  999\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A Raspberry Pi OS-like /etc: video and gpio exist, spi and i2c do not; ids 999 and 997 are taken."""
    root = tmp_path / "root"
    etc = root / "etc"
    etc.mkdir(parents=True)
    for name, text, mode in (("passwd", PASSWD, 0o644), ("group", GROUP, 0o644), ("shadow", SHADOW, 0o640),
                             ("gshadow", GSHADOW, 0o640), ("login.defs", LOGIN_DEFS, 0o644)):
        (etc / name).write_text(text)
        (etc / name).chmod(mode)
    return root


def install(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), "--root", str(root), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def state(root: Path) -> dict[str, tuple[int, int, int, str, int]]:
    """Every path under root with its mode, owner, group, content hash and mtime."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else ""
        out[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, digest, st.st_mtime_ns)
    return out


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_install_into_a_tree(tree: Path) -> None:
    run = install(tree, "--no-venv")
    assert run.returncode == 0, run.stderr
    etc = tree / "etc"
    # Highest free system id (999 and 997 are taken, 998 is free), same number for user and group.
    assert lines(etc / "passwd")[-1] == \
        "panel-player:x:998:998:panel-player street panel:/var/lib/panel-player:/usr/sbin/nologin"
    assert lines(etc / "passwd")[:-1] == PASSWD.splitlines()
    assert lines(etc / "group") == ["root:x:0:", "video:x:44:pi,panel-player", "gpio:x:997:pi,panel-player",
                                    "pi:x:1000:", "systemd-network:x:999:", "panel-player:x:998:"]
    shadow = lines(etc / "shadow")[-1].split(":")
    assert len(shadow) == 9 and shadow[:2] == ["panel-player", "!"]
    assert abs(int(shadow[2]) - time.time() // 86400) <= 1 and shadow[3:] == [""] * 6
    assert lines(etc / "gshadow") == ["root:*::", "video:!::pi,panel-player", "gpio:!::pi,panel-player",
                                      "pi:!::", "systemd-network:!::", "panel-player:!::"]
    assert stat.S_IMODE((etc / "shadow").stat().st_mode) == 0o640

    unit = etc / "systemd" / "system" / "panel-player.service"
    assert unit.read_bytes() == (ROOT / "systemd" / "panel-player.service").read_bytes()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    dropin = (etc / "systemd" / "system" / "panel-player.service.d" / "groups.conf").read_text()
    assert "[Service]\nSupplementaryGroups=\nSupplementaryGroups=video gpio\n" in dropin
    assert "no group spi i2c" in dropin

    for path, want in (("etc/panel-player", 0o750), ("var/lib/panel-player", 0o750), ("opt/panel-player", 0o755)):
        assert stat.S_IMODE((tree / path).stat().st_mode) == want, path
    if os.geteuid() == 0:
        assert (tree / "var/lib/panel-player").stat().st_uid == 998
        assert (tree / "etc/panel-player").stat().st_gid == 998
    assert (tree / "opt/panel-player/docs/architecture.md").is_file()
    assert not (tree / "opt/panel-player/venv").exists()
    for step in ("system user panel-player", "folders", "virtual environment", "systemd unit", "service"):
        assert f"==> {step}" in run.stdout
    assert "skipped (--no-venv)" in run.stdout and "skipped (--root" in run.stdout


def test_second_run_changes_nothing_and_says_so(tree: Path) -> None:
    assert install(tree, "--no-venv").returncode == 0
    before = state(tree)
    again = install(tree, "--no-venv")
    assert again.returncode == 0, again.stderr
    assert "nothing to do: panel-player is already installed and up to date" in again.stdout
    assert "already present" in again.stdout
    assert state(tree) == before


def test_a_changed_folder_mode_is_repaired(tree: Path) -> None:
    assert install(tree, "--no-venv").returncode == 0
    (tree / "etc/panel-player").chmod(0o777)
    run = install(tree, "--no-venv")
    assert "set mode 0750 on" in run.stdout and "done (1 change(s))" in run.stdout
    assert stat.S_IMODE((tree / "etc/panel-player").stat().st_mode) == 0o750


def test_all_groups_present_means_no_dropin(tree: Path) -> None:
    with (tree / "etc/group").open("a") as f:
        f.write("spi:x:996:\ni2c:x:995:\n")
    assert install(tree, "--no-venv").returncode == 0
    assert "spi:x:996:panel-player" in lines(tree / "etc/group")
    assert not (tree / "etc/systemd/system/panel-player.service.d").exists()
    # 998 is still the highest free id: 996 and 995 are below it.
    assert lines(tree / "etc/passwd")[-1].split(":")[2] == "998"


def test_uninstall_keeps_config_unless_purged(tree: Path) -> None:
    assert install(tree, "--no-venv").returncode == 0
    (tree / "etc/panel-player/config.yaml").write_text("panel: {id: gare}\n")

    run = install(tree, "--uninstall")
    assert run.returncode == 0, run.stderr
    assert "panel-player removed" in run.stdout
    assert not (tree / "etc/systemd/system/panel-player.service").exists()
    assert not (tree / "etc/systemd/system/panel-player.service.d").exists()
    assert not (tree / "opt/panel-player").exists()
    for name, text in (("passwd", PASSWD), ("group", GROUP), ("shadow", SHADOW), ("gshadow", GSHADOW)):
        assert (tree / "etc" / name).read_text() == text, name  # exactly as before the install
    assert (tree / "etc/panel-player/config.yaml").is_file()
    assert "--purge removes them" in run.stdout

    purge = install(tree, "--uninstall", "--purge")
    assert purge.returncode == 0
    assert not (tree / "etc/panel-player").exists() and not (tree / "var/lib/panel-player").exists()
    last = install(tree, "--uninstall")
    assert "nothing to do: panel-player is not installed" in last.stdout


@pytest.mark.parametrize("args, message", [
    (["--frobnicate"], "unknown option --frobnicate"),
    (["--purge"], "--purge goes with --uninstall"),
    (["--source", "/nonexistent-checkout"], "is not a panel-player checkout"),
])
def test_bad_options_exit_2(tree: Path, args: list[str], message: str) -> None:
    run = install(tree, "--no-venv", *args)
    assert run.returncode == 2
    assert message in run.stderr
    assert not (tree / "etc/panel-player").exists()


@pytest.mark.slow
def test_real_venv_from_the_checkout(tree: Path, tmp_path: Path) -> None:
    # A frozen copy of the checkout, so the second run sees the same source.
    source = tmp_path / "checkout"
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "player", "layouts", "content", "systemd",
                 "docs", "requirements"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif (ROOT / name).is_file():
            source.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    # --no-deps: the package itself from the checkout; its dependencies are pip's ordinary business.
    env = {"PANEL_PIP_ARGS": "--no-deps"}
    run = install(tree, "--source", str(source), env=env)
    if run.returncode != 0 and "setuptools" in run.stderr and "No matching distribution" in run.stderr:
        pytest.skip("no package index reachable for the build backend")
    assert run.returncode == 0, run.stdout + run.stderr
    venv = tree / "opt/panel-player/venv"
    version = subprocess.run([str(venv / "bin/panel-player"), "--version"], capture_output=True, text=True)
    import player

    assert version.stdout.strip() == f"panel-player {player.__version__}"
    data = subprocess.run([str(venv / "bin/python"), "-c",
                           "import player, pathlib; print(sorted(p.name for p in "
                           "(pathlib.Path(player.__file__).parent / 'data' / 'layouts').glob('*.yaml')))"],
                          capture_output=True, text=True, cwd=tree)
    assert "fullscreen.yaml" in data.stdout
    assert os.readlink(tree / "usr/local/bin/panel-player") == "/opt/panel-player/venv/bin/panel-player"
    assert not (source / "build").exists() and not list(source.glob("*.egg-info"))  # checkout left clean

    again = install(tree, "--source", str(source), env=env)
    assert "up to date with" in again.stdout
    assert "nothing to do" in again.stdout
