"""``panelctl release build``: one signed bundle of panel-player and its locked wheels.

Steps (each announced on stderr):

1. for each target platform, the wheels of every package pinned in the lock
   (``requirements/panel.txt``, hashed) with ``pip download --only-binary=:all:
   --platform … --python-version 3.11 --implementation cp --require-hashes --no-deps``,
   from PyPI or, with ``--wheelhouse DIR``, from that folder only (offline builds);
2. the project's wheel, built with ``pip wheel --no-deps`` from a clean copy of the
   source tree (the checkout itself is left untouched);
3. ``constraints.txt`` (the lock's ``name==version`` pins, markers kept, no hashes:
   the manifest carries the sha256 of every wheel), the manifest and its signature
   (:func:`player.bundle.write_bundle`).

A platform is a name (``aarch64``, ``armv7l``: Raspberry Pi OS Bookworm, glibc 2.36;
``native``: this machine's architecture and glibc) or a wheel platform tag such as
``manylinux_2_28_aarch64``. A name stands for every tag such a system accepts: the
``manylinux_2_X`` tags from its glibc down to 2.17 (2.5 on x86), the legacy
``manylinux2014`` (and ``manylinux2010``/``manylinux1`` on x86) aliases and the
plain ``linux_ARCH``. ``musllinux`` tags are not used: the panels run a glibc system.

A platform for which PyPI has no wheel of some locked package (PyPI has no armv7l
wheel of Pillow, pygame-ce, PyYAML or cffi) would need them built on the panel,
which an offline update cannot do: its wheels are left out, it is not listed in the
manifest's ``platforms``, the manifest's ``incomplete`` names the missing packages,
and the build says so. With ``--strict`` that is an error instead. A build where no
platform is complete fails.

Example::

    result = build_release(source=Path("."), lock=Path("requirements/panel.txt"), out=Path("dist"),
                           platforms=["aarch64"], key=key, kid="release-2026", wheelhouse=None,
                           err=sys.stderr)
    result.path, result.sha256, result.manifest.version
"""

from __future__ import annotations

import importlib
import os
import stat
import platform as host
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..bundle import BundleError, Manifest, write_bundle
from ..store import sha256_file
from ..errors import ValidationError
from .client import CtlError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PYTHON_VERSION = "3.11"
PI_GLIBC = 36  # Raspberry Pi OS Bookworm: glibc 2.36
DEFAULT_PLATFORMS = ("aarch64", "armv7l")
NAMED = ("aarch64", "armv7l", "native")
PIP_TIMEOUT = 900.0
_SKIPPED_NAMES = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
                                       ".mypy_cache", ".pytest_cache", ".hypothesis", "*.bundle", "mutants")


def _skipped(folder: str, names: list[str]) -> set[str]:
    """What the copy of the source tree leaves out: build and cache folders, and anything
    that is not a file, folder or link (a FIFO left by a library, a socket)."""
    skipped = set(_SKIPPED_NAMES(folder, names))
    for name in names:
        try:
            mode = os.lstat(os.path.join(folder, name)).st_mode
        except OSError:
            skipped.add(name)
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            skipped.add(name)
    return skipped
_TAG = re.compile(r"[a-z0-9_.]{1,100}")


@dataclass(frozen=True)
class Locked:
    """One pinned package of the lock: ``name==version``, its marker, and ``text``: the pin with its
    hashes, without the marker (evaluated here for the target, see :func:`needed_on`)."""

    name: str
    version: str
    marker: str | None
    text: str

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Target:
    """A platform to fetch wheels for: the tag recorded in the manifest and the tags pip accepts."""

    spec: str
    tag: str
    pip_tags: tuple[str, ...]


