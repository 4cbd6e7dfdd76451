"""panel-player: firmware for LED and LCD street information panels."""

__version__ = "0.1.0"
