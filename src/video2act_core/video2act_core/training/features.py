"""System 2's maps of every training sample, computed once for stage 2.

The backbone is frozen in stage 2, so its filtered spatial/motion maps (and
image-token maps) are computed once per sample and cached in a file keyed by
System 2's config, the options that change the maps, and the data files.
The pass is saved in parts as it goes, with the augmentation generator's
state, so an interrupted pass (an hour on a CPU) resumes where it stopped
and gives the maps an uninterrupted one would. Trainings side by side on the
same missing cache (the ablations) fill it once: a file lock (`fill_once`).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from video2act_core.data.augmentation import CameraAugmentation
from video2act_core.data.samples import Samples
from video2act_core.processing import frames_to_tensor
from video2act_core.training.checkpointing import save_atomically
from video2act_core.training.data import augmented, camera_frames
from video2act_core.training.distributed import TrainingProcess, wait_for_all
from video2act_core.training.recipe import TrainingRecipe

# Cached maps move to the GPU when they take at most this share of its free
# memory; larger caches stay memory-mapped and are copied batch by batch.
RESIDENT_CACHE_SHARE = 0.5
FEATURE_BATCH = 16  # clips per System 2 batch in the feature pass
SCALE_SUBSET = 512  # clips whose maps fit an end-to-end backbone's token scales


class Features(NamedTuple):
    """System 2's maps of every sample, as stage 2 indexes them."""

    spatial: torch.Tensor  # (N, C, H, W)
    motion: torch.Tensor  # (N, C, H, W)
    views: torch.Tensor | None  # image-token maps, None without image tokens


def fill_once(path: Path, fill: Callable[[], object]) -> bool:
    """Saves `fill()` at `path` unless a file is there. Another process
    filling the same path (a training beside this one reading the same
    feature cache) finishes first, and this one then finds its file.

    Args:
        path: the file to fill; `<path>.lock` is the lock file.
        fill: makes what to save.

    Returns:
        True if this call filled it.
    """
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return False
        save_atomically(fill(), path)
        return True


def cache_key(sources: list[str], encoder, extra: dict) -> str:
    """Identifies the cached System 2 maps.

    Args:
        sources: the episodes' sources (`<dataset>#<index>` for LeRobot).
        encoder: System 2's encoder (its config is hashed).
        extra: the training options that change the maps.

    Returns:
        16 hex digits over the config, `extra`, and name, size and mtime of
        every file of every source.
    """
    digest = hashlib.sha256(json.dumps(encoder.config.to_dict(), sort_keys=True).encode())
    if encoder.config.image_encoder_path:  # SigLIP's frames padded to a square since; stretched before
        extra = {**extra, "image_encoder_input": "padded"}
    digest.update(json.dumps(extra, sort_keys=True).encode())
    for root in dict.fromkeys(Path(source.split("#")[0]) for source in sources):
        is_bag = (root / "metadata.yaml").is_file()
        files = sorted(root.iterdir()) if is_bag else sorted(p for p in root.rglob("*") if p.is_file())
        for file in files:
            digest.update(f"{file.name}:{file.stat().st_size}:{file.stat().st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def cache_options(
    *,
    stage1_steps: int,
    init: Path | None,
    frame_stride: int,
    sample_every: int,
    augmentation: CameraAugmentation | None,
    seed: int,
    successful_only: bool,
    recipe: TrainingRecipe,
) -> dict:
    """The training options that change the cached maps, for `cache_key`.

    Args:
        stage1_steps: the backbone's fine-tuning steps.
        init: the checkpoint training started from, if any.
        frame_stride, sample_every: which frames and samples are seen.
        augmentation: the camera augmentation applied before System 2.
        seed: seeds the augmentation.
        successful_only: whether failed episodes were left out.
        recipe: the precision of the video model and of the cache, stage 1's adapters.

    Returns:
        The mapping hashed into the key.
    """
    return {
        "stage1": stage1_steps,
        "init": str(init),
        "stride": frame_stride,
        "every": sample_every,
        "augmentation": repr(augmentation),
        "seed": seed,
        # only when set: caches written before the option stay valid
        **({"successful_only": True} if successful_only else {}),
        **({"precision": recipe.precision} if recipe.low_precision else {}),
        **({"stage1_recipe": dataclasses.asdict(recipe)} if stage1_steps and recipe.stage1_adapter != "full" else {}),
    }


