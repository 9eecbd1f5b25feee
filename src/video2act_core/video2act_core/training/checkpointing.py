"""What training reads and writes besides the data: the weights it starts
from (--init or a model config), the resumable state in `<out>.train/`, and
the metadata the final checkpoint records for the nodes and for people.

The state file is written atomically (a temporary file renamed into place):
a training killed while saving leaves the previous state, never half of one,
so rerunning the same command always resumes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import yaml

from video2act_core.camera_pose import CameraPose
from video2act_core.checkpoint import load_system1, load_system2
from video2act_core.data.augmentation import CameraAugmentation
from video2act_core.models.dit import ActionDiffusion
from video2act_core.models.factory import build_models
from video2act_core.models.vdm_encoder import SpatioMotionEncoder

STATE_FILE = "state.pt"


def initial_models(
    model_config: Path, init: Path | None, joint_names: list[str], seed: int, use_motion: bool, use_spatial: bool
) -> tuple[SpatioMotionEncoder, ActionDiffusion]:
    """The models training starts from.

    Args:
        model_config: a `config/model_*.yaml`, read unless `init` is given.
        init: a checkpoint whose weights (and configs) to start from.
        joint_names: the robot's joints, in the params file's order.
        seed: seeds the fresh weights.
        use_motion, use_spatial: False drops that token stream (ablations).

    Returns:
        (System 2's encoder, System 1's action head), on the CPU.
    """
    if init:
        encoder, action = load_system2(init, "cpu").encoder, load_system1(init, "cpu").action
        action.config.use_motion, action.config.use_spatial = use_motion, use_spatial
        return encoder, action
    config = yaml.safe_load(model_config.read_text())
    config.setdefault("system1", {}).update(use_motion=use_motion, use_spatial=use_spatial)
    return build_models(config, joint_names, seed)


def save_atomically(state: object, path: Path) -> None:
    """`torch.save`s `state` at `path` through a temporary file, so readers
    (and a rerun after a crash) see the old file or the new one, whole.

    Args:
        state: anything torch can save.
        path: where it goes.
    """
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    partial.replace(path)


def load_state(path: Path) -> dict | None:
    """The saved training state, if an earlier run left one.

    Args:
        path: `<out>.train/state.pt`.

    Returns:
        {"stage", "step", "encoder", "action", "optimizer", "ema"} or None.
    """
    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None


def save_state(
    path: Path,
    stage: int,
    step: int,
    encoder,
    action,
    optimizer: torch.optim.Optimizer | None,
    average=None,
    lr_schedule: str | None = None,
) -> None:
    """Saves what a rerun resumes from: both models' weights and the
    optimizer of the stage being trained, after `step` steps of it.

    Args:
        path: `<out>.train/state.pt`.
        stage: 1 (the backbone) or 2 (the head).
        step: steps of that stage done.
        encoder, action: System 2's encoder and System 1's action head.
        optimizer: that stage's optimizer (None before its first step).
        average: stage 2's `WeightAverage`, if it keeps one.
        lr_schedule: stage 2's --lr-schedule (a resumed run must keep it).
    """
    save_atomically(
        {
            "stage": stage,
            "step": step,
            "encoder": encoder.state_dict(),
            "action": action.model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "ema": average.state_dict() if average is not None else None,
            "lr_schedule": lr_schedule,
        },
        path,
    )


def restore_weights(resumed: dict, encoder, action, path: Path) -> None:
    """Loads a saved state's weights into both models.

    Args:
        resumed: what `load_state` returned.
        encoder, action: the models to load them into.
        path: where the state was read (for the error).

    Raises:
        SystemExit: the state's weights do not fit these models (another
            model config, or stage 1 with adapters and without).
    """
    try:
        encoder.load_state_dict(resumed["encoder"])
        action.model.load_state_dict(resumed["action"])
    except RuntimeError as error:
        raise SystemExit(
            f"{path} was saved by a training of another model or recipe; remove it to start afresh: {str(error)[:400]}"
        ) from None


def training_metadata(
    options,
    sources: list[str],
    samples: int,
    instructions: list[str],
    camera_pose: CameraPose | None,
    cameras: list[str],
    augmentation: CameraAugmentation | None,
    final_loss: float | None,
    seconds: float,
    device: torch.device,
) -> dict:
    """What the checkpoint records about its training.

    Args:
        options: the parsed command line (the options it records).
        sources: a name per episode trained on.
        samples: the number of training samples.
        instructions: each episode's task instruction ("" for none).
        camera_pose: the demonstrations' one camera pose, if they agree on one.
        cameras: the image-token cameras' topics, in order ([] without image tokens).
        augmentation: the camera augmentation applied, if any.
        final_loss: the last stage 2 loss reading.
        seconds: how long stage 2 took.
        device: the device trained on.

    Returns:
        The checkpoint's metadata mapping.
    """
    return {
        "trained": True,
        "episodes": sources,
        "successful_only": options.successful_only,
        "samples": samples,
        "stage1_steps": options.stage1_steps,
        "stage2_steps": options.steps,
        "lr": options.lr,
        "lr_schedule": options.lr_schedule,
        "state_noise": options.state_noise,
        "max_staleness": options.max_staleness,
        "sample_every": options.sample_every,
        "final_loss": final_loss,
        "train_seconds": round(seconds, 1),
        "seed": options.seed,
        "device": str(device),
        "camera_augmentation": dataclasses.asdict(augmentation) if augmentation else None,
        # The policy's default instruction when there is only one.
        "instructions": sorted({text for text in instructions if text}),
        # Perception compares it with the robot's tf at start-up.
        "camera_pose": camera_pose.to_dict() if camera_pose else None,
        # The cameras the image tokens were trained on, in order.
        "cameras": cameras,
    }
