"""pytest-greennlp's own hooks, loaded through ``pytest_addhooks``.

Implement them in a ``conftest.py`` or a plugin. Fingerprint hooks come as a pair, as in
pytest-benchmark: one *generates* the data (first result wins), the other *updates* it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_greennlp.measure.base import EnergyReader


@pytest.hookspec(firstresult=True)
def pytest_greennlp_generate_fingerprint(config: pytest.Config) -> dict[str, Any] | None:
    """Return the hardware fingerprint of this run as a dict of `records.Fingerprint` fields.

    The built-in implementation runs last; return a dict to replace it entirely.

    Example::

        # conftest.py
        def pytest_greennlp_generate_fingerprint(config):
            from pytest_greennlp.measure.fingerprint import default_fingerprint
            data = default_fingerprint()
            data["cpu_model"] = "virtualised " + data["cpu_model"]
            return data
    """


def pytest_greennlp_update_fingerprint(config: pytest.Config, fingerprint: dict[str, Any]) -> None:
    """Edit the fingerprint in place, e.g. add what later comparisons should check.

    Example::

        # conftest.py
        def pytest_greennlp_update_fingerprint(config, fingerprint):
            fingerprint["extra"]["runner"] = os.environ.get("RUNNER_NAME", "local")
    """


def pytest_greennlp_energy_readers(config: pytest.Config) -> list[EnergyReader]:
    """Return extra energy readers (see `measure.base.EnergyReader`), opened by the session.

    Called once per session. A reader returned here replaces the built-in reader of the
    same ``domain``; a reader that fails to open is skipped with one warning.

    Example::

        # conftest.py
        class WallPlugReader:
            domain, method, measured, scope = "machine", "smart-plug", True, "machine"
            source = "Shelly plug at the lab bench"
            def open(self): self.start = read_plug_joules()
            def read_j(self): return read_plug_joules() - self.start
            def close(self): pass

        def pytest_greennlp_energy_readers(config):
            return [WallPlugReader()]
    """
    return []


def pytest_greennlp_update_record(config: pytest.Config, item: pytest.Item, record: dict[str, Any]) -> None:
    """Edit a test's record (the JSON dict of `records.TestRecord`) before it is reported.

    Runs in the process that measured the test (an xdist worker, under xdist).

    Example::

        # conftest.py
        def pytest_greennlp_update_record(config, item, record):
            record["extra"]["git_sha"] = os.environ.get("GITHUB_SHA")
    """
