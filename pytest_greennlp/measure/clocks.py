"""Clocks and peak memory: wall and process CPU time, CUDA synchronisation, per-test peak RSS."""

from __future__ import annotations

import logging
import os
import resource
import sys
from typing import Any

from pytest_greennlp.errors import MeasurementError

__all__ = ["MemoryProbe", "StatmRss", "cuda_synchronize", "torch_cuda"]

log = logging.getLogger(__name__)

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"
_STATM = "/proc/self/statm"
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def torch_cuda() -> Any | None:
    """Return ``torch.cuda`` if torch is already imported and CUDA is initialised, else None.

    Never imports torch: a test that did not load it cannot have used the GPU.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        cuda = torch.cuda
        return cuda if cuda.is_available() and cuda.is_initialized() else None
    except Exception:  # pragma: no cover - broken torch install
        log.debug("torch.cuda unusable", exc_info=True)
        return None


def cuda_synchronize() -> tuple[str, ...]:
    """Wait for queued CUDA work so a window edge covers it; return what was synchronised."""
    cuda = torch_cuda()
    if cuda is None:
        return ()
    cuda.synchronize()
    return ("cuda",)


class StatmRss:
    """Current RSS in bytes from ``/proc/self/statm`` (kept open: ~1 us per read)."""

    def __init__(self) -> None:
        try:
            self._fd = os.open(_STATM, os.O_RDONLY)
        except OSError as exc:
            raise MeasurementError(f"cannot read {_STATM}: {exc}") from exc

    def __call__(self) -> int:
        return int(os.pread(self._fd, 128, 0).split()[1]) * _PAGE_SIZE

    def close(self) -> None:
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:  # pragma: no cover - already closed
                log.debug("closing %s failed", _STATM, exc_info=True)
            self._fd = -1


class MemoryProbe:
    """Peak resident memory of this process over a window.

    On Linux the kernel's high-water mark (``VmHWM``) is reset at the window start by
    writing ``5`` to ``/proc/self/clear_refs``, so the peak is the test's own. Where that
    is not possible the lifetime peak (``ru_maxrss``) is reported and labelled as such.
    Both files stay open for the session: a reset and a read cost microseconds.
    """

    def __init__(self) -> None:
        self._clear_fd = self._status_fd = -1
        self._statm: StatmRss | None = None
        #: After the last reset, ``ru_maxrss`` equals VmHWM (see `reset`).
        self._rusage_tracks_hwm = False
        try:
            self._clear_fd = os.open(_CLEAR_REFS, os.O_WRONLY)
            self._status_fd = os.open(_STATUS, os.O_RDONLY)
            self._statm = StatmRss()
            os.write(self._clear_fd, b"5")
            self.per_test = self._read_hwm() is not None
        except (OSError, MeasurementError):
            self.per_test = False
        if not self.per_test:
            self.close()
        self.method = (
            "VmHWM after clear_refs reset (peak during the test)"
            if self.per_test
            else "ru_maxrss (peak of the whole process so far)"
        )

    def close(self) -> None:
        for fd in (self._clear_fd, self._status_fd):
            if fd >= 0:
                os.close(fd)
        self._clear_fd = self._status_fd = -1
        if self._statm is not None:
            self._statm.close()
            self._statm = None

    def _read_hwm(self) -> int | None:
        try:
            data = os.pread(self._status_fd, 8192, 0)
            start = data.index(b"VmHWM:") + 6
            return int(data[start:data.index(b"kB", start)]) * 1024
        except (OSError, ValueError):
            return None

    def reset(self) -> None:
        """Start a new peak window (also the CUDA peak when CUDA is in use).

        The kernel's ``ru_maxrss`` is the larger of the high-water mark this resets and a
        per-process maximum that only exiting threads raise. When, right after the reset,
        it is no higher than the current RSS, it follows the window's own peak and `peak`
        reads it (a light system call); otherwise `peak` reads VmHWM from
        ``/proc/self/status``, which the kernel has to generate in full.
        """
        self._rusage_tracks_hwm = False
        if self.per_test:
            try:
                os.write(self._clear_fd, b"5")
                assert self._statm is not None
                maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                self._rusage_tracks_hwm = maxrss_kib * 1024 <= self._statm()
            except OSError:  # pragma: no cover - permission changed mid-run
                self.per_test = False
            except (ValueError, IndexError):  # pragma: no cover - unexpected statm format
                pass
        cuda = torch_cuda()
        if cuda is not None:
            cuda.reset_peak_memory_stats()

    def peak(self) -> tuple[int | None, int | None]:
        """Return (peak RSS bytes, CUDA peak allocated bytes or None)."""
        rss = None
        if self.per_test:
            if self._rusage_tracks_hwm:
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            else:
                rss = self._read_hwm()
        if rss is None:
            scale = 1 if sys.platform == "darwin" else 1024
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        cuda = torch_cuda()
        return rss, (int(cuda.max_memory_allocated()) if cuda is not None else None)
