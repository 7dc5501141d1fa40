"""pytest wiring: options, markers, the ``green`` fixture; `GreenSession` only under ``--green``.

Without ``--green`` this module imports nothing beyond pytest and registers no session,
so the plugin costs nothing measurable.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_greennlp.recorder import Recorder
    from pytest_greennlp.session import GreenSession

#: The running `GreenSession`, present only under ``--green``.
#: Typed by annotation: subscripting ``StashKey`` at run time costs typing machinery at
#: every pytest start, with or without ``--green``.
session_key: pytest.StashKey[GreenSession] = pytest.StashKey()

MARKERS = {
    "green_train": "a training test: pytest --green records its price tag",
    "green_infer": "an inference test: pytest --green records its price tag",
}
MARKER_ARGS = (
    "examples=N, tokens=N: work done, for cost per example; limits for --green-baseline "
    "gates: max_flops_increase_pct, max_energy_increase_pct, max_time_increase_pct, "
    "min_metric_delta, max_energy_j, max_co2e_g"
)
#: Keyword arguments the markers accept; everything except examples/tokens is a limit.
MARKER_KEYS = frozenset({
    "examples", "tokens", "max_flops_increase_pct", "max_energy_increase_pct",
    "max_time_increase_pct", "min_metric_delta", "max_energy_j", "max_co2e_g",
})


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_greennlp import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    from pytest_greennlp.config import OPTIONS

    group = parser.getgroup("greennlp", "price tags for ML tests (pytest-greennlp)")
    group.addoption(
        "--green", action="store_true", default=False,
        help="measure tests marked green_train / green_infer and write a report",
    )
    for opt in OPTIONS:
        group.addoption(opt.flag, dest=f"green_{opt.key}", default=None, metavar=opt.metavar,
                        help=f"{opt.help} (default: {opt.default}; ini: {opt.ini})")
        parser.addini(opt.ini, help=f"pytest-greennlp: {opt.help}", default=None)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}({MARKER_ARGS}): {text}")
    if not config.getoption("green"):
        return
    from pytest_greennlp.errors import GreenNLPError

    try:
        session = _make_session(config)
    except GreenNLPError as exc:
        raise pytest.UsageError(f"pytest-greennlp: {exc}") from None
    config.stash[session_key] = session
    config.pluginmanager.register(session, "greennlp-session")
    if session.is_worker:
        from pytest_greennlp.session import WorkerReports

        config.pluginmanager.register(WorkerReports(), "greennlp-worker-reports")
    try:
        _register_gate(config, session)
    except GreenNLPError as exc:
        raise pytest.UsageError(f"pytest-greennlp: {exc}") from None


def _make_session(config: pytest.Config) -> GreenSession:
    from dataclasses import replace

    from pytest_greennlp.config import OPTIONS, GreenConfig, load_tool_table
    from pytest_greennlp.measure.codecarbon_data import grid_intensity
    from pytest_greennlp.records import CarbonIntensity
    from pytest_greennlp.session import GreenSession

    pyproject = _pyproject(config)
    settings = GreenConfig.resolve(
        cli={o.key: config.getoption(f"green_{o.key}") for o in OPTIONS},
        ini={o.key: config.getini(o.ini) for o in OPTIONS},
        table=load_tool_table(pyproject),
        table_origin=f"[tool.greennlp] in {pyproject}",
    )
    if not settings.report.is_absolute():
        settings = replace(settings, report=config.invocation_params.dir / settings.report)
    grid = grid_intensity(settings.region)
    carbon = CarbonIntensity(
        region=grid.region or "world", g_per_kwh=grid.g_per_kwh, source=grid.source,
        year=grid.year, pue=settings.pue,
    )
    return GreenSession(config, settings, carbon)




def _pyproject(config: pytest.Config) -> Path:
    """The pyproject.toml whose ``[tool.greennlp]`` applies: the ini file, else the rootdir's."""
    if config.inipath is not None and config.inipath.name == "pyproject.toml":
        return config.inipath
    return config.rootpath / "pyproject.toml"


