"""Stage 2: System 1's DiT action head and System 2's token projections
(the formers), trained on the cached System 2 maps; a backbone trained end
to end (the ResNet baseline) runs on every batch instead, with the head.

Each sample is paired with maps up to --max-staleness action periods old,
never from an earlier episode, as System 1 sees them when System 2 runs
asynchronously at a lower rate. Under torchrun each process trains on its
shard of the samples through DistributedDataParallel; rank 0 saves the
state every --save-every steps, and a rerun resumes there, the learning
rate schedule rebuilt for the new --steps. With `ema` in System 1's
config, the checkpoint gets the moving average of the trained weights.
"""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from video2act_core.data.augmentation import CameraAugmentation
from video2act_core.data.samples import Samples, first_sample_of_episode
from video2act_core.models.conditions import Instruction
from video2act_core.normalization import NormalizationStats
from video2act_core.processing import frames_to_tensor
from video2act_core.training.checkpointing import save_state
from video2act_core.training.data import augmented, camera_frames
from video2act_core.training.distributed import TrainingProcess
from video2act_core.training.ema import WeightAverage
from video2act_core.training.features import Features
from video2act_core.training.recipe import TrainingRecipe

LOSS_WINDOW = 50  # steps per loss reading (progress bar, checkpoint's final_loss)
WEIGHT_DECAY = 1e-4
MAX_GRAD_NORM = 1.0
# The learning rate over the steps: one cycle (5% warm-up, cosine down) or
# constant (the official code's, with its 1e-4).
LR_SCHEDULES = ("one_cycle", "constant")


@dataclass(frozen=True)
class Stage2Options:
    """The command line's stage 2 options."""

    steps: int  # the total; a resumed run continues to it
    batch_size: int
    lr: float  # the schedule's peak
    lr_schedule: str  # one of LR_SCHEDULES
    state_noise: float  # std of noise on the normalised joint state
    max_staleness: int  # action periods the maps may lag the sample
    sample_every: int  # samples are every Nth step: staleness counts in kept samples
    save_every: int  # steps between saved states
    seed: int  # with the rank, seeds an end-to-end backbone's clip augmentation


class Stage2Objective(nn.Module):
    """Token projections + DiT on cached maps (or on frames, through a
    backbone trained end to end); one module so DDP can wrap it."""

    def __init__(self, encoder, action, state_noise: float):
        super().__init__()
        self.encoder, self.action = encoder, action
        self.state_noise = state_noise

    def forward(self, inputs, state, actions, instruction=None):
        """The head's loss on a batch.

        Args:
            inputs: (spatial maps, motion maps, view maps or None) from the
                cache, or (frames (B, T, 3, H, W), camera frames or None).
            state: (B, J) normalised joint states.
            actions: (B, horizon, J) normalised action chunks.
            instruction: the batch's tokenized instructions, with language.

        Returns:
            The scalar loss.
        """
        if inputs[0].dim() == 5:
            maps = self.encoder.refine(*inputs)
            inputs = maps.spatial, maps.motion, maps.views
        spatial, motion, views = self.encoder.tokens(*inputs)
        # Noise on the (normalised) joint state keeps the head from reading
        # the demonstration's progress off the state instead of the images.
        state = state + self.state_noise * torch.randn_like(state)
        return self.action.loss(actions, state, spatial, motion, instruction, views)


