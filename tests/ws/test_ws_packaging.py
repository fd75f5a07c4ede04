"""What an installed fastim.ws gives its importers beyond the code: the PEP 561 marker, so
that their type checkers read the library's annotations instead of treating it as Any."""

from __future__ import annotations

import configparser
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_py_typed_marker_ships_with_the_package() -> None:
    assert resources.files("fastim").joinpath("py.typed").is_file()
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    # setuptools installs only the data files listed for a package.
    assert "py.typed" in setup["options.package_data"]["fastim"].split()
