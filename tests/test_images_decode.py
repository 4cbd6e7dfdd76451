"""Large pictures are reduced while they are decoded: PNG strip by strip, JPEG by its decoder.

The strip decoder is checked pixel for pixel against Pillow decoding the whole file
(every PNG colour type and bit depth, strips of a few rows so that every filter crosses
a strip boundary), and a 40 MP PNG and JPEG are decoded in a fresh process whose peak
resident size is read from /proc.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from player.errors import AssetError
from player.render import images
from player.render.images import decode_image

ROOT = Path(__file__).resolve().parents[1]
BEIGE = (240, 230, 210)


def drawing(mode: str, size: tuple[int, int]) -> Image.Image:
    """A picture with edges, gradients and (for modes with alpha) transparency."""
    w, h = size
    base = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(base)
    for i in range(0, w, 7):
        draw.line((i, 0, w - i, h), fill=(i * 5 % 256, 255 - i % 256, i * 3 % 256, 255), width=2)
    draw.ellipse((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=(200, 40, 90, 128))
    draw.rectangle((0, 0, w // 5, h), fill=(10, 200, 30, 255))
    if mode in ("RGBA", "LA"):
        return base.convert(mode)
    opaque = Image.new("RGB", size, (30, 60, 90))
    opaque.paste(base, (0, 0), base)
    if mode == "P":
        return opaque.quantize(colors=40)
    return opaque.convert(mode)


def reference(path: Path, factor: int, background: tuple[int, int, int]) -> Image.Image:
    """What the strip decoder must give: Pillow's whole decode, made opaque, box-reduced."""
    with Image.open(path) as source:
        source.load()
        opaque = images._opaque_or_rgba(source)
        if opaque.mode == "RGBA":
            flat = Image.new("RGB", opaque.size, background)
            flat.paste(opaque, (0, 0), opaque)
            opaque = flat
        return opaque.reduce(factor)


def strips(path: Path, factor: int, background: tuple[int, int, int]) -> Image.Image:
    with Image.open(path) as source:
        header = images._png_header(source.fp)
        assert header is not None and not header.interlaced
        return images._png_reduced(source, header, factor, background)


def png_16bit(path: Path, size: tuple[int, int], colour: int) -> Path:
    """A 16-bit PNG (colour type 2: RGB, 6: RGBA) written by hand, every filter type used."""
    w, h = size
    channels = 3 if colour == 2 else 4
    raw = bytearray()
    previous = bytes(w * channels * 2)
    for y in range(h):
        row = bytearray()
        for x in range(w):
            for c in range(channels):
                value = (x * 997 + y * 313 + c * 7919) * (c + 3) % 65536
                if c == 3:
                    value = 65535 if x % 5 else 20000
                row += struct.pack(">H", value)
        kind = y % 5
        filtered = bytearray(len(row))
        bpp = channels * 2
        for i, byte in enumerate(row):
            left = row[i - bpp] if i >= bpp else 0
            up = previous[i]
            corner = previous[i - bpp] if i >= bpp else 0
            if kind == 0:
                predictor = 0
            elif kind == 1:
                predictor = left
            elif kind == 2:
                predictor = up
            elif kind == 3:
                predictor = (left + up) // 2
            else:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
            filtered[i] = (byte - predictor) % 256
        raw += bytes([kind]) + filtered
        previous = bytes(row)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    data = zlib.compress(bytes(raw), 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))
                     + chunk(b"IDAT", data[:len(data) // 2]) + chunk(b"IDAT", data[len(data) // 2:])
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "I;16"])
@pytest.mark.parametrize("factor", [1, 3])
def test_png_strips_give_the_same_pixels_as_a_whole_decode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           mode: str, factor: int) -> None:
    monkeypatch.setattr(images, "_PNG_STRIP_BYTES", 700)  # a few rows a strip: every filter crosses one
    path = tmp_path / "p.png"
    picture = drawing(mode if mode != "I;16" else "L", (97, 61))
    if mode == "I;16":
        picture = picture.convert("I").point(lambda v: v * 200).convert("I;16")
    picture.save(path)
    assert strips(path, factor, BEIGE).tobytes() == reference(path, factor, BEIGE).tobytes()


