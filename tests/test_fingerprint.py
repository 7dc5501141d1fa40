"""The built-in hardware fingerprint."""

from __future__ import annotations

import os
import platform

import pytest

from pytest_greennlp.measure.fingerprint import _platform, default_fingerprint


@pytest.mark.skipif(platform.system() != "Linux", reason="the fast path is Linux's")
def test_platform_string_matches_the_standard_library_without_a_subprocess() -> None:
    if platform.uname().processor not in ("", platform.machine()):
        pytest.skip("platform.platform() names a processor here; ours leaves it out")
    assert _platform() == platform.platform()


def test_default_fingerprint_describes_this_machine() -> None:
    fingerprint = default_fingerprint()
    assert fingerprint["cpu_count"] == (os.cpu_count() or 1)
    assert fingerprint["python"] == platform.python_version()
    assert fingerprint["platform"].startswith(platform.system())
    assert fingerprint["device"] in ("cpu", "cuda")
