"""A stand-in framebuffer for tests and benchmarks: a fake ``/sys/class/graphics/fbN``
tree (what the fbdev output reads its geometry from) and a plain file for ``/dev/fbN``."""

from __future__ import annotations

from pathlib import Path


def make_fb(root: Path, w: int, h: int, bpp: int, stride: int | None = None, name: str = "fb0",
            create_device: bool = True, fill: int = 0) -> tuple[str, Path]:
    """Returns (the device file ``root/dev/NAME``, the sysfs root ``root/sys``).

    ``stride`` defaults to ``w * bpp / 8`` (no padding); the device holds ``fill`` bytes.
    Without ``create_device`` only the sysfs tree exists (a screen not yet there).
    """
    stride = w * bpp // 8 if stride is None else stride
    sysfs = root / "sys"
    d = sysfs / "class" / "graphics" / name
    d.mkdir(parents=True)
    (d / "virtual_size").write_text(f"{w},{h}\n")
    (d / "bits_per_pixel").write_text(f"{bpp}\n")
    (d / "stride").write_text(f"{stride}\n")
    (d / "blank").write_text("0\n")  # FB_BLANK_UNBLANK; the fbdev output writes 4 to power down
    dev = root / "dev"
    dev.mkdir(exist_ok=True)
    if create_device:
        # Appears whole: a player waiting for the device must never see it half written.
        tmp = dev / f".{name}.tmp"
        tmp.write_bytes(bytes([fill]) * (stride * h))
        tmp.rename(dev / name)
    return str(dev / name), sysfs
