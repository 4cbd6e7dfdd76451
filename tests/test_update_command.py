"""The `update` and `rollback` commands and the `update` config section, as the panel reads them."""

from __future__ import annotations

import json

import pytest

from player.config import config_from_data
from player.errors import ConfigError
from player.net.protocol import CommandError, parse_command

SHA = "ab" * 32
INDEX = "cd" * 32
BASE = {"panel": {"id": "p1"}, "display": {"output": "png", "size": [64, 32]}}


def test_update_command_fields() -> None:
    cmd = parse_command(json.dumps({"id": "req-1", "cmd": "update", "bundle": f"sha256:{SHA}",
                                    "size": 1234, "version": "1.2.0", "parts": f"sha256:{INDEX}"}))
    assert (cmd.cmd, cmd.bundle, cmd.size, cmd.version, cmd.parts) == (
        "update", f"sha256:{SHA}", 1234, "1.2.0", f"sha256:{INDEX}")


@pytest.mark.parametrize("change, key", [
    ({"bundle": SHA}, "bundle"),                       # the sha256: prefix is required
    ({"bundle": f"sha256:{SHA.upper()}"}, "bundle"),
    ({"size": 0}, "size"),
    ({"size": "12"}, "size"),
    ({"version": "../1.0"}, "version"),
    ({"version": None}, "version"),
    ({"extra": 1}, "extra"),
    ({"parts": None}, "parts"),                        # the parts index is required
    ({"parts": INDEX}, "parts"),
    ({"parts": f"sha256:{INDEX[:-1]}"}, "parts"),
])
def test_update_command_refused(change: dict[str, object], key: str) -> None:
    data = {"id": "req-1", "cmd": "update", "bundle": f"sha256:{SHA}", "size": 10, "version": "1.0",
            "parts": f"sha256:{INDEX}"}
    data.update(change)
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(CommandError) as err:
        parse_command(json.dumps(data))
    assert err.value.request == "req-1" and err.value.cmd == "update"
    assert any(key in e for e in err.value.errors), err.value.errors


def test_rollback_command() -> None:
    assert parse_command(b'{"id": "r", "cmd": "rollback"}').cmd == "rollback"
    with pytest.raises(CommandError):
        parse_command(b'{"id": "r", "cmd": "rollback", "version": "1.0"}')


def test_update_health_s() -> None:
    assert config_from_data(BASE).update.health_s == 120
    assert config_from_data({**BASE, "update": {"health_s": 30}}).update.health_s == 30
    for bad, words in ((2, "health_s"), ("x", "health_s"), ({"healt_s": 3}, "healt_s")):
        section = bad if isinstance(bad, dict) else {"health_s": bad}
        with pytest.raises(ConfigError) as err:
            config_from_data({**BASE, "update": section})
        assert any(words in e for e in err.value.errors), err.value.errors