def test_png_palette_transparency_and_grey_at_low_depths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "_PNG_STRIP_BYTES", 200)
    paletted = drawing("RGB", (53, 41)).quantize(colors=4)  # saved at 2 bits a pixel
    paletted.info["transparency"] = 1
    path = tmp_path / "p2.png"
    paletted.save(path, bits=2, transparency=1)
    assert strips(path, 2, BEIGE).tobytes() == reference(path, 2, BEIGE).tobytes()
    grey = tmp_path / "g4.png"
    drawing("L", (53, 41)).quantize(colors=16).save(grey, bits=4)
    assert strips(grey, 2, BEIGE).tobytes() == reference(grey, 2, BEIGE).tobytes()


@pytest.mark.parametrize("colour", [2, 6])
def test_16_bit_rgb_and_rgba_png_strips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, colour: int) -> None:
    monkeypatch.setattr(images, "_PNG_STRIP_BYTES", 900)
    path = png_16bit(tmp_path / "deep.png", (45, 37), colour)
    assert strips(path, 2, BEIGE).tobytes() == reference(path, 2, BEIGE).tobytes()


def test_a_large_png_is_decoded_reduced_and_still_right(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    picture = Image.new("RGB", (4000, 2250), (0, 0, 255))
    picture.paste((255, 0, 0), (0, 0, 2000, 2250))  # left half red
    picture.save(path)
    assert images._reduce_factor((4000, 2250), (320, 180)) > 1
    out = decode_image(path, (320, 180), "contain", (0, 0, 0))
    row = 90 * 320 * 3
    assert tuple(out.data[row + 5 * 3:row + 5 * 3 + 3]) == (255, 0, 0)
    assert tuple(out.data[row + 315 * 3:row + 315 * 3 + 3]) == (0, 0, 255)


def test_png_exif_orientation_after_the_pixels_is_applied_without_a_whole_decode(tmp_path: Path) -> None:
    stored = Image.new("RGB", (400, 200), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 400, 100))  # top red: turned 90° clockwise, red is on the right
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "PNG")
    data = buf.getvalue()
    body = exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif\x00\x00") else exif.tobytes()
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    path = tmp_path / "late-exif.png"
    path.write_bytes(data[:-12] + chunk + data[-12:])  # eXIf between the last IDAT and IEND
    out = decode_image(path, (20, 40), "stretch", (0, 0, 0))
    assert tuple(out.data[20 * 3 * 20 + 2 * 3:20 * 3 * 20 + 2 * 3 + 3])[2] > 200  # left: blue
    assert tuple(out.data[20 * 3 * 20 + 17 * 3:20 * 3 * 20 + 17 * 3 + 3])[0] > 200  # right: red


def test_truncated_big_png_is_an_asset_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    Image.effect_noise((2000, 1500), 60).convert("RGB").save(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(AssetError, match="cut.png"):
        decode_image(path, (200, 150), "contain", (0, 0, 0))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def interlaced_png(path: Path, picture: Image.Image) -> Path:
    """``picture`` (RGB) written as an Adam7-interlaced PNG (Pillow writes none)."""
    w, h = picture.size
    pixels = picture.tobytes()
    raw = bytearray()
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                           (0, 1, 1, 2)):
        for y in range(y0, h, dy):
            if x0 >= w:
                continue
            raw.append(0)
            for x in range(x0, w, dx):
                raw += pixels[(y * w + x) * 3:(y * w + x) * 3 + 3]
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1))
                     + png_chunk(b"IDAT", zlib.compress(bytes(raw))) + png_chunk(b"IEND", b""))
    return path


