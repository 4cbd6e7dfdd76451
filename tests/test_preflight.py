"""Preflight (`panel-player check --preflight`) on a good and a broken setup: real broker, fake sysfs/dev trees."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_framebuffer import make_fb
from fixtures_broker import Broker, free_port
from test_render_text import write_bdf

from player.config import Config, MqttConfig, config_from_data
from player.preflight import (EXIT_FAIL, EXIT_OK, EXIT_WARN, FAIL, OK, WARN, CheckResult, check_disk,
                              check_trust, cmd_preflight, exit_status, format_report, probe_broker, run_preflight)
from player.trust import new_key_files

ROOT = Path(__file__).resolve().parents[1]


def make_fb_tree(root: Path, w: int = 64, h: int = 32, bpp: int = 16, device: bool = True) -> tuple[Path, Path]:
    """A fake /sys/class/graphics/fb0 and, if ``device``, a plain file standing for /dev/fb0."""
    _, sysfs = make_fb(root, w, h, bpp, create_device=device)
    return sysfs, root / "dev"


def good_data(tmp_path: Path, broker: Broker) -> dict[str, Any]:
    (tmp_path / "state").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "cpu_temp").write_text("48300\n")
    (tmp_path / "throttled").write_text("0x0\n")
    _, pub = new_key_files(tmp_path, "central-2026")
    return {
        "panel": {"id": "mairie-entree", "timezone": "Europe/Paris"},
        "display": {"output": "png", "size": [320, 180], "path": str(tmp_path / "out" / "frame.png")},
        "mqtt": {"host": "127.0.0.1", "port": broker.port},
        "state_dir": str(tmp_path / "state"),
        "sensors": {"light": {"type": "mcp3008", "channel": 0},
                    "cpu_temp": {"file": str(tmp_path / "cpu_temp")},
                    "door": {"pin": 17, "open_when": "pressed"},
                    "throttle": {"file": str(tmp_path / "throttled")}},
        "trust": {"keys": [str(pub)]},
    }


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def test_good_setup_is_all_ok(tmp_path: Path, broker: Broker) -> None:
    cfg = config_from_data(good_data(tmp_path, broker))
    results = run_preflight(cfg, sysfs_root=tmp_path / "no-sys", dev_root=tmp_path / "no-dev", timeout=3,
                            clock=lambda: True)
    found = by_name(results)
    assert [r for r in results if r.status != OK] == []
    assert set(found) == {"display", "font", "gpio", "sensor light", "sensor cpu_temp", "sensor door",
                          "sensor power", "broker", "trust", "clock", "disk", "state folder"}
    assert found["trust"].detail == "1 key (central-2026); alerts, playlists and commands must be signed"
    assert "48.3 °C" in found["sensor cpu_temp"].detail
    assert found["sensor door"].detail == "closed"
    assert f"127.0.0.1:{broker.port}" in found["broker"].detail
    assert "frame.png" in found["display"].detail
    assert list((tmp_path / "state").iterdir()) == []  # the write probe left nothing behind
    assert list((tmp_path / "out").iterdir()) == []
    text = format_report(results)
    assert text.count("✓") == len(results) and "✗" not in text
    assert text.rstrip().endswith("all good (exit 0)")


def test_good_fbdev_reads_the_geometry_from_sysfs(tmp_path: Path, broker: Broker) -> None:
    data = good_data(tmp_path, broker)
    data["display"] = {"output": "fbdev", "device": "/dev/fb0"}
    sysfs, dev = make_fb_tree(tmp_path, 1920, 1080, 16)
    results = run_preflight(config_from_data(data), sysfs_root=sysfs, dev_root=dev, clock=lambda: True)
    display = by_name(results)["display"]
    assert display.status == OK
    assert "1920x1080 16 bpp (RGB565), stride 3840" in display.detail


def test_broken_setup_names_every_failure_and_exits_2(tmp_path: Path, broker: Broker) -> None:
    data = good_data(tmp_path, broker)
    sysfs, dev = make_fb_tree(tmp_path, device=False)  # sysfs says fb0, but no /dev/fb0
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    closed = free_port()
    data["display"] = {"output": "fbdev", "device": "/dev/fb0", "font": str(write_ascii_bdf(tmp_path / "ascii.bdf"))}
    data["mqtt"] = {"host": "127.0.0.1", "port": closed}
    data["state_dir"] = str(blocker / "state")
    (tmp_path / "cpu_temp").write_text("garbage\n")
    (tmp_path / "throttled").write_text("0x50005\n")  # under-voltage now and since boot
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    out = io.StringIO()
    code = cmd_preflight(config, sysfs_root=sysfs, dev_root=dev, timeout=2, stream=out)
    text = out.getvalue()
    assert code == EXIT_FAIL, text
    lines = {line.split()[1]: line for line in text.splitlines() if line[:1] in "✓!✗"}
    assert lines["config"].startswith("✓")
    assert lines["display"].startswith("✗") and "no /dev/fb0" in lines["display"]
    assert lines["font"].startswith("✗") and "é" in lines["font"] and "ç" in lines["font"]
    assert lines["broker"].startswith("✗") and f"unreachable: 127.0.0.1:{closed}" in lines["broker"]
    assert lines["state"].startswith("✗") and f"{blocker} is a file" in lines["state"]
    assert "sensor cpu_temp" in text and "✗ sensor cpu_temp" in text
    assert "✗ sensor power" in text and "under-voltage now" in text
    assert "→ connect the screen and reboot" in text
    assert text.rstrip().endswith("NOT ready (exit 2)")


def write_ascii_bdf(path: Path) -> Path:
    """A pixel font with only "H", "e" and a space: no accented letter at all."""
    write_bdf(path)
    text = path.read_text(encoding="ascii")
    start = text.index("STARTCHAR eacute")
    end = text.index("ENDCHAR", start) + len("ENDCHAR\n")
    path.write_text(text[:start].replace("CHARS 4", "CHARS 3") + text[end:], encoding="ascii")
    return path


def test_invalid_config_is_one_failed_line_with_every_error(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("panel: {id: Mairie}\nmqtt: {port: abc}\n")
    out = io.StringIO()
    assert cmd_preflight(config, stream=out) == EXIT_FAIL
    text = out.getvalue()
    assert text.startswith("✗ config")
    assert "panel.id" in text and 'mqtt.port: expected an integer, got "abc"' in text
    assert "1 check: 0 ok, 0 warnings, 1 failure" in text


def test_cli_report_falls_back_to_ascii(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("panel: {id: p1}\ndisplay: {output: png, size: [64, 32], path: /nonexistent/dir/f.png}\n"
                      "mqtt: {enabled: false}\nstate_dir: " + str(tmp_path) + "\n")
    env = dict(os.environ, PYTHONIOENCODING="ascii", SDL_VIDEODRIVER="dummy", GPIOZERO_PIN_FACTORY="mock")
    proc = subprocess.run([sys.executable, "-m", "player.preflight", "--config", str(config), "--timeout", "1"],
                          cwd=ROOT, env=env, capture_output=True, timeout=60)
    text = proc.stdout.decode("ascii")  # would raise on any non-ASCII byte
    assert proc.returncode == EXIT_FAIL, text + proc.stderr.decode()
    assert "[ OK ] config" in text
    assert "[FAIL] display" in text and "/nonexistent/dir does not exist" in text
    assert "[ OK ] broker" in text and "not used" in text
    trust = next(line for line in text.splitlines() if line.startswith("[WARN] trust "))
    assert trust.endswith(" no trust.keys: alerts, playlists and commands are accepted unsigned")
    assert "-> set display.path" in text


def test_exit_status_and_summary() -> None:
    ok = CheckResult("a", OK, "fine")
    warn = CheckResult("b", WARN, "hm", "do this")
    fail = CheckResult("c", FAIL, "bad\nsecond line", "do that")
    assert exit_status([ok]) == EXIT_OK
    assert exit_status([ok, warn]) == EXIT_WARN
    assert exit_status([warn, fail, ok]) == EXIT_FAIL
    text = format_report([ok, warn, fail], unicode=False)
    assert text.splitlines() == [
        "[ OK ] a  fine",
        "[WARN] b  hm",
        "          -> do this",
        "[FAIL] c  bad",
        "            second line",
        "          -> do that",
        "3 checks: 1 ok, 1 warning, 1 failure: NOT ready (exit 2)",
    ]


def test_disk_thresholds(tmp_path: Path) -> None:
    import shutil

    free = shutil.disk_usage(tmp_path).free // 2**20
    result = check_disk(tmp_path / "not" / "yet")  # measured on the nearest existing folder
    assert result.status == (OK if free >= 100 else WARN if free >= 20 else FAIL)
    assert str(tmp_path) in result.detail


def test_probe_broker_states(tmp_path: Path, auth_broker: Broker) -> None:
    assert auth_broker.password_file is not None
    good = MqttConfig(host="127.0.0.1", port=auth_broker.port, username="panel",
                      password_file=auth_broker.password_file)
    assert probe_broker(good, "probe-1", 3).state == "connected"
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    refused = probe_broker(MqttConfig(host="127.0.0.1", port=auth_broker.port, username="panel",
                                      password_file=wrong), "probe-2", 3)
    assert refused.state == "refused", refused
    assert "Not authorized" in refused.detail or "Bad user name or password" in refused.detail, refused
    anonymous = probe_broker(MqttConfig(host="127.0.0.1", port=auth_broker.port, protocol="3.1.1"), "probe-3", 3)
    assert anonymous.state == "refused"
    missing = probe_broker(MqttConfig(host="127.0.0.1", port=auth_broker.port, username="panel",
                                      password_file=tmp_path / "none"), "probe-4", 3)
    assert missing.state == "error" and "mqtt.password_file" in missing.detail


def test_probe_broker_tls(tls_broker: Broker, tmp_path: Path) -> None:
    from player.config import TlsConfig

    certs = tls_broker.certs
    assert certs is not None and tls_broker.tls_port is not None
    tls = TlsConfig(ca_file=certs.ca, cert_file=certs.client_cert, key_file=certs.client_key)
    ok = probe_broker(MqttConfig(host="127.0.0.1", port=tls_broker.tls_port, tls=tls), "probe-tls", 3)
    assert ok.state == "connected", ok
    assert "(TLS)" in ok.detail
    plain_on_tls = probe_broker(MqttConfig(host="127.0.0.1", port=tls_broker.tls_port), "probe-plain", 2)
    assert plain_on_tls.state in ("refused", "unreachable") and not plain_on_tls.connected


def test_probe_does_not_disturb_the_panels_session(broker: Broker) -> None:
    # The probe uses its own client id: a panel connected as "p1" stays connected.
    with broker.sub("t/#") as sub:
        probe = probe_broker(MqttConfig(host="127.0.0.1", port=broker.port), "p1-preflight-1", 3)
        assert probe.connected
        broker.publish("t/x", b"still here")
        assert sub.wait_for("t/x").payload == b"still here"


@pytest.mark.parametrize("synced,status", [(True, OK), (False, WARN), (None, WARN)])
def test_clock_states(tmp_path: Path, synced: bool | None, status: str) -> None:
    from player.preflight import check_clock

    assert check_clock(lambda: synced).status == status


def _cfg(tmp_path: Path, **display: Any) -> Config:
    return config_from_data({"panel": {"id": "p"}, "display": display, "mqtt": {"enabled": False},
                             "state_dir": str(tmp_path)})


def test_ledmatrix_without_rgbmatrix_fails_with_a_hint(tmp_path: Path) -> None:
    from player.preflight import check_display

    result = check_display(_cfg(tmp_path, output="ledmatrix"), tmp_path, tmp_path)
    if "rgbmatrix" in sys.modules or __import__("importlib").util.find_spec("rgbmatrix"):
        assert result.status == OK
    else:
        assert result.status == FAIL and "rgbmatrix" in result.detail and "64x32" in result.detail


@pytest.mark.parametrize("trust, status, detail", [
    (None, WARN, "no trust.keys: alerts, playlists and commands are accepted unsigned"),
    ({"keys": ["K1", "K2"]}, OK, "2 keys (central-2026, central-2027); alerts, playlists and commands must be signed"),
    ({"keys": ["K1"], "require": ["commands", "alerts"]}, WARN,
     "1 key (central-2026); alerts and commands must be signed, playlists are accepted unsigned (trust.require)"),
    ({"keys": ["K2"], "require": []}, WARN,
     "1 key (central-2027); alerts, playlists and commands are accepted unsigned (trust.require)"),
])
def test_trust_line_lists_the_key_ids_and_warns_for_what_is_accepted_unsigned(
        tmp_path: Path, trust: dict[str, Any] | None, status: str, detail: str) -> None:
    pubs = {"K1": new_key_files(tmp_path, "central-2026")[1], "K2": new_key_files(tmp_path, "central-2027")[1]}
    data: dict[str, Any] = {"panel": {"id": "p"}, "display": {"output": "fbdev"}, "mqtt": {"enabled": False}}
    if trust is not None:
        data["trust"] = {**trust, "keys": [str(pubs[k]) for k in trust["keys"]]}
    result = check_trust(config_from_data(data))
    assert (result.name, result.status, result.detail) == ("trust", status, detail)
    if status == WARN:
        assert "trust" in result.fix


GPIO_LINE = "from player.preflight import check_gpio; r = check_gpio(); print(r.status); print(r.detail)"


def gpio_line(**env: str | None) -> tuple[str, str]:
    """check_gpio() in a fresh process (gpiozero chooses its pin factory once per process)."""
    environ = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    environ.update({k: v for k, v in env.items() if v is not None})
    run = subprocess.run([sys.executable, "-c", GPIO_LINE], capture_output=True, text=True, env=environ,
                         timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert run.returncode == 0, run.stderr
    status, detail = run.stdout.rstrip("\n").split("\n", 1)
    return status, detail


def test_gpio_line_names_the_mock_factory_and_why() -> None:
    status, detail = gpio_line(GPIOZERO_PIN_FACTORY="mock")
    assert status == OK
    assert detail.startswith("MockFactory (GPIOZERO_PIN_FACTORY=mock); lgpio imports, spidev "), detail


def test_gpio_line_without_the_variable_follows_gpiozeros_order() -> None:
    status, detail = gpio_line()
    assert "(gpiozero's default order: lgpio, rpigpio, pigpio, native" in detail, detail
    assert "lgpio imports" in detail  # the locked install carries lgpio on Linux
    if Path("/dev/gpiochip0").exists() and detail.startswith("LGPIOFactory"):
        assert status == OK  # a Raspberry Pi
    else:
        # No Raspberry Pi here: every factory is passed over, each with gpiozero's reason.
        assert detail.startswith("no pin factory loads"), detail
        assert "Falling back from lgpio: " in detail and "BadPinFactory" in detail
        assert status == OK and detail.endswith("no configured sensor needs one")


def test_gpio_line_fails_when_a_sensor_needs_pins_and_none_load(tmp_path: Path) -> None:
    code = ("from player.config import config_from_data; from player.preflight import check_gpio; "
            "cfg = config_from_data({'panel': {'id': 'gare'}, 'display': {'size': [64, 32]}, "
            "'sensors': {'door': {'pin': 17}}}); "
            "r = check_gpio(cfg); print(r.status); print(r.detail); print(r.fix)")
    environ = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    # A factory name gpiozero cannot load: the same answer on a Raspberry Pi and elsewhere.
    environ["GPIOZERO_PIN_FACTORY"] = "no-such-factory"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=60)
    assert run.returncode == 0, run.stderr
    status, detail, fix = run.stdout.rstrip("\n").split("\n", 2)
    assert status == FAIL
    assert detail.startswith("no pin factory loads (GPIOZERO_PIN_FACTORY=no-such-factory: "), detail
    assert "scripts/install.sh installs lgpio" in fix


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to run as another user")
def test_gpio_line_as_a_user_in_a_folder_it_cannot_write(tmp_path: Path) -> None:
    """lgpio's import writes its notification pipe in the working directory: the check still
    finds lgpio when run by hand, as an unprivileged user, from a folder that user cannot write."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    tmp_path.chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if k not in ("GPIOZERO_PIN_FACTORY", "LG_WD")}
    run = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c",
                          f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r}); "
                          + GPIO_LINE], capture_output=True, text=True, env=environ, cwd=folder, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "lgpio imports" in run.stdout, run.stdout
    assert list(folder.iterdir()) == []


