"""Multi-process training: one price tag for a ``torch.distributed`` job spawned from a green test.

``green.spawn(fn, args, nprocs=2, backend="gloo")`` runs ``fn(rank, *args)`` in
``nprocs`` processes with ``torch.multiprocessing.spawn``, as DDP code usually does, with
a wrapper in each rank that sets up the process group and measures that process: wall
time, CPU time (its whole life, start-up included), the RAM-model energy estimate of its
memory, and the FLOPs, examples and metrics it reports through `rank_recorder`. Each
rank writes its figures to a JSON file in a temporary folder; the parent reads them when
the job ends (failed ranks included: a failed job still cost energy).

Counting once:

* **process-scope** energy (estimates from a process's own CPU time and memory) cannot
  see the ranks, so the parent adds theirs: CPU seconds times the parent reader's watts
  per thread, and each rank's own RAM-model reading;
* **machine-scope** counters (RAPL, NVML per GPU) already see every process on the
  device: only the parent's window reads them, once, over the whole job. Ranks open no
  counter, so a GPU or CPU package shared by several ranks is never counted twice;
* **GPUs** are matched between CUDA and NVML by UUID: each rank reports the UUID of its
  CUDA device (``CUDA_VISIBLE_DEVICES`` is inherited, so ranks see the parent's GPUs),
  and `match_gpus` maps it to the parent's ``gpu:<uuid>`` energy domain or reports it
  as unread.

The parent's figures include the job's wall time once (ranks run at once), the CPU time
of every process, and the FLOPs the ranks report (each rank counts its own share of the
data). Importing this module does not import torch.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_greennlp.errors import ConfigError, GreenNLPError

if TYPE_CHECKING:
    from pytest_greennlp.measure.flops import FlopCount
    from pytest_greennlp.session import TestRun

__all__ = ["GpuMatch", "RankFigures", "RankRecorder", "match_gpus", "rank_recorder", "spawn"]

log = logging.getLogger(__name__)

_RANK_FILE = "rank-{rank}.json"

#: The recorder of this process when it is a rank started by `spawn` (None otherwise).
_this_rank: list[RankRecorder] = []


# -- figures a rank sends back -------------------------------------------------------


@dataclass
class RankFigures:
    """What one rank measured and reported; written as JSON for the parent."""

    rank: int
    pid: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    startup_cpu_s: float = 0.0
    counting_cpu_s: float = 0.0
    ram_estimated_j: float | None = None
    forward_flops: int = 0
    backward_flops: int = 0
    flops_methods: list[str] = field(default_factory=list)
    examples: int = 0
    tokens: int = 0
    metrics: dict[str, list[Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    device: str = "cpu"
    gpu_uuid: str | None = None
    error: str | None = None


class RankRecorder:
    """What rank code tells the parent: FLOPs, work done, metrics (rank 0's are kept).

    Get it in rank code with `rank_recorder`. Outside a rank started by `spawn` every
    call does nothing.
    """

    def __init__(self, figures: RankFigures | None) -> None:
        self.figures = figures

    @property
    def enabled(self) -> bool:
        """True in a rank started by `spawn`."""
        return self.figures is not None

    def model(
        self, model: Any, example_inputs: Any, *, backward: bool = True, calls: int = 1,
        loss_fn: Callable[[Any], Any] | None = None,
    ) -> FlopCount | None:
        """Count one pass of ``model`` on this rank's batch; the rank's FLOPs grow by ``calls`` times it.

        A ``DistributedDataParallel`` wrapper is unwrapped first (its gradient
        all-reduce is communication, not FLOPs). The counting pass's CPU time is kept
        out of the rank's CPU time and energy.
        """
        if isinstance(calls, bool) or not isinstance(calls, int) or calls < 0:
            raise ConfigError(f"rank_recorder().model: calls must be an integer >= 0, got {calls!r}")
        figures = self.figures
        if figures is None:
            return None
        from pytest_greennlp.measure.flops import count_flops

        inner = getattr(model, "module", None)
        if inner is not None and type(model).__name__ == "DistributedDataParallel":
            model = inner
        started = time.process_time()
        count = count_flops(model, example_inputs, backward=backward, loss_fn=loss_fn)
        figures.counting_cpu_s += time.process_time() - started
        figures.forward_flops += count.forward * calls
        figures.backward_flops += count.backward * calls
        if count.method not in figures.flops_methods:
            figures.flops_methods.append(count.method)
        return count

    def flops(self, forward: int, backward: int = 0) -> None:
        """Add FLOPs this rank computed itself."""
        for name, value in (("forward", forward), ("backward", backward)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"rank_recorder().flops: {name} must be an integer >= 0, got {value!r}")
        if self.figures is not None:
            self.figures.forward_flops += forward
            self.figures.backward_flops += backward
            method = "declared by the rank (rank_recorder().flops)"
            if method not in self.figures.flops_methods:
                self.figures.flops_methods.append(method)

    def examples(self, n: int) -> None:
        """Add ``n`` examples this rank processed."""
        if self.figures is not None:
            self.figures.examples += _count(n, "rank_recorder().examples")

    def tokens(self, n: int) -> None:
        """Add ``n`` tokens this rank processed."""
        if self.figures is not None:
            self.figures.tokens += _count(n, "rank_recorder().tokens")

    def metric(self, name: str, value: float, *, higher_is_better: bool = True) -> None:
        """Report a quality figure; the parent records rank 0's."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"rank_recorder().metric: name must be a non-empty string, got {name!r}")
        if self.figures is not None:
            self.figures.metrics[name] = [float(value), bool(higher_is_better)]

    def note(self, text: str) -> None:
        """Attach a short note to the test's record."""
        if self.figures is not None:
            self.figures.notes.append(str(text)[:500])


def rank_recorder() -> RankRecorder:
    """Return this rank's recorder (inert outside a rank started by `spawn`)."""
    return _this_rank[-1] if _this_rank else RankRecorder(None)


def _count(n: object, where: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"{where}: expected an integer >= 0, got {n!r}")
    return n


# -- GPU matching (pure) -----------------------------------------------------------------


@dataclass(frozen=True)
class GpuMatch:
    """Which parent energy domain covers each rank's GPU.

    Attributes
    ----------
    domains : dict
        ``"gpu:<uuid>"`` -> the ranks that ran on it (read once, by the parent).
    unread : dict
        A GPU UUID no parent reader covers -> its ranks (their GPU energy is missing).
    """

    domains: dict[str, list[int]]
    unread: dict[str, list[int]]


def match_gpus(rank_uuids: Mapping[int, str | None], reader_domains: Sequence[str]) -> GpuMatch:
    """Match each rank's CUDA device to the parent's NVML energy domain, by UUID.

    Parameters
    ----------
    rank_uuids : mapping of int to str or None
        Rank -> the UUID of its CUDA device as torch reports it (with or without the
        ``GPU-`` prefix NVML uses); None for a rank on CPU.
    reader_domains : sequence of str
        The parent's energy domains, e.g. ``"gpu:GPU-5f3c..."``, ``"cpu"``.

    Returns
    -------
    GpuMatch

    Examples
    --------
    >>> m = match_gpus({0: "5f3c-aa", 1: "GPU-5f3c-aa", 2: "77b1-cc", 3: None},
    ...                ["cpu", "gpu:GPU-5f3c-aa"])
    >>> m.domains, m.unread
    ({'gpu:GPU-5f3c-aa': [0, 1]}, {'GPU-77b1-cc': [2]})
    """
    known = {d for d in reader_domains if d.startswith("gpu:")}
    domains: dict[str, list[int]] = {}
    unread: dict[str, list[int]] = {}
    for rank in sorted(rank_uuids):
        uuid = rank_uuids[rank]
        if not uuid:
            continue
        full = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
        domain = f"gpu:{full}"
        (domains.setdefault(domain, []) if domain in known else unread.setdefault(full, [])).append(rank)
    return GpuMatch(domains, unread)


# -- the rank side -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cuda_uuid(torch: Any) -> tuple[str, str | None]:
    """(device name, UUID) of this rank's current CUDA device, if CUDA was used."""
    try:
        if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
            return "cpu", None
        index = torch.cuda.current_device()
        torch.cuda.synchronize()
        props = torch.cuda.get_device_properties(index)
        return f"cuda:{index}", str(props.uuid)
    except Exception:  # pragma: no cover - broken CUDA setup: the job itself reports it
        log.debug("CUDA device query failed", exc_info=True)
        return "cuda", None


def _rank_main(
    rank: int,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    world_size: int,
    backend: str,
    port: int,
    outdir: str,
    ram: bool,
    init: bool,
) -> None:
    """Run in each spawned process: set up, run ``fn(rank, *args)``, write the figures."""
    started = time.perf_counter()
    figures = RankFigures(rank=rank, pid=os.getpid(), startup_cpu_s=time.process_time())
    _this_rank.append(RankRecorder(figures))
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size), LOCAL_WORLD_SIZE=str(world_size),
    )
    import torch
    import torch.distributed as dist

    reader = None
    if ram:
        from pytest_greennlp.measure.energy import RamModelEstimateReader

        try:
            reader = RamModelEstimateReader.for_this_machine()
            reader.open()
        except (GreenNLPError, OSError, ValueError) as exc:
            figures.notes.append(f"rank {rank}: RAM estimate unavailable ({exc})")
            reader = None
    try:
        if backend == "nccl" and torch.cuda.is_available():
            torch.cuda.set_device(rank % torch.cuda.device_count())
        if init:
            dist.init_process_group(backend, rank=rank, world_size=world_size)
        fn(rank, *args)
    except BaseException as exc:
        figures.error = f"{type(exc).__name__}: {exc}"[:500]
        raise
    finally:
        figures.device, figures.gpu_uuid = _cuda_uuid(torch)
        if init and dist.is_initialized():
            try:
                dist.destroy_process_group()
            except Exception:  # pragma: no cover - teardown after a failed collective
                log.debug("destroy_process_group failed", exc_info=True)
        figures.wall_s = time.perf_counter() - started
        figures.cpu_s = max(0.0, time.process_time() - figures.counting_cpu_s)
        if reader is not None:
            try:
                figures.ram_estimated_j = reader.read_j()
            finally:
                reader.close()
        path = Path(outdir) / _RANK_FILE.format(rank=rank)
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(figures)), encoding="utf-8")
        partial.replace(path)
        _this_rank.pop()


