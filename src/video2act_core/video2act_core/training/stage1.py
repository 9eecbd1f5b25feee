"""Stage 1 (--stage1-steps): fine-tuning the video backbone on the robot's
clips with its own denoising objective, so its features describe the
robot's scenes before System 2's maps of them are cached for stage 2.

It is optional: a pretrained video model's features already carry motion.
A backbone trained end to end (the ResNet baseline) has no denoising
objective and trains with the head in stage 2 instead.
"""

from __future__ import annotations

from pathlib import Path

import torch

from video2act_core.data.samples import Clips
from video2act_core.processing import frames_to_tensor
from video2act_core.training.checkpointing import save_state
from video2act_core.training.distributed import TrainingProcess, average_gradients

LEARNING_RATE = 1e-5  # fine-tuning a video model: small steps
CLIPS_PER_BATCH = 16  # a stage 1 step draws --batch-size // this many clips (at least one)


def check_stage1(encoder, steps: int) -> None:
    """Refuses stage 1 for a backbone without a denoising objective.

    Args:
        encoder: System 2's encoder.
        steps: --stage1-steps.

    Raises:
        SystemExit: steps > 0 and the backbone is trained end to end.
    """
    if encoder.backbone.trained_end_to_end and steps:
        raise SystemExit(
            f"--stage1-steps: the {encoder.config.backbone.get('type')} backbone has no denoising "
            "objective; it trains with the head in stage 2"
        )


def stage1_pending(resumed: dict | None, steps: int) -> bool:
    """Whether stage 1 still runs.

    Args:
        resumed: the saved training state, if any.
        steps: --stage1-steps.

    Returns:
        False once a saved state is in stage 2, or when no steps are asked for.
    """
    return resumed["stage"] != 2 if resumed else steps != 0


def train_stage1(
    encoder,
    action,
    clips: Clips,
    process: TrainingProcess,
    *,
    steps: int,
    batch_size: int,
    save_every: int,
    state_path: Path,
    resumed: dict | None,
    generator: torch.Generator,
    instructions: list[str] | None = None,
) -> None:
    """Fine-tunes the whole encoder on random clips' denoising loss,
    gradients averaged over the processes; rank 0 saves the state every
    `save_every` steps.

    Args:
        encoder: System 2's encoder, trained in place.
        action: System 1's action head (saved with the state, untouched).
        clips: the training samples' clips.
        process: this process (rank 0 saves), its progress bars.
        steps: --stage1-steps, the total (a resumed run continues to it).
        batch_size: --batch-size; stage 1 takes 1/16 as many clips.
        save_every: steps between saved states.
        state_path: `<out>.train/state.pt`.
        resumed: a saved stage 1 state to continue from, or None.
        generator: draws the clips and the noise.
        instructions: each clip's task instruction, for a video model
            conditioned on it (the `instruction_dropout` of them left out).
    """
    backbone = list(encoder.parameters())
    optimizer = torch.optim.AdamW(backbone, lr=LEARNING_RATE)
    start = resumed["step"] if resumed else 0
    if resumed:
        optimizer.load_state_dict(resumed["optimizer"])
    encoder.train()
    bar = process.progress(range(start, steps), desc="stage 1 (VDM)", initial=start, total=steps)
    for step in bar:
        picks = torch.randint(len(clips), (max(1, batch_size // CLIPS_PER_BATCH),), generator=generator)
        video_model = encoder.backbone
        if instructions is not None and video_model.conditions_on_instruction:
            kept = torch.rand(len(picks), generator=generator) >= video_model.instruction_dropout
            video_model.set_instructions([instructions[i] if k else "" for i, k in zip(picks.tolist(), kept)])
        loss = encoder.denoising_loss(torch.cat([frames_to_tensor(clips[i]) for i in picks]), generator)
        optimizer.zero_grad()
        loss.backward()
        average_gradients(backbone, process.world)
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if not process.quiet and (step + 1) % save_every == 0:
            save_state(state_path, 1, step + 1, encoder, action, optimizer)
