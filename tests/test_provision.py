"""`panel-player provision`: validated config from flags, secrets 0600, atomic, previous config kept on error."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pwd
import re
import stat
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from player.cli import main as panel_player
from player.config import PANEL_ID, load_config
from player.provision import REPORT_NAME, add_provision_parser, cmd_provision, flag_for, parse_broker
from player.trust import load_public_key, new_key_files


def provision(argv: list[str], stdin: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog="panel-player")
    add_provision_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["provision", *argv])
    assert args.handler is cmd_provision
    return args.handler(args, io.StringIO(stdin) if stdin is not None else None)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns, mode(p)) for p in sorted(folder.iterdir())}


@pytest.fixture
def pem(tmp_path: Path) -> dict[str, Path]:
    src = tmp_path / "from-installer"
    src.mkdir()
    files = {}
    for name, body in (("ca", "CA"), ("cert", "CERTIFICATE"), ("key", "PRIVATE KEY")):
        files[name] = src / f"{name}.pem"
        files[name].write_text(f"-----BEGIN {body}-----\nMIIB{name}\n-----END {body}-----\n")
    return files


def test_full_provision_round_trips_and_protects_secrets(tmp_path: Path, pem: dict[str, Path], capsys) -> None:
    cfg = tmp_path / "etc" / "config.yaml"
    code = provision(["--config", str(cfg), "--id", "mairie-entree", "--name", "Mairie, entrée",
                      "--group", "centre-ville", "--group", "nord", "--timezone", "Europe/Paris",
                      "--lat", "45.1885", "--lon", "5.7245", "--broker", "mqtt.ville.example:8883",
                      "--prefix", "ville/signage", "--tls-ca", str(pem["ca"]), "--tls-cert", str(pem["cert"]),
                      "--tls-key", str(pem["key"]), "--username", "mairie-entree", "--password-stdin",
                      "--output", "png", "--size", "800x480", "--rotation", "90", "--layout", "landscape",
                      "--png-path", str(tmp_path / "frame.png"), "--light-sensor", "mcp3008",
                      "--light-channel", "2", "--door-pin", "GPIO17", "--state-dir", str(tmp_path / "state")],
                     stdin="s3cret: with spaces\r\n")
    assert code == 0, capsys.readouterr().err
    text = cfg.read_text(encoding="utf-8")
    assert text.startswith("# panel-player config, written by `panel-player provision` (panel-player ")
    assert "s3cret" not in text and "PRIVATE KEY" not in text

    loaded = load_config(cfg)
    assert loaded.panel.id == "mairie-entree" and loaded.panel.name == "Mairie, entrée"
    assert loaded.panel.groups == ("centre-ville", "nord")
    assert loaded.panel.timezone == "Europe/Paris" and loaded.panel.location == (45.1885, 5.7245)
    assert (loaded.mqtt.host, loaded.mqtt.port, loaded.mqtt.prefix) == ("mqtt.ville.example", 8883, "ville/signage")
    assert loaded.mqtt.username == "mairie-entree"
    assert loaded.display.output == "png" and loaded.display.size == (800, 480)
    assert loaded.display.rotation == 90 and loaded.display.layout == "landscape"
    assert loaded.sensors.light.type == "mcp3008" and loaded.sensors.light.channel == 2
    assert loaded.sensors.door is not None and loaded.sensors.door.pin == "GPIO17"
    assert loaded.state_dir == tmp_path / "state"

    folder = cfg.parent
    assert loaded.mqtt.password_file == folder / "mqtt-password"
    assert (folder / "mqtt-password").read_text() == "s3cret: with spaces\n"
    assert loaded.mqtt.tls is not None
    assert loaded.mqtt.tls.ca_file == folder / "ca.crt" and loaded.mqtt.tls.key_file == folder / "client.key"
    assert (folder / "client.key").read_bytes() == pem["key"].read_bytes()
    assert mode(folder / "mqtt-password") == 0o600
    assert mode(folder / "client.key") == 0o600
    assert mode(cfg) == 0o640
    assert mode(folder) == 0o750
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_invalid_flags_exit_2_name_the_flag_and_keep_the_previous_config(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "config.yaml"
    assert provision(["--config", str(cfg), "--id", "gare", "--output", "fbdev", "--broker", "10.0.0.2"]) == 0
    before = snapshot(tmp_path)
    capsys.readouterr()

    code = provision(["--config", str(cfg), "--id", "Gare_Nord", "--broker", "mqtt.example:abc",
                      "--timezone", "Europe/Pari", "--output", "png", "--rotation", "45",
                      "--username", "gare", "--password-stdin", "--tls-key", str(tmp_path / "missing.key")],
                     stdin="secret\n")
    err = capsys.readouterr().err
    assert code == 2
    assert "nothing written" in err
    assert '--id: panel.id: "Gare_Nord" does not match' in err
    assert '--broker: mqtt.port: expected an integer, got "abc"' in err
    assert '--timezone: panel.timezone: unknown IANA timezone "Europe/Pari" (did you mean "Europe/Paris"?)' in err
    assert "--size: display.size: required for output png" in err
    assert "--rotation: display.rotation: expected 0, 90, 180 or 270, got 45" in err
    assert "--tls-key: cannot read" in err
    assert f"The previous config {cfg} is unchanged." in err
    assert snapshot(tmp_path) == before  # no password file, no temp file, config untouched


def test_flag_level_errors(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    code = provision(["--config", str(cfg), "--id", "ok", "--output", "sdl", "--size", "wide", "--lat", "45",
                      "--username", "u", "--password-stdin"], stdin="\n")
    err = capsys.readouterr().err
    assert code == 2
    assert "--size: expected WIDTHxHEIGHT such as 1920x1080, got 'wide'" in err
    assert "--size: display.size" not in err  # one message per mistake
    assert "--lat/--lon: give both or neither" in err
    assert "--password-stdin: no password on standard input" in err
    assert not cfg.exists()


def test_argparse_rejects_wrong_types_with_exit_2(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        provision(["--config", str(tmp_path / "c.yaml"), "--id", "ok", "--rotation", "ninety"])
    assert exc.value.code == 2
    assert "--rotation" in capsys.readouterr().err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=st.text(min_size=1, max_size=70).filter(
    lambda s: not re.fullmatch(PANEL_ID, s) and not s.startswith("-") and "\x00" not in s))
def test_generated_bad_ids_are_refused(tmp_path: Path, bad: str) -> None:
    cfg = tmp_path / "generated.yaml"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = provision(["--config", str(cfg), "--id", bad, "--output", "fbdev"])
    assert code == 2
    assert "--id: panel.id:" in err.getvalue()
    assert not cfg.exists()


def test_provision_replaces_and_clears_a_stale_boot_import_report(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    (tmp_path / REPORT_NAME).write_text('{"installed": false, "errors": ["old"]}')
    assert provision(["--config", str(cfg), "--id", "one", "--no-broker"]) == 0
    assert provision(["--config", str(cfg), "--id", "two", "--no-broker"]) == 0
    assert load_config(cfg).panel.id == "two"
    assert load_config(cfg).mqtt.enabled is False
    assert not (tmp_path / REPORT_NAME).exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_owner_gets_the_secrets_and_reads_the_config_by_group(tmp_path: Path, capsys) -> None:
    nobody = pwd.getpwnam("nobody")
    cfg = tmp_path / "etc" / "config.yaml"
    code = provision(["--config", str(cfg), "--id", "halle", "--owner", "nobody", "--broker", "h",
                      "--username", "halle", "--password-stdin"], stdin="pw")
    assert code == 0, capsys.readouterr().err
    secret = (tmp_path / "etc" / "mqtt-password").stat()
    assert (secret.st_uid, secret.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert cfg.stat().st_uid == 0 and cfg.stat().st_gid == nobody.pw_gid
    assert cfg.parent.stat().st_gid == nobody.pw_gid


def test_unknown_owner_is_an_error(tmp_path: Path, capsys) -> None:
    code = provision(["--config", str(tmp_path / "c.yaml"), "--id", "ok", "--owner", "no-such-user-here"])
    assert code == 2
    assert '--owner: no such user "no-such-user-here"' in capsys.readouterr().err


@pytest.mark.parametrize("text, expected", [
    ("mqtt.example", ("mqtt.example", None)),
    ("mqtt.example:8883", ("mqtt.example", 8883)),
    ("10.0.0.2:abc", ("10.0.0.2", "abc")),
    ("[fd00::2]:8883", ("fd00::2", 8883)),
    ("fd00::2", ("fd00::2", None)),
])
def test_parse_broker(text: str, expected: tuple[str, object]) -> None:
    assert parse_broker(text) == expected


def test_flag_for_prefers_the_longest_key() -> None:
    assert flag_for("mqtt.tls.key_file: no such file") == "--tls-key: mqtt.tls.key_file: no such file"
    assert flag_for("mqtt.tls: cert_file and key_file go together").startswith("--tls-cert/--tls-key: ")
    assert flag_for("panel.groups[1]: duplicate").startswith("--group: ")
    assert flag_for("brightness.min: x") == "brightness.min: x"


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """Two key pairs as `panelctl keys new` makes them, in the installer's folder."""
    folder = tmp_path / "from-server"
    folder.mkdir()
    new_key_files(folder, "central-2026")
    new_key_files(folder, "central-2027")
    return folder


