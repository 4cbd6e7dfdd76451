"""First boot: import the ``panel-player.yaml`` an installer dropped on the SD card's boot partition.

The installer writes the config on any computer onto the FAT boot partition
(``/boot/firmware`` on Raspberry Pi OS Bookworm and later, ``/boot`` before).
At the next start the file is validated with the player's own config loader:

- valid: it is installed atomically at the config path (the previous one is
  replaced only then), and removed from the boot partition so no secret stays
  on a partition every computer can read;
- invalid: the previous config stays in use, the file is renamed
  ``panel-player.yaml.rejected`` and ``panel-player.yaml.errors.txt`` next to
  it lists every error, for the installer who pulls the card; the errors are
  also returned so the player shows them on screen.

The boot file is the config of docs/config.md with three conveniences, all
allowed only there:

- ``secrets: {mqtt_password: "…"}`` at the top level: the password is written
  to a 0600 file next to the config and ``mqtt.password_file`` points at it;
  the installed YAML never holds the password;
- ``mqtt.tls`` files given by a relative name (``ca_file: ca.crt``) are read
  from the boot partition, installed next to the config (the key 0600) and
  removed from the boot partition with the YAML;
- ``trust.keys`` entries given by a relative name (``- central-2026.pub``) are
  public key files beside the YAML: each is checked (an Ed25519 public JWK, not a
  private key), installed as ``keys/KID.pub`` next to the config (0644, root's)
  and removed from the boot partition with the YAML. Absolute paths and inline
  ``{kid, key}`` entries are taken as they are.

Windows editors are fine: a UTF-8 byte-order mark and CRLF line endings are
accepted.

The same first-boot unit gives a card cloned onto another board its own
``/etc/machine-id`` and SSH host keys (:func:`check_board_identity`).

Example::

    result = import_boot_config(Path("/boot/firmware"), Path("/etc/panel-player/config.yaml"))
    if not result.installed and result.errors:
        show(result.errors)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .provision import (
    DEFAULT_CONFIG, PASSWORD_NAME, PUBLIC_MODE, REPORT_NAME, SECRET_MODE, TLS_NAMES, Owner, Plan, Secret,
    ensure_config_dir, find_owner, fsync_dir, install, trusted_key_file, write_file,
)

BOOT_FILE = "panel-player.yaml"
BOOT_DIRS = (Path("/boot/firmware"), Path("/boot"))
BOOT_DIR_ENV = "PANEL_PLAYER_BOOT_DIR"
REJECTED_SUFFIX = ".rejected"
ERRORS_SUFFIX = ".errors.txt"
EXIT_INVALID = 2


@dataclass
class ImportResult:
    """What happened to the boot-partition config.

    ``found``: there was a file to import; ``installed``: it is now the
    panel's config; ``errors``: why it was refused (each naming its key).
    """

    installed: bool
    errors: list[str] = field(default_factory=list)
    source: str = ""
    target: str = ""
    at: str = ""  # ISO 8601 UTC time of the import attempt
    found: bool = True

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1).encode("utf-8", "backslashreplace")

    @classmethod
    def from_json(cls, raw: bytes) -> ImportResult:
        data = json.loads(raw)
        return cls(installed=bool(data["installed"]), errors=[str(e) for e in data.get("errors", [])],
                   source=str(data.get("source", "")), target=str(data.get("target", "")),
                   at=str(data.get("at", "")), found=bool(data.get("found", True)))


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def read_boot_yaml(raw: bytes, name: str = BOOT_FILE) -> tuple[Any, list[str]]:
    """Decode a file written by any editor (BOM, CRLF) into YAML data, or the errors."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [f"{name}: not UTF-8 text (byte {exc.start}); save it with the UTF-8 encoding"]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        return yaml.safe_load(text), []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return None, [f"{name}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"]


