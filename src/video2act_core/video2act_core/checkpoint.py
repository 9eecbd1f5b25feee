"""Versioned Video2Act checkpoints: safetensors weights + configs + statistics.

Layout of a checkpoint directory:

    checkpoint.json          format, version, model id, both configs,
                             normalisation stats, sha256 of every weight file
    system2_head.safetensors System 2's per-stream formers (and any learned
                             backbone conditioning)
    system1.safetensors      the DiT action head
    backbone/<model>         the video backbone's diffusers models (unet and
                             vae for SVD, transformer and vae for Wan;
                             omitted when it is a referenced local
                             pretrained directory)

A checkpoint is written to a temporary directory and renamed into place, so
an interrupted save never leaves a half-written checkpoint behind, and a
file whose hash does not match the manifest is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from video2act_core.devices import resolve_device, resolve_dtype
from video2act_core.models.backbones import WEIGHT_SOURCES
from video2act_core.models.dit import ActionDiffusion, DiTConfig
from video2act_core.models.factory import build_models
from video2act_core.models.vdm_encoder import SpatioMotionEncoder, VDMEncoderConfig
from video2act_core.normalization import NormalizationStats
from video2act_core.systems import System1, System2, Video2ActPolicy

# Where a loud warning about the device goes (a node's logger.warning); None: Python's warnings.
Warn = Callable[[str], None] | None
FORMAT = "video2act-checkpoint"
# 2: System 2 in two streams (spatial frame, motion clip) with a backbone
# section and per-stream formers; version 1 had one clip and LayerNorm projections.
FORMAT_VERSION = 2
UPGRADE_HINTS = {
    1: "version 1 checkpoints (System 2 of one clip, per-token LayerNorm projections) have no "
    "two-stream weights: retrain them with this release (python -m video2act_core.train)"
}
MANIFEST = "checkpoint.json"
SYSTEM2_HEAD = "system2_head.safetensors"
SYSTEM1 = "system1.safetensors"
BACKBONE = "backbone"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, or of another format/version."""


@dataclass
class Manifest:
    path: Path
    name: str
    model_id: str
    vdm: VDMEncoderConfig
    dit: DiTConfig
    stats: NormalizationStats
    metadata: dict[str, Any]
    has_backbone: bool


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _weight_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.safetensors"))


def save_checkpoint(
    path: str | os.PathLike,
    encoder: SpatioMotionEncoder,
    action: ActionDiffusion,
    stats: NormalizationStats,
    *,
    name: str = "video2act",
    metadata: dict[str, Any] | None = None,
    include_backbone: bool = True,
    overwrite: bool = False,
) -> str:
    """Write a checkpoint directory; returns its model id."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise CheckpointError(f"{target} exists; pass overwrite=True to replace it")
    if stats.joint_names and len(stats.joint_names) != action.config.action_dim:
        raise CheckpointError(
            f"{len(stats.joint_names)} joint names in the statistics but the action head outputs "
            f"{action.config.action_dim} joints"
        )
    vdm_config = encoder.config
    # A backbone without diffusers models (the ResNet baseline) has its
    # weights in System 2's head file: no backbone directory.
    separate_backbone = bool(encoder.backbone.diffusers_modules())
    if separate_backbone and not include_backbone and not any(vdm_config.backbone.get(k) for k in WEIGHT_SOURCES):
        raise CheckpointError("a randomly initialised backbone must be saved with the checkpoint")
    include_backbone = include_backbone and separate_backbone
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        contiguous = lambda sd: {k: v.detach().cpu().contiguous() for k, v in sd.items()}
        save_file(contiguous(encoder.head_state_dict()), staging / SYSTEM2_HEAD)
        save_file(contiguous(action.model.state_dict()), staging / SYSTEM1)
        if include_backbone:
            encoder.backbone.save(staging / BACKBONE)
            sources = {key: "" for key in WEIGHT_SOURCES if key in vdm_config.backbone}
            vdm_config = replace(vdm_config, backbone={**vdm_config.backbone, **sources, "pretrained_path": ""})
        hashes = {str(p.relative_to(staging)): _sha256(p) for p in _weight_files(staging)}
        combined = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()
        model_id = f"{name}@v{FORMAT_VERSION}:{combined[:12]}"
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": name,
            "model_id": model_id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "torch_version": torch.__version__,
            "system2": vdm_config.to_dict(),
            "system1": action.config.to_dict(),
            "stats": stats.to_dict(),
            "has_backbone": include_backbone,
            "sha256": hashes,
            "metadata": metadata or {},
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            retired = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(retired)
            staging.rename(target)
            shutil.rmtree(retired)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return model_id


def read_manifest(path: str | os.PathLike, verify: bool = True) -> Manifest:
    """Parse and check a checkpoint's manifest (and, by default, its hashes)."""
    root = Path(path).expanduser()
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"{root} is not a Video2Act checkpoint: {MANIFEST} not found")
    try:
        raw = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{manifest_path} is corrupt: {error}") from error
    if raw.get("format") != FORMAT:
        raise CheckpointError(f"{root}: format '{raw.get('format')}' is not '{FORMAT}'")
    if raw.get("format_version") != FORMAT_VERSION:
        hint = UPGRADE_HINTS.get(raw.get("format_version"), "")
        raise CheckpointError(
            f"{root}: checkpoint format version {raw.get('format_version')} is not supported "
            f"by this release (expects {FORMAT_VERSION})" + (f"; {hint}" if hint else "")
        )
    try:
        vdm = VDMEncoderConfig.from_dict(raw["system2"])
        dit = DiTConfig.from_dict(raw["system1"])
        stats = NormalizationStats.from_dict(raw["stats"])
        hashes: dict[str, str] = raw["sha256"]
        manifest = Manifest(
            root, raw["name"], raw["model_id"], vdm, dit, stats, raw.get("metadata", {}), raw["has_backbone"]
        )
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{manifest_path} is invalid: {error}") from error
    if verify:
        listed = set(hashes)
        present = {str(p.relative_to(root)) for p in _weight_files(root)}
        if listed != present:
            raise CheckpointError(
                f"{root}: weight files differ from the manifest "
                f"(missing {sorted(listed - present)}, unexpected {sorted(present - listed)})"
            )
        for relative, expected in hashes.items():
            if _sha256(root / relative) != expected:
                raise CheckpointError(f"{root / relative} is corrupt: sha256 does not match the manifest")
    return manifest