class Batches:
    """Draws stage 2's batches from this process's shard of the samples."""

    def __init__(
        self,
        samples: Samples,
        features: Features | None,
        instructions: Instruction | None,
        process: TrainingProcess,
        options: Stage2Options,
        augmentation: CameraAugmentation | None,
    ):
        """Args:
        samples: the training samples.
        features: their cached maps, or None to run the backbone on
            frames (end to end), freshly augmented each time.
        instructions: every episode's tokens, with language.
        process: this process (its shard, its device).
        options: batch size, staleness, seed.
        augmentation: the camera augmentation, for end-to-end frames.
        """
        self.samples, self.features, self.instructions = samples, features, instructions
        self.options, self.augmentation, self.device = options, augmentation, process.device
        self.shard = torch.arange(process.rank, len(samples.states), process.world)  # each process its share
        self.episode_start = torch.as_tensor(first_sample_of_episode(samples.episode_index))
        self.sample_episode = torch.as_tensor(samples.episode_index)
        self.clip_rng = np.random.default_rng(options.seed + process.rank) if features is None else None

    def draw(self, generator: torch.Generator) -> tuple[tuple, torch.Tensor, Instruction | None]:
        """One batch.

        Args:
            generator: draws the samples and their maps' staleness.

        Returns:
            (the objective's inputs, the samples' indices, their instructions or None).
        """
        size = self.options.batch_size
        picks = self.shard[torch.randint(len(self.shard), (size,), generator=generator)]
        age = torch.randint(self.options.max_staleness // self.options.sample_every + 1, (size,), generator=generator)
        seen = torch.maximum(picks - age, self.episode_start[picks])  # never across episodes
        instruction = None
        if self.instructions is not None:
            rows = self.sample_episode[picks]
            words = self.instructions.words
            instruction = Instruction(
                self.instructions.ids[rows].to(self.device),
                self.instructions.mask[rows].to(self.device),
                None if words is None else words[rows].to(self.device),
            )
        return self._inputs(seen), picks.to(self.device), instruction

    def _inputs(self, seen: torch.Tensor) -> tuple:
        """The objective's inputs for the samples whose maps are `seen`."""
        if self.features is None:
            samples, augmentation, rng = self.samples, self.augmentation, self.clip_rng
            return (
                torch.cat([frames_to_tensor(augmented(samples.clips[i], augmentation, rng)) for i in seen.tolist()]).to(
                    self.device
                ),
                torch.stack([camera_frames(samples.views[i], augmentation, rng) for i in seen.tolist()]).to(self.device)
                if samples.views
                else None,
            )
        spatial, motion, views = self.features
        seen = seen.to(spatial.device)
        return (
            spatial[seen].to(self.device),
            motion[seen].to(self.device),
            views[seen].to(self.device) if views is not None else None,
        )


def idle_in_stage2(encoder, action) -> list[nn.Module]:
    """What stage 2 on cached features never runs: the video model, the
    image encoder, a frozen text encoder (its words are cached too)."""
    idle = [encoder.backbone]
    if encoder.image_encoder is not None:
        idle.append(encoder.image_encoder)
    text = getattr(action.model, "text_encoder", None)
    if text is not None and text.frozen:
        idle.append(text)
    return idle


def distributed_objective(objective: Stage2Objective, idle: list[nn.Module], process: TrainingProcess) -> nn.Module:
    """The objective, under DistributedDataParallel for several processes;
    DDP neither syncs nor checks the devices of what waits on the host."""
    if process.world == 1:
        return objective
    waiting = {id(t) for module in idle for t in [*module.parameters(), *module.buffers()]}
    named = [*objective.named_parameters(), *objective.named_buffers()]
    objective._ddp_params_and_buffers_to_ignore = [name for name, t in named if id(t) in waiting]
    device = process.device
    return nn.parallel.DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)


def trainable_parameters(encoder, action, features: Features, end_to_end: bool) -> list[nn.Parameter]:
    """Freezes the backbone (unless trained end to end), fixes the token
    scales from `features`, and lists what stage 2 trains.

    Args:
        encoder: System 2's encoder.
        action: System 1's action head.
        features: the maps the scales are fitted to.
        end_to_end: the backbone trains too (and is put in train mode).

    Returns:
        The formers', (the backbone's,) and the head's parameters.
    """
    for p in encoder.parameters():
        p.requires_grad_(False)
    # Fixed scales from the data keep each cell's magnitude in its tokens.
    encoder.fit_scales(features.spatial, features.motion)
    trainable = [
        p
        for former in (encoder.spatial_former, encoder.motion_former, encoder.view_former)
        if former is not None
        for p in former.parameters()
    ]
    if end_to_end:
        trainable += list(encoder.backbone.parameters())
        encoder.train()
    for p in trainable:
        p.requires_grad_(True)
    return trainable + list(action.model.parameters())


def optimizer_and_schedule(
    trainable: list[nn.Parameter], options: Stage2Options, resumed: dict | None
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, int]:
    """AdamW under the learning-rate schedule, restored from a saved stage 2 state.

    Args:
        trainable: the parameters trained.
        options: --lr, --lr-schedule and --steps.
        resumed: a saved stage 2 state, or None.

    Returns:
        (optimizer, schedule, the step to start from).
    """
    saved_schedule = (resumed or {}).get("lr_schedule")
    if saved_schedule not in (None, options.lr_schedule):
        # One cycle's rate rebuilt as constant (or back) jumps mid-training.
        raise SystemExit(
            f"the saved training state ran --lr-schedule {saved_schedule}: resume with it, or remove "
            f"<out>.train/ to start afresh with {options.lr_schedule}"
        )
    optimizer = torch.optim.AdamW(trainable, lr=options.lr, weight_decay=WEIGHT_DECAY)
    if options.lr_schedule == "constant":
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    else:
        total = max(options.steps, 3)
        # 5% warm-up, but OneCycleLR divides by zero below two warm-up steps.
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=options.lr, total_steps=total, pct_start=max(0.05, 2.0 / total)
        )
    if not resumed or resumed["optimizer"] is None:  # None: saved after stage 1, before stage 2's first step
        return optimizer, schedule, 0
    optimizer.load_state_dict(resumed["optimizer"])
    # Rebuilt for this run's --steps (a resumed run may train longer), then
    # advanced to where training stopped; stepping it before the optimizer
    # is intended here, so torch's warning about that is not.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
        for _ in range(resumed["step"]):
            schedule.step()
    return optimizer, schedule, resumed["step"]


