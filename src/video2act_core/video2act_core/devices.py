"""Torch devices and precision for the models: which device a node's
`device` parameter means, why CUDA cannot be used when it cannot (torch's
own reason and the driver it needs), CPU threads, dtypes."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

# Oldest Linux driver branch each CUDA major runs on (NVIDIA's CUDA
# compatibility guide, "minor version compatibility" table).
MIN_DRIVER_FOR_CUDA = {"11": 450, "12": 525, "13": 580}
NVIDIA_DRIVER_VERSION_FILE = Path("/proc/driver/nvidia/version")
NVIDIA_DEVICE_FILE = Path("/dev/nvidia0")


class CudaUnusableWarning(RuntimeWarning):
    """`device: auto` on a machine with an NVIDIA GPU that torch cannot use."""


def nvidia_gpu() -> str | None:
    """The NVIDIA GPU this machine shows, in words (kernel driver version or
    device node), or None without one. In a container started without
    `--gpus`, the host's /proc/driver/nvidia still shows."""
    try:
        line = NVIDIA_DRIVER_VERSION_FILE.read_text().splitlines()[0]
    except (OSError, IndexError):
        line = None
    if line is not None:
        version = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+(?:\.\d+)+)", line)
        return f"NVIDIA driver {version.group(1)}" if version else "NVIDIA driver loaded"
    return f"{NVIDIA_DEVICE_FILE} present" if NVIDIA_DEVICE_FILE.exists() else None


def _one_line(text: str) -> str:
    text = re.sub(r"\s*\(Triggered internally at [^)]*\)\.?", "", text)
    return " ".join(text.split())


def cuda_unusable_reason() -> str | None:
    """None when torch can use CUDA; else why not, in one line: torch's own
    warning or error ("The NVIDIA driver on your system is too old ..."),
    the build of torch, and the driver it needs."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if available:
        return None
    reasons = [_one_line(str(w.message)) for w in caught if "cuda" in str(w.message).lower()]
    built_for = torch.version.cuda
    if built_for is None:
        reasons.append(f"torch {torch.__version__} is a CPU-only build")
    else:
        if not reasons:  # torch warns once per process; its init error says it again
            try:
                torch.cuda.init()
            except Exception as error:  # noqa: BLE001 - any failure is the reason wanted
                reasons.append(_one_line(str(error)))
        needs = MIN_DRIVER_FOR_CUDA.get(built_for.split(".")[0])
        driver = f"; NVIDIA Linux driver >= {needs} needed" if needs else ""
        reasons.append(f"torch {torch.__version__} is built for CUDA {built_for}{driver}")
    gpu = nvidia_gpu()
    reasons.append(f"this machine: {gpu or 'no NVIDIA driver or /dev/nvidia0 found'}")
    return "; ".join(reasons)


def resolve_device(name: str, warn: Callable[[str], None] | None = None) -> torch.device:
    """'auto' picks CUDA when torch can use it, else the CPU; a CUDA request
    that torch cannot serve is an error that says why, in one line.

    'auto' on a machine with an NVIDIA GPU that torch cannot use (a driver
    too old for torch's CUDA build, a CPU-only torch, a container without
    --gpus) still runs on the CPU, many times slower: `warn` (e.g. a ROS
    node's logger.warning) gets a loud line about it; without one, a
    CudaUnusableWarning is issued."""
    if name == "auto":
        reason = cuda_unusable_reason()
        if reason is None:
            return torch.device("cuda")
        gpu = nvidia_gpu()
        if gpu is not None:
            message = (
                f"CUDA UNUSABLE: device 'auto' falls back to the CPU although this machine has an NVIDIA GPU "
                f"({gpu}): {reason}. Set device: cpu to run on the CPU on purpose."
            )
            if warn is None:
                warnings.warn(message, CudaUnusableWarning, stacklevel=2)
            else:
                warn(message)
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        reason = cuda_unusable_reason()
        if reason is not None:
            raise RuntimeError(f"device '{name}' requested but CUDA is not available: {reason}")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise RuntimeError(f"device '{name}' requested but torch sees {count} CUDA device(s)")
    return device


def limit_cpu_threads(threads: int) -> None:
    """Cap torch's intra-op CPU threads (0 keeps torch's default of one per
    core). Two model processes on one machine each default to every core,
    and then starve each other's sensor callbacks."""
    if threads < 0:
        raise ValueError(f"torch_threads must be >= 0, got {threads}")
    if threads:
        torch.set_num_threads(threads)


def resolve_dtype(name: str, device: torch.device, trained_in: str = "float32") -> torch.dtype:
    """Half precision only on CUDA: on the CPU it is slower, not faster.
    "auto": what the checkpoint was trained in (`trained_in`, its recipe's
    precision: a float32 checkpoint's video model in bf16 would give maps
    its head never saw). bfloat16 on a GPU without it (V100, T4, Xavier)
    falls back to float32."""
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name == "auto":
        name = trained_in
    if name not in dtypes:
        raise ValueError(f"dtype must be one of {['auto', *sorted(dtypes)]}, got '{name}'")
    if device.type != "cuda":
        return torch.float32
    if name == "bfloat16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        return torch.float32
    return dtypes[name]
