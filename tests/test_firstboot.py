"""First boot: panel-player.yaml on the FAT boot partition is validated, installed and removed, or kept out."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from player.config import load_config
from player.firstboot import BOOT_FILE, ImportResult, import_boot_config, maybe_import_at_start
from player.provision import REPORT_NAME
from player.trust import b64url, load_public_key, new_key_files

BOM = b"\xef\xbb\xbf"


def crlf(text: str) -> bytes:
    """What Notepad saves: a byte-order mark and CRLF line endings."""
    return BOM + text.replace("\n", "\r\n").encode("utf-8")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    folder = tmp_path / "boot-firmware"
    folder.mkdir()
    return folder


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "etc" / "panel-player" / "config.yaml"


GOOD = """\
# Mairie — written on the installer's laptop
panel:
  id: mairie-entree
  name: "Mairie, entrée"
  groups: [centre-ville]
display:
  output: fbdev
mqtt:
  host: mqtt.ville.example
  port: 8883
  username: mairie-entree
  tls:
    ca_file: ca.crt
    cert_file: client.crt
    key_file: client.key
secrets:
  mqtt_password: "p@ss: wörd"
"""


def test_crlf_bom_file_with_secrets_is_installed_and_removed_from_the_boot_partition(boot: Path,
                                                                                      target: Path) -> None:
    (boot / BOOT_FILE).write_bytes(crlf(GOOD))
    (boot / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nca\n")
    (boot / "client.crt").write_text("-----BEGIN CERTIFICATE-----\nclient\n")
    (boot / "client.key").write_text("-----BEGIN PRIVATE KEY-----\nkey\n")
    (boot / "config.txt").write_text("dtparam=spi=on\n")  # the Pi's own files are left alone

    result = import_boot_config(boot, target)

    assert result.installed and result.errors == [] and result.found
    assert sorted(p.name for p in boot.iterdir()) == ["config.txt"]  # no secret left on FAT
    folder = target.parent
    cfg = load_config(target)
    assert cfg.panel.id == "mairie-entree" and cfg.panel.name == "Mairie, entrée"
    assert cfg.mqtt.password_file == folder / "mqtt-password"
    assert (folder / "mqtt-password").read_text(encoding="utf-8") == "p@ss: wörd\n"
    assert mode(folder / "mqtt-password") == 0o600
    assert cfg.mqtt.tls is not None and cfg.mqtt.tls.key_file == folder / "client.key"
    assert (folder / "client.key").read_text() == "-----BEGIN PRIVATE KEY-----\nkey\n"
    assert mode(folder / "client.key") == 0o600
    assert mode(target) == 0o640
    text = target.read_text(encoding="utf-8")
    assert "p@ss" not in text and "secrets" not in text and "\r" not in text
    assert text.startswith("# panel-player config, written by the boot-partition import of ")
    report = json.loads((folder / REPORT_NAME).read_text())
    assert report["installed"] is True and report["errors"] == []


def test_invalid_file_is_kept_out_with_an_errors_file(boot: Path, target: Path) -> None:
    target.parent.mkdir(parents=True)
    target.write_text("panel: {id: previous}\ndisplay: {output: fbdev}\n")
    before = target.read_bytes()
    bad = crlf("panel:\n  id: Mairie Entrée\ndisplay:\n  output: fbdev\n  rotaton: 90\nmqtt:\n  port: 99999\n"
               "  username: x\nsecrets:\n  mqtt_pasword: hunter2\n")
    (boot / BOOT_FILE).write_bytes(bad)

    result = import_boot_config(boot, target)

    assert not result.installed
    assert any(e.startswith("panel.id: ") for e in result.errors)
    assert 'display.rotaton: unknown key (did you mean "rotation"?)' in result.errors
    assert "mqtt.port: must be between 1 and 65535, got 99999" in result.errors
    assert "secrets.mqtt_pasword: unknown key (only mqtt_password)" in result.errors
    assert target.read_bytes() == before
    assert not (target.parent / "mqtt-password").exists()
    assert not (boot / BOOT_FILE).exists()
    assert (boot / f"{BOOT_FILE}.rejected").read_bytes() == bad
    errors_txt = (boot / f"{BOOT_FILE}.errors.txt").read_bytes().decode("utf-8")
    assert "\r\n" in errors_txt
    for err in result.errors:
        assert f"  {err}\r\n" in errors_txt
    # The unprivileged player learns about it at start, for as long as the rejected file is there.
    shown = maybe_import_at_start(target, boot_dir=boot)
    assert shown is not None and not shown.installed and shown.errors == result.errors

    # The installer fixes the file: it goes in, and the leftovers of the failed attempt go away.
    (boot / BOOT_FILE).write_bytes(crlf("panel:\n  id: mairie-entree\ndisplay:\n  output: fbdev\n"))
    assert import_boot_config(boot, target).installed
    assert list(boot.iterdir()) == []
    assert load_config(target).panel.id == "mairie-entree"


@pytest.mark.parametrize("raw, expected", [
    ("panel:\n  id: gare\n".encode("latin-1") + "  name: Gare Saint-Bruno é\n".encode("latin-1"),
     "panel-player.yaml: not UTF-8 text"),
    (b"panel:\n  id: gare\n\tdisplay: x\n", "panel-player.yaml: not valid YAML at line 3"),
    (b"", "the config is empty"),
    (b"- just\n- a list\n", "expected a mapping"),
    (b"panel: {id: gare}\ndisplay: {output: fbdev}\nmqtt: {username: u, password_file: /x}\n"
     b"secrets: {mqtt_password: pw}\n", "secrets.mqtt_password: conflicts with mqtt.password_file"),
    (b"panel: {id: gare}\ndisplay: {output: fbdev}\nsecrets: {mqtt_password: pw}\n",
     "secrets.mqtt_password: needs mqtt.username"),
])
def test_unusable_files_are_rejected_with_a_reason(boot: Path, target: Path, raw: bytes, expected: str) -> None:
    (boot / BOOT_FILE).write_bytes(raw)
    result = import_boot_config(boot, target)
    assert not result.installed
    assert any(expected in e for e in result.errors), result.errors
    assert (boot / f"{BOOT_FILE}.rejected").exists() and not target.exists()


def test_relative_tls_names_cannot_reach_outside_the_boot_partition(boot: Path, target: Path,
                                                                     tmp_path: Path) -> None:
    outside = tmp_path / "precious.pem"
    outside.write_text("do not delete")
    (boot / BOOT_FILE).write_text("panel: {id: gare}\ndisplay: {output: fbdev}\n"
                                  "mqtt: {tls: {ca_file: ../precious.pem}}\n")
    result = import_boot_config(boot, target)
    assert not result.installed
    assert any(e.startswith("mqtt.tls.ca_file: '../precious.pem': a relative name") for e in result.errors)
    assert outside.read_text() == "do not delete"


def test_missing_relative_tls_file_is_named(boot: Path, target: Path) -> None:
    (boot / BOOT_FILE).write_text("panel: {id: gare}\ndisplay: {output: fbdev}\nmqtt: {tls: {ca_file: ca.crt}}\n")
    result = import_boot_config(boot, target)
    assert result.errors == ["mqtt.tls.ca_file: cannot read 'ca.crt' on the boot partition: No such file or directory"]


def test_nothing_to_import(boot: Path, target: Path) -> None:
    result = import_boot_config(boot, target)
    assert not result.found and not result.installed and result.errors == []
    assert maybe_import_at_start(target, boot_dir=boot) is None
    assert not target.parent.exists()


def test_start_imports_when_it_may_and_reports_a_fresh_import_once_it_is_old(boot: Path, target: Path) -> None:
    (boot / BOOT_FILE).write_text("panel: {id: kiosque}\ndisplay: {output: fbdev}\n")
    first = maybe_import_at_start(target, boot_dir=boot)
    assert first is not None and first.installed
    again = maybe_import_at_start(target, boot_dir=boot)  # e.g. imported by the unit's root step just before
    assert again is not None and again.installed and again.at == first.at
    old = time.time() - 3600
    os.utime(target.parent / REPORT_NAME, (old, old))
    assert maybe_import_at_start(target, boot_dir=boot) is None


def test_boot_dir_from_the_environment(boot: Path, target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (boot / BOOT_FILE).write_text("panel: {id: kiosque}\ndisplay: {output: fbdev}\n")
    monkeypatch.setenv("PANEL_PLAYER_BOOT_DIR", str(boot))
    result = maybe_import_at_start(target)
    assert result is not None and result.installed and load_config(target).panel.id == "kiosque"


def test_result_json_round_trip() -> None:
    result = ImportResult(installed=False, errors=["a: b"], source="/boot/x", target="/etc/y", at="2026-01-01T00:00:00Z")
    assert ImportResult.from_json(result.to_json()) == result


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda t: crlf(t)),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                     st.sampled_from(["panel", "id", "mqtt", "display", "secrets", "port", "tls", "x"]),
                     inner, max_size=4), max_leaves=12).map(lambda v: json.dumps(v).encode()),
))
def test_generated_garbage_never_installs_and_never_raises(tmp_path: Path, raw: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
        boot, target = Path(scratch) / "boot", Path(scratch) / "etc" / "config.yaml"
        boot.mkdir()
        target.parent.mkdir()
        target.write_text("panel: {id: previous}\n")
        (boot / BOOT_FILE).write_bytes(raw)
        result = import_boot_config(boot, target)
        assert not result.installed and result.errors
        assert target.read_text() == "panel: {id: previous}\n"
        assert (boot / f"{BOOT_FILE}.rejected").read_bytes() == raw
        assert not (boot / BOOT_FILE).exists()


def test_trusted_keys_beside_the_yaml_are_installed_and_inline_ones_pass_through(boot: Path, target: Path,
                                                                                 tmp_path: Path) -> None:
    new_key_files(boot, "central-2026")
    (boot / "central-2026.key").unlink()  # the private key never leaves the server
    server = tmp_path / "server"
    server.mkdir()
    new_key_files(server, "central-2027")
    raw_2027, _ = load_public_key(server / "central-2027.pub")
    (boot / BOOT_FILE).write_bytes(crlf(
        "panel: {id: gare}\ndisplay: {output: fbdev}\n"
        f"trust:\n  keys:\n    - central-2026.pub\n    - {{kid: central-2027, key: {b64url(raw_2027)}}}\n"
        "  require: [alerts, playlists]\n"))

    result = import_boot_config(boot, target)

    assert result.installed, result.errors
    assert list(boot.iterdir()) == []  # the key file went with the YAML
    installed = target.parent / "keys" / "central-2026.pub"
    assert mode(installed) == 0o644
    assert set(json.loads(installed.read_text())) == {"kty", "crv", "kid", "x"}
    cfg = load_config(target)
    assert cfg.trust.kids == ["central-2026", "central-2027"]
    assert dict(cfg.trust.keys)["central-2027"] == raw_2027
    assert cfg.trust.require == frozenset({"alerts", "playlists"})
    assert str(installed) in target.read_text()


def test_bad_trusted_key_refuses_the_import_naming_the_key(boot: Path, target: Path, tmp_path: Path) -> None:
    target.parent.mkdir(parents=True)
    target.write_text("panel: {id: previous}\ndisplay: {output: fbdev}\n")
    new_key_files(boot, "central-2026")
    (boot / "notes.pub").write_text("the key is on Paul's laptop\n")
    (tmp_path / "elsewhere.pub").write_bytes((boot / "central-2026.pub").read_bytes())
    (boot / BOOT_FILE).write_text("panel: {id: gare}\ndisplay: {output: fbdev}\ntrust:\n  keys:\n"
                                  "    - central-2026.pub\n    - central-2026.key\n    - notes.pub\n"
                                  "    - missing.pub\n    - ../elsewhere.pub\n")

    result = import_boot_config(boot, target)

    assert not result.installed
    assert result.errors == [
        "trust.keys[1]: 'central-2026.key': a private key (it holds \"d\"): give the .pub file made with it; "
        "the private key stays on the central server",
        "trust.keys[2]: 'notes.pub': not a JSON Web Key (JSON expected)",
        "trust.keys[3]: 'missing.pub': cannot read (No such file or directory)",
        "trust.keys[4]: '../elsewhere.pub': a relative name must be a file beside panel-player.yaml",
    ]
    assert load_config(target).panel.id == "previous"
    assert not (target.parent / "keys").exists()
    assert (boot / f"{BOOT_FILE}.rejected").exists()
    assert {p.name for p in boot.iterdir()} >= {"central-2026.pub", "central-2026.key", "notes.pub"}
    assert (tmp_path / "elsewhere.pub").exists()


def test_two_key_files_with_one_key_id_are_refused(boot: Path, target: Path) -> None:
    new_key_files(boot, "central-2026")
    (boot / "copy.pub").write_bytes((boot / "central-2026.pub").read_bytes())
    (boot / BOOT_FILE).write_text("panel: {id: gare}\ndisplay: {output: fbdev}\n"
                                  "trust: {keys: [central-2026.pub, copy.pub]}\n")
    result = import_boot_config(boot, target)
    assert not result.installed
    assert result.errors == ['trust.keys[1]: key id "central-2026" is listed twice']
    assert not target.exists()
