"""docs/config.md and docs/layouts.md stay true to the code.

The accepted keys are not copied here: they are read from the code itself, by watching
which allowed-key sets the validators hand to :meth:`Node.is_mapping` while they walk a
config in which every section they ask about is present. The docs' tables are then
compared with them both ways (every accepted key documented, no documented key that the
code refuses), and each documented default, range and list of choices is tried on the
real validator. The YAML examples of both documents must load.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from player.config import config_from_data
from player.content import parse_color
from player.errors import ConfigError
from player.hw.config import TimeWindow
from player.layout import ROLES, builtin_layouts, layout_from_data
from player.validate import Node

ROOT = Path(__file__).resolve().parents[1]
CONFIG_MD = ROOT / "docs" / "config.md"
LAYOUTS_MD = ROOT / "docs" / "layouts.md"
CONTRACT_MD = ROOT.parent / "shared" / "CONTRACT.md"

BASE_CONFIG: dict[str, Any] = {"panel": {"id": "docs-check"}, "display": {"output": "png", "size": [64, 32]}}
BASE_LAYOUT: dict[str, Any] = {"name": "docs-check", "zones": [{"name": "main", "role": "main", "rect": [0, 0, 1, 1]}]}
NO_SUCH_FILE = re.compile(r"([\w.]+): no such (?:font )?file ")
RANGE = re.compile(r"(-?\d+(?:\.\d+)?) to (-?\d+(?:\.\d+)?)")
CHOICES = re.compile(r"`[^`]+`(?:, `[^`]+`)+")
BOGUS = "zz-not-allowed"


# -- reading the documents ------------------------------------------------------------

@dataclass(frozen=True)
class Table:
    heading: str  # the nearest heading above the table
    header: tuple[str, ...]
    rows: tuple[dict[str, str], ...]

    def first(self, row: dict[str, str]) -> str:
        """The first cell without its backticks: the key, layout or role named by the row."""
        return row[self.header[0]].strip("`")


def tables(text: str) -> list[Table]:
    """Every Markdown table of ``text``; a row with a stray ``|`` fails the test."""
    found: list[Table] = []
    lines = text.splitlines()
    heading = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|(\s*-+\s*\|)+", lines[i + 1].strip()):
            header = tuple(c.strip() for c in line.strip().strip("|").split("|"))
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                assert len(cells) == len(header), f"table row with {len(cells)} cells, not {len(header)}: {lines[i]}"
                rows.append(dict(zip(header, cells)))
                i += 1
            found.append(Table(heading, header, tuple(rows)))
            continue
        i += 1
    return found


def key_rows(text: str) -> dict[str, dict[str, str]]:
    """The rows of every table whose first column is ``key``, by key."""
    rows: dict[str, dict[str, str]] = {}
    for table in tables(text):
        if table.header[0] == "key":
            for row in table.rows:
                key = table.first(row)
                assert key not in rows, f"{key} is documented twice"
                rows[key] = row
    return rows


def fenced(text: str, lang: str) -> list[tuple[int, str]]:
    """``(offset, body)`` of every fenced block of language ``lang``."""
    return [(m.start(), m.group(1)) for m in re.finditer(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)]


# -- reading the code -----------------------------------------------------------------

@contextmanager
def watching_sections() -> Iterator[dict[str, set[str]]]:
    """Record the allowed keys of every mapping validated on the first Problems seen.

    The config's root node is validated first; layouts (loaded for display.layout)
    have their own Problems and are left out.
    """
    seen: dict[str, set[str]] = {}
    owner: list[object] = []
    original = Node.is_mapping

    def spy(self: Node, allowed: Any = None) -> bool:
        if not owner:
            owner.append(self.problems)
        if allowed is not None and self.problems is owner[0]:
            seen.setdefault(self.path, set()).update(allowed)
        return original(self, allowed)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Node, "is_mapping", spy)
        yield seen


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        if not isinstance(data.get(part), dict):
            data[part] = {}
        data = data[part]
    data[last] = value


def accepted_config_sections() -> dict[str, set[str]]:
    """Section path → allowed keys, for every section the config validators know.

    Starting from a minimal config, each accepted key is given an empty mapping; a key
    that is a section then validates it and reveals its own keys, until nothing new shows.
    """
    probe = copy.deepcopy(BASE_CONFIG)
    tried: set[str] = set()
    sections: dict[str, set[str]] = {}
    while True:
        with watching_sections() as seen:
            try:
                config_from_data(copy.deepcopy(probe))
            except ConfigError:
                pass  # the empty mappings are wrong for most keys: only the sections matter
        for path, keys in seen.items():
            sections.setdefault(path, set()).update(keys)
        new = {f"{path}.{k}" if path else k for path, keys in sections.items() for k in keys} - tried
        if not new:
            return sections
        for key in sorted(new):
            tried.add(key)
            parent = probe
            for part in key.split(".")[:-1]:
                parent = parent[part]
            if not isinstance(parent.get(key.split(".")[-1]), dict):
                parent[key.split(".")[-1]] = {}


def accepted_layout_keys() -> tuple[set[str], set[str]]:
    """(layout keys, zone keys) as the layout validator allows them."""
    with watching_sections() as seen:
        layout_from_data({"name": "probe", "zones": [{"name": "main", "role": "main", "rect": [0, 0, 1, 1]}]})
    return seen[""], seen["zones[0]"]


CONFIG_TEXT = CONFIG_MD.read_text(encoding="utf-8")
LAYOUTS_TEXT = LAYOUTS_MD.read_text(encoding="utf-8")
CONFIG_ROWS = key_rows(CONFIG_TEXT)
SECTIONS = accepted_config_sections()
ACCEPTED = {f"{path}.{k}" if path else k for path, keys in SECTIONS.items() for k in keys}


def config_errors(data: Any) -> list[str]:
    try:
        config_from_data(data)
    except ConfigError as exc:
        return exc.errors
    return []


def config_errors_for(key: str, value: Any) -> list[str]:
    """The errors naming ``key`` when a minimal config sets it to ``value``."""
    data = copy.deepcopy(BASE_CONFIG)
    set_key(data, key, value)
    return [e for e in config_errors(data) if e.startswith(f"{key}:")]


def layout_errors_for(key: str, value: Any, zone: bool) -> list[str]:
    data = copy.deepcopy(BASE_LAYOUT)
    (data["zones"][0] if zone else data)[key] = value
    where = f"zones[0].{key}" if zone else key
    try:
        layout_from_data(data)
    except ConfigError as exc:
        return [e for e in exc.errors if e.startswith(f"{where}:")]
    return []


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_example(data: dict[str, Any], tmp_path: Path) -> Any:
    """Validate an example config, pointing any file it names that is absent here
    (TLS certificates, fonts) at a stand-in file; other errors fail."""
    data = copy.deepcopy(data)
    keys = data.get("trust", {}).get("keys", [])
    for i, item in enumerate(keys):
        if isinstance(item, str) and not Path(item).exists():  # a public key file: a real one made here
            from player.trust import new_key_files

            keys[i] = str(new_key_files(tmp_path, Path(item).stem)[1])
    for _ in range(10):
        errors = config_errors(data)
        if not errors:
            return config_from_data(data)
        missing = [m.group(1) for e in errors if (m := NO_SUCH_FILE.match(e))]
        assert missing and len(missing) == len(errors), errors
        for key in missing:
            stand_in = tmp_path / key
            stand_in.write_bytes(b"stand-in")
            set_key(data, key, str(stand_in))
    raise AssertionError("example config still invalid after pointing its files at stand-ins")


# -- config.md --------------------------------------------------------------------------

def test_the_probe_reaches_every_section():
    # A guard on the derivation itself: if the probe stopped entering sub-sections, the
    # key check below would pass on a much smaller set.
    assert {"", "panel", "panel.location", "display", "display.led", "mqtt", "mqtt.tls", "sensors.light",
            "sensors.door", "brightness.night", "brightness.actuator"} <= set(SECTIONS)
    assert len(ACCEPTED) > 100


def test_every_accepted_key_is_documented_and_only_those():
    undocumented = sorted(ACCEPTED - set(CONFIG_ROWS))
    unknown = sorted(set(CONFIG_ROWS) - ACCEPTED)
    assert not undocumented, f"keys the player accepts but docs/config.md does not describe: {undocumented}"
    assert not unknown, f"keys docs/config.md describes but the player refuses: {unknown}"


def test_every_key_says_contract_or_extension():
    odd = {key: row["in"] for key, row in CONFIG_ROWS.items() if row["in"] not in ("§2", "§9", "ext")}
    assert not odd


def contract_keys() -> set[str]:
    text = CONTRACT_MD.read_text(encoding="utf-8")
    section = text[text.index("## 2."):]
    block = fenced(section, "yaml")[0][1]

    def flatten(data: dict[str, Any], path: str) -> Iterator[str]:
        for key, value in data.items():
            full = f"{path}.{key}" if path else key
            yield full
            if isinstance(value, dict):
                yield from flatten(value, full)

    keys = set(flatten(yaml.safe_load(block), ""))
    # Keys listed in a comment ("# username, password_file, tls (ca_file, …)") under a section.
    section_name = ""
    for line in block.splitlines():
        if re.match(r"[a-z_]+:", line):
            section_name = line.split(":")[0]
        elif line.strip().startswith("#"):
            for word in re.findall(r"[a-z_]+", line):
                keys |= {k for k in ACCEPTED if k.startswith(f"{section_name}.") and k.rsplit(".", 1)[-1] == word}
    return keys


@pytest.mark.skipif(not CONTRACT_MD.is_file(), reason="the contract is not next to this checkout")
def test_contract_keys_are_marked_and_only_those():
    marked = {key for key, row in CONFIG_ROWS.items() if row["in"] == "§2"}
    expected = contract_keys()
    assert "mqtt.tls.key_file" in expected and "panel.location.lat" in expected
    assert marked == expected, (f"marked §2 but not in the contract: {sorted(marked - expected)}; "
                                f"in the contract but not marked: {sorted(expected - marked)}")


def valid_examples() -> list[str]:
    """The YAML blocks of docs/config.md, but for the one shown as invalid."""
    return [body for at, body in fenced(CONFIG_TEXT, "yaml")
            if "<!-- invalid example" not in CONFIG_TEXT[max(0, at - 200):at]]


def test_the_complete_examples_load(tmp_path):
    blocks = valid_examples()
    assert len(blocks) >= 2
    for body in blocks:
        data = yaml.safe_load(body)
        cfg = load_example(data if "panel" in data else merged(BASE_CONFIG, data), tmp_path)
        assert cfg.panel.id


def test_the_first_example_covers_every_section():
    data = yaml.safe_load(valid_examples()[0])
    assert set(data) == {k for k in ACCEPTED if "." not in k}


def test_the_led_matrix_example_gets_its_size_from_the_led_options(tmp_path):
    examples = [yaml.safe_load(body) for body in valid_examples()]
    led = [e for e in examples if e.get("display", {}).get("output") == "ledmatrix"][0]
    cfg = load_example(led, tmp_path)
    d = cfg.display.led
    assert cfg.display.size == (d.cols * d.chain_length, d.rows * d.parallel) == (128, 32)


def test_the_invalid_example_reports_exactly_the_documented_errors():
    marker = CONFIG_TEXT.index("<!-- invalid example")
    body = fenced(CONFIG_TEXT[marker:], "yaml")[0][1]
    shown = fenced(CONFIG_TEXT[marker:], "text")[0][1].splitlines()
    errors = config_errors(yaml.safe_load(body))
    assert shown[0].startswith("$ panel-player check --config ")
    assert shown[1].endswith(f": {len(errors)} errors")
    assert [line.strip() for line in shown[2:]] == errors


def plain(value: Any) -> Any:
    """A config value in the shape YAML gives it."""
    if isinstance(value, Path) or isinstance(value, TimeWindow):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value


_UNRESOLVED = object()


def resolve(obj: Any, key: str) -> Any:
    """The loaded value for a dotted key, or ``_UNRESOLVED`` when the objects are shaped
    differently (``sensors.cpu_temp.file`` is ``sensors.cpu_temp_file``) or the part is off."""
    parts = key.split(".")
    for i, part in enumerate(parts):
        if obj is None or not is_dataclass(obj):
            return _UNRESOLVED
        names = {f.name for f in fields(obj)}
        if part in names:
            obj = getattr(obj, part)
        elif "_".join(parts[i:]) in names:
            return getattr(obj, "_".join(parts[i:]))
        else:
            return _UNRESOLVED
    return obj


def documented_default(row: dict[str, str]) -> Any:
    m = re.fullmatch(r"`([^`]*)`", row["default"])
    return _UNRESOLVED if m is None else yaml.safe_load(m.group(1))


def test_documented_defaults_are_the_code_defaults():
    cfg = config_from_data(copy.deepcopy(BASE_CONFIG))
    wrong, checked = [], 0
    for key, row in CONFIG_ROWS.items():
        doc = documented_default(row)
        value = resolve(cfg, key)
        if doc is _UNRESOLVED or value is _UNRESOLVED or is_dataclass(value):
            continue
        checked += 1
        if plain(value) != doc:
            wrong.append(f"{key}: documented {row['default']}, the code uses {plain(value)!r}")
    assert not wrong
    assert checked >= 60


def range_mismatches(rows: dict[str, dict[str, str]], errors_for: Callable[[str, Any], list[str]]) -> tuple[list[str], int]:
    """Try each ``a to b`` range on the validator: both ends pass, just outside fails."""
    wrong, checked = [], 0
    for key, row in rows.items():
        m = RANGE.fullmatch(row["allowed"])
        if m is None or row["type"] not in ("integer", "number"):
            continue
        checked += 1
        as_int = row["type"] == "integer"
        low, high = (int(g) if as_int else float(g) for g in m.groups())
        step = 1 if as_int else 0.001
        for value, ok in ((low, True), (high, True), (low - step, False), (high + step, False)):
            if bool(errors_for(key, value)) == ok:
                wrong.append(f"{key}={value!r}: {'refused' if ok else 'accepted'} (documented {row['allowed']})")
        middle = (low + high) / 2
        if as_int and not errors_for(key, int(middle) + 0.5):
            wrong.append(f"{key}: documented integer, accepts {int(middle) + 0.5}")
        if not as_int and errors_for(key, middle):
            wrong.append(f"{key}: documented number, refuses {middle}")
    return wrong, checked


def choice_mismatches(rows: dict[str, dict[str, str]], errors_for: Callable[[str, Any], list[str]]) -> tuple[list[str], int]:
    """Each documented choice passes, anything else fails, and a listed set is the code's."""
    wrong, checked = [], 0
    for key, row in rows.items():
        if CHOICES.fullmatch(row["allowed"]) is None:
            continue
        checked += 1
        choices = [yaml.safe_load(t) for t in re.findall(r"`([^`]+)`", row["allowed"])]
        for choice in choices:
            if errors_for(key, choice):
                wrong.append(f"{key}: documented choice {choice!r} refused: {errors_for(key, choice)}")
        refused = errors_for(key, BOGUS)
        if not refused:
            wrong.append(f"{key}: accepts {BOGUS!r}")
        listed = re.search(r"expected one of (.*), got", refused[0]) if refused else None
        if listed and set(listed.group(1).split(", ")) != set(choices):
            wrong.append(f"{key}: documented {choices}, the code allows {listed.group(1)}")
    return wrong, checked


