"""Which playlist the panel plays (CONTRACT §3 precedence, §4 apply rules).

Precedence: the panel's own playlist; else the first of its groups, in config
order, that has one; else the last playlist applied (persisted); else the
bundled default content. A candidate is applied only once every asset it
needs is on disk and verified; until then the panel keeps what it shows.

:class:`PlaylistManager` holds no I/O of its own: asset presence is asked of a
callable, and the caller persists what :meth:`PlaylistManager.poll` applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .content import Playlist


@dataclass
class Candidate:
    """A playlist received on a topic and waiting for its assets."""

    playlist: Playlist
    raw: bytes
    source: str  # "panel", "group:<name>", "stored", "bundled"
    since: float  # monotonic time of receipt
    missing: set[str] = field(default_factory=set)
    origin: str = ""  # for a stored playlist: the source it was first applied from

    @property
    def channel(self) -> str:
        return self.origin or self.source


@dataclass(frozen=True)
class Decision:
    """What :meth:`PlaylistManager.poll` decided; the caller acts on each part."""

    apply: Candidate | None = None  # switch to this playlist now (then persist it)
    rejected: tuple[tuple[Candidate, str], ...] = ()  # each with its reason
    fetch: frozenset[str] = frozenset()  # assets to request (url fetch or asset topic)


class PlaylistManager:
    """Tracks the playlists received per source and decides which one applies.

    ``has_asset(sha)`` tells whether an asset is on disk and verified.
    ``asset_wait_s`` bounds how long a candidate waits for its assets.
    """

    def __init__(self, groups: Sequence[str], has_asset: Callable[[str], bool], asset_wait_s: float = 300.0) -> None:
        self.groups = tuple(groups)
        self.has_asset = has_asset
        self.asset_wait_s = asset_wait_s
        self.sources: dict[str, Candidate] = {}  # "panel" / "group:<g>" -> latest valid playlist there
        self.current: Candidate | None = None  # what is on screen
        self.pending: Candidate | None = None  # what will replace it once complete
        self.fallback: Candidate | None = None  # last applied (persisted) or bundled
        self._failed: set[tuple[str, str, int]] = set()  # (source, id, version) given up on

    # -- inputs -----------------------------------------------------------
    def start_with(self, candidate: Candidate) -> None:
        """The content shown from the first second: the stored or bundled playlist."""
        self.current = candidate
        self.fallback = candidate

    def received(self, source: str, playlist: Playlist | None, raw: bytes, now: float) -> None:
        """A valid playlist (or ``None``: cleared) arrived on ``source``."""
        if playlist is None:
            self.sources.pop(source, None)
        else:
            self.sources[source] = Candidate(playlist, raw, source, now)

    def wanted(self) -> Candidate | None:
        """The highest-precedence playlist received, or the fallback."""
        if "panel" in self.sources:
            return self.sources["panel"]
        for group in self.groups:
            if f"group:{group}" in self.sources:
                return self.sources[f"group:{group}"]
        return self.fallback

    # -- decisions -----------------------------------------------------------
    def poll(self, now: float) -> Decision:
        """Re-evaluate after any input (message, asset arrival, time-out)."""
        want = self.wanted()
        rejected: list[tuple[Candidate, str]] = []
        if want is None or (self.current is not None and want is self.current):
            self.pending = None
            return Decision()
        if self._same_content(want, self.current):
            self.pending = None
            return Decision()
        cur = self.current
        if (cur is not None and want.source not in ("stored", "bundled") and want.playlist.id == cur.playlist.id
                and want.playlist.version <= cur.playlist.version and want.channel == cur.channel):
            # Same id, version not greater, on the channel it was applied from: ignored (CONTRACT §4).
            self.pending = None
            return Decision()
        key = (want.source, want.playlist.id, want.playlist.version)
        if key in self._failed:
            return Decision()
        if self.pending is not want:
            self.pending = want
            want.since = now
        want.missing = {sha for sha in want.playlist.assets() if not self.has_asset(sha)}
        if not want.missing:
            self.current = want
            self.pending = None
            if want.source not in ("stored", "bundled"):
                # The last applied playlist is the fall-back once every topic is cleared (CONTRACT §3).
                self.fallback = Candidate(want.playlist, want.raw, "stored", now, origin=want.source)
            return Decision(apply=want)
        if now - want.since >= self.asset_wait_s:
            self._failed.add(key)
            reason = (f"assets missing after {self.asset_wait_s:g} s: "
                      + ", ".join(f"sha256:{s}" for s in sorted(want.missing)))
            rejected.append((want, reason))
            self.pending = None
            return Decision(rejected=tuple(rejected))
        return Decision(fetch=frozenset(want.missing))

    def give_up(self, cand: Candidate) -> None:
        """Stop waiting for ``cand`` (an asset of it failed for good); it is not tried again."""
        self._failed.add((cand.source, cand.playlist.id, cand.playlist.version))
        if self.pending is cand:
            self.pending = None

    def asset_deadline(self) -> float | None:
        """When the pending candidate gives up waiting for its assets."""
        return None if self.pending is None else self.pending.since + self.asset_wait_s

    def needed_assets(self) -> frozenset[str]:
        """Every asset still referenced (current, pending, fallback): the rest may be removed."""
        keep: set[str] = set()
        for cand in (self.current, self.pending, self.fallback, *self.sources.values()):
            if cand is not None:
                keep |= cand.playlist.assets()
        return frozenset(keep)

    @staticmethod
    def _same_content(a: Candidate | None, b: Candidate | None) -> bool:
        return a is not None and b is not None and a.raw == b.raw
