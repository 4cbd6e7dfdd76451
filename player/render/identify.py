"""The identify screen (command ``identify``) and the information block it shares with
the test card: panel id, name, firmware version, IP addresses, broker connection.

    view = IdentifyView(PanelInfo("mairie-entree", addresses=tuple(describe_addresses())),
                        until=time.monotonic() + 30)
    renderer.set_overlay(view)        # remove it once view.expired(now)

:func:`local_addresses` reads the addresses of this machine's interfaces without any
network traffic: the interface names from ``/sys/class/net``, each one's IPv4 address
through the ``SIOCGIFADDR`` ioctl on a socket that never sends, and the IPv6 addresses
from ``/proc/net/if_inet6``. Loopback and IPv6 link-local addresses are left out.

When the rows of an information block do not all fit at a readable size, the block
shows them a page at a time, turning every :data:`PAGE_SECONDS`.
"""

from __future__ import annotations

import fcntl
import ipaddress
import math
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pygame

from player import __version__
from player.render.fonts import Color, FontFace, open_face
from player.render.text import TextPainter, last_true

SIOCGIFADDR = 0x8915
SYS_NET = Path("/sys/class/net")
IF_INET6 = Path("/proc/net/if_inet6")
PAGE_SECONDS = 4.0
INFO_MIN_PX = 8
"""Smallest size for information rows; below it the block pages instead of shrinking."""

Row = tuple[str, str]


def local_interfaces(sys_net: Path = SYS_NET, if_inet6: Path = IF_INET6) -> list[tuple[str, str]]:
    """(interface, address) for every non-loopback address, IPv4 first, sorted by name.

    Sends nothing on the network. Unreadable sources are skipped (an empty list on a
    machine with no interface up).
    """
    try:
        names = sorted(p.name for p in sys_net.iterdir())
    except OSError:
        return []
    found: list[tuple[str, str]] = []
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        sock = None
    if sock is not None:
        with sock:
            for name in names:
                try:
                    answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
                except OSError:
                    continue  # down, no IPv4 address, or not an interface
                addr = ipaddress.IPv4Address(answer[20:24])
                if not addr.is_loopback and not addr.is_unspecified:
                    found.append((name, str(addr)))
    try:
        lines = if_inet6.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        lines = []
    v6: list[tuple[str, str]] = []
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[5] not in names:
            continue
        try:
            addr6 = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
        except ValueError:
            continue
        if not (addr6.is_loopback or addr6.is_link_local or addr6.is_unspecified):
            v6.append((fields[5], str(addr6)))
    return found + sorted(v6)


def local_addresses(sys_net: Path = SYS_NET, if_inet6: Path = IF_INET6) -> list[str]:
    """This machine's non-loopback IP addresses (IPv4 first), read without network traffic."""
    return [addr for _, addr in local_interfaces(sys_net, if_inet6)]


def describe_addresses(sys_net: Path = SYS_NET, if_inet6: Path = IF_INET6) -> list[str]:
    """Addresses with their interface, as shown on screen: ``"192.168.1.20 (eth0)"``."""
    return [f"{addr} ({name})" for name, addr in local_interfaces(sys_net, if_inet6)]


@dataclass(frozen=True)
class PanelInfo:
    """What the identify screen and the test card say about the panel.

    ``addresses`` as shown (see :func:`describe_addresses`); ``broker`` is ``host:port``
    ("" when none is configured); ``connected`` None when the state is unknown.
    """

    panel_id: str
    name: str = ""
    firmware: str = __version__
    addresses: tuple[str, ...] = ()
    broker: str = ""
    connected: bool | None = None


def broker_text(info: PanelInfo) -> str:
    """``"connecté (10.0.0.5:1883)"``, ``"déconnecté (…)"``, ``"inconnu (…)"`` or ``"non configuré"``."""
    if not info.broker:
        return "non configuré"
    state = {True: "connecté", False: "déconnecté", None: "inconnu"}[info.connected]
    return f"{state} ({info.broker})"