def test_whole_decodes_are_refused_above_their_limit_naming_the_cause(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_WHOLE_PIXELS", 10_000)
    interlaced = interlaced_png(tmp_path / "adam7.png", drawing("RGB", (200, 100)))
    with Image.open(interlaced) as check:
        check.load()  # a valid interlaced PNG
    with pytest.raises(AssetError, match="adam7.png.*interlaced PNG"):
        decode_image(interlaced, (20, 10), "contain", (0, 0, 0))
    gif = tmp_path / "big.gif"
    drawing("P", (200, 100)).save(gif)
    with pytest.raises(AssetError, match="GIF"):
        decode_image(gif, (20, 10), "contain", (0, 0, 0))
    small = interlaced_png(tmp_path / "small.png", drawing("RGB", (90, 100)))
    assert decode_image(small, (9, 10), "contain", (0, 0, 0)).size == (9, 10)


PEAK = textwrap.dedent("""
    import sys
    from pathlib import Path
    from player.render.images import decode_image

    def hwm():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024

    before = hwm()
    out = decode_image(Path(sys.argv[1]), (1920, 1080), sys.argv[2], (0, 0, 0))
    assert out.size == (1920, 1080)
    print("peak", before, hwm())
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
@pytest.mark.parametrize("kind", ["png", "jpg"])
def test_the_largest_accepted_picture_decodes_within_a_bounded_peak(tmp_path: Path, kind: str) -> None:
    """8000x5000 (the 40 MP limit) adds less than 60 MB to a process's peak (it was 195 for PNG)."""
    w, h = 8000, 5000
    assert w * h <= images.MAX_PIXELS
    path = tmp_path / f"poster.{kind}"
    gen = textwrap.dedent(f"""
        from PIL import Image
        r = Image.linear_gradient("L").resize(({w}, {h}))
        g = Image.radial_gradient("L").resize(({w}, {h}))
        Image.merge("RGB", (r, g, r.transpose(Image.Transpose.FLIP_LEFT_RIGHT))).save({str(path)!r})
    """)
    subprocess.run([sys.executable, "-c", gen], check=True, timeout=120)
    for fit in ("contain", "cover"):
        done = subprocess.run([sys.executable, "-c", PEAK, str(path), fit], check=True, timeout=120,
                              capture_output=True, text=True, cwd=ROOT)
        before, peak = map(float, done.stdout.split("peak")[-1].split())
        assert peak - before < 60, f"{kind} {fit}: {before:.0f} -> {peak:.0f} MB"


def test_a_very_large_jpeg_is_decoded_at_the_smaller_scale_when_it_nearly_suffices(tmp_path: Path) -> None:
    # 8000x5000 for cover at 1920x1080: needs 1920x1200, 1/4 gives 2000x1250, enough.
    assert images._jpeg_draft_request((8000, 5000), (1920, 1200)) == (1920, 1200)
    # 7000x5000 for cover: needs 1920x1372; 1/2 would be 8.75 MP; 1/4 gives 1750x1250, 91 %.
    assert images._jpeg_draft_request((7000, 5000), (1920, 1372)) == (1750, 1250)
    # 6300x6300 for cover: 1/4 would give 82 % of 1920: decoded at 1/2.
    assert images._jpeg_draft_request((6300, 6300), (1920, 1920)) == (1920, 1920)
    # small pictures: as asked
    assert images._jpeg_draft_request((3000, 2000), (1920, 1280)) == (1920, 1280)
    path = tmp_path / "photo.jpg"
    picture = Image.new("RGB", (7000, 5000), (200, 30, 30))
    picture.paste((30, 30, 200), (3500, 0, 7000, 5000))
    picture.save(path, quality=90)
    with Image.open(path) as source:
        source.draft("RGB", images._jpeg_draft_request((7000, 5000), (1920, 1372)))
        assert source.size == (1750, 1250)
    out = decode_image(path, (1920, 1080), "cover", (0, 0, 0))
    row = 540 * 1920 * 3
    assert tuple(out.data[row + 100 * 3:row + 100 * 3 + 3])[0] > 180
    assert tuple(out.data[row + 1800 * 3:row + 1800 * 3 + 3])[2] > 180


def test_a_jpeg_smaller_than_needed_is_asked_at_its_own_size() -> None:
    assert images._jpeg_draft_request((200, 100), (400, 200)) == (400, 200)  # enlarged: no DCT scaling
