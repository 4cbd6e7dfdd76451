"""Build shim for panel-player: everything else is in pyproject.toml.

It stays for one step pyproject.toml cannot express: the built package must
carry the built-in layouts and the demo content, which live at the top of the
checkout (layouts/, content/demo/) where the player and its tests use them
from a checkout, so build_py copies them into player/data/layouts and
player/data/demo of the build. The package data patterns in pyproject.toml
then ship them in the wheel.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
COPIED = (("layouts", "data/layouts"), ("content/demo", "data/demo"))


class BuildWithData(build_py):
    """Copy the top-level layouts/ and content/demo/ folders into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install finds them in the checkout (player.layout, player.app)
        for src, dst in COPIED:
            if (HERE / src).is_dir():
                shutil.copytree(HERE / src, Path(self.build_lib) / "player" / dst, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithData})
