"""The config file (CONTRACT §2) and `panel-player check` (CONTRACT §1)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from player.config import config_from_data, load_config
from player.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

CONTRACT_EXAMPLE = """
panel:
  id: mairie-entree
  groups: [centre-ville]
  timezone: Europe/Paris
  location: {lat: 45.1885, lon: 5.7245}
display:
  output: png
  size: [1920, 1080]
  path: /tmp/frame.png
  device: /dev/fb0
  rotation: 0
  fps: 30
  layout: fullscreen
mqtt:
  host: 127.0.0.1
  port: 1883
  prefix: signage
state_dir: /var/lib/panel-player
heartbeat:
  interval: 30
"""


def errors(data) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_data(data)
    return info.value.errors


def test_contract_example_loads(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONTRACT_EXAMPLE)
    cfg = load_config(path)
    assert cfg.panel.id == "mairie-entree" and cfg.panel.groups == ("centre-ville",)
    assert cfg.panel.location == (45.1885, 5.7245) and str(cfg.panel.tz()) == "Europe/Paris"
    assert cfg.display.size == (1920, 1080) and cfg.display.output == "png" and cfg.display.fps == 30
    assert cfg.mqtt.port == 1883 and cfg.mqtt.prefix == "signage"
    assert cfg.state_dir == Path("/var/lib/panel-player") and cfg.heartbeat.interval == 30


def test_defaults_for_a_minimal_config():
    cfg = config_from_data({"panel": {"id": "p1"}, "display": {"output": "png", "size": [64, 32]}})
    assert cfg.display.layout == "fullscreen" and cfg.display.rotation == 0 and cfg.display.fps == 30
    assert cfg.mqtt.host == "127.0.0.1" and cfg.mqtt.port == 1883 and cfg.mqtt.protocol == "5"
    assert cfg.heartbeat.interval == 30 and cfg.alerts.languages[0] == "fr"


def test_every_error_at_once_with_key_paths_and_hints():
    data = yaml.safe_load(CONTRACT_EXAMPLE)
    data["mqtt"]["port"] = "abc"
    data["mqtt"]["hots"] = "x"
    data["panel"]["id"] = "Mairie Entrée"
    data["display"]["rotation"] = 45
    data["display"]["layout"] = "landscap"
    data["heartbeat"]["interval"] = 0
    data["stat_dir"] = "/x"
    errs = errors(data)
    assert 'mqtt.port: expected an integer, got "abc"' in errs
    assert 'mqtt.hots: unknown key (did you mean "host"?)' in errs
    assert 'stat_dir: unknown key (did you mean "state_dir"?)' in errs
    assert any(e.startswith("panel.id:") for e in errs)
    assert any(e.startswith("display.rotation: expected 0, 90, 180 or 270") for e in errs)
    assert any(e.startswith("display.layout:") and 'did you mean "landscape"' in e for e in errs)
    assert any(e.startswith("heartbeat.interval: must be between 1") for e in errs)


@pytest.mark.parametrize("mutate,fragment", [
    (lambda d: d.pop("panel"), "panel: required"),
    (lambda d: d["panel"].update(timezone="Europe/Pariss"), 'panel.timezone: unknown IANA timezone "Europe/Pariss" (did you mean "Europe/Paris"?)'),
    (lambda d: d["panel"].update(groups=["ok", "Bad Group"]), "panel.groups[1]"),
    (lambda d: d["panel"].update(location={"lat": 91, "lon": 0}), "panel.location.lat: must be between -90 and 90"),
    (lambda d: d["display"].pop("size"), "display.size: required for output png"),
    (lambda d: d["display"].update(output="hdmi"), "display.output: expected one of fbdev, sdl, png, ledmatrix"),
    (lambda d: d["display"].update(size=[1920]), "display.size: needs at least 2 items"),
    (lambda d: d["display"].update(fps=0), "display.fps: must be between 1 and 120"),
    (lambda d: d["display"].update(font="/no/such/font.ttf"), "display.font: no such font file"),
    (lambda d: d["mqtt"].update(protocol="4"), 'mqtt.protocol: expected "5" or "3.1.1"'),
    (lambda d: d["mqtt"].update(password_file="/x"), "mqtt.password_file: needs mqtt.username"),
    (lambda d: d["mqtt"].update(tls={"ca_file": "/no/ca.pem"}), "mqtt.tls.ca_file: no such file"),
    (lambda d: d["mqtt"].update(prefix="a/#"), "mqtt.prefix"),
    (lambda d: d.update(brightness={"curve": [[0.5, 10], [0.2, 20]]}), "brightness.curve"),
    (lambda d: d.update(alerts={"languges": ["fr"]}), 'alerts.languges: unknown key (did you mean "languages"?)'),
])
def test_specific_errors(mutate, fragment):
    data = yaml.safe_load(CONTRACT_EXAMPLE)
    mutate(data)
    errs = errors(data)
    assert any(fragment in e for e in errs), errs


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("panel:\n  id: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(path)


def test_protocol_written_as_a_number_is_accepted():
    cfg = config_from_data({"panel": {"id": "p"}, "display": {"output": "png", "size": [8, 8]},
                            "mqtt": {"protocol": 5}})
    assert cfg.mqtt.protocol == "5"


def test_layout_file_errors_are_reported(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("name: mine\nzones:\n  - {name: a, role: mian, rect: [0, 0, 1.5, 1]}\n")
    errs = errors({"panel": {"id": "p"}, "display": {"output": "png", "size": [8, 8], "layout": str(bad)}})
    assert any("role" in e and 'did you mean "main"' in e for e in errs)
    assert any("zones[0].rect[2]: must be between 0 and 1" in e for e in errs)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "player.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_check_exit_codes(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(CONTRACT_EXAMPLE)
    result = run_cli("check", "--config", str(good))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONTRACT_EXAMPLE.replace("port: 1883", 'port: "abc"').replace("fps: 30", "fps: -1"))
    result = run_cli("check", "--config", str(bad))
    assert result.returncode == 2
    assert 'mqtt.port: expected an integer, got "abc"' in result.stderr
    assert "display.fps: must be between 1 and 120, got -1" in result.stderr


def test_run_with_invalid_config_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("panel: {id: ok}\ndisplay: {output: png}\n")
    result = run_cli("run", "--config", str(bad))
    assert result.returncode == 2 and "display.size: required for output png" in result.stderr


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("panel-player 0.")


config_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["panel", "display", "mqtt", "state_dir", "heartbeat", "alerts", "sensors", "brightness",
                        "storage"]), config_values)
def test_generated_bad_sections_give_errors_not_crashes(section, value):
    data = yaml.safe_load(CONTRACT_EXAMPLE)
    data[section] = value
    try:
        config_from_data(data)
    except ConfigError as exc:
        assert exc.errors and all(isinstance(e, str) for e in exc.errors)