def test_documented_ranges_are_the_code_ranges():
    wrong, checked = range_mismatches(CONFIG_ROWS, config_errors_for)
    assert not wrong
    assert checked >= 40


def test_documented_choices_are_the_code_choices():
    wrong, checked = choice_mismatches(CONFIG_ROWS, config_errors_for)
    assert not wrong
    assert checked >= 15


def test_the_builtin_layouts_are_the_ones_listed():
    builtins = set(builtin_layouts())
    for text in (CONFIG_TEXT, LAYOUTS_TEXT):
        listed = [t for t in tables(text) if t.header[0] == "layout"]
        assert len(listed) == 1
        assert {listed[0].first(row) for row in listed[0].rows} == builtins


# -- layouts.md -------------------------------------------------------------------------

def layout_tables() -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    found = {t.heading: {t.first(r): r for r in t.rows} for t in tables(LAYOUTS_TEXT) if t.header[0] == "key"}
    return found["Layout keys"], found["Zone keys"]


def test_every_layout_and_zone_key_is_documented_and_only_those():
    layout_keys, zone_keys = accepted_layout_keys()
    documented_layout, documented_zone = layout_tables()
    assert set(documented_layout) == layout_keys
    assert set(documented_zone) == zone_keys


def test_every_role_is_described():
    roles = [t for t in tables(LAYOUTS_TEXT) if t.header[0] == "role"][0]
    assert {roles.first(r) for r in roles.rows} == set(ROLES)