# -- the parent side -----------------------------------------------------------------------


def _read_ranks(outdir: Path, nprocs: int) -> tuple[list[RankFigures], list[int]]:
    found, missing = [], []
    for rank in range(nprocs):
        path = outdir / _RANK_FILE.format(rank=rank)
        try:
            found.append(RankFigures(**json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError):
            missing.append(rank)
    return found, missing


def _attribute(run: TestRun, ranks: Sequence[RankFigures], missing: Sequence[int],
               nprocs: int, backend: str) -> None:
    """Add the ranks' figures to the test, each device once; describe it in ``extra``."""
    from pytest_greennlp.records import Metric

    cpu_s = sum(r.cpu_s for r in ranks)
    added: dict[str, float] = {}
    notes: list[str] = []
    for reader in run.readers:
        if reader.scope != "process":
            continue
        if reader.method == "estimate-cpu-time":
            watts = float(getattr(reader, "watts_per_thread", math.nan))
            if math.isfinite(watts):
                added[reader.domain] = cpu_s * watts
                continue
        elif reader.method == "estimate-ram-model":
            values = [r.ram_estimated_j for r in ranks]
            if all(v is not None for v in values):
                added[reader.domain] = sum(v for v in values if v is not None)
                continue
        notes.append(
            f"process-scope energy of {reader.domain} ({reader.method}) does not include "
            f"the {nprocs} ranks: no way to read it in them"
        )
    window = run.active_window()
    if window is None or not window.running:
        notes.append("green.spawn ran outside the measured window or region: its ranks are not in the figures")
    else:
        run.add_external(cpu_s=cpu_s, energy_j=added)
    forward = sum(r.forward_flops for r in ranks)
    backward = sum(r.backward_flops for r in ranks)
    methods = sorted({m for r in ranks for m in r.flops_methods})
    if methods:
        run.add_flops(forward, backward, method=f"{'; '.join(methods)} (summed over {len(ranks)} ranks)")
    for name, total in (("examples", sum(r.examples for r in ranks)), ("tokens", sum(r.tokens for r in ranks))):
        if total:
            run.add_count(name, total)
    first = next((r for r in ranks if r.rank == 0), None)
    if first is not None:
        for name, (value, higher) in first.metrics.items():
            run.metrics[name] = Metric(name, float(value), bool(higher))
    machine = [f"{r.domain} ({r.method})" for r in run.readers if r.scope == "machine"]
    gpus = match_gpus({r.rank: r.gpu_uuid for r in ranks}, [r.domain for r in run.readers])
    for uuid, on in gpus.unread.items():
        notes.append(f"GPU {uuid} of rank(s) {on} has no energy reader in this process; its energy is missing")
    if missing:
        notes.append(f"rank(s) {list(missing)} sent no figures (killed?); their share is missing")
    for r in ranks:
        notes.extend(r.notes)
    run.notes.extend(notes)
    run.extra["distributed"] = {
        "world_size": nprocs,
        "backend": backend,
        "ranks": [
            {k: v for k, v in asdict(r).items() if k not in ("metrics", "notes", "flops_methods")}
            for r in sorted(ranks, key=lambda r: r.rank)
        ],
        "added_cpu_s": cpu_s,
        "added_energy_j": added,
        "machine_scope": machine,
        "machine_scope_method": (
            "read once by the parent's window, which spans the whole job; ranks open no counter"
        ),
        "gpus": gpus.domains,
        "notes": notes,
    }


def spawn(
    run: TestRun | None,
    fn: Callable[..., Any],
    args: tuple[Any, ...] = (),
    *,
    nprocs: int = 2,
    backend: str = "gloo",
    init: bool = True,
) -> None:
    """Run ``fn(rank, *args)`` in ``nprocs`` ranks and add their figures to ``run``.

    Parameters
    ----------
    run : TestRun or None
        The measuring test (None: run the job, record nothing).
    fn : callable
        A module-level function (it is pickled into the ranks), called as
        ``fn(rank, *args)``.
    args : tuple
        Further arguments of ``fn``; picklable.
    nprocs : int
        Number of ranks (the world size).
    backend : str
        ``"gloo"`` (CPU) or ``"nccl"`` (one GPU per rank, rank ``r`` on CUDA device
        ``r % device_count``).
    init : bool
        Call ``init_process_group(backend)`` in each rank before ``fn`` (and destroy it
        after). False sets only the ``env://`` variables (``MASTER_ADDR``,
        ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

    Raises
    ------
    ConfigError
        For a bad ``nprocs``, ``backend`` or ``fn``.
    torch.multiprocessing.ProcessRaisedException
        If a rank raised; the figures the ranks wrote are recorded first.
    """
    # Validate the arguments.
    if isinstance(nprocs, bool) or not isinstance(nprocs, int) or nprocs < 1:
        raise ConfigError(f"green.spawn: nprocs must be a positive integer, got {nprocs!r}")
    if not isinstance(backend, str) or not backend:
        raise ConfigError(f"green.spawn: backend must be a name such as 'gloo' or 'nccl', got {backend!r}")
    if not callable(fn):
        raise ConfigError(f"green.spawn: fn must be callable, got {type(fn).__name__}")
    if not isinstance(args, tuple):
        raise ConfigError(f"green.spawn: args must be a tuple, got {type(args).__name__}")

    from torch.multiprocessing.spawn import spawn as mp_spawn

    outdir = Path(tempfile.mkdtemp(prefix="greennlp-ranks-"))
    ram = run is not None and any(r.method == "estimate-ram-model" and r.scope == "process" for r in run.readers)
    try:
        mp_spawn(  # type: ignore[no-untyped-call]
            _rank_main,
            args=(fn, args, nprocs, backend, _free_port(), str(outdir), ram, init),
            nprocs=nprocs,
            join=True,
        )
    finally:
        if run is not None:
            ranks, missing = _read_ranks(outdir, nprocs)
            _attribute(run, ranks, missing, nprocs, backend)
        shutil.rmtree(outdir, ignore_errors=True)
