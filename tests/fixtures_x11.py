"""An X server for the tests and benchmarks of the sdl output: Xvfb on a free display
number, whose screen is also a file (``-fbdir``, XWD format) read back to see what a
window shows.

    with XServer(folder, (640, 360)) as x:
        env = {"DISPLAY": x.display, "SDL_VIDEODRIVER": "x11"}
        ...
        x.pixel(10, 10)          # (r, g, b) on the screen
        x.animates(300, 360)     # do these rows change within 2 s?
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
from pathlib import Path


def have_xvfb() -> bool:
    return shutil.which("Xvfb") is not None


class XServer:
    """Xvfb, ``size`` pixels at 24 bits; its screen readable as rows of BGRX pixels."""

    def __init__(self, folder: Path, size: tuple[int, int] = (1920, 1080)) -> None:
        self.size = size
        self.display = next(f":{n}" for n in range(90, 400) if not Path(f"/tmp/.X11-unix/X{n}").exists()
                            and not Path(f"/tmp/.X{n}-lock").exists())
        self.fbdir = folder / f"xvfb-screen-{self.display[1:]}"
        self.fbdir.mkdir(parents=True, exist_ok=True)
        log = folder / f"xvfb-{self.display[1:]}.log"
        self.proc = subprocess.Popen(["Xvfb", self.display, "-screen", "0", f"{size[0]}x{size[1]}x24",
                                      "-nolisten", "tcp", "-noreset", "-fbdir", str(self.fbdir)],
                                     stdout=subprocess.DEVNULL, stderr=log.open("wb"))
        socket = Path(f"/tmp/.X11-unix/X{self.display[1:]}")
        deadline = time.monotonic() + 10
        while not socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"Xvfb did not start: {log.read_text()[-500:]}")
            time.sleep(0.05)

    def rows(self, top: int, bottom: int) -> bytes:
        """The screen's pixel rows ``top`` to ``bottom`` (exclusive), BGRX, as the server holds them."""
        data = (self.fbdir / "Xvfb_screen0").read_bytes()
        header = struct.unpack(">25I", data[:100])
        header_size, bytes_per_line, ncolors = header[0], header[12], header[19]
        start = header_size + 12 * ncolors
        return data[start + top * bytes_per_line:start + bottom * bytes_per_line]

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        row = self.rows(y, y + 1)
        b, g, r = row[4 * x:4 * x + 3]
        return (r, g, b)

    def animates(self, top: int, bottom: int, seconds: float = 2.0) -> bool:
        """Whether rows ``top`` to ``bottom`` change within ``seconds``."""
        first = self.rows(top, bottom)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if self.rows(top, bottom) != first:
                return True
        return False

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> XServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