def test_trust_keys_are_installed_as_public_keys_and_the_config_passes_check(tmp_path: Path, keys: Path,
                                                                             capsys) -> None:
    cfg = tmp_path / "etc" / "config.yaml"
    code = provision(["--config", str(cfg), "--id", "gare", "--no-broker", "--trust-key", str(keys / "central-2026.pub"),
                      "--trust-key", str(keys / "central-2027.pub"), "--trust-require", "alerts, commands"])
    out = capsys.readouterr().out
    assert code == 0
    folder = cfg.parent / "keys"
    installed = [folder / "central-2026.pub", folder / "central-2027.pub"]
    for path in installed:
        assert f"wrote {path} (mode 0644)" in out
        assert mode(path) == 0o644
        assert set(json.loads(path.read_text())) == {"kty", "crv", "kid", "x"}
        assert load_public_key(path) == load_public_key(keys / path.name)
    assert mode(folder) == 0o750
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "temporary files left behind"

    loaded = load_config(cfg)
    assert loaded.trust.kids == ["central-2026", "central-2027"]
    assert loaded.trust.keys[0][1] == load_public_key(keys / "central-2026.pub")[0]
    assert loaded.trust.require == frozenset({"alerts", "commands"})
    assert yaml.safe_load(cfg.read_text())["trust"] == {"keys": [str(p) for p in installed],
                                                        "require": ["alerts", "commands"]}
    capsys.readouterr()
    assert panel_player(["check", "--config", str(cfg)]) == 0, capsys.readouterr()

    # Keys alone: all three kinds must be signed; `none` keeps the keys but requires nothing.
    assert provision(["--config", str(cfg), "--id", "gare", "--no-broker",
                      "--trust-key", str(keys / "central-2027.pub")]) == 0
    assert load_config(cfg).trust.require == frozenset({"alerts", "playlists", "commands"})
    assert provision(["--config", str(cfg), "--id", "gare", "--no-broker",
                      "--trust-key", str(keys / "central-2027.pub"), "--trust-require", "none"]) == 0
    assert load_config(cfg).trust.kids == ["central-2027"] and load_config(cfg).trust.require == frozenset()


