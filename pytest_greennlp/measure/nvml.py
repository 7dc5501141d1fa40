"""NVML access: lazy ``pynvml`` import, one init per process, the GPUs this process can see.

Every function takes an ``nvml`` argument: the ``pynvml`` module (imported lazily on
first use, from the ``nvidia-ml-py`` distribution) by default, or any object with the
same functions and ``NVMLError*`` classes, which is how the tests run without a GPU.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["GpuInfo", "device_handle", "load_nvml", "nvml_devices"]

logger = logging.getLogger(__name__)


#: On Linux, NVML can only work when the driver is loaded; checking is cheaper than
#: importing pynvml and failing nvmlInit.
_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl")


class GpuInfo(NamedTuple):
    """One physical GPU visible to this process.

    Attributes
    ----------
    index
        NVML index (PCI bus order). The CUDA ordinal is the position in the list
        `nvml_devices` returns.
    uuid
        ``"GPU-..."``; energy readers name their domain ``f"gpu:{uuid}"``.
    name
        Product name, e.g. ``"NVIDIA H100 80GB HBM3"``.
    driver
        Driver version string.
    memory_total_bytes
        Device memory in bytes.
    """

    index: int
    uuid: str
    name: str
    driver: str
    memory_total_bytes: int


def _text(value: object) -> str:
    # Older pynvml returned bytes from the string getters.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _nvml_error(nvml: Any) -> type[BaseException]:
    error = getattr(nvml, "NVMLError", Exception)
    return error if isinstance(error, type) and issubclass(error, BaseException) else Exception


@functools.cache
def _init(nvml: Any) -> bool:
    """Call ``nvmlInit`` once per process (per module object); False if it fails."""
    try:
        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        logger.debug("nvmlInit failed: %s", exc)
        return False
    return True


def load_nvml(nvml: Any = None) -> Any:
    """Return an initialised NVML module, or None when NVML is unusable.

    Parameters
    ----------
    nvml
        A stand-in module object; default: ``pynvml``, imported here.

    Returns
    -------
    module or None
        ``nvml`` (or ``pynvml``) after a successful ``nvmlInit``; None when ``pynvml``
        is not installed or ``nvmlInit`` fails (no driver, no GPU). Logged at debug.
    """
    if nvml is None:
        if sys.platform.startswith("linux") and not any(os.path.exists(p) for p in _DRIVER_PATHS):
            logger.debug("no NVIDIA driver (%s absent): NVML not loaded", " and ".join(_DRIVER_PATHS))
            return None
        try:
            import pynvml
        except ImportError:
            logger.debug("pynvml not importable: install nvidia-ml-py for GPU energy")
            return None
        nvml = pynvml
    return nvml if _init(nvml) else None


def device_handle(gpu: GpuInfo, nvml: Any) -> Any:
    """Return the NVML handle of ``gpu`` (by its NVML index)."""
    return nvml.nvmlDeviceGetHandleByIndex(gpu.index)


def _mig_uuids(nvml: Any, handle: Any) -> list[str]:
    """UUIDs of the MIG devices on a GPU; [] when MIG is off or unsupported."""
    error = _nvml_error(nvml)
    try:
        count = int(nvml.nvmlDeviceGetMaxMigDeviceCount(handle))
    except (error, AttributeError):
        return []
    uuids = []
    for slot in range(count):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            uuids.append(_text(nvml.nvmlDeviceGetUUID(mig)))
        except (error, AttributeError):
            continue
    return uuids


def _resolve(entry: str, gpus: list[tuple[GpuInfo, Any]], nvml: Any) -> tuple[GpuInfo, Any] | None:
    """The GPU one CUDA_VISIBLE_DEVICES entry names, or None if it names none."""
    if entry.isascii() and entry.isdigit():
        wanted = int(entry)
        return next((g for g in gpus if g[0].index == wanted), None)
    if entry.startswith("MIG-GPU-"):  # legacy MIG form: MIG-GPU-<uuid>/<gi>/<ci>
        entry = entry[len("MIG-") :].split("/", 1)[0]
    elif entry.startswith("MIG-"):  # MIG-<mig uuid>: find the parent GPU
        for gpu in gpus:
            if any(uuid.startswith(entry) for uuid in _mig_uuids(nvml, gpu[1])):
                return gpu
        return None
    if entry.startswith("GPU-"):  # a full UUID or a unique prefix, as CUDA accepts
        matches = [g for g in gpus if g[0].uuid.startswith(entry)]
        return matches[0] if len(matches) == 1 else None
    return None


def _visible(
    gpus: list[tuple[GpuInfo, Any]], spec: str | None, nvml: Any
) -> list[tuple[GpuInfo, Any]]:
    if spec is None:
        return gpus
    selected: list[tuple[GpuInfo, Any]] = []
    for raw in spec.split(","):
        found = _resolve(raw.strip(), gpus, nvml)
        if found is None:  # CUDA ignores the entry and every entry after it
            logger.debug("CUDA_VISIBLE_DEVICES=%r: %r names no GPU; rest ignored", spec, raw)
            break
        if found not in selected:  # several MIG instances of one GPU: one energy domain
            selected.append(found)
    return selected


def nvml_devices(nvml: Any = None, *, environ: Mapping[str, str] | None = None) -> list[GpuInfo]:
    """List the physical GPUs this process can see, in CUDA order.

    Parameters
    ----------
    nvml
        A stand-in module object; default: ``pynvml``.
    environ
        Where to read ``CUDA_VISIBLE_DEVICES``; default: `os.environ`.

    Returns
    -------
    list of GpuInfo
        Every GPU NVML reports when ``CUDA_VISIBLE_DEVICES`` is unset. Otherwise only
        the listed ones, in the listed order: integer entries are NVML indices (the
        same as CUDA's only under ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or with identical
        GPUs), ``GPU-<uuid>`` entries (or unique prefixes) name a GPU, and both MIG
        forms (``MIG-<uuid>``, ``MIG-GPU-<uuid>/<gi>/<ci>``) name their parent GPU,
        listed once: MIG instances have no energy counter of their own. As in CUDA,
        an entry naming no GPU hides it and every later entry. [] when ``pynvml`` is
        missing or ``nvmlInit`` fails (logged at debug).
    """
    module = load_nvml(nvml)
    if module is None:
        return []
    error = _nvml_error(module)
    try:
        count = int(module.nvmlDeviceGetCount())
        driver = _text(module.nvmlSystemGetDriverVersion())
    except error as exc:
        logger.debug("NVML device enumeration failed: %s", exc)
        return []
    gpus: list[tuple[GpuInfo, Any]] = []
    for index in range(count):
        try:
            handle = module.nvmlDeviceGetHandleByIndex(index)
            info = GpuInfo(
                index=index,
                uuid=_text(module.nvmlDeviceGetUUID(handle)),
                name=_text(module.nvmlDeviceGetName(handle)),
                driver=driver,
                memory_total_bytes=int(module.nvmlDeviceGetMemoryInfo(handle).total),
            )
        except error as exc:
            logger.debug("NVML device %d skipped: %s", index, exc)
            continue
        gpus.append((info, handle))
    env = os.environ if environ is None else environ
    return [gpu for gpu, _ in _visible(gpus, env.get("CUDA_VISIBLE_DEVICES"), module)]