def test_gpio_line_leaves_no_lgpio_pipe_in_the_working_folder(tmp_path: Path) -> None:
    """In the state folder, lgpio's pipe would be the running service's own (.lgd-nfy0): never there."""
    environ = {k: v for k, v in os.environ.items() if k not in ("GPIOZERO_PIN_FACTORY", "LG_WD")}
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r}); " + GPIO_LINE
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, cwd=tmp_path,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert "lgpio imports" in run.stdout, run.stdout
    assert list(tmp_path.iterdir()) == []


def test_probe_explains_a_broker_that_refuses_mqtt5_but_accepts_311(rabbit: Any, tmp_path: Path) -> None:
    """RabbitMQ 3.10 closes an MQTT 5 CONNECT without a CONNACK: preflight tries 3.1.1 and says so."""
    from player.preflight import check_broker

    assert rabbit.password_file is not None
    where = f"127.0.0.1:{rabbit.port}"
    probe = probe_broker(MqttConfig(host="127.0.0.1", port=rabbit.port, username=rabbit.username,
                                    password_file=rabbit.password_file), "probe-5", 5)
    assert probe.state == "refused", probe
    assert probe.detail.startswith(f'{where}: the broker does not accept MQTT 5 but accepts MQTT 3.1.1: '
                                   'set mqtt.protocol: "3.1.1" (RabbitMQ before 3.13'), probe
    ok = probe_broker(MqttConfig(host="127.0.0.1", port=rabbit.port, username=rabbit.username,
                                 password_file=rabbit.password_file, protocol="3.1.1"), "probe-6", 5)
    assert ok.state == "connected", ok
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    refused = probe_broker(MqttConfig(host="127.0.0.1", port=rabbit.port, username=rabbit.username,
                                      password_file=wrong), "probe-7", 5)
    assert refused.detail.startswith(f"{where}: the broker does not accept MQTT 5; with MQTT 3.1.1 it answered: "), \
        refused
    cfg = config_from_data({"panel": {"id": "p1"}, "display": {"output": "png", "size": [64, 32]},
                            "mqtt": {"host": "127.0.0.1", "port": rabbit.port, "username": rabbit.username,
                                     "password_file": str(rabbit.password_file)}})
    line = check_broker(cfg, 5)
    assert line.status == FAIL and line.fix == 'set mqtt.protocol: "3.1.1" in the panel config', line
    assert "does not accept MQTT 5 but accepts MQTT 3.1.1" in line.detail