def _register_gate(config: pytest.Config, session: GreenSession) -> None:
    """Under ``--green-baseline``, register the `gate.GatePlugin` (xdist controller only).

    The baseline is read now, before this run's checkpoints may overwrite the file.
    """
    baseline = session.settings.baseline
    if baseline is None or hasattr(config, "workerinput"):
        return
    from pytest_greennlp.gate import GatePlugin, load_limits

    if not baseline.is_absolute():
        baseline = config.invocation_params.dir / baseline
    gate = GatePlugin.load(session, baseline, load_limits(_pyproject(config)))
    config.pluginmanager.register(gate, "greennlp-gate")


def pytest_unconfigure(config: pytest.Config) -> None:
    for name in ("greennlp-gate", "greennlp-worker-reports"):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)
    session = config.stash.get(session_key, None)
    if session is not None:
        session.release()
        config.pluginmanager.unregister(session)
        del config.stash[session_key]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if session_key not in config.stash:
        return
    from pytest_greennlp.session import kind_key, marker_key

    # Items share their parents' markers and, when parametrized, their function's marker
    # objects: look each parent up and check each marker's arguments once.
    inherited: dict[pytest.Node | None, list[pytest.Mark]] = {}
    checked: dict[int, tuple[pytest.Mark, dict[str, Any]]] = {}  # by id: a Mark is unhashable
    for item in items:
        parent = item.parent
        marks = inherited.get(parent)
        if marks is None:
            marks = inherited[parent] = (
                [m for m in parent.iter_markers() if m.name in MARKERS] if parent is not None else []
            )
        kinds = [m for m in item.own_markers if m.name in MARKERS] + marks
        if not kinds:
            continue
        if len({m.name for m in kinds}) > 1:
            raise pytest.UsageError(f"{item.nodeid}: marked both green_train and green_infer; choose one")
        marker = kinds[0]
        known = checked.get(id(marker))
        if known is None:
            known = checked[id(marker)] = (marker, _marker_kwargs(item.nodeid, marker))
        item.stash[kind_key] = "train" if marker.name == "green_train" else "infer"
        item.stash[marker_key] = known[1]  # shared by the items of one marker: read only


def _marker_kwargs(nodeid: str, marker: pytest.Mark) -> dict[str, Any]:
    if marker.args:
        raise pytest.UsageError(
            f"{nodeid}: @pytest.mark.{marker.name} takes keyword arguments only, got {marker.args!r}"
        )
    out: dict[str, Any] = {}
    for key, value in marker.kwargs.items():
        if key not in MARKER_KEYS:
            raise pytest.UsageError(
                f"{nodeid}: @pytest.mark.{marker.name} got unknown argument {key!r}; "
                f"expected one of {', '.join(sorted(MARKER_KEYS))}"
            )
        if key in ("examples", "tokens"):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        if not ok:
            what = "an integer >= 0" if key in ("examples", "tokens") else "a number"
            raise pytest.UsageError(
                f"{nodeid}: @pytest.mark.{marker.name}({key}=...) must be {what}, got {value!r}"
            )
        out[key] = value if key in ("examples", "tokens") else float(value)
    return out


@pytest.fixture
def green(request: pytest.FixtureRequest) -> Recorder:
    """Tell pytest-greennlp what only the test knows: model, examples, metrics, trials.

    Safe to use without ``--green``: every call then does nothing.
    """
    from pytest_greennlp.recorder import Recorder

    session = request.config.stash.get(session_key, None)
    return Recorder(session.run_for(request.node) if session is not None else None)


@pytest.hookimpl(trylast=True)
def pytest_greennlp_generate_fingerprint(config: pytest.Config) -> dict[str, Any]:
    from pytest_greennlp.measure.fingerprint import default_fingerprint

    return default_fingerprint()
