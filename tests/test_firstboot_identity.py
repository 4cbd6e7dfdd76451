"""A card cloned onto another board gets its own machine-id and SSH host keys, once.

Each test builds a temporary root shaped like a panel's (the board serial in the
device tree, /etc/machine-id, /etc/ssh with real host keys made by ssh-keygen -A)
and runs the first-boot step on it, in process or as the real `panel-player`
command with ``--root``. The new machine-id comes from systemd-machine-id-setup
--root (the program's fallback, a random id, is used where it is missing); the
new host keys from ssh-keygen -A -f ROOT.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from player.firstboot import (
    BOARD_FILE, MASTER_MARKER, board_serial, check_board_identity, seal_image,
)

ROOT = Path(__file__).resolve().parents[1]
OLD_ID = "0123456789abcdef0123456789abcdef"
SSH_KEYGEN = shutil.which("ssh-keygen")


def set_serial(root: Path, serial: str | None) -> None:
    path = root / "sys/firmware/devicetree/base/serial-number"
    path.parent.mkdir(parents=True, exist_ok=True)
    if serial is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(serial.encode() + b"\0")  # as the kernel shows it: NUL-terminated


def host_keys(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "etc/ssh").glob("ssh_host_*"))}


@pytest.fixture
def card(tmp_path: Path) -> Path:
    """A master card's root: a machine id, SSH host keys, on board 10000000aaaa0001."""
    root = tmp_path / "root"
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/machine-id").write_text(OLD_ID + "\n")
    if SSH_KEYGEN:  # the fast key types only; the renewal makes every default type (-A)
        for kind in ("ed25519", "ecdsa"):
            subprocess.run([SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-C", "master",
                            "-f", str(root / f"etc/ssh/ssh_host_{kind}_key")], check=True, capture_output=True)
    else:
        (root / "etc/ssh/ssh_host_ed25519_key").write_text("the master's key")
    set_serial(root, "10000000aaaa0001")
    return root


def machine_id(root: Path) -> str:
    return (root / "etc/machine-id").read_text().strip()


def test_the_board_serial_from_the_device_tree_or_cpuinfo(tmp_path: Path) -> None:
    set_serial(tmp_path, "10000000AbCd0001")
    assert board_serial(tmp_path) == "10000000abcd0001"
    set_serial(tmp_path, None)
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nHardware\t: BCM2835\nSerial\t\t: 00000000c0ffee42\n")
    assert board_serial(tmp_path) == "00000000c0ffee42"
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nSerial\t\t: 0000000000000000\n")  # no serial
    assert board_serial(tmp_path) is None


def test_first_run_records_the_board_and_later_runs_change_nothing(card: Path) -> None:
    keys = host_keys(card)
    first = check_board_identity(card)
    assert (first.action, first.serial, first.errors) == ("recorded", "10000000aaaa0001", [])
    record = json.loads((card / BOARD_FILE).read_text())
    assert record["serial"] == "10000000aaaa0001" and record["renewed"] is False
    assert machine_id(card) == OLD_ID and host_keys(card) == keys  # a panel installed in place keeps its identity
    for _ in range(3):  # every later boot of the same board
        assert check_board_identity(card).action == "unchanged"
    assert machine_id(card) == OLD_ID and host_keys(card) == keys


def test_a_clone_on_another_board_gets_a_new_identity_once(card: Path) -> None:
    check_board_identity(card)  # the master panel, on its own board
    keys = host_keys(card)
    set_serial(card, "10000000bbbb0002")  # the card copied into another panel
    result = check_board_identity(card)
    assert result.action == "renewed" and result.previous == "10000000aaaa0001", result
    assert "10000000bbbb0002" in result.reason
    new_id = machine_id(card)
    assert new_id != OLD_ID and len(new_id) == 32 and int(new_id, 16) and result.machine_id == new_id
    if SSH_KEYGEN:
        assert result.errors == []
        new_keys = host_keys(card)
        assert set(keys) < set(new_keys)  # every key type of the master, and the other defaults
        assert all(new_keys[name] != keys[name] for name in keys)
        assert result.ssh_keys == sorted(n for n in new_keys if n.endswith("_key"))
    else:  # the host keys are kept, and the crew is told
        assert host_keys(card) == keys and "ssh-keygen" in result.errors[0]
    assert json.loads((card / BOARD_FILE).read_text())["serial"] == "10000000bbbb0002"
    renewed = host_keys(card)
    assert check_board_identity(card).action == "unchanged"  # the next boots: never again
    assert machine_id(card) == new_id and host_keys(card) == renewed


def test_two_clones_of_one_master_differ(card: Path, tmp_path: Path) -> None:
    check_board_identity(card)
    clones = []
    for i, serial in enumerate(("10000000cccc0003", "10000000dddd0004")):
        clone = tmp_path / f"clone{i}"
        shutil.copytree(card, clone, symlinks=True)
        set_serial(clone, serial)
        assert check_board_identity(clone).action == "renewed"
        clones.append(clone)
    assert len({machine_id(card), *(machine_id(c) for c in clones)}) == 3
    if SSH_KEYGEN:
        name = "ssh_host_ed25519_key.pub"
        assert len({(c / "etc/ssh" / name).read_bytes() for c in [card, *clones]}) == 3


def test_a_sealed_master_image_is_renewed_at_its_next_boot_even_on_its_own_board(card: Path) -> None:
    check_board_identity(card)
    marker = seal_image(card)
    assert marker == card / MASTER_MARKER and marker.exists()
    result = check_board_identity(card)
    assert result.action == "renewed" and "master image" in result.reason
    assert machine_id(card) != OLD_ID and not marker.exists()
    assert check_board_identity(card).action == "unchanged"


def test_an_unreadable_serial_never_costs_a_panel_its_identity(card: Path) -> None:
    check_board_identity(card)
    set_serial(card, None)  # a kernel without the device-tree node, and no cpuinfo serial
    result = check_board_identity(card)
    assert (result.action, result.serial) == ("unchanged", None)
    assert machine_id(card) == OLD_ID


def test_an_image_without_an_ssh_server(card: Path) -> None:
    shutil.rmtree(card / "etc/ssh")
    check_board_identity(card)
    set_serial(card, "10000000eeee0005")
    result = check_board_identity(card)
    assert result.action == "renewed" and result.ssh_keys == [] and result.errors == []
    assert not (card / "etc/ssh").exists()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "player.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_the_commands_the_first_boot_unit_and_the_installer_run(card: Path) -> None:
    done = run_cli("board-identity", "--root", str(card))
    assert done.returncode == 0 and "recorded" in done.stdout, done.stderr
    sealed = run_cli("seal-image", "--root", str(card))
    assert sealed.returncode == 0 and (card / MASTER_MARKER).exists()
    # The unit passes --reboot: with a --root other than / nothing is rebooted.
    renewed = run_cli("board-identity", "--root", str(card), "--reboot")
    assert renewed.returncode == (0 if SSH_KEYGEN else 1), renewed.stderr
    assert "master image" in renewed.stdout and "new machine id" in renewed.stdout
    assert "rebooting" not in renewed.stdout
    assert machine_id(card) != OLD_ID
    again = run_cli("board-identity", "--root", str(card), "--reboot")
    assert again.returncode == 0 and "this board's" in again.stdout
