"""Draws the bundled demo images and writes the demo playlist.

Run from the repository root: ``.venv/bin/python content/make_demo.py``.
The pictures are drawn here from shapes (no outside artwork), so the
project owns them. Each image is stored under its sha256, as on a panel.
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
W, H = 1600, 900
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def font(px: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype(FONT, px)
    except OSError:
        return ImageFont.load_default(px)


def centered(draw: ImageDraw.ImageDraw, y: int, text: str, px: int, fill: str) -> None:
    f = font(px)
    w = draw.textlength(text, font=f)
    draw.text(((W - w) / 2, y), text, font=f, fill=fill)


def marche_de_noel() -> Image.Image:
    rnd = random.Random(12)
    img = Image.new("RGB", (W, H), "#0a2342")
    d = ImageDraw.Draw(img)
    for i in range(H):  # night-sky gradient
        c = int(20 + 30 * i / H)
        d.line([(0, i), (W, i)], fill=(10, c, 60 + c))
    for _ in range(160):  # snow
        x, y, r = rnd.randrange(W), rnd.randrange(H), rnd.choice((2, 3, 4))
        d.ellipse([x - r, y - r, x + r, y + r], fill="#ffffff")
    for i, x in enumerate(range(120, W, 270)):  # market stalls
        d.rectangle([x, 560, x + 220, 800], fill="#7a3b12")
        d.polygon([(x - 20, 560), (x + 110, 470), (x + 240, 560)], fill=("#c0392b", "#f5f5f5")[i % 2])
        for k in range(6):
            d.ellipse([x + 15 + k * 35, 585, x + 35 + k * 35, 605], fill="#ffd34d")
    d.polygon([(W // 2, 120), (W // 2 - 120, 420), (W // 2 + 120, 420)], fill="#1e7d32")  # tree
    d.rectangle([W // 2 - 18, 420, W // 2 + 18, 470], fill="#5d3a1a")
    star = [(W // 2 + 40 * math.cos(a * math.pi / 5 - math.pi / 2) * (1 if a % 2 == 0 else 0.45),
             120 + 40 * math.sin(a * math.pi / 5 - math.pi / 2) * (1 if a % 2 == 0 else 0.45)) for a in range(10)]
    d.polygon(star, fill="#ffd700")
    centered(d, 820, "Marché de Noël · Place de la Mairie", 52, "#ffffff")
    return img


def mediatheque() -> Image.Image:
    img = Image.new("RGB", (W, H), "#f4ecd8")
    d = ImageDraw.Draw(img)
    colours = ["#c0392b", "#2980b9", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#2c3e50"]
    for shelf in range(3):
        y = 170 + shelf * 210
        x = 180
        i = shelf * 3
        while x < W - 200:
            w = 34 + (i * 13) % 30
            h = 150 + (i * 29) % 40
            d.rectangle([x, y + 180 - h, x + w, y + 180], fill=colours[i % len(colours)])
            x += w + 6
            i += 1
        d.rectangle([150, y + 180, W - 150, y + 196], fill="#6e4b2a")
    centered(d, 60, "Médiathèque municipale", 72, "#2c3e50")
    centered(d, 800, "Mardi → samedi · 10 h – 18 h", 50, "#2c3e50")
    return img


def collecte() -> Image.Image:
    img = Image.new("RGBA", (W, H), "#e8f5e9")
    d = ImageDraw.Draw(img)
    for i, (x, col) in enumerate(((330, "#f1c40f"), (700, "#27ae60"), (1070, "#2980b9"))):
        d.rounded_rectangle([x, 300, x + 220, 700], radius=24, fill=col)
        d.rectangle([x - 15, 270, x + 235, 310], fill=col)
        for k in range(3):
            d.line([(x + 55 + k * 55, 360), (x + 55 + k * 55, 650)], fill="#ffffff", width=10)
    arrow = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    ad = ImageDraw.Draw(arrow)
    ad.arc([600, 60, 1000, 260], 200, 340, fill=(39, 174, 96, 255), width=26)
    img = Image.alpha_composite(img, arrow.filter(ImageFilter.GaussianBlur(1)))
    d = ImageDraw.Draw(img)
    centered(d, 760, "Tri sélectif : chaque geste compte", 60, "#1b5e20")
    return img.convert("RGB")


def store(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    (OUT / f"{sha}.png").write_bytes(data)
    return sha


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    noel, media, tri = store(marche_de_noel()), store(mediatheque()), store(collecte())
    playlist = {
        "id": "demo-mairie",
        "version": 1,
        "layout": "landscape",
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
        "ticker": [
            "Collecte des encombrants jeudi 3 décembre",
            "Inscriptions sur les listes électorales jusqu’au 31 décembre",
            "Déneigement : stationnement interdit rue de la Gare les nuits d’alerte",
        ],
    }
    (OUT / "playlist.json").write_text(json.dumps(playlist, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT}/playlist.json and 3 images")


if __name__ == "__main__":
    main()
