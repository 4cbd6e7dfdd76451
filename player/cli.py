"""``panel-player``: run, check, demo (CONTRACT §1).

Exit status: 0 on a clean stop; 2 for an invalid config (every error listed,
each naming its key) or one that cannot run on this machine (``display.output:
ledmatrix`` without the ``rgbmatrix`` module), which the shipped unit does not
restart (``RestartPreventExitStatus=2``): under systemd ``run`` shows those errors
on the panel instead, and exits 75 once they are fixed; 75 also after the
``restart`` command (systemd restarts us).
"""

from __future__ import annotations

import argparse
import logging
import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # keep pygame's banner out of our output
import signal
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from . import __version__
from .errors import ConfigError, PanelError
from .inbox import Inbox

EXIT_INVALID = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="panel-player", description="Firmware of LED and LCD street information panels.")
    parser.add_argument("--version", action="version", version=f"panel-player {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run the player until SIGTERM/SIGINT")
    run.add_argument("--config", required=True, type=Path, help="the panel's YAML config")
    check = sub.add_parser("check", help="validate the config and the layout it names (--preflight: and this machine)")
    check.add_argument("--config", required=True, type=Path)
    from .preflight import add_preflight_arguments

    add_preflight_arguments(check)
    demo = sub.add_parser("demo", help="play the bundled demo content (a window on a desktop, else a PNG file)")
    demo.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    demo.add_argument("--output", choices=("sdl", "png"), default=None,
                      help="default: sdl when a desktop is present, else png")
    demo.add_argument("--png", type=Path, default=Path(tempfile.gettempdir()) / "panel-player-demo.png",
                      help="where the png output writes the picture")
    demo.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT (default 1280x720)")
    demo.add_argument("--layout", default="landscape")
    from .firstboot import add_firstboot_parser
    from .provision import add_provision_parser
    from .testcard_cmd import add_testcard_parser

    add_testcard_parser(sub)

    add_provision_parser(sub)
    add_firstboot_parser(sub)
    from .updater import add_update_run_parser

    add_update_run_parser(sub)
    return parser


def setup_logging(level: str = "info") -> None:
    """Log to stderr: journald's priority prefixes and no timestamp when stderr is the journal
    (``$JOURNAL_STREAM``), else a timestamp on each line (see :mod:`player.hw.journal`)."""
    from .hw.journal import stderr_formatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(stderr_formatter(sys.stderr.fileno()))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])


def _print_errors(errors: list[str]) -> None:
    for err in errors:
        print(textwrap.indent(err, "  "), file=sys.stderr)


def cmd_check(path: Path) -> int:
    from .boot_errors import config_problems

    cfg, problems = config_problems(path)
    if problems:
        print(f"{path}: {len(problems)} error{'s' if len(problems) > 1 else ''}", file=sys.stderr)
        _print_errors(problems)
        return EXIT_INVALID
    print(f"{path}: valid (panel {cfg.panel.id}, output {cfg.display.output}, layout {cfg.display.layout})")
    for warning in cfg.warnings:
        print(f"  warning: {warning}")
    return 0


