"""scripts/install.sh into a temporary root: the user and folders (systemd-sysusers and systemd-tmpfiles,
or entries written by hand where they are missing), the units, the versioned layout (versions/<v>,
current, good, previous), the move from the earlier layout, idempotence, uninstall."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest

import player

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


BY_HAND = {"PANEL_NO_SYSUSERS": "1"}  # the fallback: entries written without systemd-sysusers
HAVE_SYSUSERS = os.geteuid() == 0 and bool(shutil.which("systemd-sysusers")) and bool(shutil.which("systemd-tmpfiles"))
needs_sysusers = pytest.mark.skipif(not HAVE_SYSUSERS, reason="needs root and systemd-sysusers/systemd-tmpfiles")
UNITS = sorted(p.name for p in (ROOT / "systemd").iterdir() if p.suffix in (".service", ".path"))


def install(root: Path, *args: str, env: dict[str, str] | None = None,
            script: Path = SCRIPT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script), "--root", str(root), *args], capture_output=True, text=True,
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


def test_install_into_a_tree_by_hand(tree: Path) -> None:
    run = install(tree, "--no-venv", env=BY_HAND)
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

    units = etc / "systemd" / "system"
    assert sorted(p.name for p in units.glob("*.service")) + sorted(p.name for p in units.glob("*.path")) \
        == sorted(UNITS, key=lambda n: (n.endswith(".path"), n))
    for name in UNITS:
        assert (units / name).read_bytes() == (ROOT / "systemd" / name).read_bytes(), name
        assert stat.S_IMODE((units / name).stat().st_mode) == 0o644
    dropin = (units / "panel-player.service.d" / "groups.conf").read_text()
    assert "[Service]\nSupplementaryGroups=\nSupplementaryGroups=video gpio\n" in dropin
    assert "no group spi i2c" in dropin
    assert not (tree / "usr/lib/sysusers.d").exists()

    for path, want in (("etc/panel-player", 0o750), ("var/lib/panel-player", 0o750), ("opt/panel-player", 0o755),
                       ("opt/panel-player/versions", 0o755)):
        assert stat.S_IMODE((tree / path).stat().st_mode) == want, path
    if os.geteuid() == 0:
        assert (tree / "var/lib/panel-player").stat().st_uid == 998
        assert (tree / "etc/panel-player").stat().st_gid == 998
    assert list((tree / "opt/panel-player/versions").iterdir()) == []
    assert not (tree / "opt/panel-player/current").exists()
    for step in ("system user panel-player", "folders", f"panel-player {player.__version__} in",
                 "systemd units", "services"):
        assert f"==> {step}" in run.stdout
    assert "skipped (--no-venv)" in run.stdout and "skipped (--root" in run.stdout


@needs_sysusers
def test_install_into_a_tree_with_systemd_sysusers_and_tmpfiles(tree: Path) -> None:
    run = install(tree, "--no-venv")
    assert run.returncode == 0, run.stderr
    etc = tree / "etc"
    assert (tree / "usr/lib/sysusers.d/panel-player.conf").read_bytes() == \
        (ROOT / "systemd/panel-player.sysusers").read_bytes()
    assert (tree / "usr/lib/tmpfiles.d/panel-player.conf").read_bytes() == \
        (ROOT / "systemd/panel-player.tmpfiles").read_bytes()
    assert "systemd-sysusers: " in run.stdout and "Creating user 'panel-player'" in run.stdout
    user = next(line.split(":") for line in lines(etc / "passwd") if line.startswith("panel-player:"))
    assert user[4:] == ["panel-player street panel", "/var/lib/panel-player", "/usr/sbin/nologin"]
    uid, gid = int(user[2]), int(user[3])
    assert 100 <= uid < 1000 and uid not in (999, 997, 1000)
    groups = {g.split(":")[0]: g.split(":") for g in lines(etc / "group")}
    for name in ("video", "gpio", "spi", "i2c"):  # spi and i2c made by systemd-sysusers
        assert "panel-player" in groups[name][3].split(","), name
    assert int(groups["panel-player"][2]) == gid
    assert lines(etc / "passwd")[:3] == PASSWD.splitlines()  # the others untouched
    for path, mode, owner in (("etc/panel-player", 0o750, (0, gid)), ("var/lib/panel-player", 0o750, (uid, gid))):
        st = (tree / path).stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, *owner), path
    # Every group of the unit exists now: no drop-in.
    assert not (etc / "systemd/system/panel-player.service.d").exists()
    assert "system user panel-player" in run.stdout


@pytest.mark.parametrize("env", [BY_HAND, {}], ids=["by-hand", "systemd-sysusers"])
def test_second_run_changes_nothing_and_says_so(tree: Path, env: dict[str, str]) -> None:
    if not env and not HAVE_SYSUSERS:
        pytest.skip("needs root and systemd-sysusers/systemd-tmpfiles")
    assert install(tree, "--no-venv", env=env).returncode == 0
    before = state(tree)
    again = install(tree, "--no-venv", env=env)
    assert again.returncode == 0, again.stderr
    assert "nothing to do: panel-player is already installed and up to date" in again.stdout
    assert "already present" in again.stdout
    assert state(tree) == before


@pytest.mark.parametrize("env", [BY_HAND, {}], ids=["by-hand", "systemd-tmpfiles"])
def test_a_changed_folder_mode_is_repaired(tree: Path, env: dict[str, str]) -> None:
    if not env and not HAVE_SYSUSERS:
        pytest.skip("needs root and systemd-sysusers/systemd-tmpfiles")
    assert install(tree, "--no-venv", env=env).returncode == 0
    (tree / "etc/panel-player").chmod(0o777)
    run = install(tree, "--no-venv", env=env)
    assert "done (1 change(s))" in run.stdout, run.stdout
    assert stat.S_IMODE((tree / "etc/panel-player").stat().st_mode) == 0o750


def test_all_groups_present_means_no_dropin(tree: Path) -> None:
    with (tree / "etc/group").open("a") as f:
        f.write("spi:x:996:\ni2c:x:995:\n")
    assert install(tree, "--no-venv", env=BY_HAND).returncode == 0
    assert "spi:x:996:panel-player" in lines(tree / "etc/group")
    assert not (tree / "etc/systemd/system/panel-player.service.d").exists()
    # 998 is still the highest free id: 996 and 995 are below it.
    assert lines(tree / "etc/passwd")[-1].split(":")[2] == "998"


def test_uninstall_keeps_config_unless_purged(tree: Path) -> None:
    assert install(tree, "--no-venv", env=BY_HAND).returncode == 0
    (tree / "etc/panel-player/config.yaml").write_text("panel: {id: gare}\n")

    run = install(tree, "--uninstall")
    assert run.returncode == 0, run.stderr
    assert "panel-player removed" in run.stdout
    assert list((tree / "etc/systemd/system").iterdir()) == []
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


@needs_sysusers
def test_uninstall_after_systemd_sysusers(tree: Path) -> None:
    assert install(tree, "--no-venv").returncode == 0
    run = install(tree, "--uninstall", "--purge")
    assert run.returncode == 0, run.stderr
    assert not (tree / "usr/lib/sysusers.d/panel-player.conf").exists()
    assert not (tree / "usr/lib/tmpfiles.d/panel-player.conf").exists()
    assert lines(tree / "etc/passwd") == PASSWD.splitlines()
    groups = {g.split(":")[0]: g.split(":") for g in lines(tree / "etc/group")}
    assert "panel-player" not in groups
    # Groups other software shares stay, without the user.
    assert groups["video"][3] == "pi" and groups["spi"][3] == "" and groups["i2c"][3] == ""


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


# -- the versioned layout, with real virtual environments -----------------------------------------

def checkout(dest: Path, version: str) -> Path:
    """A frozen copy of the checkout whose player/__init__.py says ``version``."""
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "player", "layouts", "content", "systemd",
                 "docs", "requirements", "scripts"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dest.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    init = dest / "player" / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{player.__version__}"', f'__version__ = "{version}"'))
    return dest


def build_only_lock(tmp_path: Path) -> Path:
    """A lock with only setuptools (its hashed entry from requirements/panel.txt): the project installs
    (--no-deps, no build isolation) in seconds; `panel-player --version` needs nothing more."""
    text = (ROOT / "requirements" / "panel.txt").read_text()
    m = re.search(r"^setuptools==\S+ \\\n(?:    --hash=\S+(?: \\)?\n)+", text, re.M)
    assert m, "no setuptools entry in requirements/panel.txt"
    lock = tmp_path / "build-only.txt"
    lock.write_text(m.group(0))
    return lock


def link(tree: Path, name: str) -> str | None:
    path = tree / "opt/panel-player" / name
    return os.readlink(path) if path.is_symlink() else None


def run_version(tree: Path, which: str = "current") -> str:
    exe = tree / "opt/panel-player" / which / "venv/bin/panel-player"
    return subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60).stdout.strip()


@pytest.mark.slow
def test_versions_current_good_previous_and_the_earlier_layout_moved(tree: Path, tmp_path: Path) -> None:
    opt = tree / "opt/panel-player"
    # An install of the earlier layout: one venv and the docs in /opt/panel-player, commands linked to it.
    (opt / "venv/bin").mkdir(parents=True)
    (opt / "venv/bin/panel-player").write_text("#!/bin/sh\necho old\n")
    (opt / "docs").mkdir()
    (opt / "docs/install.md").write_text("old\n")
    (tree / "usr/local/bin").mkdir(parents=True)
    for cmd in ("panel-player", "panelctl"):
        (tree / "usr/local/bin" / cmd).symlink_to(f"/opt/panel-player/venv/bin/{cmd}")
    env = {**BY_HAND, "PANEL_REQUIREMENTS": str(build_only_lock(tmp_path))}

    a = checkout(tmp_path / "a", "1.0.0")
    run = install(tree, "--source", str(a), env=env, script=a / "scripts/install.sh")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run_version(tree) == "panel-player 1.0.0"
    assert link(tree, "current") == "versions/1.0.0" and link(tree, "good") == "versions/1.0.0"
    assert link(tree, "previous") is None
    info = json.loads((opt / "versions/1.0.0/installed.json").read_text())
    assert info["version"] == "1.0.0" and info["by"] == "install.sh"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["installed"])
    assert (opt / "versions/1.0.0/docs/operations.md").is_file()
    assert not (opt / "venv").exists() and not (opt / "docs").exists()  # the earlier layout is gone
    for cmd in ("panel-player", "panelctl"):
        assert os.readlink(tree / "usr/local/bin" / cmd) == f"/opt/panel-player/current/venv/bin/{cmd}"
    assert "removed" in run.stdout and "(now" in run.stdout
    # This lock has no lgpio, nor has this machine Raspberry Pi OS's python3-lgpio: said, not fatal.
    assert "lgpio: no wheel for Python" in run.stdout and "and no python3-lgpio package here" in run.stdout
    assert not (a / "build").exists() and not list(a.glob("*.egg-info"))  # the checkout is left clean

    before = state(tree)
    again = install(tree, "--source", str(a), env=env, script=a / "scripts/install.sh")
    assert "up to date with" in again.stdout and "nothing to do" in again.stdout, again.stdout
    assert state(tree) == before

    # An unfinished version (no installed.json: a power cut while it was made) and an older complete one
    # that nothing links to any more are removed; the version before current is kept as previous.
    (opt / "versions/0.9.0/venv").mkdir(parents=True)
    (opt / "versions/0.8.0/venv").mkdir(parents=True)
    (opt / "versions/0.8.0/installed.json").write_text('{"version": "0.8.0"}\n')
    b = checkout(tmp_path / "b", "1.1.0")
    # Where PyPI has no lgpio wheel for the Python (3.13), python3-lgpio's module files are linked into
    # the venv: here this Python's own lgpio files stand for the package's.
    site = Path(sysconfig.get_path("purelib"))
    lgpio_files = [site / "lgpio.py", *site.glob("_lgpio*.so")]
    assert len(lgpio_files) == 2 and all(f.is_file() for f in lgpio_files), lgpio_files
    run = install(tree, "--source", str(b), env={**env, "PANEL_LGPIO_FILES": " ".join(map(str, lgpio_files))},
                  script=b / "scripts/install.sh")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "lgpio: linked from python3-lgpio" in run.stdout, run.stdout
    b_site = next((opt / "versions/1.1.0/venv/lib").glob("python3*/site-packages"))
    assert os.readlink(b_site / "lgpio.py") == str(site / "lgpio.py")
    imported = subprocess.run([str(opt / "versions/1.1.0/venv/bin/python"), "-c",
                               "import lgpio; print(lgpio.__file__)"],
                              capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert imported.stdout.strip() == str(b_site / "lgpio.py"), imported.stderr
    assert (link(tree, "current"), link(tree, "good"), link(tree, "previous")) == \
        ("versions/1.1.0", "versions/1.1.0", "versions/1.0.0")
    assert run_version(tree) == "panel-player 1.1.0" and run_version(tree, "previous") == "panel-player 1.0.0"
    assert sorted(p.name for p in (opt / "versions").iterdir()) == ["1.0.0", "1.1.0"]
    assert "removed versions/0.8.0" in run.stdout and "removed versions/0.9.0" in run.stdout
    assert not [p for p in opt.iterdir() if p.name.startswith(".")]  # no temporary link left


@pytest.fixture(scope="module")
def locked_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real install of this checkout into a tree: the whole lock, --require-hashes."""
    tree = tmp_path_factory.mktemp("locked")
    (tree / "etc").mkdir()
    source = checkout(tmp_path_factory.mktemp("src") / "checkout", player.__version__)
    run = install(tree, "--source", str(source), env=BY_HAND, script=source / "scripts/install.sh")
    assert run.returncode == 0, run.stdout + run.stderr
    return tree