@dataclass(frozen=True)
class Release:
    path: Path
    sha256: str
    size: int
    manifest: Manifest


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> list[Locked]:
    """The pinned packages of a pip-compile lock (``name==version \\`` then ``--hash=`` lines)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError([f"cannot read the lock {path}: {exc.strerror or exc}"], "lock") from None
    entries: list[Locked] = []
    problems: list[str] = []
    logical = re.sub(r"\\\n", " ", text)
    for n, line in enumerate(logical.splitlines(), 1):
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)\s*(?:;\s*([^-][^\n]*?))?\s*((?:--hash=\S+\s*)*)", line)
        if m is None:
            problems.append(f"{path}: entry {n}: expected 'name==version' with --hash lines, got {line[:60]!r}")
            continue
        if not m.group(4):
            problems.append(f"{path}: {m.group(1)}=={m.group(2)} has no --hash (the lock must be made "
                            "with --generate-hashes)")
            continue
        entries.append(Locked(m.group(1), m.group(2), (m.group(3) or "").strip() or None,
                              f"{m.group(1)}=={m.group(2)} {m.group(4).strip()}"))
    if problems:
        raise ValidationError(problems, "lock")
    if not entries:
        raise ValidationError([f"{path} pins no package"], "lock")
    return entries


def constraints_text(lock: list[Locked], source: str) -> str:
    lines = [f"# panel-player's locked dependencies, from {source}", "# (each wheel's sha256 is in the manifest)"]
    for entry in lock:
        lines.append(entry.pin + (f" ; {entry.marker}" if entry.marker else ""))
    return "\n".join(lines) + "\n"


def _glibc() -> int:
    text = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None
    m = re.fullmatch(r"glibc 2\.(\d+)", text or "")
    if m is None:
        raise ValidationError(["--platform native: this machine does not run glibc; give a wheel platform tag"],
                              "arguments")
    return int(m.group(1))


def _linux_tags(arch: str, glibc: int) -> tuple[str, ...]:
    floor = 5 if arch in ("x86_64", "i686") else 17
    tags = [f"manylinux_2_{m}_{arch}" for m in range(glibc, floor - 1, -1)]
    tags.append(f"manylinux2014_{arch}")
    if arch in ("x86_64", "i686"):
        tags += [f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return (*tags, f"linux_{arch}")


def target(spec: str) -> Target:
    """``aarch64``, ``armv7l``, ``native`` or a wheel platform tag."""
    if spec in ("aarch64", "armv7l"):
        tags = _linux_tags(spec, PI_GLIBC)
        return Target(spec, tags[0], tags)
    if spec == "native":
        machine = host.machine()
        arch = {"armv8l": "armv7l", "arm64": "aarch64", "amd64": "x86_64"}.get(machine.lower(), machine)
        tags = _linux_tags(arch, _glibc())
        return Target(spec, tags[0], tags)
    if not _TAG.fullmatch(spec):
        raise ValidationError([f"--platform {spec!r}: expected {', '.join(NAMED)} or a wheel platform tag "
                               "such as manylinux_2_28_aarch64"], "arguments")
    m = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", spec)
    if m:
        tags = _linux_tags(m.group(2), int(m.group(1)))
        return Target(spec, spec, tags)
    return Target(spec, spec, (spec,))


def _arch(tag: str) -> str | None:
    m = re.fullmatch(r"(?:manylinux_\d+_\d+|manylinux\d+|linux)_(\w+)", tag)
    return m.group(1) if m else None


def needed_on(entry: Locked, t: Target) -> bool:
    """Whether ``entry``'s environment marker holds on ``t`` (a Linux system running CPython 3.11).

    pip would evaluate it for the machine that builds (``sys_platform`` of a Mac server
    would drop ``lgpio``), so it is evaluated here for the panel instead. A tag that is
    not a Linux one leaves the marker to pip's judgement of this machine."""
    if entry.marker is None:
        return True
    try:
        markers = importlib.import_module("packaging.markers")
    except ImportError:  # pip's own copy: release build runs pip anyway
        markers = importlib.import_module("pip._vendor.packaging.markers")
    try:
        marker = markers.Marker(entry.marker)
    except markers.InvalidMarker:
        raise ValidationError([f"{entry.pin}: cannot read its marker {entry.marker!r}"], "lock") from None
    arch = _arch(t.tag)
    if arch is None:
        return bool(marker.evaluate())
    return bool(marker.evaluate({"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
                                 "platform_machine": arch, "python_version": PYTHON_VERSION,
                                 "python_full_version": f"{PYTHON_VERSION}.2", "implementation_name": "cpython",
                                 "platform_python_implementation": "CPython"}))


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def _pip(args: list[str], what: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    try:
        return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                              timeout=PIP_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        raise CtlError(f"{what}: pip did not finish within {PIP_TIMEOUT:g} s") from None


def _pip_failure(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or ["(no output)"])[-1][:300]


def _index(wheelhouse: Path | None) -> list[str]:
    return ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse is not None else []


def check_source(source: Path) -> None:
    """:class:`ValidationError` unless ``source`` is panel-player's source tree."""
    project = source / "pyproject.toml"
    try:
        text = project.read_text(encoding="utf-8")
    except OSError:
        raise ValidationError([f"{source} is not panel-player's source tree (no pyproject.toml); "
                               "give --source DIR"], "arguments") from None
    if not re.search(r'(?m)^name\s*=\s*"panel-player"', text):
        raise ValidationError([f"{project} is not panel-player's"], "arguments")


def build_wheel(source: Path, dest: Path, wheelhouse: Path | None, err: IO[str]) -> Path:
    """The project's wheel, built from a copy of ``source`` (panel-player's tree)."""
    check_source(source)
    copy = dest / "source"
    shutil.copytree(source, copy, ignore=_skipped, symlinks=True)
    err.write(f"building the panel-player wheel from {source}\n")
    err.flush()
    proc = _pip(["wheel", "--no-deps", "-q", "-w", str(dest / "own"), *_index(wheelhouse), str(copy)],
                "building the wheel")
    wheels = sorted((dest / "own").glob("panel_player-*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        raise CtlError(f"building the panel-player wheel failed: {_pip_failure(proc)}")
    err.write(f"  {wheels[0].name}  {_size(wheels[0].stat().st_size)}\n")
    return wheels[0]


def _download(entries: list[Locked], t: Target, dest: Path, wheelhouse: Path | None) -> subprocess.CompletedProcess[str]:
    req = dest.parent / f"{dest.name}.txt"
    req.write_text("".join(e.text.replace(" --hash", " \\\n    --hash") + "\n" for e in entries), encoding="utf-8")
    platforms = [arg for tag in t.pip_tags for arg in ("--platform", tag)]
    return _pip(["download", "-q", "--no-deps", "--only-binary=:all:", *platforms,
                 "--python-version", PYTHON_VERSION, "--implementation", "cp", "--require-hashes",
                 "-r", str(req), "-d", str(dest), *_index(wheelhouse)], f"fetching wheels for {t.tag}")


def _owner(wheel: Path, lock: list[Locked]) -> Locked | None:
    name, _, rest = wheel.name.partition("-")
    version = rest.partition("-")[0]
    for entry in lock:
        if normalise(entry.name) == normalise(name) and entry.version == version:
            return entry
    return None


def fetch_platform(lock: list[Locked], t: Target, dest: Path, wheelhouse: Path | None,
                   err: IO[str]) -> tuple[list[Path], list[str]]:
    """The wheels of every locked package for ``t`` and the pins that have none there.

    One pip run for the whole lock; when pip names a package it has no file of, that
    one is noted and the run repeated without it (one run per package when pip's
    error names none). A package whose marker excludes the platform is not fetched."""
    where = f"from {wheelhouse}" if wheelhouse is not None else "from PyPI"
    left = [e for e in lock if needed_on(e, t)]
    skipped = [e.pin for e in lock if e not in left]
    err.write(f"fetching {len(left)} locked packages for {t.tag} ({where})"
              + (f"; not needed there: {', '.join(skipped)}" if skipped else "") + "\n")
    err.flush()
    dest.mkdir(parents=True)
    missing: list[str] = []
    proc: subprocess.CompletedProcess[str] | None = None
    while left:
        proc = _download(left, t, dest, wheelhouse)
        if proc.returncode == 0:
            break
        # pip stops at the first package it finds no file for and names it: drop it, run again
        named = re.search(r"satisfies the requirement ([A-Za-z0-9._-]+)==", proc.stderr or "")
        culprit = [e for e in left if named and normalise(e.name) == normalise(named.group(1))]
        if len(culprit) != 1:
            break
        missing.append(culprit[0].pin)
        left.remove(culprit[0])
    else:
        proc = None
    if proc is not None and proc.returncode != 0:  # an error pip did not explain: one run per package
        for i, entry in enumerate(left):
            one = dest.parent / f"{dest.name}-{i}"
            one.mkdir()
            proc = _download([entry], t, one, wheelhouse)
            for f in one.glob("*.whl"):
                os.replace(f, dest / f.name)
            if proc.returncode != 0:
                missing.append(entry.pin)
    missing.sort(key=[e.pin for e in lock].index)
    found = sorted(dest.glob("*.whl"))
    for f in found:
        if _owner(f, lock) is None:
            raise CtlError(f"pip fetched {f.name}, which the lock does not pin")
        err.write(f"  {f.name}  {_size(f.stat().st_size)}\n")
    for pin in missing:
        err.write(f"  no wheel of {pin} for {t.tag}\n")
    err.flush()
    return found, missing


def build_release(*, source: Path, lock: Path, out: Path, platforms: Sequence[str], key: Ed25519PrivateKey,
                  kid: str, wheelhouse: Path | None, err: IO[str], strict: bool = False) -> Release:
    """Build, fetch, write and sign; returns the bundle's path, sha256, size and manifest."""
    targets = [target(p) for p in dict.fromkeys(platforms)]
    entries = read_lock(lock)
    if wheelhouse is not None and not wheelhouse.is_dir():
        raise ValidationError([f"--wheelhouse {wheelhouse}: no such folder"], "arguments")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="panel-release-") as tmp:
        work = Path(tmp)
        check_source(source)
        wheels: dict[str, Path] = {}
        covered: list[str] = []
        incomplete: dict[str, list[str]] = {}
        for i, t in enumerate(targets):
            found, missing = fetch_platform(entries, t, work / f"platform-{i}", wheelhouse, err)
            if missing:
                incomplete[t.tag] = missing
                continue
            covered.append(t.tag)
            for f in found:
                if f.name in wheels and sha256_file(wheels[f.name]) != sha256_file(f):
                    raise CtlError(f"two different files are named {f.name}")
                wheels.setdefault(f.name, f)
        for tag, missing in incomplete.items():
            source_name = "PyPI" if wheelhouse is None else str(wheelhouse)
            err.write(f"{'error' if strict else 'warning'}: {tag} left out: {source_name} has no wheel of "
                      f"{', '.join(missing)} for it (a panel there would have to build them)\n")
        if incomplete and strict:
            raise CtlError(f"--strict: {len(incomplete)} platform(s) not covered by wheels")
        if not covered:
            raise CtlError("no platform is covered by wheels of every locked package: nothing to bundle")
        own = build_wheel(source, work, wheelhouse, err)
        version = own.name.split("-")[1]
        path = out / f"panel-player-{version}.bundle"
        err.write(f"writing {path} ({len(wheels) + 1} wheels, signed by {kid})\n")
        err.flush()
        try:
            manifest = write_bundle(path, version=version, wheel=own, dependency_wheels=list(wheels.values()),
                                    constraints=constraints_text(entries, lock.name), key=key, kid=kid,
                                    platforms=covered, incomplete=incomplete)
        except BundleError as exc:
            raise CtlError(f"writing the bundle failed: {exc}") from None
    return Release(path, sha256_file(path), path.stat().st_size, manifest)


def summary(result: Release) -> str:
    m = result.manifest
    lines = [f"version    {m.version}",
             f"file       {result.path}",
             f"size       {result.size} bytes ({_size(result.size)})",
             f"sha256     {result.sha256}",
             f"platforms  {', '.join(m.platforms)}",
             f"wheels     {len(m.files) - 1}"]
    for tag, names in m.incomplete:
        lines.append(f"left out   {tag} (no wheel of {', '.join(names)})")
    return "\n".join(lines)
