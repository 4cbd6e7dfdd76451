"""Release bundles: one signed file holding a panel-player version and its locked wheels.

A bundle is an uncompressed POSIX tar (ustar headers; a pax extended header only to
give a member a path longer than ustar holds) whose members are, in this order,
``manifest.json``, ``manifest.jws``, then ``constraints.txt`` and ``wheels/*.whl``
(any order); nothing else: no links, no folders, no absolute paths, no ``..``, no
other pax keys, no GNU extension headers. ``manifest.json``::

    {"format": "panel-player-bundle/1", "name": "panel-player", "version": "1.4.0",
     "created": "2026-12-03T10:00:00Z", "python_requires": ">=3.11",
     "wheel": "wheels/panel_player-1.4.0-py3-none-any.whl",
     "platforms": ["manylinux_2_17_aarch64", "linux_armv7l"],
     "files": [{"path": "constraints.txt", "sha256": "…", "size": 1234}, …]}

``files`` lists every member except ``manifest.*``. ``platforms`` are the platform
tags every locked package has a wheel for; an optional ``"incomplete": {tag:
["name==version", …]}`` names, for a platform asked for but not covered, the
packages without a wheel there (their wheels are left out). ``manifest.jws`` is
:func:`player.trust.sign` of manifest.json's exact bytes for the topic
:data:`BUNDLE_TOPIC`; a panel checks it with its ``trust.keys``.

:func:`verify_bundle` reads the file once, front to back, in chunks of
:data:`CHUNK` bytes: memory stays bounded whatever the bundle's size, and the work
is bounded by the manifest's limits (:data:`MAX_FILES` members; a member that is
not listed stops the reading at once). It extracts nothing. :func:`extract_bundle`
writes the listed files into a new folder, checking their hashes again as it
writes (the file may have changed since it was verified). Every refusal is a
:class:`BundleError` whose message suits an ``update.failed`` event's reason.

Example::

    manifest = write_bundle(Path("panel-player-1.4.0.bundle"), version="1.4.0",
                            wheel=Path("dist/panel_player-1.4.0-py3-none-any.whl"),
                            dependency_wheels=sorted(Path("wheelhouse").glob("*.whl")),
                            constraints=Path("constraints.txt").read_text(),
                            key=key, kid="release-2026", platforms=["manylinux_2_17_aarch64"])
    manifest = verify_bundle(Path("panel-player-1.4.0.bundle"), keys)   # {kid: public key}
    extract_bundle(Path("panel-player-1.4.0.bundle"), manifest, Path("/var/lib/…/1.4.0"))
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .net.protocol import VERSION_PATTERN
from .store import sha256_file
from .trust import SignatureError, open_envelope, public_keys, sign

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

BUNDLE_TOPIC = "panel-player/bundle"
FORMAT = "panel-player-bundle/1"
NAME = "panel-player"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.jws"
CONSTRAINTS = "constraints.txt"
MAX_MANIFEST = 256 * 1024          # bytes of manifest.json
MAX_SIGNATURE = MAX_MANIFEST * 4 // 3 + 4096
MAX_FILES = 512                    # entries of "files"
MAX_MEMBER = 1 << 31               # bytes of one listed file (2 GiB)
MAX_PAX = 4096                     # bytes of a pax extended header (a long path)
MAX_TRAILER = 64 * 1024            # zero bytes allowed after the end-of-archive marker
CHUNK = 64 * 1024
BLOCK = 512
_WHEEL_PATH = re.compile(r"wheels/[A-Za-z0-9][A-Za-z0-9._+-]{0,150}\.whl")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PLATFORM = re.compile(r"[A-Za-z0-9_.]{1,100}")


class BundleError(Exception):
    """A bundle that cannot be used; the message says why (fit for ``update.failed``'s reason)."""


@dataclass(frozen=True)
class BundleFile:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    version: str
    created: str
    python_requires: str
    wheel: str
    platforms: tuple[str, ...]
    files: tuple[BundleFile, ...]
    # platforms asked for but not covered: {tag: ("name==version", …)} of the packages PyPI has no
    # wheel of there (manifest key "incomplete", present only when not empty)
    incomplete: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def file(self, path: str) -> BundleFile | None:
        for f in self.files:
            if f.path == path:
                return f
        return None


# -- writing ----------------------------------------------------------------------------------------

def _iso_z(when: float) -> str:
    return datetime.fromtimestamp(int(when), timezone.utc).isoformat().replace("+00:00", "Z")


def _tarinfo(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_bundle(out: Path, *, version: str, wheel: Path, dependency_wheels: Sequence[Path],
                 constraints: str | bytes, key: Ed25519PrivateKey, kid: str, platforms: Sequence[str],
                 python_requires: str = ">=3.11", created: float | None = None,
                 incomplete: Mapping[str, Sequence[str]] | None = None) -> Manifest:
    """Write the bundle file ``out`` (through a temporary file renamed into place).

    ``wheel`` is the project's own wheel, ``dependency_wheels`` the locked ones,
    ``constraints`` the text of constraints.txt, ``key``/``kid`` the release key,
    ``platforms`` the platform tags the wheels cover; ``incomplete`` names, for other
    platforms, the packages that have no wheel there (written to the manifest).
    """
    if not re.fullmatch(VERSION_PATTERN, version):
        raise BundleError(f"version {version!r}: expected {VERSION_PATTERN}")
    for tag in [*platforms, *(incomplete or {})]:
        if not _PLATFORM.fullmatch(tag):
            raise BundleError(f"platform tag {tag!r} is not a wheel platform tag")
    now = time.time() if created is None else created
    data = constraints.encode("utf-8") if isinstance(constraints, str) else bytes(constraints)
    sources: dict[str, Path] = {}
    for path in [wheel, *dependency_wheels]:
        member = f"wheels/{path.name}"
        if not _WHEEL_PATH.fullmatch(member):
            raise BundleError(f"{path.name}: not a wheel file name a bundle can hold")
        if member in sources and sources[member].resolve() != path.resolve():
            raise BundleError(f"two different wheels are named {path.name}")
        sources[member] = path
    if len(sources) + 1 > MAX_FILES:
        raise BundleError(f"{len(sources) + 1} files: a bundle holds at most {MAX_FILES}")
    files = [BundleFile(CONSTRAINTS, hashlib.sha256(data).hexdigest(), len(data))]
    for member, path in sources.items():
        files.append(BundleFile(member, sha256_file(path), path.stat().st_size))
    manifest = Manifest(version=version, created=_iso_z(now), python_requires=python_requires,
                        wheel=f"wheels/{wheel.name}", platforms=tuple(platforms), files=tuple(files),
                        incomplete=tuple((tag, tuple(names)) for tag, names in (incomplete or {}).items()))
    manifest_bytes = manifest_json(manifest)
    jws = sign(manifest_bytes, key=key, kid=kid, topic=BUNDLE_TOPIC, iat=now)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    mtime = int(now)
    try:
        with tmp.open("wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_tarinfo(MANIFEST, len(manifest_bytes), mtime), io.BytesIO(manifest_bytes))
            tar.addfile(_tarinfo(SIGNATURE, len(jws), mtime), io.BytesIO(jws))
            tar.addfile(_tarinfo(CONSTRAINTS, len(data), mtime), io.BytesIO(data))
            for entry in files[1:]:
                with sources[entry.path].open("rb") as f:
                    tar.addfile(_tarinfo(entry.path, entry.size, mtime), f)
        _walk(tmp, None, manifest, None)  # a wheel changed between its hash and its copy is caught here
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest


def manifest_json(manifest: Manifest) -> bytes:
    """manifest.json's bytes for ``manifest`` (what is signed)."""
    body: dict[str, Any] = {
        "format": FORMAT, "name": NAME, "version": manifest.version, "created": manifest.created,
        "python_requires": manifest.python_requires, "wheel": manifest.wheel,
        "platforms": list(manifest.platforms),
        "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in manifest.files],
    }
    if manifest.incomplete:
        body["incomplete"] = {tag: list(names) for tag, names in manifest.incomplete}
    return (json.dumps(body, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


# -- reading ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Member:
    name: str
    size: int


def _read_exact(f: IO[bytes], n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise BundleError("bundle is truncated (the file ends inside a member)")
    return data


def _octal(field: bytes, what: str) -> int:
    text = field.rstrip(b"\0 ").lstrip(b" ")
    if not re.fullmatch(rb"[0-7]{1,12}", text):
        raise BundleError(f"bundle is not a POSIX tar file (bad {what} field)")
    return int(text, 8)


def _cstr(field: bytes) -> str:
    raw = field.split(b"\0", 1)[0]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError("bundle member name is not UTF-8") from None


def _unsafe(name: str) -> str | None:
    if name.startswith("/"):
        return f"absolute path {name[:80]!r}"
    if ".." in name.split("/"):
        return f"path {name[:80]!r} leaves the bundle (..)"
    if "\\" in name or any(ord(c) < 32 for c in name):
        return f"path {name[:80]!r} has forbidden characters"
    return None


_TYPES = {b"1": "a hard link", b"2": "a symbolic link", b"3": "a device", b"4": "a device",
          b"5": "a folder", b"6": "a FIFO", b"7": "a contiguous file", b"x": "a pax header",
          b"g": "a global pax header", b"L": "a GNU long name", b"K": "a GNU long link"}


def _pax_path(data: bytes) -> str | None:
    """The ``path`` of a pax extended header (POSIX.1-2001): ``"LEN key=value\n"`` records.

    Only ``path`` (a name longer than ustar holds) and ``mtime`` are accepted: any other
    key (a ``size``, a ``linkpath``…) would change what the ustar header says."""
    path: str | None = None
    pos = 0
    while pos < len(data):
        m = re.match(rb"([1-9][0-9]{0,4}) ", data[pos:pos + 6])
        length = int(m.group(1)) if m else 0
        record = data[pos:pos + length]
        if m is None or length <= len(m.group(0)) or len(record) != length or not record.endswith(b"\n"):
            raise BundleError("bundle has a malformed pax header")
        key, sep, value = record[len(m.group(0)):-1].partition(b"=")
        if not sep:
            raise BundleError("bundle has a malformed pax header")
        try:
            name, text = key.decode("utf-8"), value.decode("utf-8")
        except UnicodeDecodeError:
            raise BundleError("bundle has a pax header that is not UTF-8") from None
        if name == "path":
            path = text
        elif name != "mtime":
            raise BundleError(f"bundle has a pax header setting {name[:40]!r}: only path and mtime are allowed")
        pos += length
    return path


def _members(f: IO[bytes]) -> Iterator[_Member]:
    """The members of a ustar archive (with pax headers only for long names), front to
    back; the caller reads each one's data (``size`` bytes, padded to the block) before
    asking for the next."""
    pax: str | None = None  # the path a pax header gave the next member
    after_pax = False
    while True:
        header = f.read(BLOCK)
        if len(header) == 0:
            raise BundleError("bundle is truncated (no end-of-archive marker)")
        if len(header) != BLOCK:
            raise BundleError("bundle is truncated (the file ends inside a header)")
        if header == bytes(BLOCK):
            if after_pax:
                raise BundleError("bundle has a pax header followed by no member")
            trailer = f.read(MAX_TRAILER + 1)
            if len(trailer) > MAX_TRAILER or trailer.strip(b"\0"):
                raise BundleError("bundle has data after its end-of-archive marker")
            return
        stored = _octal(header[148:156], "checksum")
        if stored != sum(header[:148]) + 8 * 32 + sum(header[156:]):
            raise BundleError("bundle is damaged (a tar header's checksum does not match)")
        if header[257:265] != b"ustar\x0000":
            raise BundleError("bundle is not a POSIX (ustar) tar file")
        kind = header[156:157]
        if kind == b"x":
            if after_pax:
                raise BundleError("bundle has two pax headers in a row")
            size = _octal(header[124:136], "size")
            if size > MAX_PAX:
                raise BundleError(f"bundle has a pax header of {size} bytes, more than {MAX_PAX}")
            data = _read_exact(f, size)
            _skip_padding(f, size)
            pax, after_pax = _pax_path(data), True
            continue
        prefix, name = _cstr(header[345:500]), _cstr(header[0:100])
        full = pax if pax is not None else f"{prefix}/{name}" if prefix else name
        pax, after_pax = None, False
        bad = _unsafe(full)
        if bad:
            raise BundleError(f"bundle member with an {bad}" if bad.startswith("absolute")
                              else f"bundle member {bad}")
        if kind not in (b"0", b"\0"):
            raise BundleError(f"bundle member {full[:80]!r} is {_TYPES.get(kind, 'not a regular file')}: "
                              "only regular files are allowed")
        if header[124] & 0x80:
            raise BundleError(f"bundle member {full[:80]!r} has a size beyond the ustar format")
        yield _Member(full, _octal(header[124:136], "size"))


def _skip_padding(f: IO[bytes], size: int) -> None:
    pad = -size % BLOCK
    if pad:
        _read_exact(f, pad)


def _read_small(f: IO[bytes], member: _Member, limit: int) -> bytes:
    if member.size > limit:
        raise BundleError(f"{member.name} is {member.size} bytes, more than {limit}")
    data = _read_exact(f, member.size)
    _skip_padding(f, member.size)
    return data


def _stream(f: IO[bytes], member: _Member, out: IO[bytes] | None = None) -> str:
    """Read a member's data in chunks (written to ``out`` if given); its sha256."""
    digest = hashlib.sha256()
    left = member.size
    while left:
        chunk = _read_exact(f, min(CHUNK, left))
        digest.update(chunk)
        if out is not None:
            out.write(chunk)
        left -= len(chunk)
    _skip_padding(f, member.size)
    return digest.hexdigest()


def _keys(keys: Mapping[str, Ed25519PublicKey | bytes]) -> dict[str, Ed25519PublicKey]:
    raw = {k: v for k, v in keys.items() if isinstance(v, bytes)}
    objects = {k: v for k, v in keys.items() if not isinstance(v, bytes)}
    return {**objects, **public_keys(raw)}


def _parse_manifest(data: bytes) -> Manifest:
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BundleError("manifest.json is not JSON") from None
    if not isinstance(body, dict):
        raise BundleError("manifest.json is not a JSON object")
    if body.get("format") != FORMAT:
        raise BundleError(f"bundle format {str(body.get('format'))[:40]!r} is not {FORMAT!r}")
    if body.get("name") != NAME:
        raise BundleError(f"bundle is for {str(body.get('name'))[:40]!r}, not {NAME!r}")
    version = body.get("version")
    if not isinstance(version, str) or not re.fullmatch(VERSION_PATTERN, version):
        raise BundleError("manifest version missing or malformed")
    texts = {}
    for name in ("created", "python_requires", "wheel"):
        value = body.get(name)
        if not isinstance(value, str) or len(value) > 200:
            raise BundleError(f"manifest {name} missing or not a short text")
        texts[name] = value
    platforms = body.get("platforms")
    if (not isinstance(platforms, list) or len(platforms) > 64
            or not all(isinstance(p, str) and _PLATFORM.fullmatch(p) for p in platforms)):
        raise BundleError("manifest platforms must be a list of platform tags")
    entries = body.get("files")
    if not isinstance(entries, list):
        raise BundleError("manifest files must be a list")
    if len(entries) > MAX_FILES:
        raise BundleError(f"manifest lists {len(entries)} files, a bundle holds at most {MAX_FILES}")
    files: list[BundleFile] = []
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != {"path", "sha256", "size"}:
            raise BundleError('manifest files: each entry is {"path", "sha256", "size"}')
        path, digest, size = entry["path"], entry["sha256"], entry["size"]
        if not isinstance(path, str) or not (path == CONSTRAINTS or _WHEEL_PATH.fullmatch(path)):
            raise BundleError(f"manifest lists {str(path)[:80]!r}: only constraints.txt and wheels/*.whl")
        if path in seen:
            raise BundleError(f"manifest lists {path} twice")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise BundleError(f"manifest: {path}'s sha256 is not 64 lowercase hex digits")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_MEMBER:
            raise BundleError(f"manifest: {path}'s size is not a number of bytes")
        seen.add(path)
        files.append(BundleFile(path, digest, size))
    if CONSTRAINTS not in seen:
        raise BundleError("manifest does not list constraints.txt")
    if texts["wheel"] not in seen or not texts["wheel"].startswith("wheels/"):
        raise BundleError("manifest's wheel is not one of its files")
    missing = body.get("incomplete", {})
    if (not isinstance(missing, dict) or len(missing) > 64
            or not all(isinstance(tag, str) and _PLATFORM.fullmatch(tag) and isinstance(names, list)
                       and len(names) <= MAX_FILES and all(isinstance(n, str) and len(n) <= 200 for n in names)
                       for tag, names in missing.items())):
        raise BundleError("manifest incomplete must map platform tags to lists of package names")
    return Manifest(version=version, created=texts["created"], python_requires=texts["python_requires"],
                    wheel=texts["wheel"], platforms=tuple(platforms), files=tuple(files),
                    incomplete=tuple((tag, tuple(names)) for tag, names in missing.items()))


def _open_manifest(f: IO[bytes], members: Iterator[_Member],
                   keys: Mapping[str, Ed25519PublicKey | bytes]) -> Manifest:
    first = next(members, None)
    if first is None or first.name != MANIFEST:
        raise BundleError("bundle does not start with manifest.json")
    manifest_bytes = _read_small(f, first, MAX_MANIFEST)
    second = next(members, None)
    if second is None or second.name != SIGNATURE:
        raise BundleError("bundle has no manifest.jws after manifest.json")
    jws = _read_small(f, second, MAX_SIGNATURE)
    try:
        signed = open_envelope(jws, _keys(keys), BUNDLE_TOPIC)
    except SignatureError as exc:
        raise BundleError(f"bundle signature refused: {exc.reason}") from None
    if signed.payload != manifest_bytes:
        raise BundleError("manifest.json differs from the manifest its signature covers")
    return _parse_manifest(manifest_bytes)


def _walk(path: Path, keys: Mapping[str, Ed25519PublicKey | bytes] | None,
          manifest: Manifest | None, dest: Path | None) -> Manifest:
    try:
        with Path(path).open("rb") as f:
            members = _members(f)
            if manifest is None:
                assert keys is not None
                manifest = _open_manifest(f, members, keys)
            else:  # extracting: the manifest was verified; skip over its two members
                for expected, limit in ((MANIFEST, MAX_MANIFEST), (SIGNATURE, MAX_SIGNATURE)):
                    member = next(members, None)
                    if member is None or member.name != expected:
                        raise BundleError(f"bundle has no {expected} where expected (it changed?)")
                    _read_small(f, member, limit)
            listed = {entry.path: entry for entry in manifest.files}
            seen: set[str] = set()
            for member in members:
                entry = listed.get(member.name)
                if entry is None:
                    raise BundleError(f"bundle member {member.name[:80]!r} is not listed in the manifest")
                if member.name in seen:
                    raise BundleError(f"bundle member {member.name} appears twice")
                seen.add(member.name)
                if member.size != entry.size:
                    raise BundleError(f"{member.name} is {member.size} bytes, the manifest says {entry.size}")
                if dest is None:
                    digest = _stream(f, member)
                else:
                    target = dest / member.name
                    with target.open("xb") as out:
                        digest = _stream(f, member, out)
                        out.flush()
                        os.fsync(out.fileno())
                if digest != entry.sha256:
                    raise BundleError(f"{member.name}'s sha256 differs from the manifest's")
            missing = [p for p in listed if p not in seen]
            if missing:
                raise BundleError(f"bundle lacks {missing[0]}"
                                  + (f" and {len(missing) - 1} more listed files" if len(missing) > 1 else ""))
            return manifest
    except OSError as exc:
        raise BundleError(f"cannot read the bundle: {exc.strerror or exc}") from None


def verify_bundle(path: Path, keys: Mapping[str, Ed25519PublicKey | bytes]) -> Manifest:
    """Check ``path``'s structure, signature (``keys``: ``{kid: public key}`` as objects or
    32 raw bytes) and every file's size and sha256; raise :class:`BundleError` or return the
    manifest. Nothing is written."""
    return _walk(path, keys, None, None)


def extract_bundle(path: Path, manifest: Manifest, dest: Path) -> None:
    """Write the files ``manifest`` lists into the new folder ``dest`` (``constraints.txt``,
    ``wheels/…``), each hash checked again while writing; made as a temporary folder beside
    ``dest`` renamed into place, so ``dest`` exists only complete. ``dest`` must not exist."""
    dest = Path(dest)
    if dest.exists() or dest.is_symlink():
        raise BundleError(f"{dest} exists already")
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=False)
        (tmp / "wheels").mkdir()
        _walk(path, None, manifest, tmp)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ("BUNDLE_TOPIC", "BundleError", "BundleFile", "Manifest", "write_bundle",
           "verify_bundle", "extract_bundle", "manifest_json")


# -- parts: how a bundle travels over MQTT (docs/protocol.md, "Updates") ------------------------

PARTS_FORMAT = "panel-player-parts/1"
MAX_INDEX = 1 << 20                # bytes of a parts index (about 15 000 parts)
DEFAULT_PART_SIZE = 1 << 20        # panelctl update --part-kb 1024


@dataclass(frozen=True)
class PartsIndex:
    """A bundle cut into parts: every part ``part_size`` bytes but the last, each
    published retained on ``P/assets/<sha256 of the part>``."""

    bundle: str  # bare hex of the whole bundle
    size: int
    part_size: int
    parts: tuple[str, ...]

    def part_length(self, n: int) -> int:
        """The length of part ``n`` (0-based)."""
        return min(self.part_size, self.size - n * self.part_size)


def part_count(size: int, part_size: int) -> int:
    return -(-size // part_size)


def index_json(index: PartsIndex) -> bytes:
    """The index's bytes (UTF-8 JSON); it is published on ``P/assets/<sha256 of these bytes>``."""
    return json.dumps({"format": PARTS_FORMAT, "bundle": f"sha256:{index.bundle}", "size": index.size,
                       "part_size": index.part_size, "parts": list(index.parts)},
                      separators=(",", ":")).encode("utf-8")


def split_bundle(path: Path, part_size: int) -> tuple[PartsIndex, Iterator[tuple[str, bytes]]]:
    """The index of ``path`` cut into parts of ``part_size`` bytes (read once to hash it),
    and an iterator reading the parts again one at a time: ``(sha256 hex, bytes)``."""
    if part_size < 1:
        raise ValueError("part_size must be at least 1 byte")
    whole = hashlib.sha256()
    shas = []
    size = 0
    with Path(path).open("rb") as f:
        while chunk := f.read(part_size):
            whole.update(chunk)
            shas.append(hashlib.sha256(chunk).hexdigest())
            size += len(chunk)
    if size == 0:
        raise BundleError(f"{path} is empty")
    index = PartsIndex(whole.hexdigest(), size, part_size, tuple(shas))

    def parts() -> Iterator[tuple[str, bytes]]:
        with Path(path).open("rb") as f:
            for n, sha in enumerate(index.parts):
                data = f.read(index.part_length(n))
                if hashlib.sha256(data).hexdigest() != sha:
                    raise BundleError(f"{path} changed while its parts were published")
                yield sha, data

    return index, parts()


def parse_index(data: bytes, *, bundle: str, size: int, max_part: int) -> PartsIndex:
    """The index a panel received, checked against its ``update`` command (``bundle``: bare
    hex, ``size``) and its largest asset (``max_part`` bytes); :class:`BundleError` otherwise."""
    if len(data) > MAX_INDEX:
        raise BundleError(f"parts index of {len(data)} bytes is over {MAX_INDEX}")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BundleError("parts index is not UTF-8 JSON") from None
    keys = {"format", "bundle", "size", "part_size", "parts"}
    if not isinstance(doc, dict) or set(doc) != keys:
        raise BundleError(f"parts index must be an object with exactly {', '.join(sorted(keys))}")
    if doc["format"] != PARTS_FORMAT:
        raise BundleError(f"parts index format {doc['format']!r} is not {PARTS_FORMAT}")
    if doc["bundle"] != f"sha256:{bundle}":
        raise BundleError(f"parts index is for bundle {str(doc['bundle'])[:80]!r}, the command says sha256:{bundle}")
    if type(doc["size"]) is not int or doc["size"] != size:
        raise BundleError(f"parts index says {str(doc['size'])[:40]} bytes, the command says {size}")
    part_size = doc["part_size"]
    if type(part_size) is not int or not 1 <= part_size <= max_part:
        raise BundleError(f"parts index part_size {str(part_size)[:40]} is not within 1 to {max_part} bytes "
                          "(mqtt.max_asset_kb)")
    parts = doc["parts"]
    if not isinstance(parts, list) or len(parts) != part_count(size, part_size):
        raise BundleError(f"parts index must list {part_count(size, part_size)} parts "
                          f"({size} bytes in parts of {part_size})")
    if not all(isinstance(p, str) and _SHA256.fullmatch(p) for p in parts):
        raise BundleError("parts index: every part must be 64 lowercase hex digits")
    return PartsIndex(bundle, size, part_size, tuple(parts))