def weight_average(trainable: list[nn.Parameter], config, resumed: dict | None) -> WeightAverage | None:
    """The moving average of the trained weights with `ema` in System 1's
    config (as a saved state left it), else None."""
    if not config.ema:
        return None
    average = WeightAverage(trainable, config.ema_power, config.ema_max_decay)
    if resumed and resumed.get("ema"):
        average.load_state_dict(resumed["ema"])
    return average


def optimizer_step(
    loss: torch.Tensor, trainable: list[nn.Parameter], optimizer: torch.optim.Optimizer, average: WeightAverage | None
) -> None:
    """One update of stage 2 (and of its memory plan): gradients clipped,
    AdamW, the weight average; the gradients freed before the next forward."""
    loss.backward()
    nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
    optimizer.step()
    optimizer.zero_grad()
    if average is not None:
        average.update()


def train_stage2(
    encoder,
    action,
    samples: Samples,
    stats: NormalizationStats,
    features: Features,
    instructions: Instruction | None,
    process: TrainingProcess,
    options: Stage2Options,
    *,
    end_to_end: bool,
    augmentation: CameraAugmentation | None,
    state_path: Path,
    resumed: dict | None,
    generator: torch.Generator,
    recipe: TrainingRecipe,
) -> tuple[float | None, float]:
    """Trains the head (and the formers; and an end-to-end backbone).

    Args:
        encoder: System 2's encoder.
        action: System 1's action head.
        samples: the training samples; `stats` normalises their states and actions.
        stats: the demonstrations' normalisation statistics.
        features: every sample's cached maps, or (end to end) a subset's, for the scales.
        instructions: every episode's tokens, with language.
        process: this process (its shard, device; rank 0 saves).
        options: the stage 2 options.
        end_to_end: the backbone runs on every batch and trains.
        augmentation: the camera augmentation, for end-to-end frames.
        state_path: `<out>.train/state.pt`.
        resumed: a saved stage 2 state to continue from, or None.
        generator: draws the batches.
        recipe: the precision of the forward pass (autocast).

    Returns:
        (the last loss reading, the seconds the steps took).
    """
    device = process.device
    idle = [] if end_to_end else idle_in_stage2(encoder, action)
    for module in idle:
        # They wait on the host: the device keeps what trains (at the paper's
        # sizes 16.6 B idle parameters, 62 GiB in float32).
        module.to("cpu")
    states = torch.as_tensor(stats.normalize_state(samples.states), dtype=torch.float32, device=device)
    actions = torch.as_tensor(stats.normalize_action(samples.actions), dtype=torch.float32, device=device)
    trainable = trainable_parameters(encoder, action, features, end_to_end)
    if action.config.head == "rdt":
        action.model.state_mean.copy_(states.mean(0))  # what a left-out state reads
    objective = distributed_objective(Stage2Objective(encoder, action, options.state_noise), idle, process)
    optimizer, schedule, start = optimizer_and_schedule(trainable, options, resumed)
    average = weight_average(trainable, action.config, resumed)
    action.train()
    batches = Batches(samples, None if end_to_end else features, instructions, process, options, augmentation)
    bar = process.progress(range(start, options.steps), desc="stage 2 (DiT)", initial=start, total=options.steps)
    losses, recent_loss = [], None
    started = time.monotonic()
    for step in bar:
        inputs, picks, instruction = batches.draw(generator)
        with recipe.autocast(device):
            loss = objective(inputs, states[picks], actions[picks], instruction)
        optimizer_step(loss, trainable, optimizer, average)
        schedule.step()
        losses.append(loss.detach())
        # Reading a loss waits for the GPU: once per LOSS_WINDOW steps.
        if len(losses) == LOSS_WINDOW or step + 1 == options.steps:
            recent_loss = torch.stack(losses).mean().item()
            losses = []
            bar.set_postfix(loss=f"{recent_loss:.4f}")
        if not process.quiet and ((step + 1) % options.save_every == 0 or step + 1 == options.steps):
            save_state(state_path, 2, step + 1, encoder, action, optimizer, average, options.lr_schedule)
    if average is not None:
        average.copy_to_parameters()
    return recent_loss, time.monotonic() - started