def test_bad_trust_keys_name_the_flag_and_write_nothing(tmp_path: Path, keys: Path, capsys) -> None:
    cfg = tmp_path / "etc" / "config.yaml"
    (tmp_path / "notes.pub").write_text("central key: ask Paul\n")
    (tmp_path / "rsa.pub").write_text('{"kty": "RSA", "kid": "old", "n": "x", "e": "AQAB"}\n')
    copy = tmp_path / "copy.pub"
    copy.write_bytes((keys / "central-2026.pub").read_bytes())
    code = provision(["--config", str(cfg), "--id", "gare", "--no-broker",
                      "--trust-key", str(keys / "central-2026.pub"), "--trust-key", str(keys / "central-2026.key"),
                      "--trust-key", str(tmp_path / "notes.pub"), "--trust-key", str(tmp_path / "rsa.pub"),
                      "--trust-key", str(tmp_path / "missing.pub"), "--trust-key", str(copy),
                      "--trust-require", "alerts,playlist"])
    err = capsys.readouterr().err
    assert code == 2
    assert "nothing written, 6 errors" in err
    assert f'--trust-key: {keys / "central-2026.key"}: a private key (it holds "d"): give the .pub file' in err
    assert f"--trust-key: {tmp_path / 'notes.pub'}: not a JSON Web Key" in err
    assert f"--trust-key: {tmp_path / 'rsa.pub'}: not an Ed25519 JSON Web Key" in err
    assert f"--trust-key: {tmp_path / 'missing.pub'}: cannot read (No such file or directory)" in err
    assert f'--trust-key: {copy} and {keys / "central-2026.pub"} both hold key id "central-2026"' in err
    assert ('--trust-require: trust.require: expected some of alerts, playlists, commands, got "playlist" '
            '(did you mean "playlists"?)') in err
    assert not (tmp_path / "etc").exists()


def test_trust_require_needs_a_trust_key(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "config.yaml"
    assert provision(["--config", str(cfg), "--id", "gare", "--no-broker", "--trust-require", "alerts"]) == 2
    assert "--trust-require: trust.require: needs trust.keys" in capsys.readouterr().err
    assert provision(["--config", str(cfg), "--id", "gare", "--no-broker", "--trust-require", " , "]) == 2
    assert "--trust-require: expected some of alerts,playlists,commands, or none" in capsys.readouterr().err
    assert not cfg.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_trusted_keys_stay_roots_the_service_only_reads_them(tmp_path: Path, keys: Path, capsys) -> None:
    nobody = pwd.getpwnam("nobody")
    cfg = tmp_path / "etc" / "config.yaml"
    code = provision(["--config", str(cfg), "--id", "halle", "--owner", "nobody", "--no-broker",
                      "--trust-key", str(keys / "central-2026.pub")])
    assert code == 0, capsys.readouterr().err
    key = (cfg.parent / "keys" / "central-2026.pub").stat()
    assert (key.st_uid, key.st_gid) == (0, nobody.pw_gid)
    assert (cfg.parent / "keys").stat().st_gid == nobody.pw_gid
