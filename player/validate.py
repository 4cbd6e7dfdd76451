"""Validation helpers that collect every problem at once, each with its key path.

Config files, layouts, playlists and alerts all come from outside; the user
fixing one wants the whole list of what is wrong, not the first item of it.

Example::

    problems = Problems()
    root = Node({"mqtt": {"port": "abc"}}, "", problems)
    mqtt = root.section("mqtt", {"host", "port"})
    port = mqtt.integer("port", default=1883, minimum=1, maximum=65535)
    problems.errors   # ['mqtt.port: expected an integer, got "abc"']
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")


class _Missing:
    def __repr__(self) -> str:
        return "<required>"


REQUIRED: Any = _Missing()


def describe(value: Any) -> str:
    """A short, safe rendering of a bad value for an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:57] + '…"'
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _num(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean "x"?)`` when a close match exists, else an empty string."""
    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f' (did you mean "{match[0]}"?)' if match else ""


class Problems:
    """Accumulates error messages."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}" if path else message)

    def __bool__(self) -> bool:
        return bool(self.errors)


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Node:
    """A value at a key path; typed getters record problems instead of raising.

    Getters return the default (or ``None`` for a required key) when the value
    is missing or wrong, so validation of the other keys goes on.
    """

    __slots__ = ("value", "problems", "_path", "_parent", "_key")

    def __init__(self, value: Any, path: str, problems: Problems) -> None:
        self.value = value
        self.problems = problems
        self._path: str | None = path
        self._parent: Node | None = None
        self._key: str | int = ""

    @classmethod
    def _under(cls, parent: Node, key: str | int, value: Any) -> Node:
        # The key path is spelled out only when a message needs it: valid input, the
        # common case, is read without building a string per value.
        node = cls.__new__(cls)
        node.value, node.problems = value, parent.problems
        node._path, node._parent, node._key = None, parent, key
        return node

    @property
    def path(self) -> str:
        """The key path, e.g. ``slides[2].style.color`` (``""`` for the root)."""
        if self._path is None:
            assert self._parent is not None
            self._path = join(self._parent.path, self._key)
        return self._path

    # -- structure -----------------------------------------------------
    def is_mapping(self, allowed: Iterable[str] | None = None) -> bool:
        """Check that the value is a mapping with only ``allowed`` keys."""
        if not isinstance(self.value, dict):
            self.problems.add(self.path, f"expected a mapping, got {describe(self.value)}")
            return False
        if allowed is not None:
            allowed = set(allowed)
            for key in self.value:
                if not isinstance(key, str):
                    self.problems.add(self.path, f"keys must be strings, got {describe(key)}")
                elif key not in allowed:
                    self.problems.add(join(self.path, key), "unknown key" + did_you_mean(key, allowed))
        return True

    def has(self, key: str) -> bool:
        return isinstance(self.value, dict) and key in self.value and self.value[key] is not None

    def child(self, key: str | int) -> Node:
        value = None
        if isinstance(key, int) and isinstance(self.value, list) and 0 <= key < len(self.value):
            value = self.value[key]
        elif isinstance(key, str) and isinstance(self.value, dict):
            value = self.value.get(key)
        return Node._under(self, key, value)

    def section(self, key: str, allowed: Iterable[str] | None, required: bool = False) -> Node:
        """A nested mapping; an absent optional section reads as an empty one."""
        node = self.child(key)
        if node.value is None:
            if required:
                self.problems.add(node.path, "required")
            node.value = {}
            return node
        if not node.is_mapping(allowed):
            node.value = {}
        return node

    def _get(self, key: str, default: Any) -> tuple[bool, Any]:
        if isinstance(self.value, dict) and key in self.value and self.value[key] is not None:
            return True, self.value[key]
        if default is REQUIRED:
            self.problems.add(join(self.path, key), "required")
        return False, None if default is REQUIRED else default

    def _bad(self, key: str, expected: str, value: Any) -> None:
        self.problems.add(join(self.path, key), f"expected {expected}, got {describe(value)}")

    # -- scalars -------------------------------------------------------
    def string(
        self,
        key: str,
        default: Any = REQUIRED,
        *,
        pattern: str | None = None,
        choices: Iterable[str] | None = None,
        max_length: int | None = None,
        allow_empty: bool = False,
    ) -> Any:
        found, value = self._get(key, default)
        if not found:
            return value
        if not isinstance(value, str):
            self._bad(key, "a string", value)
            return None if default is REQUIRED else default
        if not value and not allow_empty:
            self.problems.add(join(self.path, key), "must not be empty")
            return None if default is REQUIRED else default
        if max_length is not None and len(value) > max_length:
            self.problems.add(join(self.path, key), f"too long ({len(value)} characters, at most {max_length})")
            return None if default is REQUIRED else default
        if choices is not None:
            options = list(choices)
            if value not in options:
                self.problems.add(
                    join(self.path, key),
                    f"expected one of {', '.join(options)}, got {describe(value)}" + did_you_mean(value, options),
                )
                return None if default is REQUIRED else default
        if pattern is not None and not re.fullmatch(pattern, value):
            self.problems.add(join(self.path, key), f"{describe(value)} does not match {pattern}")
            return None if default is REQUIRED else default
        return value

    def integer(self, key: str, default: Any = REQUIRED, *, minimum: int | None = None,
                maximum: int | None = None) -> Any:
        found, value = self._get(key, default)
        if not found:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            self._bad(key, "an integer", value)
            return None if default is REQUIRED else default
        return self._range(key, value, default, minimum, maximum)

    def number(self, key: str, default: Any = REQUIRED, *, minimum: float | None = None,
               maximum: float | None = None, exclusive_minimum: bool = False) -> Any:
        found, value = self._get(key, default)
        if not found:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self._bad(key, "a number", value)
            return None if default is REQUIRED else default
        if exclusive_minimum and minimum is not None and value <= minimum:
            self.problems.add(join(self.path, key), f"must be greater than {_num(minimum)}, got {describe(value)}")
            return None if default is REQUIRED else default
        return self._range(key, value, default, minimum, maximum)

    def _range(self, key: str, value: Any, default: Any, minimum: float | None, maximum: float | None) -> Any:
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            low = "" if minimum is None else _num(minimum)
            high = "" if maximum is None else _num(maximum)
            if minimum is not None and maximum is not None:
                span = f"between {low} and {high}"
            elif minimum is not None:
                span = f"at least {low}"
            else:
                span = f"at most {high}"
            self.problems.add(join(self.path, key), f"must be {span}, got {describe(value)}")
            return None if default is REQUIRED else default
        return value

    def boolean(self, key: str, default: Any = REQUIRED) -> Any:
        found, value = self._get(key, default)
        if not found:
            return value
        if not isinstance(value, bool):
            self._bad(key, "true or false", value)
            return None if default is REQUIRED else default
        return value

    def items(self, key: str, default: Any = REQUIRED, *, min_items: int = 0,
              max_items: int | None = None) -> list[Node] | None:
        """The elements of a list, as nodes; ``None`` when absent or wrong."""
        found, value = self._get(key, default)
        if not found:
            if value is None:
                return None
            where = self.child(key)
            return [Node._under(where, i, v) for i, v in enumerate(value)]
        if not isinstance(value, list):
            self._bad(key, "a list", value)
            return None
        if len(value) < min_items:
            self.problems.add(join(self.path, key), f"needs at least {min_items} item{'s' if min_items > 1 else ''}")
            return None
        if max_items is not None and len(value) > max_items:
            self.problems.add(join(self.path, key), f"too many items ({len(value)}, at most {max_items})")
            return None
        where = self.child(key)
        return [Node._under(where, i, v) for i, v in enumerate(value)]

    # -- the node's own value (for list elements) ------------------------
    def as_string(self, *, pattern: str | None = None, max_length: int | None = None) -> str | None:
        wrapper = Node({"v": self.value}, "", self.problems)
        problems_before = len(self.problems.errors)
        result = wrapper.string("v", pattern=pattern, max_length=max_length)
        # Re-label the messages with this node's own path.
        for i in range(problems_before, len(self.problems.errors)):
            self.problems.errors[i] = self.path + self.problems.errors[i][1:]
        return result