def _saved_parts(parts_dir: Path, rng: np.random.Generator) -> tuple[int, list, list, list]:
    """The parts an earlier pass saved, in order, up to the first that does
    not follow on; `rng` is left where the last one left it.

    Returns:
        (clips done, spatial, motion, view maps: a tensor per part).
    """
    spatial, motion, view_maps = [], [], []
    done = 0
    parts_dir.mkdir(parents=True, exist_ok=True)
    for part in sorted(parts_dir.glob("part-*.pt")):
        saved = torch.load(part)
        if saved["start"] != done:  # a part that does not follow on: redo from here
            break
        spatial.append(saved["spatial"])
        motion.append(saved["motion"])
        if saved["views"] is not None:
            view_maps.append(saved["views"])
        rng.bit_generator.state = json.loads(saved["rng"])
        done = saved["end"]
    return done, spatial, motion, view_maps


@torch.no_grad()
def refine_all(
    encoder,
    clips: Sequence[np.ndarray],
    batch_size: int,
    progress,
    augmentation: CameraAugmentation | None = None,
    seed: int = 0,
    views: Sequence[np.ndarray] | None = None,
    parts_dir: Path | None = None,
    batches_per_part: int = 16,
    instructions: Sequence[str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """System 2's filtered maps of every clip (and of every sample's camera
    frames, with image tokens), each augmented (or not) once.

    Args:
        encoder: System 2's encoder (put in eval mode).
        clips: (K, H, W, 3) uint8 clips.
        batch_size: clips per System 2 batch.
        progress: wraps the batch starts in a progress bar.
        augmentation: applied to each clip (and camera) once, drawn from a
            generator seeded with `seed`.
        seed: seeds the augmentation generator.
        views: each sample's (V, K, H, W, 3) camera frames, with image tokens.
        parts_dir: where every `batches_per_part` batches are saved with the
            generator's state; a rerun starts after the last saved part.
        batches_per_part: batches per saved part.
        instructions: each clip's task instruction, for a video model
            conditioned on it: the `instruction_dropout` of them (drawn from
            the same generator) are left out, as the official code trains.
        dtype: what the maps are kept in (bf16 halves a cache of signed
            paper-form maps, 5 GB per thousand samples at the paper's sizes).

    Returns:
        (spatial, motion, view maps or None) in `dtype` on the CPU, a row per clip.
    """
    rng = np.random.default_rng(seed)
    done, spatial, motion, view_maps = _saved_parts(parts_dir, rng) if parts_dir is not None else (0, [], [], [])
    encoder.eval()
    part_start, part_first = done, len(spatial)
    starts = range(done, len(clips), batch_size)
    for count, start in enumerate(progress(starts, desc="System 2 features", unit="batch"), 1):
        picks = range(start, min(start + batch_size, len(clips)))
        batch = torch.cat([frames_to_tensor(augmented(clips[i], augmentation, rng)) for i in picks])
        cameras = (
            torch.stack([camera_frames(views[i], augmentation, rng) for i in picks]) if views is not None else None
        )
        if instructions is not None and encoder.backbone.conditions_on_instruction:
            kept = rng.random(len(picks)) >= encoder.backbone.instruction_dropout
            encoder.backbone.set_instructions([instructions[i] if k else "" for i, k in zip(picks, kept, strict=True)])
        maps = encoder.refine(batch, cameras)
        spatial.append(maps.spatial.to("cpu", dtype))
        motion.append(maps.motion.to("cpu", dtype))
        if maps.views is not None:
            view_maps.append(maps.views.to("cpu", dtype))
        if parts_dir is not None and (count % batches_per_part == 0 or count == len(starts)):
            save_atomically(
                {
                    "start": part_start,
                    "end": picks.stop,
                    "rng": json.dumps(rng.bit_generator.state),
                    "spatial": torch.cat(spatial[part_first:]),
                    "motion": torch.cat(motion[part_first:]),
                    "views": torch.cat(view_maps[part_first:]) if view_maps else None,
                },
                parts_dir / f"part-{part_start:09d}.pt",
            )
            part_start, part_first = picks.stop, len(spatial)
    return torch.cat(spatial), torch.cat(motion), torch.cat(view_maps) if view_maps else None


def cached_features(
    encoder,
    samples: Samples,
    sources: list[str],
    cache_dir: Path,
    key_options: dict,
    process: TrainingProcess,
    augmentation: CameraAugmentation | None,
    seed: int,
    instructions: Sequence[str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Features:
    """Every sample's maps from the cache in `cache_dir`, filling it first
    if it is missing: rank 0 runs System 2 over the data (in parts, next to
    the cache file), the other ranks wait and load it.

    Args:
        encoder: System 2's encoder.
        samples: the training samples (their clips and camera frames).
        sources: the episodes' sources, hashed into the cache's name.
        cache_dir: where caches live (--cache-dir, or `<out>.train/`).
        key_options: the options that change the maps (`cache_options`).
        process: this process: rank 0 fills the cache; the maps move to its
            device if they fit there.
        augmentation, seed: the camera augmentation and its seed.
        instructions: each sample's task instruction (`refine_all`).
        dtype: what the cache keeps the maps in (`refine_all`).

    Returns:
        The maps, memory-mapped (paged in as batches use them) or on the GPU.
    """
    key = cache_key(sources, encoder, key_options)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache_path = cache_dir / f"features-{key}.pt"
    parts_dir = cache_path.with_suffix(".parts")
    if process.rank == 0 and fill_once(
        cache_path,
        lambda: refine_all(
            encoder,
            samples.clips,
            FEATURE_BATCH,
            process.progress,
            augmentation,
            seed,
            samples.views,
            parts_dir,
            instructions=instructions,
            dtype=dtype,
        ),
    ):
        shutil.rmtree(parts_dir)
    wait_for_all(process.world)
    return Features(*resident_on(process.device, *torch.load(cache_path, mmap=True)))


def scale_features(encoder, samples: Samples, progress, augmentation: CameraAugmentation | None, seed: int) -> Features:
    """Maps of an evenly spread subset of the samples, from the untrained
    backbone of a model trained end to end: they fix the formers' token
    scales; every batch then runs the backbone on freshly augmented clips.

    Args:
        encoder: System 2's encoder (its backbone trains with the head).
        samples: the training samples.
        progress: wraps the pass in a progress bar.
        augmentation, seed: the camera augmentation and its seed.

    Returns:
        The subset's maps.
    """
    subset = np.linspace(0, len(samples.clips) - 1, min(len(samples.clips), SCALE_SUBSET)).astype(int)
    views = [samples.views[i] for i in subset] if samples.views else None
    return Features(
        *refine_all(encoder, [samples.clips[i] for i in subset], FEATURE_BATCH, progress, augmentation, seed, views)
    )


def resident_on(device: torch.device, *maps: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """The cached maps on the GPU when they fit there: a host-to-device copy
    per step from a memory map otherwise bounds training by the CPU.

    Args:
        device: the training device.
        maps: the cached tensors (None for absent ones).

    Returns:
        The maps, moved to `device` if it is a GPU with room for them.
    """
    if device.type != "cuda":
        return maps
    size = sum(m.numel() * m.element_size() for m in maps if m is not None)
    free, _ = torch.cuda.mem_get_info(device)
    if size > RESIDENT_CACHE_SHARE * free:
        return maps
    return tuple(m.to(device) if m is not None else None for m in maps)