def panel_rows(info: PanelInfo) -> list[Row]:
    """The information block's rows (label, value) for ``info``, in display order."""
    rows: list[Row] = [("Panneau", info.panel_id)]
    if info.name:
        rows.append(("Nom", info.name))
    rows.append(("Version", info.firmware))
    if info.addresses:
        rows += [("IP" if i == 0 else "", addr) for i, addr in enumerate(info.addresses)]
    else:
        rows.append(("IP", "aucune"))
    rows.append(("MQTT", broker_text(info)))
    return rows


@dataclass(frozen=True)
class InfoBlock:
    """How :func:`info_block` laid the rows out: size, page shown, pages, ink rectangle."""

    px: int
    page: int
    pages: int
    rows_per_page: int
    ink: pygame.Rect


def _row_size(painter: TextPainter, rows: Sequence[Row], width: int, height: int, gap: int) -> int:
    """Largest size at which every row fits ``width`` and all of them ``height``."""
    face = painter.face
    sizes = face.sizes(height)

    def fits(px: int) -> bool:
        if len(rows) * painter.advance(px) - (painter.advance(px) - face.line_height(px)) > height:
            return False
        label_w = max((face.width(label, px) for label, _ in rows), default=0)
        value_w = max((face.width(value, px) for _, value in rows), default=0)
        return label_w + gap + value_w <= width

    px = sizes[last_true(0, len(sizes) - 1, lambda i: fits(sizes[i]))]
    return px if fits(px) else 0


