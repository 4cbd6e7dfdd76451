"""``panelctl push``: validate a playlist file, upload its images, publish it, wait for the panels.

The file is YAML or JSON, validated with the panel's own code
(:func:`player.content.playlist_from_data`). Two conveniences exist only here:

- an image slide may give ``file: affiche.png`` (relative to the playlist file)
  instead of ``asset``: panelctl computes the sha256, writes ``asset:
  sha256:…`` and, unless the slide also gives a ``url``, uploads the bytes
  retained to ``P/assets/SHA`` when the broker does not hold them yet;
- ``version`` may be left out: it becomes the current Unix time in seconds, so
  every push is newer than the last.

Example::

    prepared = prepare_playlist(load_document(Path("hiver.yaml")), Path("."), max_asset_bytes=2 << 20,
                                max_message_bytes=1 << 20)
    prepared.playlist.id, sorted(prepared.uploads)
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from ..config import known_layouts
from ..content import Playlist, playlist_from_data
from ..errors import ContentError
from ..net.topics import Topics
from .client import CtlClient, CtlError
from .signing import Signer, seal
from .status import format_table, note_panels, read_fleet
from .track import Answer, Progress, Tracker, awaited

PLACEHOLDER_SHA = "sha256:" + "0" * 64


@dataclass(frozen=True)
class Prepared:
    """A validated playlist, its wire bytes, and the assets to upload (``{sha hex: path}``)."""

    playlist: Playlist
    payload: bytes
    uploads: dict[str, Path]


def load_document(path: Path) -> Any:
    """Read a YAML or JSON file (JSON is YAML, but ``.json`` files get JSON's own messages)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContentError([f"cannot read {path}: {exc.strerror or exc}"], "playlist file") from None
    except UnicodeDecodeError as exc:
        raise ContentError([f"{path} is not UTF-8 text (byte {exc.start})"], "playlist file") from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ContentError([f"{path} is not valid JSON: {exc}"], "playlist file") from None
    except yaml.YAMLError as exc:
        raise ContentError([f"{path} is not valid YAML: {exc}"], "playlist file") from None


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def check_image(path: Path) -> str | None:
    """Why Pillow cannot read ``path`` as an image, or ``None`` when it can."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"not an image the panel can show ({exc})"
    return None


def _file_asset(slide: dict[str, Any], where: str, base: Path, max_asset_bytes: int,
                uploads: dict[str, Path], errors: list[str]) -> None:
    """Replace a slide's ``file`` by its ``asset``; record the upload or the problem."""
    raw = slide.pop("file")
    slide.setdefault("type", "image")
    if slide.get("type") != "image":
        errors.append(f"{where}.file: only image slides take a file")
        return
    if "asset" in slide:
        errors.append(f"{where}.file: give either file or asset, not both")
        return
    slide["asset"] = PLACEHOLDER_SHA  # keeps the validator from also reporting a missing asset
    if not isinstance(raw, str) or not raw:
        errors.append(f"{where}.file: expected a file path")
        return
    path = (base / Path(raw).expanduser())
    try:
        data = path.read_bytes()
    except OSError as exc:
        errors.append(f"{where}.file: cannot read {path}: {exc.strerror or exc}")
        return
    problem = check_image(path)
    if problem:
        errors.append(f"{where}.file: {path}: {problem}")
        return
    sha = hashlib.sha256(data).hexdigest()
    slide["asset"] = f"sha256:{sha}"
    if slide.get("url"):
        return  # the panel downloads it from the url; nothing goes through the broker
    if len(data) > max_asset_bytes:
        errors.append(f"{where}.file: {path} is {_size(len(data))}, above the {_size(max_asset_bytes)} an "
                      "asset may have over MQTT (the broker's packet limit); put it on a web server and "
                      "give its address as url (https://…) next to file")
        return
    uploads[sha] = path


def prepare_playlist(data: Any, base: Path, *, max_asset_bytes: int, max_message_bytes: int,
                     now: float | None = None) -> Prepared:
    """Resolve ``file`` and a missing ``version``, then validate; :class:`ContentError` lists every problem."""
    errors: list[str] = []
    uploads: dict[str, Path] = {}
    if isinstance(data, dict):
        data = dict(data)
        if data.get("version") is None:
            data["version"] = int(now if now is not None else time.time())
        slides = data.get("slides")
        if isinstance(slides, list):
            data["slides"] = slides = [dict(s) if isinstance(s, dict) else s for s in slides]
            for i, slide in enumerate(slides):
                if isinstance(slide, dict) and "file" in slide:
                    _file_asset(slide, f"slides[{i}]", base, max_asset_bytes, uploads, errors)
    try:
        playlist = playlist_from_data(data, layouts=known_layouts())
    except ContentError as exc:
        raise ContentError(errors + exc.errors, "playlist") from None
    if errors:
        raise ContentError(errors, "playlist")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(payload) > max_message_bytes:
        raise ContentError([f"the playlist is {_size(len(payload))} as JSON, above the panels' limit of "
                            f"{_size(max_message_bytes)} (mqtt.max_message_kb)"], "playlist")
    return Prepared(playlist, payload, uploads)


def upload_assets(client: CtlClient, topics: Topics, uploads: dict[str, Path], max_asset_bytes: int,
                  err: IO[str]) -> None:
    """Publish each asset retained unless the broker already holds exactly those bytes."""
    limit = client.payload_limit(max_asset_bytes)
    for sha, path in sorted(uploads.items()):
        data = path.read_bytes()
        if len(data) > limit:
            raise ContentError([f"{path} is {_size(len(data))}, above the broker's packet limit "
                                f"({_size(limit)} for a payload); give the slide a url instead"], "playlist")
        topic = topics.asset(sha)
        held = client.retained([topic], keep=False).get(topic)
        if held is not None and hashlib.sha256(held).hexdigest() == sha:
            err.write(f"asset {path.name} (sha256:{sha[:12]}…) is already on the broker\n")
            continue
        err.write(f"uploading {path.name} ({_size(len(data))}) to {topic}\n")
        client.publish(topic, data, retain=True, timeout=120)


def push(client: CtlClient, prefix: str, prepared: Prepared, *, panels: list[str], groups: list[str],
         timeout: float, wait: bool, max_asset_bytes: int, out: IO[str], err: IO[str],
         signer: Signer | None = None, max_message_bytes: int | None = None) -> int:
    """Upload, publish (signed when ``signer`` is given) and (with ``wait``) report the
    panels' answers; returns the exit status."""
    topics = Topics(prefix)
    pl = prepared.playlist
    targets = [topics.panel_playlist_of(p) for p in panels] + [topics.group_playlist(g) for g in groups]
    sealed = {topic: seal(signer, topic, prepared.payload) for topic in targets}
    for topic, data in sealed.items():
        if max_message_bytes is not None and len(data) > max_message_bytes:
            raise ContentError([f"{topic}: {len(data)} bytes once signed, above the panels' mqtt.max_message_kb "
                                f"({max_message_bytes // 1024} KiB)"], "playlist")
    upload_assets(client, topics, prepared.uploads, max_asset_bytes, err)
    fleet = read_fleet(client, prefix, err) if wait else {}
    expected, possible = awaited(fleet, panels, groups)
    ready: dict[str, Answer] = {}
    for pid in sorted(expected | possible):
        shown = ((fleet[pid].heartbeat or {}).get("playlist") if pid in fleet else None) or {}
        version = shown.get("version")
        if shown.get("id") == pl.id and isinstance(version, int) and version >= pl.version:
            word = "unchanged" if version == pl.version else "ignored"
            ready[pid] = Answer(word, f"already shows {pl.id}@{version}; a version not greater is ignored", 0.0)

    def match(pid: str, event: dict[str, Any]) -> tuple[str, str] | None:
        kind = event.get("type")
        if kind == "playlist.applied" and event.get("playlist") == pl.id and event.get("version") == pl.version:
            return ("applied", "")
        if kind == "playlist.rejected":
            reason = str(event.get("reason", ""))
            same = event.get("playlist") == pl.id and event.get("version") in (None, pl.version)
            if same or (event.get("playlist") is None and any(t in reason for t in targets)):
                return ("rejected", reason)
        return None

    tracker = Tracker(client, prefix, expected=expected, possible=possible, match=match, success="applied",
                      progress=Progress(err))
    tracker.answers.update(ready)
    if wait:
        tracker.start()
    for topic in targets:
        client.publish(topic, sealed[topic], retain=True)
        err.write(f"published {pl.id}@{pl.version} to {topic} (retained"
                  + (f", signed by {signer.kid}" if signer else "") + ")\n")
    if not wait:
        return 0
    if not expected and not possible:
        out.write("no panel to wait for: none of the targets is online now; the playlist is retained "
                  "and applies when they connect\n")
        return 0
    answers = tracker.wait(timeout)
    note_panels(client, prefix, set(answers) - set(fleet), err)
    return report(answers, expected, possible, out)


def report(answers: dict[str, Answer], expected: set[str], possible: set[str], out: IO[str]) -> int:
    """The summary table; 1 when a panel rejected, was ignored, or an expected one did not answer."""
    rows = []
    failed = False
    for pid in sorted(set(answers) | expected | possible):
        a = answers.get(pid)
        if a is None:
            if pid in expected:
                failed = True
                rows.append([pid, "no answer", "offline, busy, or hidden by a higher-precedence playlist"])
            else:
                rows.append([pid, "no answer", "group membership unknown (its heartbeat has no groups)"])
            continue
        failed = failed or a.outcome in ("rejected", "ignored")
        detail = a.detail or f"after {a.after_s:.2f} s"
        rows.append([pid, a.outcome, detail])
    out.write(format_table(("PANEL", "RESULT", "DETAIL"), rows) + "\n")
    return 1 if failed else 0


__all__ = ["Prepared", "load_document", "prepare_playlist", "push", "report", "upload_assets", "CtlError"]
