"""Where models run: ``--device auto|cpu|cuda|cuda:N|mps`` (``device:`` in a study file).

:func:`resolve_device` turns the option into a ``torch.device`` (``auto``: CUDA when torch
sees a GPU, else Apple's MPS, else the CPU) and refuses a device that is not there with
an error naming ``device`` and the fix. :func:`numerics` is the block every model fits
and scores in: full fp32 (no TF32 on CUDA) and, off the CPU, torch's deterministic
algorithms. :func:`device_info` is what a run's manifest records.

Determinism: on the CPU the kernels shiftbench uses are deterministic for a given thread
count, so :func:`numerics` changes nothing there (the CPU path stays bit-identical). On
CUDA it sets ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (when unset: it must be set before the
first cuBLAS call to take effect), cuDNN's deterministic mode and
``torch.use_deterministic_algorithms(True, warn_only=True)``. Ops with no deterministic
CUDA kernel then only warn and stay non-deterministic: the backward passes of
interpolation and ``index_add`` inside anomalib's FastFlow and EfficientAD training (and
DRAEM's, whose Perlin masks are drawn on the GPU), and ``torch.quantile``'s sort in
EfficientAD's map quantiles. Inference-only models (PatchCore, PaDiM) score the same on
reruns on one GPU. Across devices numbers agree within the tolerances of docs/devices.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from shiftbench.errors import ShiftbenchError

#: the spellings ``--device`` accepts
DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"
_SPEC = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")
#: the matmul/convolution precision models run in (recorded in the manifest)
PRECISION = "float32"


def _parse(spec: Any) -> tuple[str, int | None]:
    text = str(spec).strip().lower()
    match = _SPEC.match(text)
    if match is None or (match[2] is not None and match[1] != "cuda"):
        raise ShiftbenchError(f"device {spec!r}: unknown device; use {DEVICE_HELP}", param="device")
    return match[1], None if match[2] is None else int(match[2])


def check_device_spec(spec: Any) -> None:
    """Reject a badly spelt ``device`` (without checking that the device exists)."""
    _parse(spec)


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` of ``spec``: ``auto`` is ``cuda`` if torch sees a GPU, else
    ``mps`` if available, else ``cpu``. A device that is not there (``cuda`` without a
    GPU, ``cuda:3`` on a two-GPU machine, ``mps`` off Apple silicon) is a
    :class:`ShiftbenchError` naming ``device`` and the fix."""
    kind, index = _parse(spec.type if isinstance(spec, torch.device) else spec)
    if isinstance(spec, torch.device):
        index = spec.index
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not _mps_available():
            raise ShiftbenchError(
                "device 'mps': torch sees no Apple GPU here; use --device cpu or auto",
                param="device",
            )
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ShiftbenchError(
            f"device {str(spec)!r}: torch sees no CUDA GPU here (no GPU, no driver, or a "
            "CPU-only torch build); use --device cpu or auto",
            param="device",
        )
    count = torch.cuda.device_count()
    index = 0 if index is None else index
    if index >= count:
        raise ShiftbenchError(
            f"device 'cuda:{index}': only {count} CUDA GPU(s) here (cuda:0 to cuda:{count - 1}); "
            "pick one of them or use --device auto",
            param="device",
        )
    return torch.device("cuda", index)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def device_info(device: str | torch.device) -> dict[str, Any]:
    """What a run records about its device: ``device`` (e.g. ``cuda:0``), ``type``,
    ``name`` (the GPU's name, or the CPU's), ``precision`` and ``deterministic``."""
    device = resolve_device(device)
    info: dict[str, Any] = {"device": str(device), "type": device.type}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["precision"] = f"{PRECISION} (TF32 off)"
        info["deterministic"] = "torch deterministic algorithms (warn only), cuDNN deterministic"
    elif device.type == "mps":
        info["name"] = "Apple MPS"
        info["precision"] = PRECISION
        info["deterministic"] = "torch deterministic algorithms (warn only)"
    else:
        info["name"] = _cpu_name()
        info["precision"] = PRECISION
        info["deterministic"] = "CPU kernels: bit-identical for a given torch thread count"
    return info


def _cpu_name() -> str:
    import platform

    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


@contextmanager
def numerics(device: torch.device) -> Iterator[None]:
    """fp32 and deterministic settings for a block run on ``device``, restored afterwards.

    The CPU: nothing changes. CUDA: TF32 off for convolutions and matrix products,
    cuDNN deterministic (no benchmark autotuning), ``use_deterministic_algorithms(True,
    warn_only=True)``, ``CUBLAS_WORKSPACE_CONFIG`` set when unset. MPS: deterministic
    algorithms, warn only. See the module docstring for what stays non-deterministic.
    """
    if device.type == "cpu":
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    saved_algos = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    cudnn = torch.backends.cudnn
    saved_cudnn = (cudnn.deterministic, cudnn.benchmark)
    saved_precision = _fp32_precision()
    torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        cudnn.deterministic, cudnn.benchmark = True, False
        _set_fp32_precision(("ieee", "ieee"))
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved_algos[0], warn_only=saved_algos[1])
        cudnn.deterministic, cudnn.benchmark = saved_cudnn
        _set_fp32_precision(saved_precision)


def _fp32_precision() -> tuple[Any, Any]:
    backends = torch.backends
    if hasattr(backends.cudnn, "conv") and hasattr(backends.cuda.matmul, "fp32_precision"):
        return backends.cuda.matmul.fp32_precision, backends.cudnn.conv.fp32_precision
    return backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32


def _set_fp32_precision(values: tuple[Any, Any]) -> None:
    backends = torch.backends
    if hasattr(backends.cudnn, "conv") and hasattr(backends.cuda.matmul, "fp32_precision"):
        backends.cuda.matmul.fp32_precision, backends.cudnn.conv.fp32_precision = values
    elif isinstance(values[0], bool):
        backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32 = values
    else:  # "ieee" asked of a torch with only the legacy switches
        backends.cuda.matmul.allow_tf32 = backends.cudnn.allow_tf32 = False