def _prepare(data: Any, boot_dir: Path, target: Path) -> tuple[Plan, Any, list[Path], list[str]]:
    """Split boot-file data into (plan to install, data to validate, boot files to remove, errors)."""
    errors: list[str] = []
    if not isinstance(data, dict):
        return Plan({}), data, [], []  # the config check says what is wrong
    data = copy.deepcopy(data)
    secrets = data.pop("secrets", None)
    folder = target.parent
    files: list[Secret] = []
    moved: list[Path] = []
    password: str | None = None
    if secrets is not None:
        if not isinstance(secrets, dict):
            errors.append("secrets: expected a mapping such as {mqtt_password: ...}")
        else:
            for key, value in secrets.items():
                if key != "mqtt_password":
                    errors.append(f"secrets.{key}: unknown key (only mqtt_password)")
                elif not isinstance(value, str) or not value:
                    errors.append("secrets.mqtt_password: expected a non-empty string (quote it)")
                else:
                    password = value
    check = copy.deepcopy(data)
    mqtt = data.get("mqtt")
    if password is not None:
        if not isinstance(mqtt, dict):
            mqtt = data["mqtt"] = {} if mqtt is None else mqtt
        if isinstance(mqtt, dict):
            if mqtt.get("password_file") is not None:
                errors.append("secrets.mqtt_password: conflicts with mqtt.password_file (give one)")
            elif mqtt.get("username") is None:
                errors.append("secrets.mqtt_password: needs mqtt.username")
            else:
                mqtt["password_file"] = str(folder / PASSWORD_NAME)
                check.setdefault("mqtt", {})["password_file"] = mqtt["password_file"]
                files.append(Secret(folder / PASSWORD_NAME, password.encode("utf-8") + b"\n", SECRET_MODE))
    tls = mqtt.get("tls") if isinstance(mqtt, dict) else None
    if isinstance(tls, dict):
        for key, name in TLS_NAMES.items():
            value = tls.get(key)
            if not isinstance(value, str) or not value or Path(value).is_absolute():
                continue  # absolute paths are on the root file system already; the check looks at them
            source = boot_dir / value
            if source.resolve().parent != boot_dir.resolve():
                errors.append(f"mqtt.tls.{key}: {value!r}: a relative name must be a file on the boot partition")
                continue
            check["mqtt"]["tls"][key] = str(source)
            tls[key] = str(folder / name)
            try:
                blob = source.read_bytes()
            except OSError as exc:
                errors.append(f"mqtt.tls.{key}: cannot read {value!r} on the boot partition: "
                              f"{exc.strerror or exc}")
                continue
            files.append(Secret(folder / name, blob, SECRET_MODE if key == "key_file" else PUBLIC_MODE))
            moved.append(source)
    _trust_keys(data, check, boot_dir, folder, files, moved, errors)
    return Plan(data, files), check, moved, errors


def _trust_keys(data: dict[str, Any], check: dict[str, Any], boot_dir: Path, folder: Path,
                files: list[Secret], moved: list[Path], errors: list[str]) -> None:
    """``trust.keys`` files named relatively: read from the boot partition, installed as ``keys/KID.pub``."""
    trust = data.get("trust")
    keys = trust.get("keys") if isinstance(trust, dict) else None
    if not isinstance(keys, list):
        return  # absent, or the config check says what is wrong
    for i, value in enumerate(keys):
        if not isinstance(value, str) or not value or Path(value).is_absolute():
            continue  # inline {kid, key}, or a file on the root file system: the check looks at them
        where = f"trust.keys[{i}]"
        source = boot_dir / value
        if source.resolve().parent != boot_dir.resolve():
            errors.append(f"{where}: {value!r}: a relative name must be a file beside {BOOT_FILE}")
            continue
        try:
            secret, _ = trusted_key_file(source, folder)
        except ConfigError as exc:
            errors += [f"{where}: {err.replace(str(source), repr(value), 1)}" for err in exc.errors]
            continue
        check["trust"]["keys"][i] = str(source)
        keys[i] = str(secret.path)
        files.append(secret)
        moved.append(source)


def _write_report(target: Path, result: ImportResult, owner: Owner | None) -> None:
    """Leave the result next to the config, where the (unprivileged) player reads it at start."""
    try:
        ensure_config_dir(target.parent, owner)
        write_file(target.parent / REPORT_NAME, result.to_json(), 0o640, -1, owner.gid if owner else -1)
    except OSError:
        pass  # the result is also returned and printed; the report is a convenience


