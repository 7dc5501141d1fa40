"""pytest-greennlp: a price tag (time, FLOPs, energy, CO2e) on ML training and inference tests."""

from __future__ import annotations

# A constant rather than `importlib.metadata.version`: pytest imports this package at
# every start-up (the plugin's entry point), and looking the distribution up costs
# about 1.5 ms there, with or without ``--green``. pyproject.toml reads the version from
# `_version`, and a test checks that the installed metadata agrees.
from pytest_greennlp._version import __version__

__all__ = ["__version__"]