def run_player(cfg_path: Path | None, cfg: object | None = None, seconds: float | None = None) -> int:
    from .app import Player
    from .config import Config

    boot = None
    if cfg is None:
        assert cfg_path is not None
        from .boot_errors import config_problems, output_hint_from_file, show_config_errors, under_systemd
        from .firstboot import BOOT_DIR_ENV, REJECTED_SUFFIX, maybe_import_at_start

        service = under_systemd()
        if service or os.environ.get(BOOT_DIR_ENV):
            boot = maybe_import_at_start(cfg_path)
        # Checked before anything is opened: the config's errors, then a missing LED driver.
        cfg, problems = config_problems(cfg_path)
        if problems:
            print(f"{cfg_path}: {'invalid config' if cfg is None else 'cannot run on this machine'}",
                  file=sys.stderr)
            _print_errors(problems)
            if not service:
                return EXIT_INVALID
            # Under systemd: show the errors on the panel instead of restart-looping dark.
            setup_logging()
            errors = problems
            hint = output_hint_from_file(cfg_path)
            if boot is not None and boot.errors:
                errors = [f"panel-player.yaml: {e}" for e in boot.errors] + errors
                hint = hint or output_hint_from_file(Path(boot.source + REJECTED_SUFFIX))
            from pygame import error as PygameError

            # 0 after SIGTERM; 75 once the config can run: systemd starts the player again.
            try:
                return show_config_errors(errors, hint=hint, watch=cfg_path)
            except (PanelError, OSError, PygameError) as exc:  # not even a PNG file could be written
                logging.getLogger("panel-player").error("cannot show the errors: %s", exc)
                return EXIT_INVALID
    assert isinstance(cfg, Config)
    setup_logging(cfg.log_level)
    if boot is not None and boot.errors and not boot.installed and _recent(boot.at, 600):
        # A fresh refusal is shown for a while, for the installer still at the panel;
        # at later restarts the panel goes straight to its content.
        from .boot_errors import output_hint_from_config, show_rejected_boot_file

        if not show_rejected_boot_file(boot.errors, hint=output_hint_from_config(cfg)):
            return 0  # stopped while the refusal was on screen
    try:
        player = Player(cfg)
    except PanelError as exc:
        logging.getLogger("panel-player").error("cannot start: %s", exc)
        if isinstance(exc, ConfigError) and cfg_path is not None:
            from .boot_errors import output_hint_from_config, show_config_errors, under_systemd

            if under_systemd():  # exit 2 is not restarted by the unit: show it rather than go dark
                return show_config_errors(list(exc.errors), hint=output_hint_from_config(cfg), watch=cfg_path)
        return EXIT_INVALID if isinstance(exc, ConfigError) else 1

    install_stop_signals(player.inbox)
    if seconds is not None:
        import threading

        timer = threading.Timer(seconds, lambda: player.stop(0, f"demo time of {seconds:g} s is up"))
        timer.daemon = True
        timer.start()
    return player.run()


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_stop_signals(inbox: Inbox) -> None:
    """SIGTERM and SIGINT end the loop that waits on ``inbox`` (exit status 0).

    The handler only records the signal and wakes the loop (:meth:`Inbox.post_signal`):
    a handler runs in the main thread between any two bytecodes, so one that took a
    lock the loop may hold (``queue.Queue.put``) or logged would deadlock it.
    """

    def on_signal(signum: int, _frame: object) -> None:
        inbox.post_signal(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)


def _recent(iso: str, seconds: float) -> bool:
    from datetime import datetime, timezone

    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return 0 <= (datetime.now(timezone.utc) - when).total_seconds() < seconds


def cmd_demo(args: argparse.Namespace) -> int:
    from .config import config_from_data

    output = args.output or ("sdl" if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") else "png")
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"--size: expected WIDTHxHEIGHT, got {args.size!r}", file=sys.stderr)
        return EXIT_INVALID
    state = Path(tempfile.gettempdir()) / "panel-player-demo-state"
    data = {
        "panel": {"id": "demo", "timezone": "Europe/Paris", "name": "Démonstration"},
        "display": {"output": output, "size": [width, height], "path": str(args.png), "layout": args.layout},
        "mqtt": {"enabled": False},
        "state_dir": str(state),
        # A desktop preview: the picture as it is drawn, not dimmed for the night street.
        "brightness": {"fallback": {"day": 100, "night": 100}},
    }
    try:
        cfg = config_from_data(data)
    except ConfigError as exc:
        for err in exc.errors:
            print(err, file=sys.stderr)
        return EXIT_INVALID
    if output == "png":
        print(f"No desktop found: running headless. The panel's picture is written to {args.png}\n"
              f"(open it with an image viewer; it is replaced whenever the picture changes). Ctrl-C stops.",
              flush=True)
    else:
        print("Opening a window with the demo content. Close it or press Ctrl-C to stop.", flush=True)
    started = time.monotonic()
    code = run_player(None, cfg, args.seconds)
    if output == "png" and code == 0:
        print(f"Stopped after {time.monotonic() - started:.0f} s. Last picture: {args.png}")
    return code


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["--version"]:
        print(f"panel-player {__version__}")  # answered before the sub-commands import their libraries
        return 0
    args = _parser().parse_args(argv)
    if args.command in ("run", "demo", "testcard"):
        from .memory import tune_allocator

        tune_allocator()  # before any picture is decoded
    if args.command == "check":
        if args.preflight:
            from .preflight import cmd_preflight

            return cmd_preflight(args.config, timeout=args.timeout)
        return cmd_check(args.config)
    if args.command == "run":
        return run_player(args.config)
    if args.command == "demo":
        return cmd_demo(args)
    if hasattr(args, "handler"):
        return int(args.handler(args))
    _parser().print_help()
    return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