def _errors_text(name: str, errors: list[str], at: str) -> bytes:
    lines = [f"panel-player could not use {name} (checked {at}):", ""]
    lines += [f"  {err}" for err in errors]
    lines += ["", f"The file was renamed {name}{REJECTED_SUFFIX}; the panel keeps its previous config.",
              f"Fix it, save it as {name} on this partition and restart the panel.", ""]
    return "\r\n".join(lines).encode("utf-8", "backslashreplace")  # CRLF: read on any computer, Notepad included


def _reject(source: Path, target: Path, errors: list[str], owner: Owner | None, at: str) -> ImportResult:
    boot_dir = source.parent
    result = ImportResult(installed=False, errors=errors, source=str(source), target=str(target), at=at)
    try:
        write_file(boot_dir / (source.name + ERRORS_SUFFIX), _errors_text(source.name, errors, at), 0o644)
        os.replace(source, boot_dir / (source.name + REJECTED_SUFFIX))
        fsync_dir(boot_dir)
    except OSError as exc:
        errors.append(f"{boot_dir}: cannot write the errors file: {exc.strerror or exc}")
    _write_report(target, result, owner)
    return result


def import_boot_config(boot_dir: Path = BOOT_DIRS[0], target: Path = DEFAULT_CONFIG,
                       owner: str | None = None) -> ImportResult:
    """Validate and install ``boot_dir/panel-player.yaml`` at ``target``; see the module doc.

    ``owner``: the service user who reads the config and owns its secrets
    (default ``panel-player`` when it exists and we are root). Returns
    ``found=False`` when there is no boot file.
    """
    boot_dir, target = Path(boot_dir).absolute(), Path(target).absolute()
    source = boot_dir / BOOT_FILE
    at = _now()
    if not source.is_file():
        return ImportResult(installed=False, source=str(source), target=str(target), at=at, found=False)
    user, owner_error = find_owner(owner)
    if owner_error:
        return ImportResult(installed=False, errors=[owner_error], source=str(source), target=str(target), at=at)
    try:
        raw = source.read_bytes()
    except OSError as exc:
        return ImportResult(installed=False, errors=[f"{source}: cannot read: {exc.strerror or exc}"],
                            source=str(source), target=str(target), at=at)
    data, errors = read_boot_yaml(raw)
    if errors:
        return _reject(source, target, errors, user, at)
    plan, check, moved, errors = _prepare(data, boot_dir, target)
    from .config import config_from_data

    try:
        config_from_data(check)
    except ConfigError as exc:
        reported = {err.split(":", 1)[0] for err in errors}
        errors += [err for err in exc.errors if err.split(":", 1)[0] not in reported]
    if errors:
        return _reject(source, target, errors, user, at)
    try:
        install(plan, target, user, f"the boot-partition import of {source}")
    except OSError as exc:
        # The boot file stays: the next start tries again.
        result = ImportResult(installed=False, errors=[f"cannot install {exc.filename or target}: "
                                                       f"{exc.strerror or exc}"],
                              source=str(source), target=str(target), at=at)
        _write_report(target, result, user)
        return result
    for leftover in [source, *moved, boot_dir / (BOOT_FILE + ERRORS_SUFFIX), boot_dir / (BOOT_FILE + REJECTED_SUFFIX)]:
        try:
            leftover.unlink()
        except FileNotFoundError:
            pass
    fsync_dir(boot_dir)
    result = ImportResult(installed=True, source=str(source), target=str(target), at=at)
    _write_report(target, result, user)
    return result


def boot_dirs() -> tuple[Path, ...]:
    """Where to look for the boot file: ``$PANEL_PLAYER_BOOT_DIR``, else /boot/firmware, then /boot."""
    env = os.environ.get(BOOT_DIR_ENV)
    return (Path(env),) if env else BOOT_DIRS


def find_boot_dir(candidates: tuple[Path, ...] | None = None) -> Path | None:
    """The first candidate holding a boot file, else the first that exists, else ``None``."""
    candidates = candidates or boot_dirs()
    for folder in candidates:
        if (folder / BOOT_FILE).is_file():
            return folder
    return next((folder for folder in candidates if folder.is_dir()), None)