def test_layout_defaults_ranges_and_choices_match_the_code():
    layout_rows, zone_rows = layout_tables()
    layout = layout_from_data(copy.deepcopy(BASE_LAYOUT))
    wrong, checked = [], 0
    for rows, obj in ((layout_rows, layout), (zone_rows, layout.zones[0])):
        for key, row in rows.items():
            doc = documented_default(row)
            if doc is _UNRESOLVED:
                continue
            checked += 1
            value = getattr(obj, key)
            expected = parse_color(doc) if row["type"] == "colour" else doc
            if value != expected:
                wrong.append(f"{key}: documented {row['default']}, the code uses {value!r}")
    assert not wrong and checked >= 8
    for rows, zone in ((layout_rows, False), (zone_rows, True)):
        for check in (range_mismatches, choice_mismatches):
            found, n = check(rows, lambda key, value, zone=zone: layout_errors_for(key, value, zone))
            wrong += found
            checked += n
    assert not wrong
    assert checked >= 15


def test_the_documented_landscape_layout_is_the_builtin_one():
    shown = yaml.safe_load(fenced(LAYOUTS_TEXT, "yaml")[0][1])
    assert shown == yaml.safe_load(builtin_layouts()["landscape"].read_text(encoding="utf-8"))


def test_the_custom_layout_example_loads_and_a_config_can_name_it_by_path(tmp_path):
    blocks = [yaml.safe_load(body) for _, body in fenced(LAYOUTS_TEXT, "yaml")]
    custom = [b for b in blocks if "zones" in b and b["name"] not in builtin_layouts()]
    assert len(custom) == 1
    layout = layout_from_data(custom[0])
    assert layout.main is not None and layout.zone("text") is not None and layout.zone("text").text

    fragment = [b for b in blocks if "display" in b][0]
    documented_path = fragment["display"]["layout"]
    assert documented_path.startswith("/") and documented_path.endswith(".yaml")
    path = tmp_path / Path(documented_path).name
    path.write_text(yaml.safe_dump(custom[0], allow_unicode=True), encoding="utf-8")
    set_key(fragment, "display.layout", str(path))
    cfg = load_example(merged(BASE_CONFIG, fragment), tmp_path)
    assert cfg.layout() == layout
