"""panel-player: firmware for small-town LED and LCD information panels."""
import re
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildWithData(build_py):
    """Copy the top-level layouts/ and content/ folders into the installed package."""

    def run(self) -> None:
        super().run()
        import shutil

        for src, dst in (("layouts", "data/layouts"), ("content/demo", "data/demo")):
            target = Path(self.build_lib) / "player" / dst
            if (HERE / src).is_dir():
                shutil.copytree(HERE / src, target, dirs_exist_ok=True)

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "player" / "__init__.py").read_text()).group(1)

setup(
    name="panel-player",
    version=VERSION,
    description="Firmware for LED and LCD street information panels: playlists, priority alerts, sensors, over MQTT",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["player", "player.*"]),
    package_data={"player": ["py.typed", "data/layouts/*.yaml", "data/demo/*", "data/fonts/*"]},
    include_package_data=True,
    install_requires=[
        "pygame-ce>=2.4",
        "paho-mqtt>=2.1,<3",
        "PyYAML>=6",
        "gpiozero>=2",
        "Pillow>=10",
        # defusedxml: CAP alerts are XML from outside; it refuses entity expansion
        # and external entities, which the standard library parsers do not.
        "defusedxml>=0.7",
        # tzdata: IANA zones for zoneinfo on systems without /usr/share/zoneinfo.
        "tzdata",
        # cryptography: Ed25519 for signed alerts, playlists and commands (JWS EdDSA);
        # the reference implementation, with wheels for aarch64 and armv7.
        "cryptography>=42",
        # pyphen: hyphenation of long words on narrow zones by the language's own
        # patterns (LibreOffice's dictionaries: French, English, German...); pure
        # Python, no compiled part. Without it the player falls back to its rough
        # French syllable rule.
        "pyphen>=0.14",
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6", "pytest-timeout>=2", "mypy>=1.10", "types-PyYAML", "types-pyphen"],
        # mutation: scripts/mutation.sh (docs/mutation.md); slow, so not in "test" nor every CI run.
        # mutmut 3.8 is the version the driver's configuration and result reading are written for.
        "mutation": ["mutmut>=3.8,<3.9"],
    },
    cmdclass={"build_py": BuildWithData},
    entry_points={
        "console_scripts": [
            "panel-player=player.cli:main",
            "panelctl=player.ctl.cli:main",
        ],
    },
)
