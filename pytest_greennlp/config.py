"""Settings: the command line, pytest ini and ``[tool.greennlp]`` merged into one `GreenConfig`.

Precedence, highest first: command-line option, pytest ini key (``green_*``), the
``[tool.greennlp]`` table of the rootdir's ``pyproject.toml``, then the default. Every
value passes through the same converter, which raises `ConfigError` in one line.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

from pytest_greennlp.errors import ConfigError


__all__ = [
    "GreenConfig",
    "OPTIONS",
    "TABLES",
    "Option",
    "load_tool_table",
    "parse_energy_sources",
    "parse_non_negative_int",
    "parse_positive_int",
    "parse_pue",
    "parse_region",
]

def parse_positive_int(text: object, name: str = "value") -> int:
    value = _int(text, name)
    if value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {text!r}")
    return value


def parse_non_negative_int(text: object, name: str = "value") -> int:
    value = _int(text, name)
    if value < 0:
        raise ConfigError(f"{name} must be an integer >= 0, got {text!r}")
    return value


def parse_pue(text: object, name: str = "pue") -> float:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number >= 1.0, got {text!r}") from None
    if not 1.0 <= value <= 10.0:
        raise ConfigError(f"{name} must be a number between 1.0 and 10.0, got {text!r}")
    return value


def parse_region(text: object, name: str = "region") -> str | None:
    if text is None or text == "":
        return None
    if not isinstance(text, str) or not (len(text) == 3 and text.isalpha()):
        raise ConfigError(f"{name} must be an ISO 3166-1 alpha-3 country code such as FRA, got {text!r}")
    return text.upper()


def parse_energy_sources(text: object, name: str = "energy") -> tuple[str, ...]:
    from pytest_greennlp.measure.energy import parse_sources

    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    sources = tuple(str(s).strip().lower() for s in items if str(s).strip())
    try:
        parse_sources(sources)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    return sources


def _int(text: object, name: str) -> int:
    if isinstance(text, bool):
        raise ConfigError(f"{name} must be an integer, got {text!r}")
    try:
        return int(text)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer, got {text!r}") from None


def _optional_path(text: object, name: str) -> Path | None:
    if text is None or text == "":
        return None
    return _path(text, name)


def _path(text: object, name: str) -> Path:
    if not isinstance(text, (str, Path)) or not str(text).strip():
        raise ConfigError(f"{name} must be a file path, got {text!r}")
    return Path(text)


class Option(NamedTuple):
    """One setting: its key in ``[tool.greennlp]``, its flag, ini key, converter and help.

    A named tuple rather than a dataclass: this module is imported at every pytest start
    (the options are registered even without ``--green``), and a tuple class costs less.
    """

    key: str
    convert: Callable[[object, str], Any]
    default: object
    help: str
    metavar: str

    @property
    def flag(self) -> str:
        return "--green-" + self.key.replace("_", "-")

    @property
    def ini(self) -> str:
        return "green_" + self.key


OPTIONS: tuple[Option, ...] = (
    Option("report", _path, "green-report.json", "where to write the JSON report", "PATH"),
    Option("region", parse_region, None,
           "ISO 3166-1 alpha-3 grid region for CO2e (default: world average)", "ISO3"),
    Option("pue", parse_pue, 1.0, "power usage effectiveness of the machine room", "PUE"),
    Option("repeats", parse_positive_int, 1, "measured runs of each marked test", "N"),
    Option("warmup", parse_non_negative_int, 0, "unmeasured runs before the measured ones", "N"),
    Option("energy", parse_energy_sources, "auto",
           "energy sources: auto, measured, estimate, nvml, a method name, or none", "SOURCES"),
    Option("table", parse_non_negative_int, 20,
           "rows of the terminal table, most expensive tests first (0: every test)", "N"),
    Option("baseline", _optional_path, None,
           "compare with this report and gate on [tool.greennlp.limits] (needs --green)", "PATH"),
)

#: Sub-tables of ``[tool.greennlp]`` read by their own modules: ``limits`` by `gate`.
TABLES = frozenset({"limits"})


@dataclass(frozen=True)
class GreenConfig:
    """The merged settings of one run."""

    report: Path
    region: str | None
    pue: float
    repeats: int
    warmup: int
    energy: tuple[str, ...]
    baseline: Path | None = None
    table: int = 20

    @classmethod
    def resolve(
        cls,
        cli: Mapping[str, object],
        ini: Mapping[str, object],
        table: Mapping[str, object],
        table_origin: str = "[tool.greennlp]",
    ) -> GreenConfig:
        """Merge the sources (None means "not given") and convert every value."""
        known = {o.key for o in OPTIONS} | TABLES
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(
                f"{table_origin}: unknown key {unknown[0]!r}; expected one of {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        for opt in OPTIONS:
            for origin, source, key in (
                (opt.flag, cli, opt.key),
                (opt.ini, ini, opt.key),
                (f"{table_origin} {opt.key}", table, opt.key),
            ):
                raw = source.get(key)
                if raw is not None and raw != "":
                    values[opt.key] = opt.convert(raw, origin)
                    break
            else:
                values[opt.key] = opt.convert(opt.default, opt.flag)
        return cls(**values)


def load_tool_table(pyproject: Path) -> dict[str, object]:
    """Return the ``[tool.greennlp]`` table of ``pyproject`` ({} if the file or table is absent)."""
    try:
        text = pyproject.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{pyproject}: cannot read ({exc.strerror})") from exc
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject}: not valid TOML ({exc})") from exc
    table = data.get("tool", {}).get("greennlp", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{pyproject}: [tool.greennlp] must be a table")
    return table
