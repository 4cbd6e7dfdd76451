"""Where panelctl finds the broker: flags over a small YAML file over defaults.

The file is ``--config FILE``, else ``$PANELCTL_CONFIG``, else
``~/.config/panelctl.yaml`` when it exists. Every key is optional::

    broker: mqtt.ville.example:8883     # HOST or HOST:PORT (default 127.0.0.1:1883, 8883 with TLS)
    protocol: auto                      # "5", "3.1.1" or auto (5, else 3.1.1 when the broker refuses 5)
    prefix: signage                     # the panels' mqtt.prefix
    username: panelctl
    password_file: ~/.config/panelctl.password
    tls:                                # a tls section (even empty) turns TLS on
      ca_file: /etc/panelctl/ca.crt     # default: the system's CA bundle
      cert_file: /etc/panelctl/client.crt
      key_file: /etc/panelctl/client.key
    max_message_kb: 1024                # the panels' mqtt.max_message_kb
    max_asset_kb: 2048                  # largest asset sent over MQTT (the broker's packet limit)
    key_file: ~/.config/central-2026.key   # sign what panelctl publishes (as --key, $PANELCTL_KEY)

Example::

    settings = load_settings(config=None, overrides={"broker": "10.0.0.5", "prefix": "signage"})
    settings.host, settings.port     # ('10.0.0.5', 1883)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..config import BrokerAccess, TlsConfig
from ..net.topics import TopicError, check_prefix
from ..validate import Node, Problems, describe

DEFAULT_PATH = Path("~/.config/panelctl.yaml")
ENV_VAR = "PANELCTL_CONFIG"
KEYS = ("broker", "protocol", "prefix", "username", "password_file", "tls", "max_message_kb", "max_asset_kb", "key_file",
        "console")  # console: read by `panelctl console` (player/console/settings.py)
KEY_ENV_VAR = "PANELCTL_KEY"
TLS_KEYS = ("ca_file", "cert_file", "key_file")
PROTOCOLS = ("5", "3.1.1", "auto")


@dataclass(frozen=True)
class CtlSettings(BrokerAccess):
    """Broker address, credentials and limits used by every panelctl command."""

    max_message_kb: int = 1024
    max_asset_kb: int = 2048
    protocol: str = "auto"  # "5", "3.1.1" or "auto" (see player.ctl.client)
    key_file: Path | None = None  # the private key that signs what panelctl publishes
    source: Path | None = None  # the config file read, if any

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def parse_broker(text: str) -> tuple[str, int | None]:
    """``"host"`` → ``("host", None)``; ``"host:8883"`` → ``("host", 8883)``; ``"[::1]:1883"`` works too.

    Raises :class:`ValueError` with a readable reason.
    """
    text = text.strip()
    if not text:
        raise ValueError("broker address is empty")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"broker address {describe(text)}: missing ']'")
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            raise ValueError(f"broker address {describe(text)}: expected [HOST]:PORT")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, None  # a bare name, or a bare IPv6 address
    if not host:
        raise ValueError(f"broker address {describe(text)} has no host")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"broker port {describe(port_text)} is not a number from 1 to 65535")
    return host, int(port_text)


def config_path(explicit: str | None, env: dict[str, str] | None = None) -> tuple[Path | None, bool]:
    """The config file to read and whether it must exist (explicit or from the environment)."""
    env = dict(os.environ) if env is None else env
    if explicit:
        return Path(explicit).expanduser(), True
    if env.get(ENV_VAR):
        return Path(env[ENV_VAR]).expanduser(), True
    default = DEFAULT_PATH.expanduser()
    return (default, False) if default.is_file() else (None, False)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror or exc}"]) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path} is not valid YAML: {exc}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: expected a mapping, got {describe(data)}"])
    return data


def load_settings(config: str | None, overrides: dict[str, Any],
                  env: dict[str, str] | None = None) -> CtlSettings:
    """Merge defaults, the config file and ``overrides`` (flag values; ``None`` = not given).

    ``overrides`` keys: broker, protocol, prefix, username, password_file, tls (bool: force TLS),
    tls_ca, tls_cert, tls_key, max_asset_kb, key (the signing key file; else ``$PANELCTL_KEY``).
    Raises :class:`ConfigError` listing every problem.
    """
    env = dict(os.environ) if env is None else env
    path, required = config_path(config, env)
    data: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            if required:
                raise ConfigError([f"config file {path} does not exist"])
        else:
            data = _read_file(path)
    problems = Problems()
    root = Node(data, "", problems)
    root.is_mapping(KEYS)
    broker = overrides.get("broker") or root.string("broker", None)
    prefix = overrides.get("prefix") or root.string("prefix", "signage")
    protocol = overrides.get("protocol") or data.get("protocol", "auto")
    if isinstance(protocol, float) and protocol == 5.0 or protocol == 5:
        protocol = "5"  # YAML reads a bare 5 as a number
    if protocol not in PROTOCOLS:
        problems.add("protocol", f"expected one of 5, 3.1.1, auto, got {describe(protocol)}")
    username = overrides.get("username") or root.string("username", None)
    password_file = overrides.get("password_file") or root.string("password_file", None)
    max_message_kb = root.integer("max_message_kb", 1024, minimum=16, maximum=16384)
    max_asset_kb = overrides.get("max_asset_kb") or root.integer("max_asset_kb", 2048, minimum=1, maximum=262144)
    tls_node = root.section("tls", TLS_KEYS)
    tls_on = bool(overrides.get("tls")) or (isinstance(data.get("tls"), dict))
    files: dict[str, Path | None] = {}
    for key, flag in (("ca_file", "tls_ca"), ("cert_file", "tls_cert"), ("key_file", "tls_key")):
        value = overrides.get(flag) or tls_node.string(key, None)
        files[key] = Path(value).expanduser() if value else None
        tls_on = tls_on or value is not None
    if (files["cert_file"] is None) != (files["key_file"] is None):
        problems.add("tls", "a client certificate and its key go together (--tls-cert and --tls-key)")
    for key, path_value in files.items():
        if path_value is not None and not path_value.is_file():
            problems.add(f"tls.{key}", f"no such file: {path_value}")
    if password_file is not None and username is None:
        problems.add("password_file", "needs a username (--username)")
    key_file = overrides.get("key") or env.get(KEY_ENV_VAR) or root.string("key_file", None)
    if key_file is not None and not Path(key_file).expanduser().is_file():
        problems.add("key_file", f"no such file: {key_file} (the signing key: --key, ${KEY_ENV_VAR} or key_file)")
    host, port = "127.0.0.1", None
    if broker is not None:
        try:
            host, port = parse_broker(str(broker))
        except ValueError as exc:
            problems.add("broker", str(exc))
    if prefix is not None:
        try:
            check_prefix(prefix)
        except TopicError as exc:
            problems.add("prefix", exc.reason)
    if problems:
        where = f" (in {path})" if data else ""
        raise ConfigError([e + where for e in problems.errors])
    tls = TlsConfig(files["ca_file"], files["cert_file"], files["key_file"]) if tls_on else None
    return CtlSettings(host=host, port=port or (8883 if tls else 1883), prefix=str(prefix),
                       username=username, password_file=Path(password_file).expanduser() if password_file else None,
                       tls=tls, max_message_kb=int(max_message_kb or 1024), max_asset_kb=int(max_asset_kb or 2048),
                       protocol=str(protocol),
                       key_file=Path(key_file).expanduser() if key_file else None, source=path if data else None)