def _writable(path: Path) -> bool:
    while not path.exists():
        path = path.parent
    return os.access(path, os.W_OK)


def maybe_import_at_start(config_path: Path, boot_dir: Path | None = None,
                          fresh_s: float = 300.0) -> ImportResult | None:
    """What the player should show about the boot-partition config at start, or ``None``.

    Imports the boot file when this process may (root, unsandboxed). A
    sandboxed service cannot: ``panel-player-firstboot.service`` runs
    ``panel-player import-boot-config`` as root before the player starts, and this returns that step's result from
    its report — a rejection for as long as the rejected file is on the boot
    partition, a success if it is less than ``fresh_s`` seconds old.
    """
    config_path = Path(config_path).absolute()
    folder = boot_dir or find_boot_dir()
    if folder is not None and (folder / BOOT_FILE).is_file():
        if _writable(folder) and _writable(config_path.parent):
            return import_boot_config(folder, config_path)
        return ImportResult(
            installed=False, source=str(folder / BOOT_FILE), target=str(config_path), at=_now(),
            errors=[f"{folder / BOOT_FILE} is waiting to be imported, which needs root: "
                    "restart the service or run `sudo panel-player import-boot-config`"])
    try:
        report = ImportResult.from_json((config_path.parent / REPORT_NAME).read_bytes())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not report.installed:
        return report if Path(report.source + REJECTED_SUFFIX).is_file() else None
    try:
        age = time.time() - (config_path.parent / REPORT_NAME).stat().st_mtime
    except OSError:
        return None
    return report if age < fresh_s else None


# -- a card cloned onto another board ---------------------------------------------
#
# A master SD card, copied onto the cards of a whole fleet, would give every panel
# the same /etc/machine-id (journald, DHCP identities) and the same SSH host keys
# (a crew could not tell one panel from another, nor an impostor). The board's own
# serial number says on which board a card runs: it is recorded in BOARD_FILE when
# the card first runs on a board, and compared by the first-boot unit. A card whose
# serial differs, or which was sealed as a master image (MASTER_MARKER, left by
# `panel-player seal-image`), gets a new identity once; the same board never again.

BOARD_FILE = Path("etc/panel-player/board.json")  # relative to the root
MASTER_MARKER = Path("etc/panel-player/master-image")
SERIAL_FILES = (Path("sys/firmware/devicetree/base/serial-number"), Path("proc/device-tree/serial-number"))
CPUINFO = Path("proc/cpuinfo")
MACHINE_ID = Path("etc/machine-id")
DBUS_MACHINE_ID = Path("var/lib/dbus/machine-id")
SSH_DIR = Path("etc/ssh")


@dataclass
class IdentityResult:
    """What :func:`check_board_identity` did.

    ``action``: ``recorded`` (first run on this board: its serial is now on
    record, nothing regenerated), ``unchanged`` (the board on record), or
    ``renewed`` (a clone or a sealed master image: new machine-id and SSH host
    keys). ``errors``: what could not be done (the rest was).
    """

    action: str
    serial: str | None
    previous: str | None = None
    reason: str = ""
    machine_id: str | None = None
    ssh_keys: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def board_serial(root: Path = Path("/")) -> str | None:
    """The board's serial number (device tree, else ``Serial`` of /proc/cpuinfo), ``None`` if unknown."""
    for rel in SERIAL_FILES:
        try:
            value = (root / rel).read_bytes().rstrip(b"\0\n ").decode("ascii", "replace").strip()
        except OSError:
            continue
        if value.strip("0"):
            return value.lower()
    try:
        lines = (root / CPUINFO).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip().lower() == "serial" and value.strip().strip("0"):
            return value.strip().lower()
    return None


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _new_machine_id(root: Path, old: str) -> str:
    """Empty /etc/machine-id and have ``systemd-machine-id-setup`` make a new one (else a random one)."""
    path = root / MACHINE_ID
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, b"", 0o444)
    tool = shutil.which("systemd-machine-id-setup")
    if tool is not None:
        # Outside --root it may take a virtual machine's UUID, which never changes: checked below.
        cmd = [tool] if root == Path("/") else [tool, f"--root={root}"]
        subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    try:
        new = path.read_text().strip()
    except OSError:
        new = ""
    if len(new) != 32 or not all(c in "0123456789abcdef" for c in new) or new == old:
        new = uuid.uuid4().hex
        write_file(path, (new + "\n").encode(), 0o444)
    dbus = root / DBUS_MACHINE_ID
    if dbus.is_file() and not dbus.is_symlink():
        write_file(dbus, (new + "\n").encode(), 0o444)  # D-Bus's copy, where it is not a link to it
    return new


