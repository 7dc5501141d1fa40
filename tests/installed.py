"""Skip a test unless some modules are installed, without importing them.

For pytester tests that run a subprocess: ``pytest.importorskip`` would import the module
into this process during the test, pytester drops every module imported during a test
when it ends, and an extension such as torch cannot be imported a second time in one
process (a later test that imports it then crashes the run).
"""

from __future__ import annotations

import importlib.util

import pytest


def require(*modules: str) -> None:
    """Skip the calling test unless every named module can be imported."""
    for name in modules:
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed")
