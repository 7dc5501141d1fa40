"""codecarbon's reference data (CPU TDP table, grid carbon intensity, RAM model), read without importing codecarbon.

``import codecarbon`` pulls in pandas and costs about a second, so this module reads
the data files bundled in the installed codecarbon package directly. The package
folder is located with `importlib.util.find_spec`, which does not execute it.

Files read (paths relative to the codecarbon package folder):

- ``data/hardware/cpu_power.csv``: CPU name and TDP in watts;
- ``data/private_infra/global_energy_mix.json``: per ISO 3166-1 alpha-3 country code,
  the grid's carbon intensity (gCO2e/kWh), the data year and the country name;
- ``data/private_infra/carbon_intensity_per_source.json``: the world average used when
  no region is known, with its source.

Each file is parsed once per process (`functools.cache`).
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import json
import logging
import math
import platform
import re
from typing import NamedTuple
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pytest_greennlp.errors import ConfigError, MeasurementError

__all__ = [
    "DEFAULT_W_PER_THREAD",
    "DEFAULT_W_PER_THREAD_SOURCE",
    "RAM_SLOT_POWER_X86_W",
    "CpuPower",
    "GridIntensity",
    "cpu_model_name",
    "cpu_tdp",
    "grid_intensity",
    "ram_power_w",
]

logger = logging.getLogger(__name__)

#: Watts per logical CPU thread assumed when the CPU is not in the TDP table.
#: codecarbon 3.x does the same: ``DEFAULT_POWER_PER_CORE = 4`` in ``codecarbon/core/cpu.py``,
#: multiplied by the thread count (``count_cpus()``) when its TDP lookup fails.
DEFAULT_W_PER_THREAD = 4.0
DEFAULT_W_PER_THREAD_SOURCE = (
    "CPU not in codecarbon's TDP table; codecarbon's default of 4 W per thread "
    "(DEFAULT_POWER_PER_CORE, codecarbon/core/cpu.py)"
)

#: Watts per DIMM on x86 (``RAM_SLOT_POWER_X86`` in ``codecarbon/external/ram.py``).
RAM_SLOT_POWER_X86_W = 5.0
#: Watts per DIMM and minimum on ARM (hard-coded in ``RAM._calculate_ram_power``).
_RAM_SLOT_POWER_ARM_W = 1.5
_RAM_MIN_POWER_ARM_W = 3.0
#: codecarbon's ``B_TO_GB`` (``codecarbon/external/hardware.py``): its "GB" are GiB.
_BYTES_PER_GB = 1024**3

_CPU_TABLE = "data/hardware/cpu_power.csv"
_ENERGY_MIX = "data/private_infra/global_energy_mix.json"
_PER_SOURCE = "data/private_infra/carbon_intensity_per_source.json"

# Normalisation of CPU names (brand strings and table rows alike).
_PARENTHESISED = re.compile(r"\([^)]*\)")  # (R), (TM), (tm), (65W), (OEM Only) ...
_AT_FREQUENCY = re.compile(r"@\s*\d+(?:\.\d+)?\s*[GM]Hz", re.IGNORECASE)  # "@ 2.20GHz"
_SEPARATORS = re.compile(r"[\s,]+")
_N_CORE = re.compile(r"^[a-z0-9]+-core$")  # "64-core", "eight-core"
_FILLER_TOKENS = frozenset({"cpu", "processor"})


class CpuPower(NamedTuple):
    """A CPU's thermal design power from codecarbon's table.

    Attributes
    ----------
    tdp_w
        Thermal design power of the whole package, in watts.
    matched_name
        The table row that matched, as spelled in the table.
    source
        One line naming the table, its codecarbon version and the row.
    """

    tdp_w: float
    matched_name: str
    source: str


class GridIntensity(NamedTuple):
    """Carbon intensity of a region's electricity grid.

    Attributes
    ----------
    region
        Upper-case ISO 3166-1 alpha-3 code, or None for the world average.
    g_per_kwh
        Grams of CO2-equivalent per kilowatt-hour.
    source
        One line naming the data file, its codecarbon version and the row.
    year
        The year of the country's energy mix, or None for the world average.
    """

    region: str | None
    g_per_kwh: float
    source: str
    year: int | None


# -- private helpers ---------------------------------------------------------------


@functools.cache
def _data_dir() -> Path:
    spec = importlib.util.find_spec("codecarbon")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        if (Path(location) / "data").is_dir():
            return Path(location)
    raise MeasurementError("codecarbon's data files not found: is codecarbon installed?")


@functools.cache
def _codecarbon_label() -> str:
    """``codecarbon 3.3.2``: the version from the package's ``_version.py``, else its metadata.

    Reading the one-line ``_version.py`` costs microseconds; finding and parsing the
    distribution's metadata costs milliseconds at every ``--green`` start-up.
    """
    try:
        text = (_data_dir() / "_version.py").read_text(encoding="utf-8")
        match = re.search(r"""__version__\s*=\s*["']([^"']+)["']""", text)
        if match:
            return f"codecarbon {match.group(1)}"
    except (OSError, MeasurementError, UnicodeDecodeError):
        pass
    try:
        return f"codecarbon {version('codecarbon')}"
    except PackageNotFoundError:  # pragma: no cover - data found but no metadata
        return "codecarbon"


def _cpu_tokens(name: str) -> tuple[str, ...]:
    """Normalise a CPU name into lower-case tokens.

    Drops parenthesised groups ("(R)", "(TM)", "(65W)"), the "@ 2.20GHz" frequency,
    the words "CPU" and "Processor", and "<n>-Core" tokens.
    """
    text = name.replace("\u00ae", "").replace("\u2122", "")
    text = _AT_FREQUENCY.sub(" ", _PARENTHESISED.sub("", text))
    tokens = (token for token in _SEPARATORS.split(text.lower()) if token)
    return tuple(t for t in tokens if t not in _FILLER_TOKENS and not _N_CORE.match(t))


@functools.cache
def _cpu_table(
    needles: frozenset[str] = frozenset(),
) -> dict[str, list[tuple[tuple[str, ...], float, str]]]:
    """CPU rows indexed by their first normalised token.

    Only rows whose lower-cased name contains one of ``needles`` are normalised (a
    row can match only if its digit-bearing tokens occur in the brand string, so the
    brand's digit-bearing tokens are the needles); this keeps the lookup to a plain
    scan of the file instead of normalising all ~5,000 rows.

    Rows that cannot be matched safely are left out: one-token names (bare model
    numbers such as "3280" or "6140", which collide across vendors) and names with
    no digit (a family name is not a model). After normalisation the first row of
    duplicates wins (e.g. "AMD Phenom II X4 945 (125W)" over its "(95W)" twin).
    """
    index: dict[str, list[tuple[tuple[str, ...], float, str]]] = {}
    if not needles:
        return index
    seen: set[tuple[str, ...]] = set()
    with open(_data_dir() / _CPU_TABLE, newline="", encoding="utf-8") as handle:
        header = next(csv.reader([handle.readline()]))
        lines = [line for line in handle if any(n in line.lower() for n in needles)]
    name_at, tdp_at = header.index("Name"), header.index("TDP")
    for row in csv.reader(lines):
        name = row[name_at]
        tokens = _cpu_tokens(name)
        if len(tokens) < 2 or not any(c.isdigit() for c in "".join(tokens)):
            continue
        if tokens in seen:
            continue
        try:
            tdp = float(row[tdp_at])
        except (ValueError, IndexError):
            continue
        seen.add(tokens)
        index.setdefault(tokens[0], []).append((tokens, tdp, name))
    return index


@functools.cache
def _energy_mix() -> dict[str, dict[str, object]]:
    with open(_data_dir() / _ENERGY_MIX, encoding="utf-8") as handle:
        data: dict[str, dict[str, object]] = json.load(handle)
    return {code.upper(): row for code, row in data.items() if "carbon_intensity" in row}


@functools.cache
def _per_source() -> dict[str, object]:
    with open(_data_dir() / _PER_SOURCE, encoding="utf-8") as handle:
        data: dict[str, object] = json.load(handle)
    return data


def _estimate_dimm_count(total_gb: float) -> int:
    """The rules of ``RAM._estimate_dimm_count`` in ``codecarbon/external/ram.py``."""
    if total_gb <= 2:
        return 1
    if total_gb <= 32:
        if total_gb <= 16:
            return 2  # <=4 GB: 2 minimum, <=8 GB: 2x4GB, <=16 GB: 2x8GB
        return 4  # 17-32 GB: 4x8GB
    if total_gb <= 128:
        return 4 if total_gb <= 64 else 8
    dimm_count = 8
    for dimm_size in (128, 64, 32, 16, 8, 4):
        if dimm_size <= total_gb / 8:
            dimm_count = min(math.ceil(total_gb / dimm_size), 32)
            break
    return dimm_count


# -- public API --------------------------------------------------------------------


def cpu_tdp(cpu_model: str) -> CpuPower | None:
    """Look up a CPU brand string in codecarbon's TDP table.

    Parameters
    ----------
    cpu_model
        The brand string, e.g. ``"Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz"``.

    Returns
    -------
    CpuPower or None
        The matching row, or None when no row matches (callers then use
        `DEFAULT_W_PER_THREAD`, as codecarbon does).

    Notes
    -----
    Matching rule: both the brand string and every table name are normalised
    (parenthesised groups such as "(R)", "(TM)", "(65W)" removed, "@ 2.20GHz" removed,
    the words "CPU" and "Processor" and "<n>-Core" dropped, lower-cased, split on
    spaces and commas). A table name matches when its tokens occur in the brand
    string's tokens as a contiguous run of *whole* tokens, so "6130" never matches
    "6130F" or "16130". The longest match wins (most tokens, then most characters,
    then table order). Table names of a single token (bare model numbers such as
    "3280", which exist for several vendors) and names without a digit never match.

    Examples
    --------
    >>> cpu_tdp("Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz").matched_name
    'Intel Xeon Gold 6130'
    >>> cpu_tdp("AMD EPYC") is None
    True
    """
    tokens = _cpu_tokens(cpu_model)
    table = _cpu_table(frozenset(t for t in tokens if any(c.isdigit() for c in t)))
    best: tuple[tuple[int, int], float, str] | None = None
    for start, token in enumerate(tokens):
        for candidate, tdp, name in table.get(token, ()):
            if tokens[start : start + len(candidate)] != candidate:
                continue
            rank = (len(candidate), len("".join(candidate)))
            if best is None or rank > best[0]:
                best = (rank, tdp, name)
    if best is None:
        logger.debug("CPU %r not in codecarbon's TDP table", cpu_model)
        return None
    _, tdp, name = best
    source = f"{_codecarbon_label()} cpu_power.csv row {name!r}: TDP {tdp:g} W"
    return CpuPower(tdp_w=tdp, matched_name=name, source=source)


def grid_intensity(region: str | None) -> GridIntensity:
    """Return the carbon intensity of a country's grid, or the world average.

    Parameters
    ----------
    region
        ISO 3166-1 alpha-3 country code, case-insensitive (``"FRA"``), or None for
        codecarbon's world average.

    Returns
    -------
    GridIntensity
        The intensity in gCO2e/kWh with its source and data year.

    Raises
    ------
    ConfigError
        If the code is not in codecarbon's energy-mix table.

    Examples
    --------
    >>> grid_intensity("fra").g_per_kwh
    56.039
    >>> grid_intensity(None).g_per_kwh
    475.0
    """
    if region is None:
        data = _per_source()
        value = float(data["world_average"])  # type: ignore[arg-type]
        reference = data.get("world_average_source", "no source given")
        source = f"{_codecarbon_label()} world average ({reference})"
        return GridIntensity(region=None, g_per_kwh=value, source=source, year=None)
    code = region.strip().upper()
    mix = _energy_mix()
    row = mix.get(code)
    if row is None:
        examples = ", ".join(c for c in ("FRA", "USA", "DEU", "GBR", "CHN") if c in mix)
        raise ConfigError(
            f"unknown grid region {region!r}: expected an ISO 3166-1 alpha-3 code "
            f"from codecarbon's energy-mix table, e.g. {examples}"
        )
    value = float(row["carbon_intensity"])  # type: ignore[arg-type]
    year_raw = row.get("year")
    year = int(year_raw) if isinstance(year_raw, (int, float, str)) else None
    country = row.get("country_name", code)
    source = f"{_codecarbon_label()} global_energy_mix.json: {country} ({code}), {year}"
    return GridIntensity(region=code, g_per_kwh=value, source=source, year=year)


def ram_power_w(total_bytes: int, *, machine: str | None = None) -> tuple[float, str]:
    """Estimate the power of a machine's RAM with codecarbon 3.x's model.

    Reproduces ``RAM._calculate_ram_power`` and ``RAM._estimate_dimm_count`` in
    ``codecarbon/external/ram.py`` (codecarbon 3.3): the DIMM count is guessed from the
    total size in GiB (1 up to 2 GiB, 2 up to 16, 4 up to 64, 8 up to 128, then
    ``ceil(total / size)`` for the largest common DIMM size that is at most an eighth
    of the total, capped at 32); each DIMM draws 5 W on x86 (``RAM_SLOT_POWER_X86``)
    or 1.5 W on ARM, with diminishing marginal power (x0.9 for DIMMs 5-8, x0.8 for
    9-16, x0.7 beyond) and a floor of two DIMMs on x86 (10 W) or 3 W on ARM.
    codecarbon's SLURM allocation lookup and user override are not reproduced.

    Parameters
    ----------
    total_bytes
        The machine's total memory in bytes.
    machine
        `platform.machine` value deciding ARM vs x86; default: this machine's.

    Returns
    -------
    tuple of (float, str)
        Watts, and one line stating the model and its inputs.

    Examples
    --------
    >>> ram_power_w(32 * 1024**3, machine="x86_64")[0]
    20.0
    """
    if total_bytes < 0:
        raise ValueError("total_bytes must be non-negative.")
    arch = (platform.machine() if machine is None else machine).lower()
    is_arm = "arm" in arch or "aarch" in arch
    total_gb = total_bytes / _BYTES_PER_GB
    dimms = _estimate_dimm_count(total_gb)
    if is_arm:
        per_dimm, min_power = _RAM_SLOT_POWER_ARM_W, _RAM_MIN_POWER_ARM_W
    else:
        per_dimm, min_power = RAM_SLOT_POWER_X86_W, RAM_SLOT_POWER_X86_W * 2
    if dimms <= 4:
        total = per_dimm * dimms
    elif dimms <= 8:
        total = per_dimm * 4 + per_dimm * 0.9 * (dimms - 4)
    elif dimms <= 16:
        total = per_dimm * 4 + per_dimm * 0.9 * 4 + per_dimm * 0.8 * (dimms - 8)
    else:
        total = (
            per_dimm * 4 + per_dimm * 0.9 * 4 + per_dimm * 0.8 * 8 + per_dimm * 0.7 * (dimms - 16)
        )
    watts = max(min_power, total)
    kind = "ARM" if is_arm else "x86"
    source = (
        f"{_codecarbon_label()} RAM model (codecarbon/external/ram.py): "
        f"{total_gb:.1f} GiB -> {dimms} DIMMs x {per_dimm:g} W ({kind}) = {watts:g} W"
    )
    return watts, source


@functools.cache
def cpu_model_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """Return this machine's CPU brand string.

    Parameters
    ----------
    cpuinfo
        The file to parse; default: ``/proc/cpuinfo``.

    Returns
    -------
    str
        The first ``model name`` value, e.g. ``"Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz"``;
        where the file is missing or has no such line, `platform.processor` (possibly
        ``""``).
    """
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name":
                    return value.strip()
    except OSError:
        logger.debug("%s unreadable", cpuinfo, exc_info=True)
    return platform.processor()