GPIO_LINE = "from player.preflight import check_gpio; r = check_gpio(); print(r.status); print(r.detail)"


@pytest.mark.slow
def test_locked_install_has_the_locked_packages_and_lgpio(locked_install: Path) -> None:
    venv = locked_install / "opt/panel-player/current/venv"
    assert run_version(locked_install) == f"panel-player {player.__version__}"
    freeze = subprocess.run([str(venv / "bin/python"), "-m", "pip", "freeze", "--all"], capture_output=True,
                            text=True, timeout=60).stdout
    installed = {n.lower(): v for n, _, v in (line.partition("==") for line in freeze.splitlines()) if v}
    pins = dict(re.findall(r"^([a-z0-9._-]+)==(\S+)", (ROOT / "requirements/panel.txt").read_text(), re.M))
    assert {n: installed.get(n) for n in pins} == pins
    data = subprocess.run([str(venv / "bin/python"), "-c",
                           "import player, pathlib; d = pathlib.Path(player.__file__).parent / 'data'; "
                           "print(sorted(p.name for p in (d / 'layouts').glob('*.yaml')), "
                           "len(list(d.glob('demo/*'))))"],
                          capture_output=True, text=True, cwd=locked_install, timeout=60)
    assert "'fullscreen.yaml'" in data.stdout and not data.stdout.strip().endswith(" 0"), data.stdout
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    line = subprocess.run([str(venv / "bin/python"), "-c", GPIO_LINE], capture_output=True, text=True, env=env,
                          cwd=locked_install, timeout=60)
    assert "lgpio imports" in line.stdout, line.stdout + line.stderr
    if Path("/dev/gpiochip0").exists() and Path("/proc/device-tree/model").exists() \
            and "Raspberry Pi" in Path("/proc/device-tree/model").read_text(errors="replace"):
        assert line.stdout.split("\n")[1].startswith("LGPIOFactory (gpiozero's default order"), line.stdout


