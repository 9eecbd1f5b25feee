"""One training process or several under torchrun: which rank this is, the
device it trains on, progress bars, and what the processes share.

Every rank reads the data and trains on its shard; rank 0 alone fills the
feature cache and writes files. A single process (WORLD_SIZE unset) never
touches torch.distributed, so CPU training needs no process group.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

import torch

from video2act_core.devices import resolve_device

Progress = Callable[..., Iterable]


@dataclass(frozen=True)
class TrainingProcess:
    """This training process: what each stage needs to know about the others."""

    rank: int
    world: int  # the number of processes
    device: torch.device
    progress: Progress  # wraps an iterable in a progress bar (silent off rank 0)

    @property
    def quiet(self) -> bool:
        """Ranks other than 0 print and save nothing: one voice, one writer."""
        return self.rank != 0


def start_process(device: str) -> TrainingProcess:
    """Joins torchrun's process group (if any) and picks the device.

    Args:
        device: the --device option.

    Returns:
        This process.
    """
    rank, world = distributed()
    return TrainingProcess(rank, world, training_device(device, world), progress_bars(rank != 0))


def distributed() -> tuple[int, int]:
    """Initialises torch.distributed under torchrun (WORLD_SIZE > 1).

    Returns:
        (rank, world size): (0, 1) for a single process.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        # Rank 0 alone builds the feature cache while the others wait at a
        # barrier: allow hours, not the default 30 minutes.
        torch.distributed.init_process_group(
            "nccl" if torch.cuda.is_available() else "gloo", timeout=timedelta(hours=6)
        )
    return (torch.distributed.get_rank() if world > 1 else 0), world


def training_device(name: str, world: int) -> torch.device:
    """The device this process trains on.

    Args:
        name: the --device option ("auto", "cpu", "cuda", ...).
        world: the number of processes; several on CUDA take one GPU each.

    Returns:
        The resolved device, LOCAL_RANK's GPU under torchrun on CUDA.
    """
    device = resolve_device(name)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def progress_bars(quiet: bool) -> Progress:
    """A tqdm factory, silent on ranks other than 0 so torchrun prints one bar.

    Args:
        quiet: True on ranks other than 0.

    Returns:
        `progress(iterable, **tqdm_options)`, wrapping the iterable.
    """
    from tqdm import tqdm  # imported here: the training modules load without it

    return lambda iterable, **kw: tqdm(iterable, disable=quiet, dynamic_ncols=True, mininterval=2.0, **kw)


def average_gradients(parameters: Iterable[torch.nn.Parameter], world: int) -> None:
    """Averages gradients over the processes by hand (stage 1 trains the
    backbone without a DDP wrapper). Nothing to do for a single process.

    Args:
        parameters: the parameters being trained.
        world: the number of processes.
    """
    if world <= 1:
        return
    for p in parameters:
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad /= world


def wait_for_all(world: int) -> None:
    """A barrier across the processes (no-op for one).

    Args:
        world: the number of processes.
    """
    if world > 1:
        torch.distributed.barrier()


def finish(world: int) -> None:
    """Tears the process group down after training (no-op for one process).

    Args:
        world: the number of processes.
    """
    if world > 1:
        torch.distributed.destroy_process_group()
