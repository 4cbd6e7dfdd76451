"""Release bundles (player.bundle): a good bundle verifies and extracts; everything else is refused
with a BundleError saying why, before anything is written."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from player import bundle
from player.bundle import (BUNDLE_TOPIC, BundleError, BundleFile, Manifest, extract_bundle, manifest_json,
                           verify_bundle, write_bundle)
from player.trust import sign

KEY = Ed25519PrivateKey.generate()
KEYS = {"release-1": KEY.public_key()}
WHEEL = "panel_player-2.0.0-py3-none-any.whl"
DEPS = {"paho_mqtt-2.1.0-py3-none-any.whl": b"paho" * 1000,
        "PyYAML-6.0.2-cp311-cp311-manylinux_2_17_aarch64.whl": b"yaml" * 3000}
CONSTRAINTS = "paho-mqtt==2.1.0 \\\n    --hash=sha256:00\nPyYAML==6.0.2\n"


def wheels(folder: Path) -> tuple[Path, list[Path]]:
    folder.mkdir(exist_ok=True)
    own = folder / WHEEL
    own.write_bytes(b"PK" + b"own wheel" * 500)
    deps = []
    for name, data in DEPS.items():
        (folder / name).write_bytes(data)
        deps.append(folder / name)
    return own, deps


@pytest.fixture
def good(tmp_path: Path) -> Path:
    own, deps = wheels(tmp_path / "in")
    out = tmp_path / "panel-player-2.0.0.bundle"
    write_bundle(out, version="2.0.0", wheel=own, dependency_wheels=deps, constraints=CONSTRAINTS,
                 key=KEY, kid="release-1", platforms=["manylinux_2_17_aarch64"])
    return out


def members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path, "r:") as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar]  # type: ignore[union-attr]


def rewrite(path: Path, items: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.USTAR_FORMAT) -> None:
    with tarfile.open(path, "w", format=fmt) as tar:
        for info, data in items:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


def resign(manifest: dict, key: Ed25519PrivateKey = KEY, kid: str = "release-1",
           topic: str = BUNDLE_TOPIC) -> tuple[bytes, bytes]:
    data = (json.dumps(manifest) + "\n").encode()
    return data, sign(data, key=key, kid=kid, topic=topic, iat=time.time())


def replace(items: list[tuple[tarfile.TarInfo, bytes]], name: str, data: bytes) -> None:
    for i, (info, _) in enumerate(items):
        if info.name == name:
            items[i] = (info, data)
            return
    raise AssertionError(name)


def refused(path: Path, match: str, keys: dict = KEYS) -> None:
    with pytest.raises(BundleError, match=match):
        verify_bundle(path, keys)


# -- the good bundle ------------------------------------------------------------------------------------

def test_good_bundle_verifies_and_extracts(good: Path, tmp_path: Path) -> None:
    names = [m.name for m, _ in members(good)]
    assert names[:3] == ["manifest.json", "manifest.jws", "constraints.txt"]
    assert sorted(names[3:]) == sorted(f"wheels/{n}" for n in [WHEEL, *DEPS])
    manifest = verify_bundle(good, KEYS)
    assert manifest.version == "2.0.0" and manifest.wheel == f"wheels/{WHEEL}"
    assert manifest.platforms == ("manylinux_2_17_aarch64",) and manifest.python_requires == ">=3.11"
    assert manifest.created.endswith("Z") and manifest.incomplete == ()
    raw = dict(members(good))
    body = json.loads(next(d for m, d in raw.items() if m.name == "manifest.json"))
    assert body["format"] == "panel-player-bundle/1" and body["name"] == "panel-player"
    assert manifest_json(manifest) == next(d for m, d in raw.items() if m.name == "manifest.json")
    for entry in manifest.files:
        data = next(d for m, d in raw.items() if m.name == entry.path)
        assert entry.size == len(data) and entry.sha256 == hashlib.sha256(data).hexdigest()
    # raw 32-byte keys (what the panel's trust.keys holds) work the same
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    assert verify_bundle(good, {"release-1": KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)}) \
        == manifest

    dest = tmp_path / "unpacked" / "2.0.0"
    dest.parent.mkdir()
    extract_bundle(good, manifest, dest)
    assert (dest / "constraints.txt").read_text() == CONSTRAINTS
    assert (dest / "wheels" / WHEEL).read_bytes() == (tmp_path / "in" / WHEEL).read_bytes()
    assert sorted(p.name for p in (dest / "wheels").iterdir()) == sorted([WHEEL, *DEPS])
    assert sorted(p.name for p in dest.parent.iterdir()) == ["2.0.0"]  # no temporary folder left
    with pytest.raises(BundleError, match="exists already"):
        extract_bundle(good, manifest, dest)


def test_incomplete_platforms_recorded(tmp_path: Path) -> None:
    own, deps = wheels(tmp_path / "in")
    out = tmp_path / "b.bundle"
    written = write_bundle(out, version="2.0.0", wheel=own, dependency_wheels=deps, constraints=CONSTRAINTS,
                           key=KEY, kid="release-1", platforms=["manylinux_2_36_aarch64"],
                           incomplete={"manylinux_2_36_armv7l": ["pillow==13.0.0", "pyyaml==6.0.4"]})
    body = json.loads(dict((m.name, d) for m, d in members(out))["manifest.json"])
    assert body["incomplete"] == {"manylinux_2_36_armv7l": ["pillow==13.0.0", "pyyaml==6.0.4"]}
    assert verify_bundle(out, KEYS) == written
    assert written.incomplete == (("manylinux_2_36_armv7l", ("pillow==13.0.0", "pyyaml==6.0.4")),)


def test_write_refuses_bad_inputs(tmp_path: Path) -> None:
    own, deps = wheels(tmp_path / "in")
    with pytest.raises(BundleError, match="version"):
        write_bundle(tmp_path / "b", version="../1", wheel=own, dependency_wheels=deps, constraints="",
                     key=KEY, kid="release-1", platforms=[])
    odd = tmp_path / "in" / "notes.txt"
    odd.write_text("x")
    with pytest.raises(BundleError, match="wheel file name"):
        write_bundle(tmp_path / "b", version="1", wheel=own, dependency_wheels=[odd], constraints="",
                     key=KEY, kid="release-1", platforms=[])
    assert not (tmp_path / "b").exists()


# -- signatures ------------------------------------------------------------------------------------------

def test_bad_signature_refused(good: Path) -> None:
    items = members(good)
    jws = dict((m.name, d) for m, d in items)["manifest.jws"]
    head, payload, sig = jws.split(b".")
    other = sign(b"x", key=KEY, kid="release-1", topic=BUNDLE_TOPIC, iat=1.0).split(b".")[2]
    replace(items, "manifest.jws", b".".join([head, payload, other]))
    rewrite(good, items)
    refused(good, "bundle signature refused: bad signature")


def test_unknown_key_refused(good: Path) -> None:
    refused(good, "signature refused: signed with key 'release-1', which this panel does not trust",
            keys={"someone-else": Ed25519PrivateKey.generate().public_key()})
    refused(good, "bad signature", keys={"release-1": Ed25519PrivateKey.generate().public_key()})


def test_signed_for_another_topic_refused(good: Path) -> None:
    items = members(good)
    data = dict((m.name, d) for m, d in items)["manifest.json"]
    replace(items, "manifest.jws", sign(data, key=KEY, kid="release-1", topic="signage/all/alerts/x", iat=5.0))
    rewrite(good, items)
    refused(good, "signed for another topic")


def test_manifest_changed_after_signing_refused(good: Path) -> None:
    items = members(good)
    data = dict((m.name, d) for m, d in items)["manifest.json"]
    replace(items, "manifest.json", data.replace(b'"2.0.0"', b'"2.0.1"'))
    rewrite(good, items)
    refused(good, "manifest.json differs from the manifest its signature covers")


def test_manifest_signed_but_malformed_refused(good: Path) -> None:
    body = json.loads(dict((m.name, d) for m, d in members(good))["manifest.json"])
    changes: list[tuple[dict[str, Any], str]] = [({"format": "other/1"}, "format"), ({"version": "1 2"}, "version"),
                          ({"wheel": "wheels/missing.whl"}, "wheel is not one of its files"),
                          ({"files": [{"path": "../x", "sha256": "0" * 64, "size": 1}]}, "only constraints"),
                          ({"files": body["files"][1:]}, "does not list constraints.txt")]
    for change, match in changes:
        items = members(good)
        data, jws = resign({**body, **change})
        replace(items, "manifest.json", data)
        replace(items, "manifest.jws", jws)
        rewrite(good, items)
        refused(good, match)


# -- files ---------------------------------------------------------------------------------------------------

def test_file_with_other_bytes_refused(good: Path) -> None:
    items = members(good)
    data = dict((m.name, d) for m, d in items)[f"wheels/{WHEEL}"]
    replace(items, f"wheels/{WHEEL}", data[:-1] + b"!")
    rewrite(good, items)
    refused(good, f"wheels/{WHEEL}'s sha256 differs from the manifest's")


def test_file_with_other_size_refused(good: Path) -> None:
    items = members(good)
    replace(items, "constraints.txt", CONSTRAINTS.encode() + b"evil==1.0\n")
    rewrite(good, items)
    refused(good, r"constraints.txt is \d+ bytes, the manifest says \d+")


def test_missing_member_refused(good: Path) -> None:
    items = [(m, d) for m, d in members(good) if not m.name.startswith("wheels/paho")]
    rewrite(good, items)
    refused(good, "bundle lacks wheels/paho_mqtt")


def test_unlisted_member_refused(good: Path) -> None:
    items = members(good)
    extra = tarfile.TarInfo("wheels/evil-1.0-py3-none-any.whl")
    rewrite(good, items + [(extra, b"evil")])
    refused(good, "'wheels/evil-1.0-py3-none-any.whl' is not listed in the manifest")


def test_manifest_members_first(good: Path) -> None:
    items = members(good)
    rewrite(good, [items[1], items[0], *items[2:]])
    refused(good, "does not start with manifest.json")
    rewrite(good, [items[0], *items[2:], items[1]])
    refused(good, "no manifest.jws after manifest.json")


@pytest.mark.parametrize("kind, what", [(tarfile.SYMTYPE, "a symbolic link"), (tarfile.LNKTYPE, "a hard link"),
                                        (tarfile.DIRTYPE, "a folder")])
def test_links_and_folders_refused(good: Path, kind: bytes, what: str) -> None:
    items = members(good)
    link = tarfile.TarInfo("constraints.txt")
    link.type = kind
    link.linkname = "/etc/shadow"
    rewrite(good, [items[0], items[1], (link, b""), *items[3:]])
    refused(good, f"'constraints.txt/?' is {what}: only regular files are allowed")


@pytest.mark.parametrize("name, match", [("/etc/cron.d/evil", "absolute path '/etc/cron.d/evil'"),
                                         ("wheels/../../evil.whl", r"leaves the bundle \(..\)"),
                                         ("../constraints.txt", r"leaves the bundle \(..\)")])
def test_unsafe_paths_refused(good: Path, name: str, match: str) -> None:
    items = members(good)
    info = tarfile.TarInfo(name)
    rewrite(good, [*items[:3], (info, b"x"), *items[3:]])
    refused(good, match)


def test_long_names_travel_in_pax_headers(tmp_path: Path) -> None:
    own, deps = wheels(tmp_path / "in")
    long = tmp_path / "in" / ("pillow-13.0.0-cp311-cp311-" + ".".join(f"manylinux_2_{n}_aarch64" for n in
                                                                       (17, 27, 28, 31, 34)) + ".whl")
    long.write_bytes(b"PK long")
    assert len(f"wheels/{long.name}") > 100  # more than a ustar name field, and no prefix split fits
    out = tmp_path / "long.bundle"
    write_bundle(out, version="2.0.0", wheel=own, dependency_wheels=[*deps, long], constraints=CONSTRAINTS,
                 key=KEY, kid="release-1", platforms=["manylinux_2_36_aarch64"])
    manifest = verify_bundle(out, KEYS)
    assert manifest.file(f"wheels/{long.name}") is not None
    extract_bundle(out, manifest, tmp_path / "x")
    assert (tmp_path / "x" / "wheels" / long.name).read_bytes() == b"PK long"


@pytest.mark.parametrize("headers, match", [({"comment": "x"}, "pax header setting 'comment'"),
                                            ({"size": "3"}, "pax header setting 'size'"),
                                            ({"linkpath": "/etc/shadow"}, "pax header setting 'linkpath'"),
                                            ({"path": "../../etc/cron.d/x"}, r"leaves the bundle \(..\)"),
                                            ({"path": "/etc/cron.d/x"}, "absolute path"),
                                            ({"path": "wheels/evil-1-py3-none-any.whl"}, "not listed")])
def test_pax_headers_limited_to_a_path(good: Path, headers: dict[str, str], match: str) -> None:
    rewrite(good, members(good), fmt=tarfile.PAX_FORMAT)  # short names: no pax header, still accepted
    verify_bundle(good, KEYS)
    items = members(good)
    items[2][0].pax_headers = headers
    rewrite(good, items, fmt=tarfile.PAX_FORMAT)
    refused(good, match)


def test_global_and_dangling_pax_headers_refused(good: Path) -> None:
    items = members(good)
    with tarfile.open(good, "w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "x"}) as tar:
        for info, data in items:
            tar.addfile(info, io.BytesIO(data))
    refused(good, "is a global pax header")
    head = b"".join(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape") + data + bytes(-len(data) % 512)
                    for info, data in items[:2])
    info = tarfile.TarInfo("constraints.txt")
    info.pax_headers = {"path": "constraints.txt"}
    pax_only = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")[:-512]  # without the member's header
    good.write_bytes(head + pax_only + bytes(1024))
    refused(good, "pax header followed by no member")


def test_truncated_bundle_refused(good: Path) -> None:
    data = good.read_bytes()
    for cut in (len(data) // 2, 1024 + 700, 100, len(data) - 10240 - 1):
        good.write_bytes(data[:cut])
        refused(good, "truncated")
    good.write_bytes(b"")
    refused(good, "truncated")
    good.write_bytes(data + b"more")
    refused(good, "data after its end-of-archive marker")
    good.write_bytes(b"\x1f\x8b" + data)
    refused(good, "not a POSIX|damaged|bad")


def test_huge_member_lists_are_bounded(good: Path, tmp_path: Path) -> None:
    original = members(good)
    body = json.loads(dict((m.name, d) for m, d in members(good))["manifest.json"])
    many = [{"path": f"wheels/x{i}-1-py3-none-any.whl", "sha256": "0" * 64, "size": 0} for i in range(5_000)]
    items = members(good)
    data, jws = resign({**body, "files": body["files"] + many})
    replace(items, "manifest.json", data)
    replace(items, "manifest.jws", jws)
    rewrite(good, items)
    refused(good, "is .* bytes, more than")  # the manifest itself is too large to be read
    items = members(good)
    data, jws = resign({**body, "files": body["files"] + many[:bundle.MAX_FILES]})
    replace(items, "manifest.json", data)
    replace(items, "manifest.jws", jws)
    rewrite(good, items)
    refused(good, f"files, a bundle holds at most {bundle.MAX_FILES}")
    # a tar of 5,000 unlisted empty members: refused at the first, without reading the rest
    items = original[:3]
    huge = tmp_path / "huge.bundle"
    with tarfile.open(huge, "w", format=tarfile.USTAR_FORMAT) as tar:
        for info, d in items:
            tar.addfile(info, io.BytesIO(d))
        for i in range(5_000):
            tar.addfile(tarfile.TarInfo(f"wheels/n{i}.whl"), io.BytesIO(b""))
    start = time.perf_counter()
    with pytest.raises(BundleError, match="lacks|not listed"):
        verify_bundle(huge, KEYS)
    assert time.perf_counter() - start < 0.5


def test_verification_streams_in_bounded_memory(tmp_path: Path) -> None:
    own, deps = wheels(tmp_path / "in")
    big = tmp_path / "in" / "big_thing-1.0-cp311-cp311-linux_armv7l.whl"
    with big.open("wb") as f:
        for i in range(48):
            f.write(bytes([i]) * (1 << 20))
    out = tmp_path / "big.bundle"
    write_bundle(out, version="2.1.0", wheel=own, dependency_wheels=[*deps, big], constraints=CONSTRAINTS,
                 key=KEY, kid="release-1", platforms=["linux_armv7l"])
    tracemalloc.start()
    try:
        manifest = verify_bundle(out, KEYS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert manifest.file(f"wheels/{big.name}") == BundleFile(f"wheels/{big.name}", manifest.file(
        f"wheels/{big.name}").sha256, 48 << 20)  # type: ignore[union-attr]
    assert peak < 2 << 20, f"verifying a 48 MB bundle peaked at {peak} bytes"


def test_extract_checks_hashes_again(good: Path, tmp_path: Path) -> None:
    manifest = verify_bundle(good, KEYS)
    items = members(good)
    data = dict((m.name, d) for m, d in items)[f"wheels/{WHEEL}"]
    replace(items, f"wheels/{WHEEL}", data[:-1] + b"?")
    rewrite(good, items)  # changed after it was verified
    dest = tmp_path / "v"
    with pytest.raises(BundleError, match="sha256 differs"):
        extract_bundle(good, manifest, dest)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".v")] == []
    forged = Manifest(manifest.version, manifest.created, manifest.python_requires, manifest.wheel,
                      manifest.platforms, manifest.files[:1])
    with pytest.raises(BundleError, match="not listed"):
        extract_bundle(good, forged, dest)
    assert not dest.exists()