@pytest.mark.slow
def test_lgpio_is_gpiozeros_first_choice_on_a_pi_and_only_the_chip_is_missing_here(locked_install: Path,
                                                                                  tmp_path: Path) -> None:
    """With a Raspberry Pi's revision in /proc/cpuinfo (its own mount namespace) and no gpiochip, the
    installed venv's gpiozero tries lgpio first and passes over it only because the chip cannot be opened."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) for a private /proc/cpuinfo")
    if Path("/dev/gpiochip0").exists():
        pytest.skip("this machine has a gpiochip: test_lgpio_factory_on_a_simulated_gpiochip's case")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nRevision\t: c03114\nModel\t: Raspberry Pi 4 Model B Rev 1.4\n")
    venv_python = locked_install / "opt/panel-player/current/venv/bin/python"
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    run = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          f"mount --bind {cpuinfo} /proc/cpuinfo && exec {venv_python} -c \"{GPIO_LINE}\""],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    detail = run.stdout.split("\n")[1]
    assert "Falling back from lgpio: 'can not open gpiochip'" in detail, detail
    assert "lgpio imports" in detail


def gpio_sim_unavailable() -> str | None:
    """Why a simulated gpiochip cannot be made here, or None."""
    if os.geteuid() != 0:
        return "gpio-sim needs root"
    if not Path("/sys/kernel/config/gpio-sim").is_dir() and shutil.which("modprobe"):
        subprocess.run(["modprobe", "gpio-sim"], capture_output=True)
    if not Path("/sys/kernel/config/gpio-sim").is_dir():
        # A kernel feature CI cannot add (the conftest keeps "hardware:" skips as skips).
        return ("hardware: this kernel has no gpio-sim (no /sys/kernel/config/gpio-sim, and "
                "`modprobe gpio-sim` absent or without effect): "
                "see docs/install.md, 'GPIO back-end', for the same check on a Raspberry Pi")
    if not shutil.which("unshare"):
        return "no unshare(1) to give the check its own /proc/cpuinfo and /dev/gpiochip0"
    return None


def test_lgpio_factory_on_a_simulated_gpiochip(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The installed venv's gpiozero takes the lgpio factory when /dev/gpiochip0 exists (gpio-sim), and
    drives a line of it."""
    why = gpio_sim_unavailable()
    if why:
        pytest.skip(why)
    sim = Path("/sys/kernel/config/gpio-sim") / f"panel-player-{os.getpid()}"
    (sim / "bank0").mkdir(parents=True)
    try:
        (sim / "bank0/num_lines").write_text("54\n")
        (sim / "live").write_text("1\n")
        chip = (sim / "bank0/chip_name").read_text().strip()
        device = (sim / "dev_name").read_text().strip()
        if chip != "gpiochip0":
            pytest.skip(f"the simulated chip is {chip}: another gpiochip is gpiochip0 on this machine")
        tree: Path = request.getfixturevalue("locked_install")
        line = Path("/sys/devices/platform") / device / chip / "sim_gpio17" / "value"
        # gpiozero asks the board's revision before it opens gpiochip0: a Raspberry Pi 4 B's, in this
        # check's own mount namespace only.
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text("processor\t: 0\nRevision\t: c03114\nModel\t: Raspberry Pi 4 Model B Rev 1.4\n")
        venv_python = tree / "opt/panel-player/current/venv/bin/python"
        code = (f"{GPIO_LINE}; from gpiozero import OutputDevice; d = OutputDevice(17); d.on(); "
                f"print(open({str(line)!r}).read().strip()); d.off(); print(open({str(line)!r}).read().strip())")
        env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
        run = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                              f"mount --bind {cpuinfo} /proc/cpuinfo && exec {venv_python} -c \"{code}\""],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        status, detail, high, low = run.stdout.strip().split("\n")[:4]
        assert detail.startswith("LGPIOFactory (gpiozero's default order"), detail
        assert status == "ok" and (high, low) == ("1", "0")
    finally:
        if (sim / "live").exists():
            (sim / "live").write_text("0\n")
        for d in (sim / "bank0", sim):
            if d.exists():
                d.rmdir()
