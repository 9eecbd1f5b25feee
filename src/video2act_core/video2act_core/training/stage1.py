"""Stage 1 (--stage1-steps): fine-tuning the video backbone on the robot's
clips with its own denoising objective, so its features describe the
robot's scenes before System 2's maps of them are cached for stage 2.

It is optional: a pretrained video model's features already carry motion.
A backbone trained end to end (the ResNet baseline) has no denoising
objective and trains with the head in stage 2 instead.

With `training.stage1_adapter: lora` (the full-size configs') the video
model stays frozen, in the recipe's precision, and low-rank adapters (peft,
float32) on its denoiser's attention projections train instead: at the
paper's sizes the whole model with AdamW in float32 would need ~80 GB
before any activation. The adapters are merged into the weights after the
last step, so what follows (the feature pass, the checkpoint) sees a plain
model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from video2act_core.data.samples import Clips
from video2act_core.processing import frames_to_tensor
from video2act_core.training.checkpointing import save_state
from video2act_core.training.distributed import TrainingProcess, average_gradients
from video2act_core.training.recipe import TrainingRecipe

LEARNING_RATE = 1e-5  # fine-tuning a whole video model: small steps
# Adapters start at zero and are merged into bf16 weights, whose rounding
# swallows small updates: the official code's 1e-4 for what it trains.
LORA_LEARNING_RATE = 1e-4
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


def attach_adapters(encoder, recipe: TrainingRecipe) -> list[nn.Parameter] | None:
    """With `stage1_adapter: lora`, freezes the encoder (its video model cast
    to the recipe's precision) and puts LoRA adapters on the denoiser's
    modules the recipe names; a full fine-tune's recipe leaves it as it is.

    Args:
        encoder: System 2's encoder, changed in place.
        recipe: the rank, scale and target modules.

    Returns:
        The adapters' parameters, float32 whatever the model's precision
        (None for a full fine-tune).

    Raises:
        ValueError: the targets match no module of the denoiser.
    """
    if recipe.stage1_adapter != "lora":
        return None
    from peft import LoraConfig, inject_adapter_in_model

    encoder.requires_grad_(False)
    backbone = encoder.backbone
    backbone.cast_frozen(recipe.dtype)
    config = LoraConfig(
        r=recipe.lora_rank, lora_alpha=recipe.lora_alpha or recipe.lora_rank, target_modules=recipe.lora_targets
    )
    try:
        inject_adapter_in_model(config, backbone.denoiser())
    except ValueError as error:  # peft's "Target modules ... not found in the base model"
        raise ValueError(f"training.lora_targets {recipe.lora_targets!r}: {error}") from None
    adapters = [p for name, p in backbone.denoiser().named_parameters() if ".lora_" in name]
    for adapter in adapters:
        adapter.data = adapter.data.float()  # small, and updates of 1e-5 vanish in bf16
    return adapters


@torch.no_grad()
def merge_adapters(encoder) -> float:
    """Folds each adapter into the weight it adapts and puts that layer back
    in its place, leaving the denoiser as it was built plus the update.

    Returns:
        The share of the adapters' update (its norm) the merged weights
        hold: below 1 where their precision rounds it away (bf16).
    """
    from peft.tuners.lora import LoraLayer
    from peft.tuners.tuners_utils import _get_submodules

    denoiser = encoder.backbone.denoiser()
    adapted = [name for name, module in denoiser.named_modules() if isinstance(module, LoraLayer)]
    update = kept = 0.0
    for name in adapted:
        parent, layer, leaf = _get_submodules(denoiser, name)
        weight = layer.get_base_layer().weight
        before, delta = weight.float().clone(), layer.get_delta_weight(layer.active_adapters[0]).float()
        layer.merge()
        update += float(delta.pow(2).sum())
        kept += float((weight.float() - before).mul(delta).sum())  # the part along the update
        setattr(parent, leaf, layer.get_base_layer())
    del denoiser.peft_config  # left by inject_adapter_in_model; diffusers' adapter code reads it
    return kept / update if update else 1.0


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
    recipe: TrainingRecipe,
    adapters: list[nn.Parameter] | None = None,
    instructions: list[str] | None = None,
    lr: float | None = None,
    after_step: Callable[[int], None] | None = None,
) -> None:
    """Fine-tunes the whole encoder (or the adapters) on random clips'
    denoising loss, gradients averaged over the processes; rank 0 saves
    the state every `save_every` steps.

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
        recipe: the precision the loss is computed in.
        adapters: what trains instead of the whole encoder (`attach_adapters`).
        instructions: each clip's task instruction, for a video model
            conditioned on it (the `instruction_dropout` of them left out).
        lr: the learning rate (default: fine-tuning's, the adapters' or the whole model's).
        after_step: called with the number of steps done after each one
            (and after its save): pretraining's held-out evaluations.
    """
    trained = adapters if adapters is not None else list(encoder.parameters())
    lr = lr or (LORA_LEARNING_RATE if adapters is not None else LEARNING_RATE)
    optimizer = torch.optim.AdamW(trained, lr=lr)
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
        with recipe.autocast(process.device):
            loss = encoder.denoising_loss(torch.cat([frames_to_tensor(clips[i]) for i in picks]), generator)
        optimizer.zero_grad()
        loss.backward()
        average_gradients(trained, process.world)
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if not process.quiet and (step + 1) % save_every == 0:
            save_state(state_path, 1, step + 1, encoder, action, optimizer)
        if after_step is not None:
            after_step(step + 1)