def _load_weights(module: torch.nn.Module, file: Path, allowed_missing: tuple[str, ...] = ()) -> None:
    try:
        state = load_file(file)
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{file} cannot be read: {error}") from error
    result = module.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(allowed_missing)]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"{file} does not match the model built from its config "
            f"(missing {missing[:5]}, unexpected {result.unexpected_keys[:5]})"
        )


def trained_precision(manifest: Manifest) -> str:
    """The precision the checkpoint's training recipe ran the models in
    (float32 for checkpoints without one)."""
    return (manifest.metadata.get("recipe") or {}).get("precision", "float32")


def _system2_from(manifest: Manifest, device: str, dtype: str, warn: Warn = None) -> System2:
    config = manifest.vdm
    if manifest.has_backbone:
        config = replace(config, backbone={**config.backbone, "pretrained_path": str(manifest.path / BACKBONE)})
    if config.backbone.get("text_encoder_path") and not config.backbone.get("instruction_context"):
        # The prompt's embeddings are in the head weights: no text encoder needed.
        config = replace(config, backbone={**config.backbone, "text_encoder_path": ""})
    try:
        encoder = SpatioMotionEncoder(config)
    except (OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{manifest.path}: cannot build System 2 backbone: {error}") from error
    saved_apart = tuple(f"backbone.{name}." for name in encoder.backbone.diffusers_modules())
    # Wan checkpoints from before the umT5 context ran on zeros, the default.
    _load_weights(encoder, manifest.path / SYSTEM2_HEAD, allowed_missing=(*saved_apart, "backbone.text_context"))
    torch_device = resolve_device(device, warn)
    precision = resolve_dtype(dtype, torch_device, trained_precision(manifest))
    return System2(encoder.to(torch_device).freeze_in(precision), manifest.model_id)


def _system1_from(manifest: Manifest, device: str, dtype: str, seed: int, warn: Warn = None) -> System1:
    action = ActionDiffusion(manifest.dit)
    _load_weights(action.model, manifest.path / SYSTEM1)
    torch_device = resolve_device(device, warn)
    return System1(
        action.to(torch_device, resolve_dtype(dtype, torch_device, trained_precision(manifest))),
        manifest.stats,
        manifest.model_id,
        seed,
        manifest.metadata.get("instructions", []),
    )


def load_system2(
    path: str | os.PathLike, device: str = "auto", dtype: str = "auto", verify: bool = True, warn: Warn = None
) -> System2:
    """`warn` takes the loud line of a `device: auto` that falls back to the
    CPU on a machine whose GPU torch cannot use (policy.resolve_device)."""
    return _system2_from(read_manifest(path, verify), device, dtype, warn)


def load_system1(
    path: str | os.PathLike,
    device: str = "auto",
    dtype: str = "auto",
    seed: int = 0,
    verify: bool = True,
    warn: Warn = None,
) -> System1:
    """`warn` as in load_system2."""
    return _system1_from(read_manifest(path, verify), device, dtype, seed, warn)


def load_policy(
    path: str | os.PathLike,
    device: str = "auto",
    dtype: str = "auto",
    seed: int = 0,
    system1_device: str | None = None,
    warn: Warn = None,
) -> Video2ActPolicy:
    """Both systems on `device`, or System 1 on `system1_device` when given,
    as the two nodes may run them (latents cross as numpy either way)."""
    manifest = read_manifest(path, verify=True)
    return Video2ActPolicy(
        _system2_from(manifest, device, dtype, warn),
        _system1_from(manifest, system1_device or device, dtype, seed, warn),
    )


def init_checkpoint(
    path: str | os.PathLike,
    model_config: dict[str, Any],
    joint_names: list[str],
    seed: int = 0,
    name: str = "untrained",
) -> str:
    """An untrained checkpoint (random weights, identity statistics)."""
    encoder, action = build_models(model_config, joint_names, seed)
    stats = NormalizationStats.identity(joint_names)
    return save_checkpoint(path, encoder, action, stats, name=name, metadata={"trained": False, "seed": seed})
