"""Draws the bundled demo images and writes the demo playlists.

Run from the repository root: ``.venv/bin/python content/make_demo.py``.
The pictures are drawn here from shapes (no outside artwork), so the
project owns them. Each image is stored under its sha256, as on a panel.

Three playlists, one per panel shape (the player shows the one that fits it,
see ``ContentPart.bundled_playlist``): ``playlist.json`` (landscape screens,
1600x900 pictures), ``playlist-portrait.json`` (upright screens, 720x1280
pictures) and ``playlist-led.json`` (LED matrices and panels as small: short
texts, 128x48 pictures without text, black backgrounds).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

OUT = Path(__file__).resolve().parent / "demo"
W, H = 1600, 900  # the landscape pictures; the others are drawn scaled from them
PORTRAIT = (720, 1280)
LED = (128, 48)  # the main zone of the led-matrix layout on a 128x64 panel
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def font(px: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype(FONT, px)
    except OSError:
        return ImageFont.load_default(px)


class Scale:
    """Coordinates of the 1600x900 drawings on a canvas of ``size`` (whole pixels;
    unchanged at 1600x900, so the landscape pictures keep their bytes)."""

    def __init__(self, size: tuple[int, int] = (W, H)) -> None:
        self.w, self.h = size
        self.sx, self.sy = self.w / W, self.h / H
        self.text = min(size) >= 200  # LED pictures carry no text: the panel's own fonts say it

    def x(self, v: float) -> int:
        return round(v * self.sx) if self.sx != 1 else int(v)

    def y(self, v: float) -> int:
        return round(v * self.sy) if self.sy != 1 else int(v)

    def px(self, v: int) -> int:
        return max(1, round(v * min(self.sx, self.sy)))

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[int]:
        return [self.x(x0), self.y(y0), self.x(x1), self.y(y1)]


def centered(draw: ImageDraw.ImageDraw, y: int, text: str, px: int, fill: str, s: Scale = Scale()) -> None:
    if not s.text:
        return
    f = font(s.px(px))
    w = draw.textlength(text, font=f)
    draw.text(((s.w - w) / 2, s.y(y)), text, font=f, fill=fill)


def marche_de_noel(s: Scale = Scale()) -> Image.Image:
    rnd = random.Random(12)
    img = Image.new("RGB", (s.w, s.h), "#0a2342")
    d = ImageDraw.Draw(img)
    for i in range(s.h):  # night-sky gradient
        c = int(20 + 30 * i / s.h)
        d.line([(0, i), (s.w, i)], fill=(10, c, 60 + c))
    for _ in range(160 if s.text else 12):  # snow
        x, y, r = rnd.randrange(s.w), rnd.randrange(s.h), rnd.choice((2, 3, 4))
        if s.text:
            d.ellipse([x - r, y - r, x + r, y + r], fill="#ffffff")
        else:
            d.point((x, y), fill="#ffffff")  # one LED per flake
    for i, x in enumerate(range(120, W, 270)):  # market stalls
        d.rectangle(s.box(x, 560, x + 220, 800), fill="#7a3b12")
        d.polygon([(s.x(x - 20), s.y(560)), (s.x(x + 110), s.y(470)), (s.x(x + 240), s.y(560))],
                  fill=("#c0392b", "#f5f5f5")[i % 2])
        for k in range(6):
            d.ellipse(s.box(x + 15 + k * 35, 585, x + 35 + k * 35, 605), fill="#ffd34d")
    d.polygon([(s.x(W // 2), s.y(120)), (s.x(W // 2 - 120), s.y(420)), (s.x(W // 2 + 120), s.y(420))],
              fill="#1e7d32")  # tree
    d.rectangle(s.box(W // 2 - 18, 420, W // 2 + 18, 470), fill="#5d3a1a")
    star = [(s.x(W // 2 + 40 * math.cos(a * math.pi / 5 - math.pi / 2) * (1 if a % 2 == 0 else 0.45)),
             s.y(120 + 40 * math.sin(a * math.pi / 5 - math.pi / 2) * (1 if a % 2 == 0 else 0.45)))
            for a in range(10)]
    if s.sx == 1 and s.sy == 1:
        star = [(W // 2 + 40 * math.cos(a * math.pi / 5 - math.pi / 2) * (1 if a % 2 == 0 else 0.45),
                 120 + 40 * math.sin(a * math.pi / 5 - math.pi / 2) * (1 if a % 2 == 0 else 0.45))
                for a in range(10)]  # as first drawn, in fractions of a pixel
    d.polygon(star, fill="#ffd700")
    centered(d, 820, "Marché de Noël · Place de la Mairie", 52, "#ffffff", s)
    return img


def mediatheque(s: Scale = Scale()) -> Image.Image:
    img = Image.new("RGB", (s.w, s.h), "#f4ecd8")
    d = ImageDraw.Draw(img)
    colours = ["#c0392b", "#2980b9", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#2c3e50"]
    for shelf in range(3):
        y = 170 + shelf * 210
        x = 180
        i = shelf * 3
        while x < W - 200:
            w = 34 + (i * 13) % 30
            h = 150 + (i * 29) % 40
            d.rectangle(s.box(x, y + 180 - h, x + w, y + 180), fill=colours[i % len(colours)])
            x += w + 6
            i += 1
        d.rectangle(s.box(150, y + 180, W - 150, y + 196), fill="#6e4b2a")
    centered(d, 60, "Médiathèque municipale", 72, "#2c3e50", s)
    centered(d, 800, "Mardi → samedi · 10 h – 18 h", 50, "#2c3e50", s)
    return img


def collecte(s: Scale = Scale()) -> Image.Image:
    img = Image.new("RGBA", (s.w, s.h), "#e8f5e9" if s.text else "#000000")  # LEDs: dark, not a lit wall
    d = ImageDraw.Draw(img)
    for i, (x, col) in enumerate(((330, "#f1c40f"), (700, "#27ae60"), (1070, "#2980b9"))):
        d.rounded_rectangle(s.box(x, 300, x + 220, 700), radius=s.px(24), fill=col)
        d.rectangle(s.box(x - 15, 270, x + 235, 310), fill=col)
        for k in range(3):
            d.line([(s.x(x + 55 + k * 55), s.y(360)), (s.x(x + 55 + k * 55), s.y(650))], fill="#ffffff",
                   width=s.px(10))
    arrow = Image.new("RGBA", (s.w, s.h), (0, 0, 0, 0))
    ad = ImageDraw.Draw(arrow)
    ad.arc(s.box(600, 60, 1000, 260), 200, 340, fill=(39, 174, 96, 255), width=s.px(26))
    img = Image.alpha_composite(img, arrow.filter(ImageFilter.GaussianBlur(1)) if s.text else arrow)
    d = ImageDraw.Draw(img)
    centered(d, 760, "Tri sélectif : chaque geste compte", 60, "#1b5e20", s)
    return img.convert("RGB")


def store(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    (OUT / f"{sha}.png").write_bytes(data)
    return sha


def write(name: str, playlist: dict[str, object]) -> None:
    (OUT / name).write_text(json.dumps(playlist, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    noel, media, tri = store(marche_de_noel()), store(mediatheque()), store(collecte())
    ticker = [
        "Collecte des encombrants jeudi 3 décembre",
        "Inscriptions sur les listes électorales jusqu’au 31 décembre",
        "Déneigement : stationnement interdit rue de la Gare les nuits d’alerte",
    ]

    def screen(layout: str, noel: str, media: str, tri: str) -> dict[str, object]:
        return {
            "id": "demo-mairie",
            "version": 1,
            "layout": layout,
            "slides": [
                {"id": "bienvenue", "type": "text", "duration": 8, "title": "Bienvenue à Saint-Martin-sur-Isère",
                 "body": "Mairie ouverte du lundi au vendredi\n8 h 30 – 12 h et 13 h 30 – 17 h",
                 "style": {"background": "#003366", "color": "#ffffff", "align": "center"}},
                {"id": "marche-noel", "type": "image", "duration": 10, "asset": f"sha256:{noel}", "fit": "contain"},
                {"id": "conseil", "type": "text", "duration": 8, "title": "Conseil municipal",
                 "body": "Jeudi 3 décembre à 19 h, salle du conseil.\nSéance publique : venez nombreux !",
                 "style": {"background": "#f4ecd8", "color": "#2c3e50", "align": "left"}},
                {"id": "mediatheque", "type": "image", "duration": 10, "asset": f"sha256:{media}", "fit": "cover"},
                {"id": "tri", "type": "image", "duration": 8, "asset": f"sha256:{tri}", "fit": "contain"},
                {"id": "piscine", "type": "text", "duration": 8, "title": "Piscine intercommunale",
                 "body": "Fermeture technique du 14 au 20 décembre.\nRéouverture le lundi 21 à 12 h.",
                 "style": {"background": "#0b5394", "color": "#ffffff", "align": "center"}},
            ],
            "ticker": ticker,
        }

    write("playlist.json", screen("landscape", noel, media, tri))
    upright = Scale(PORTRAIT)
    write("playlist-portrait.json", screen("portrait", store(marche_de_noel(upright)),
                                           store(mediatheque(upright)), store(collecte(upright))))
    small = Scale(LED)
    amber, green, black = "#ffb000", "#40ff40", "#000000"
    write("playlist-led.json", {
        "id": "demo-mairie",
        "version": 1,
        "layout": "led-matrix",
        "slides": [
            {"id": "bienvenue", "type": "text", "duration": 6, "title": "Bienvenue",
             "body": "Mairie 8h30-12h", "style": {"background": black, "color": amber, "align": "center"}},
            {"id": "marche-noel", "type": "image", "duration": 5,
             "asset": f"sha256:{store(marche_de_noel(small))}", "fit": "contain"},
            {"id": "conseil", "type": "text", "duration": 6, "title": "Conseil",
             "body": "Jeudi 3 déc. 19 h", "style": {"background": black, "color": "#ffffff", "align": "center"}},
            {"id": "tri", "type": "image", "duration": 5, "asset": f"sha256:{store(collecte(small))}",
             "fit": "contain"},
            {"id": "piscine", "type": "text", "duration": 6, "title": "Piscine",
             "body": "Fermée 14-20 déc.", "style": {"background": black, "color": green, "align": "center"}},
        ],
        "ticker": ["Encombrants jeudi 3 déc.", "Listes électorales : avant le 31 déc."],
    })
    print(f"wrote {OUT}/playlist.json, playlist-portrait.json, playlist-led.json and their images")


if __name__ == "__main__":
    main()