def _new_ssh_host_keys(root: Path, errors: list[str]) -> list[str]:
    """Remove the SSH host keys and make new ones with ``ssh-keygen -A``; the new keys' file names."""
    folder = root / SSH_DIR
    if not folder.is_dir():
        return []  # no SSH server on this image
    tool = shutil.which("ssh-keygen")
    if tool is None:
        errors.append("ssh-keygen is not installed: the SSH host keys were kept (they are the master's)")
        return []
    old = sorted(folder.glob("ssh_host_*_key")) + sorted(folder.glob("ssh_host_*_key.pub"))
    for path in old:
        path.unlink()
    cmd = [tool, "-A"] if root == Path("/") else [tool, "-A", "-f", str(root)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        errors.append(f"ssh-keygen -A failed ({done.returncode}): {done.stderr.strip()}")
    fsync_dir(folder)
    return sorted(p.name for p in folder.glob("ssh_host_*_key"))


def check_board_identity(root: Path = Path("/")) -> IdentityResult:
    """Record the board, or give a cloned card (or a sealed master image) a new identity.

    ``root`` prefixes every path (``/`` on a panel, a temporary tree in tests).
    The serial is recorded after the identity is renewed: a power cut in
    between renews it again at the next boot, which is harmless.

    Example::

        result = check_board_identity()
        if result.action == "renewed":
            reboot()
    """
    root = Path(root)
    serial = board_serial(root)
    record_path = root / BOARD_FILE
    record = _read_record(record_path)
    previous = record.get("serial") if record is not None else None
    previous = previous if isinstance(previous, str) else None
    marker = root / MASTER_MARKER
    if marker.exists():
        reason = "the card was sealed as a master image"
    elif record is None:
        reason = ""
    elif serial is not None and previous is not None and serial != previous:
        reason = f"the card was recorded on board {previous} and now runs on board {serial}"
    else:
        # The same board, or one whose serial cannot be read: a read failure must never
        # cost a panel its identity.
        return IdentityResult("unchanged", serial, previous)
    try:
        old_id = (root / MACHINE_ID).read_text().strip()
    except OSError:
        old_id = ""
    result = IdentityResult("renewed" if reason else "recorded", serial, previous, reason, machine_id=old_id or None)
    if reason:
        try:
            result.machine_id = _new_machine_id(root, old_id)
        except OSError as exc:
            result.errors.append(f"{MACHINE_ID}: cannot write a new machine id: {exc.strerror or exc}")
        try:
            result.ssh_keys = _new_ssh_host_keys(root, result.errors)
        except (OSError, subprocess.SubprocessError) as exc:
            result.errors.append(f"SSH host keys: {exc}")
    data = {"serial": serial, "machine_id": result.machine_id, "recorded": _now(),
            "renewed": bool(reason), "reason": reason}
    try:
        record_path.parent.mkdir(parents=True, exist_ok=True)
        write_file(record_path, json.dumps(data, indent=1).encode() + b"\n", 0o644)
        if marker.exists():
            marker.unlink()
            fsync_dir(marker.parent)
    except OSError as exc:
        result.errors.append(f"{BOARD_FILE}: cannot record the board: {exc.strerror or exc}")
    return result


MASTER_TEXT = """\
This card was sealed as a master image by `panel-player seal-image`.
At its next boot, on whatever board, panel-player-firstboot.service gives it a
new /etc/machine-id and new SSH host keys, records the board, and removes this file.
"""


def seal_image(root: Path = Path("/")) -> Path:
    """Mark the card as a master image: every card copied from it gets its own identity at first boot."""
    marker = Path(root) / MASTER_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    write_file(marker, MASTER_TEXT.encode(), 0o644)
    return marker


def add_firstboot_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``import-boot-config`` to ``panel-player``; ``args.handler`` is :func:`cmd_import_boot_config`."""
    p = subparsers.add_parser(
        "import-boot-config", help="install panel-player.yaml from the boot partition (as root)",
        description="Validate panel-player.yaml on the boot partition and install it as the config; "
                    "an invalid file is renamed .rejected with an .errors.txt beside it.")
    p.add_argument("--boot-dir", type=Path, default=None,
                   help=f"boot partition (default ${BOOT_DIR_ENV}, else /boot/firmware, else /boot)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"where to install it (default {DEFAULT_CONFIG})")
    p.add_argument("--owner", help="service user owning the secrets (default panel-player when it exists)")
    p.set_defaults(handler=cmd_import_boot_config)
    ident = subparsers.add_parser(
        "board-identity", help="first boot: new machine-id and SSH host keys on a cloned card (as root)",
        description="Record the board this card runs on; a card cloned onto another board, or sealed "
                    "with seal-image, gets a new /etc/machine-id and new SSH host keys, once.")
    ident.add_argument("--root", type=Path, default=Path("/"), help="prefix of every path (default /)")
    ident.add_argument("--reboot", action="store_true",
                       help="reboot after a new machine id, so that every service uses it")
    ident.set_defaults(handler=cmd_board_identity)
    seal = subparsers.add_parser(
        "seal-image", help="mark this card as a master image, just before copying it (as root)",
        description="Every card copied from this one gets its own machine-id and SSH host keys at its "
                    "first boot (this card too, at its next boot).")
    seal.add_argument("--root", type=Path, default=Path("/"), help="prefix of every path (default /)")
    seal.set_defaults(handler=cmd_seal_image)
    return p


def cmd_board_identity(args: argparse.Namespace) -> int:
    """0: recorded, unchanged or renewed; 1: something could not be done (listed)."""
    result = check_board_identity(args.root)
    serial = result.serial or "unknown"
    if result.action == "unchanged":
        print(f"board {serial}: the card's identity is this board's")
    elif result.action == "recorded":
        print(f"board {serial}: recorded in {args.root / BOARD_FILE}")
    else:
        print(f"board {serial}: {result.reason}: new machine id {result.machine_id}, "
              f"new SSH host keys {', '.join(result.ssh_keys) or '(none: no SSH server)'}")
    for err in result.errors:
        print(f"  {err}", file=sys.stderr)
    if result.action == "renewed" and args.reboot and args.root == Path("/") and result.machine_id:
        print("rebooting so that every service uses the new machine id")
        subprocess.run(["systemctl", "--no-block", "reboot"], check=False)
    return 1 if result.errors else 0


def cmd_seal_image(args: argparse.Namespace) -> int:
    marker = seal_image(args.root)
    print(f"sealed: {marker}; copy the card now. Each copy (this card too, at its next boot) "
          "gets its own machine id and SSH host keys at its first boot.")
    return 0


def cmd_import_boot_config(args: argparse.Namespace) -> int:
    """0: imported or nothing to import; 2: the file was rejected; 1: it could not be installed."""
    folder = args.boot_dir or find_boot_dir()
    if folder is None or not (folder / BOOT_FILE).is_file():
        print(f"no {BOOT_FILE} on the boot partition: nothing to import")
        return 0
    result = import_boot_config(folder, args.config, args.owner)
    if result.installed:
        print(f"installed {result.source} as {result.target}; removed it from the boot partition")
        return 0
    print(f"{result.source}: not installed, {len(result.errors)} error{'s' if len(result.errors) > 1 else ''}:",
          file=sys.stderr)
    for err in result.errors:
        print(f"  {err}", file=sys.stderr)
    return EXIT_INVALID if Path(result.source + REJECTED_SUFFIX).is_file() else 1
