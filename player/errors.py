"""One tree of errors for the whole player.

Each class also inherits the matching built-in, so callers that only know
``ValueError`` or ``OSError`` still catch them.
"""

from __future__ import annotations


class PanelError(Exception):
    """Base of every error raised by panel-player."""


class ValidationError(PanelError, ValueError):
    """Input (config, layout, playlist, alert, command) failed validation.

    ``errors`` lists every problem found, each naming its key path, e.g.
    ``mqtt.port: expected an integer, got "abc"``.
    """

    def __init__(self, errors: list[str], what: str = "input") -> None:
        self.errors = list(errors)
        self.what = what
        super().__init__(f"invalid {what}: " + "; ".join(self.errors))


class ConfigError(ValidationError):
    """The config file (or a layout it names) is invalid."""

    def __init__(self, errors: list[str], what: str = "config") -> None:
        super().__init__(errors, what)


class ContentError(ValidationError):
    """A playlist, slide or alert message is invalid."""

    def __init__(self, errors: list[str], what: str = "content") -> None:
        super().__init__(errors, what)


class AssetError(PanelError, OSError):
    """An asset is missing, corrupt, too large or does not match its hash."""


class StateError(PanelError, OSError):
    """The state folder cannot be created or written."""


class OutputError(PanelError, RuntimeError):
    """A display output failed."""


class DisplayUnavailable(OutputError):
    """The display device is absent (yet): retry later."""


class MissingDependency(PanelError, ImportError):
    """An optional library needed by the chosen configuration is not installed."""


class SensorError(PanelError, RuntimeError):
    """A sensor could not be read."""