def plan_info_block(rect: pygame.Rect, rows: Sequence[Row], painter: TextPainter, *,
                    min_px: int = INFO_MIN_PX, max_px: int | None = None) -> tuple[int, int, int]:
    """(size, rows per page, pages) :func:`info_block` uses for ``rows`` in ``rect``."""
    face = painter.face
    if not rows or rect.w <= 0 or rect.h <= 0:
        return 0, 0, 1
    px = _row_size(painter, rows, rect.w, rect.h, _gap(rect))
    if max_px is not None:
        px = min(px, face.sizes(max_px)[-1])
    per_page = len(rows)
    if px < min_px:
        sizes = face.sizes(max(rect.h, min_px))
        px = next((s for s in sizes if s >= min_px), sizes[-1])
        per_page = max(1, (rect.h - face.line_height(px)) // painter.advance(px) + 1)
    return px, per_page, math.ceil(len(rows) / per_page)


def _gap(rect: pygame.Rect) -> int:
    return max(2, rect.h // 40)


def info_block(surface: pygame.Surface, rect: pygame.Rect, rows: Sequence[Row], painter: TextPainter, *,
               color: Color, label_color: Color | None = None, background: Color | None = None,
               page: int = 0, min_px: int = INFO_MIN_PX, max_px: int | None = None) -> InfoBlock:
    """Draw ``rows`` (label, value) as two aligned columns centred in ``rect``, all at one size.

    The size is the largest at which every row fits (at most ``max_px``); when that is
    below ``min_px``, rows show ``rows_per_page`` at a time and ``page`` (any integer,
    taken modulo the page count) picks which; values too wide are cut with "…".
    ``background`` fills ``rect`` first. Nothing is drawn outside ``rect``.
    """
    if background is not None:
        surface.fill(background, rect)
    face = painter.face
    rows = [(label, " ".join(value.split())) for label, value in rows]
    px, per_page, pages = plan_info_block(rect, rows, painter, min_px=min_px, max_px=max_px)
    if px == 0:
        return InfoBlock(0, 0, 1, 0, pygame.Rect(rect.topleft, (0, 0)))
    gap = _gap(rect)
    page %= pages
    shown = rows[page * per_page:(page + 1) * per_page]
    label_w = max((face.width(label, px) for label, _ in shown), default=0)
    widest = label_w + (gap if label_w else 0) + max((face.width(v, px) for _, v in shown), default=0)
    left = rect.x + max(0, (rect.w - widest) // 2)
    value_x = left + label_w + (gap if label_w else 0)
    value_w = max(0, rect.right - value_x)
    block_h = len(shown) * painter.advance(px) - (painter.advance(px) - face.line_height(px))
    y = rect.y + max(0, (rect.h - block_h) // 2)
    ink: pygame.Rect | None = None
    old_clip = surface.get_clip()
    surface.set_clip(rect.clip(old_clip))
    try:
        for label, value in shown:
            parts = []
            if label:
                line = painter.render_line(label, px, label_color or color)
                parts.append((line, left + label_w - line.get_width()))
            value = painter.ellipsize(value, px, value_w)
            if value:
                parts.append((painter.render_line(value, px, color), value_x))
            for line, x in parts:
                surface.blit(line, (x, y))
                bound = line.get_bounding_rect().move(x, y).clip(rect)
                if bound.w and bound.h:
                    ink = bound if ink is None else ink.union(bound)
            y += painter.advance(px)
    finally:
        surface.set_clip(old_clip)
    return InfoBlock(px, page, pages, per_page, ink if ink is not None else pygame.Rect(rect.topleft, (0, 0)))


class IdentifyView:
    """Overlay showing the panel's identity until ``until`` (monotonic seconds).

    ``start`` (monotonic) is when the pages start turning, if the rows need pages
    (default: the first :meth:`draw`).
    After ``until`` it draws nothing and :meth:`expired` is True: remove it then.
    """

    BACKGROUND: Color = (0, 0, 0)
    FRAME: Color = (0, 170, 255)
    ID_COLOR: Color = (255, 210, 0)
    TEXT: Color = (255, 255, 255)
    LABEL: Color = (150, 200, 255)

    revision: int

    def __init__(self, info: PanelInfo, until: float, *, font: FontFace | str | None = None,
                 antialias: bool | None = None, led: bool = False, start: float | None = None) -> None:
        face = font if isinstance(font, FontFace) else open_face(font)
        self.led = led
        self.painter = TextPainter(face, antialias=(not led) if antialias is None else antialias,
                                   line_spacing=1.0 if led else 1.15)
        self.info = info
        self.until = until
        self.start = start
        self.revision = 0
        self._pages = 1

    def update(self, info: PanelInfo | None = None, until: float | None = None) -> None:
        """Show new information (e.g. the broker connected) or a new end time."""
        if info is not None and info != self.info:
            self.info = info
            self.revision += 1
        if until is not None and until != self.until:
            self.until = until
            self.revision += 1

    def expired(self, now: float) -> bool:
        """True from ``until`` on."""
        return now >= self.until

    def layout(self, size: tuple[int, int]) -> tuple[pygame.Rect, pygame.Rect]:
        """(the panel id's line, the information block) on a surface of ``size``."""
        w, h = size
        frame = max(1, round(min(w, h) * 0.015))
        m = frame + max(1, round(min(w, h) * 0.02))
        inner = pygame.Rect(m, m, max(1, w - 2 * m), max(1, h - 2 * m))
        id_h = round(inner.h * (0.3 if self.led else 0.25))
        return (pygame.Rect(inner.x, inner.y, inner.w, id_h),
                pygame.Rect(inner.x, inner.y + id_h, inner.w, max(1, inner.h - id_h)))

    def _page(self, now: float) -> int:
        if self.start is None:
            return 0
        return max(0, math.floor((now - self.start) / PAGE_SECONDS))

    def draw(self, surface: pygame.Surface, now: float, wall: datetime) -> None:
        """Paint the identify screen (nothing once expired)."""
        if self.expired(now):
            return
        if self.start is None:
            self.start = now
        w, h = surface.get_size()
        surface.fill(self.BACKGROUND)
        frame = max(1, round(min(w, h) * 0.015))
        pygame.draw.rect(surface, self.FRAME, (0, 0, w, h), frame)
        id_rect, block = self.layout((w, h))
        self.painter.draw_line(surface, id_rect, self.info.panel_id, self.ID_COLOR)
        rows = panel_rows(self.info)[1:]  # the id is already shown, large
        drawn = info_block(surface, block, rows, self.painter, color=self.TEXT, label_color=self.LABEL,
                           page=self._page(now), min_px=INFO_MIN_PX, max_px=max(INFO_MIN_PX, h // 12))
        self._pages = drawn.pages

    def next_frame(self, now: float) -> float | None:
        """``until`` (the screen goes away then), or the next page turn if sooner."""
        if self.expired(now):
            return None
        if self._pages > 1 and self.start is not None:
            turn = self.start + (self._page(now) + 1) * PAGE_SECONDS + 1e-7
            return min(turn, self.until)
        return self.until
