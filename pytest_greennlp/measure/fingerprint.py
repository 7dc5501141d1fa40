"""The hardware fingerprint: CPU, memory, GPUs, driver, torch and the device tests ran on."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from pytest_greennlp.measure.codecarbon_data import cpu_model_name
from pytest_greennlp.measure.nvml import nvml_devices

__all__ = ["default_fingerprint"]


def _total_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _torch_versions() -> tuple[str | None, str | None]:
    """Versions of the torch (and its CUDA) the tests imported; None if none did.

    Never imports torch: figures of tests that did not use it do not depend on it.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None, None
    version = getattr(torch, "version", None)
    return str(getattr(torch, "__version__", None)), getattr(version, "cuda", None)


def _platform() -> str:
    """`platform.platform` without the processor field (``Linux-6.1.0-x86_64-with-glibc2.36``).

    ``platform.platform()`` asks ``uname -p`` in a subprocess for the processor, which
    costs milliseconds at every start-up, and drops it anyway when it equals the machine.
    """
    system, release, machine = platform.system(), platform.release(), platform.machine()
    if system != "Linux":  # other systems name their release their own way
        return platform.platform()
    parts = [system, release, machine]
    libc, libc_version = platform.libc_ver()
    if libc:
        parts += ["with", f"{libc}{libc_version}"]
    return "-".join(p.strip().replace(" ", "_") for p in parts if p)


def default_fingerprint() -> dict[str, Any]:
    """Return the built-in fingerprint as a dict of `records.Fingerprint` fields."""
    gpus = [
        {"index": g.index, "name": g.name, "uuid": g.uuid, "driver": g.driver,
         "memory_total_bytes": g.memory_total_bytes}
        for g in nvml_devices()
    ]
    torch_version, cuda_version = _torch_versions()
    return {
        "cpu_model": cpu_model_name(),
        "cpu_count": os.cpu_count() or 1,
        "memory_total_bytes": _total_memory_bytes(),
        "platform": _platform(),
        "python": platform.python_version(),
        "device": "cuda" if gpus else "cpu",
        "torch": torch_version,
        "cuda": cuda_version,
        "gpus": gpus,
        "extra": {},
    }
