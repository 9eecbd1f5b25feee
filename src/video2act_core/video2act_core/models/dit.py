"""System 1: a diffusion-transformer (DiT) action head.

The noisy action chunk (horizon H, one token per step) is denoised by
transformer blocks that are modulated (adaLN-Zero) by the diffusion timestep
and the joint state, and that cross-attend to the System 2 spatial and
motion tokens, a proprioception token and, when configured, System 2's
image tokens per camera and history frame and the task instruction's
tokens (`text.py`). Trained to predict the noise (DDPM) or
the clean chunk, each condition left out of a training sample at
`condition_dropout` (as RDT's and the official Video2Act's training);
sampled with a few DDIM or DPM-Solver++ steps (`sampler`), optionally
inpainting toward a prior chunk (real-time chunking,
`control/execution.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from video2act_core.models.conditions import (
    DROPPED_CONDITIONS,
    Instruction,
    instruction_words,
    kept_conditions,
    zeroed_where_dropped,
)
from video2act_core.models.config import ConfigDict
from video2act_core.models.text import build_text_encoder, text_encoder_arguments

PREDICTION_TYPES = ("epsilon", "sample")
# The schedules diffusers' DDIMScheduler builds (0.42.1).
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
# diffusers' DDIMScheduler and DPMSolverMultistepScheduler (second order,
# RDT's and the official Video2Act's sampler), and how either spaces its steps.
SAMPLERS = ("ddim", "dpmsolver++")
# The action head: this module's adaLN DiT, or RDT-1B's architecture (`rdt.py`).
HEADS = ("dit", "rdt")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")


@dataclass
class DiTConfig(ConfigDict):
    """Everything needed to rebuild System 1; stored in every checkpoint."""

    head: str = "dit"
    action_dim: int = 6
    state_dim: int = 6
    horizon: int = 16
    # Width of the System 2 tokens this head cross-attends to.
    context_dim: int = 128
    hidden_dim: int = 128
    num_layers: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    num_train_timesteps: int = 100
    num_inference_steps: int = 8
    # What the head predicts: the noise ("epsilon", DDPM's) or the clean
    # chunk ("sample", as RDT); the noise schedule (diffusers' beta_schedule).
    prediction_type: str = "epsilon"
    beta_schedule: str = "squaredcos_cap_v2"
    # How a chunk is sampled. DDIM with leading spacing starts its first step
    # at t = (steps - 1) x num_train_timesteps / steps, not at pure noise;
    # the official code samples DPM-Solver++ with linspace (from t = 999).
    sampler: str = "ddim"
    timestep_spacing: str = "leading"
    # Per training sample, each condition (DROPPED_CONDITIONS) is left out
    # with this probability: the state at the demonstrations' mean, the
    # tokens and the instruction's words zeroed. The official code: 0.1.
    condition_dropout: float = 0.0
    # Training keeps an exponential moving average of the weights it trains
    # and the checkpoint holds it: at the n-th update the decay is
    # 1 - n^-ema_power (0 for the first two), at most ema_max_decay (the
    # official code's EMAModel: 0.75, 0.9999).
    ema: bool = False
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    # The RDT head's blocks recompute their activations in the backward pass
    # instead of keeping them (less memory, one more forward per step).
    gradient_checkpointing: bool = False
    # Ablations of the paper: drop a System 2 branch from the context.
    use_spatial: bool = True
    use_motion: bool = True
    # System 2 sends image tokens (derived from its view_cameras).
    view_tokens: bool = False
    # The task instruction's tokens in the context (`text.build_text_encoder`):
    # {} for none, {type: learned, ...} or {type: pretrained, path: ...}.
    language: dict[str, Any] = field(default_factory=dict)
    # The RDT head (`rdt.py`): where each joint sits in RDT's unified 128-d
    # state/action space (a single arm's joints 0-9, its gripper 10), the
    # control frequency it is told (Hz, 1 / the action period), the rows of
    # its language positions (RDT-1B: 1024), and, derived from System 2, the
    # image tokens' layout (cameras, history frames, cells per frame) and width.
    unified_indices: list[int] = field(default_factory=list)
    # What the head reads and writes: joints normalised by the demonstrations'
    # statistics, or ("rdt", the RDT head's) RDT's units, as RDT-1B was
    # trained: joints as they are, grippers (at gripper slots) min-max to [0, 1].
    normalization: str = "statistics"
    control_hz: int = 10
    language_positions: int = 1024
    view_layout: list[int] = field(default_factory=list)
    view_dim: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in (
            "action_dim",
            "state_dim",
            "horizon",
            "context_dim",
            "hidden_dim",
            "num_layers",
            "num_heads",
            "num_train_timesteps",
        ):
            if getattr(self, name) < 1:
                raise self.invalid(name, "an int >= 1")
        if self.hidden_dim % 2:
            # The sinusoidal timestep table has cos and sin halves.
            raise self.invalid("hidden_dim", "an even width (the timestep embedding is cos and sin halves)")
        if self.hidden_dim % self.num_heads:
            raise self.invalid(
                "num_heads", f"a divisor of hidden_dim={self.hidden_dim} (each head takes an equal share of the width)"
            )
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise self.invalid(
                "num_inference_steps",
                f"1..num_train_timesteps={self.num_train_timesteps} (a subset of the training timesteps)",
            )
        if not self.mlp_ratio > 0 or int(self.hidden_dim * self.mlp_ratio) < 1:
            raise self.invalid("mlp_ratio", f"> 0, with at least one MLP unit at hidden_dim={self.hidden_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise self.invalid("dropout", "a probability in [0, 1)")
        if self.prediction_type not in PREDICTION_TYPES:
            raise self.invalid("prediction_type", f"one of {PREDICTION_TYPES}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise self.invalid("beta_schedule", f"one of {BETA_SCHEDULES}")
        if self.sampler not in SAMPLERS:
            raise self.invalid("sampler", f"one of {SAMPLERS}")
        if self.timestep_spacing not in TIMESTEP_SPACINGS:
            raise self.invalid("timestep_spacing", f"one of {TIMESTEP_SPACINGS}")
        if not 0.0 <= self.condition_dropout < 1.0:
            raise self.invalid("condition_dropout", "a probability in [0, 1)")
        if not self.ema_power > 0:
            raise self.invalid("ema_power", "> 0")
        if not 0.0 <= self.ema_max_decay < 1.0:
            raise self.invalid("ema_max_decay", "a decay in [0, 1)")
        if self.language:
            try:
                text_encoder_arguments(self.language)
            except ValueError as error:
                raise ValueError(f"{type(self).__name__}.{error}") from None
        if self.head not in HEADS:
            raise self.invalid("head", f"one of {HEADS}")
        if self.normalization not in ("statistics", "rdt") or (self.normalization == "rdt" and self.head != "rdt"):
            raise self.invalid("normalization", "'statistics', or 'rdt' with head: rdt")
        if self.head == "rdt":
            self._check_rdt()

    def _check_rdt(self) -> None:
        from video2act_core.models.rdt import UNIFIED_DIM

        indices = self.unified_indices
        if len(indices) != self.action_dim or len(set(indices)) != len(indices):
            raise self.invalid("unified_indices", f"{self.action_dim} distinct indices, one per joint")
        if not all(0 <= i < UNIFIED_DIM for i in indices):
            raise self.invalid("unified_indices", f"indices in [0, {UNIFIED_DIM}) (RDT's unified space)")
        if self.state_dim != self.action_dim:
            raise self.invalid("state_dim", "the action_dim: RDT's state and actions share the unified space")
        if not self.language:
            raise self.invalid("language", "a text encoder: RDT's even blocks attend to the instruction")
        if text_encoder_arguments(self.language)[1]["max_tokens"] > self.language_positions:
            raise self.invalid("language_positions", "at least the text encoder's max_tokens")
        if not self.view_tokens or len(self.view_layout) != 3 or self.view_dim < 1:
            raise self.invalid(
                "view_layout", "image tokens (view_cameras > 0 in system2): RDT's odd blocks attend to them"
            )
        if self.context_dim != self.hidden_dim:
            raise self.invalid(
                "context_dim", f"hidden_dim={self.hidden_dim}: system2's token_dim, the stream tokens enter as they are"
            )
        if self.control_hz < 0:
            raise self.invalid("control_hz", ">= 0 (0 is RDT's 'unknown')")


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=timesteps.device) / half)
    angles = timesteps.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class DiTBlock(nn.Module):
    def __init__(self, config: DiTConfig):
        super().__init__()
        width = config.hidden_dim
        self.self_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(width, config.num_heads, dropout=config.dropout, batch_first=True)
        self.cross_norm = nn.LayerNorm(width, eps=1e-6)
        self.cross_attention = nn.MultiheadAttention(width, config.num_heads, dropout=config.dropout, batch_first=True)
        self.mlp_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * config.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        # adaLN-Zero: shift/scale/gate for self-attention and MLP, gates start
        # at zero so every block starts as the identity.
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.modulation[-1].weight)
        nn.init.zeros_(self.modulation[-1].bias)

    def context_keys_values(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cross-attention's keys and values (B, heads, N, head_dim): the
        context is the same at every denoising step, so sampling projects
        it once instead of once per step (about half of System 1's work)."""
        attention = self.cross_attention
        width = attention.embed_dim
        weight, bias = attention.in_proj_weight, attention.in_proj_bias
        keys = F.linear(context, weight[width : 2 * width], bias[width : 2 * width])
        values = F.linear(context, weight[2 * width :], bias[2 * width :])
        return self._heads(keys), self._heads(values)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.cross_attention.num_heads, -1)).transpose(1, 2)

    def _cross_attend(
        self, x: torch.Tensor, keys_values: tuple[torch.Tensor, torch.Tensor], key_mask: torch.Tensor | None
    ) -> torch.Tensor:
        # nn.MultiheadAttention's arithmetic, on its own weights, with the keys and values given.
        attention = self.cross_attention
        width = attention.embed_dim
        queries = self._heads(F.linear(x, attention.in_proj_weight[:width], attention.in_proj_bias[:width]))
        attended = F.scaled_dot_product_attention(
            queries, *keys_values, attn_mask=key_mask, dropout_p=attention.dropout if self.training else 0.0
        )
        return attention.out_proj(attended.transpose(1, 2).flatten(2))

    def forward(
        self,
        x: torch.Tensor,
        condition: torch.Tensor,
        keys_values: tuple[torch.Tensor, torch.Tensor],
        key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        shift_sa, scale_sa, gate_sa, shift_mlp, scale_mlp, gate_mlp = self.modulation(condition).chunk(6, dim=-1)
        h = modulate(self.self_norm(x), shift_sa, scale_sa)
        x = x + gate_sa.unsqueeze(1) * self.self_attention(h, h, h, need_weights=False)[0]
        x = x + self._cross_attend(self.cross_norm(x), keys_values, key_mask)
        h = modulate(self.mlp_norm(x), shift_mlp, scale_mlp)
        return x + gate_mlp.unsqueeze(1) * self.mlp(h)


@dataclass
class Conditioning:
    state_embedding: torch.Tensor  # (B, hidden)
    keys_values: list[tuple[torch.Tensor, torch.Tensor]]  # per block: the context's cross-attention keys, values
    key_mask: torch.Tensor | None  # (B, 1, 1, N) bool, False for padding tokens; None: no padding


class DiTActionHead(nn.Module):
    """Predicts the noise in, or the clean version of, a normalised action
    chunk (B, H, action_dim), as `prediction_type` says."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = config
        width = config.hidden_dim
        self.action_in = nn.Linear(config.action_dim, width)
        self.action_position = nn.Parameter(torch.zeros(1, config.horizon, width))
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.state_in = nn.Sequential(nn.Linear(config.state_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.context_in = nn.Linear(config.context_dim, width)
        # Which stream a context token comes from: spatial, motion, state.
        self.context_type = nn.Parameter(torch.zeros(3, width))
        if config.language:
            self.text_encoder = build_text_encoder(config.language)
            self.language_in = nn.Linear(self.text_encoder.dim, width)
            self.language_type = nn.Parameter(torch.zeros(width))
        if config.view_tokens:
            self.view_type = nn.Parameter(torch.zeros(width))
            nn.init.normal_(self.view_type, std=0.02)
        self.blocks = nn.ModuleList(DiTBlock(config) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.action_out = nn.Linear(width, config.action_dim)
        nn.init.normal_(self.action_position, std=0.02)
        nn.init.normal_(self.context_type, std=0.02)
        nn.init.zeros_(self.final_modulation[-1].weight)
        nn.init.zeros_(self.final_modulation[-1].bias)
        nn.init.zeros_(self.action_out.weight)
        nn.init.zeros_(self.action_out.bias)

    @property
    def diffused_dim(self) -> int:
        """The width of what ActionDiffusion diffuses: the joints themselves."""
        return self.config.action_dim

    def to_diffused(self, actions: torch.Tensor) -> torch.Tensor:
        return actions

    def from_diffused(self, diffused: torch.Tensor) -> torch.Tensor:
        return diffused

    def context_tokens(
        self,
        spatial: torch.Tensor,
        motion: torch.Tensor,
        state_embedding: torch.Tensor,
        instruction: Instruction | None = None,
        views: torch.Tensor | None = None,
        language_kept: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The cross-attention context and its key mask (None: no padding);
        `language_kept` (B,) zeroes the instruction's words where False."""
        parts = [state_embedding.unsqueeze(1) + self.context_type[2]]
        if self.config.use_spatial:
            parts.append(self.context_in(spatial) + self.context_type[0])
        if self.config.use_motion:
            parts.append(self.context_in(motion) + self.context_type[1])
        if self.config.view_tokens:
            if views is None:
                raise ValueError("this action head reads image tokens per camera; none were given")
            parts.append(self.context_in(views) + self.view_type)
        if not self.config.language:
            return torch.cat(parts, dim=1), None
        if instruction is None:
            raise ValueError("this action head is conditioned on a task instruction; none was given")
        words = instruction_words(self.text_encoder, instruction, state_embedding)
        if language_kept is not None:
            words = words * language_kept[:, None, None].to(words.dtype)
        parts.append(self.language_in(words) + self.language_type)
        visible = [torch.ones(part.shape[:2], dtype=torch.bool, device=part.device) for part in parts[:-1]]
        key_mask = torch.cat([*visible, instruction.mask.to(state_embedding.device)], dim=1)
        return torch.cat(parts, dim=1), key_mask[:, None, None, :]

    def conditioning(
        self,
        state: torch.Tensor,
        spatial: torch.Tensor,
        motion: torch.Tensor,
        instruction: Instruction | None = None,
        views: torch.Tensor | None = None,
    ) -> Conditioning:
        """What stays fixed while one chunk is denoised; in training mode
        with some conditions left out (`condition_dropout`)."""
        language_kept = None
        if self.training and self.config.condition_dropout:
            kept = kept_conditions(DROPPED_CONDITIONS, state.shape[0], self.config.condition_dropout, state.device)
            state, spatial, motion, views = (
                zeroed_where_dropped(x, kept[name])
                for name, x in (("state", state), ("spatial", spatial), ("motion", motion), ("views", views))
            )
            language_kept = kept["language"]
        state_embedding = self.state_in(state)
        context, key_mask = self.context_tokens(spatial, motion, state_embedding, instruction, views, language_kept)
        return Conditioning(state_embedding, [block.context_keys_values(context) for block in self.blocks], key_mask)

    def denoise(self, noisy_actions: torch.Tensor, timesteps: torch.Tensor, conditioning: Conditioning) -> torch.Tensor:
        state_embedding = conditioning.state_embedding
        # The sinusoidal table is float32; a half-precision model takes its own dtype.
        condition = self.time_mlp(timestep_embedding(timesteps, self.config.hidden_dim).to(state_embedding.dtype))
        condition = condition + state_embedding
        x = self.action_in(noisy_actions) + self.action_position
        for block, keys_values in zip(self.blocks, conditioning.keys_values):
            x = block(x, condition, keys_values, conditioning.key_mask)
        shift, scale = self.final_modulation(condition).chunk(2, dim=-1)
        return self.action_out(modulate(self.final_norm(x), shift, scale))

    def forward(
        self,
        noisy_actions: torch.Tensor,
        timesteps: torch.Tensor,
        state: torch.Tensor,
        spatial: torch.Tensor,
        motion: torch.Tensor,
        instruction: Instruction | None = None,
        views: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.denoise(noisy_actions, timesteps, self.conditioning(state, spatial, motion, instruction, views))


class ActionDiffusion(nn.Module):
    """The DiT head with its noise schedule: training loss and sampling."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

        self.config = config
        if config.head == "rdt":
            from video2act_core.models.rdt import RDTActionHead  # it builds on this module's types

            self.model = RDTActionHead(config)
        else:
            self.model = DiTActionHead(config)
        schedule = {
            "num_train_timesteps": config.num_train_timesteps,
            "beta_schedule": config.beta_schedule,
            "prediction_type": config.prediction_type,
        }
        # The forward process (training's noise, inpainting's alphas), and the sampler.
        self.scheduler = DDIMScheduler(**schedule, clip_sample=False)
        if config.sampler == "dpmsolver++":
            self.sampler = DPMSolverMultistepScheduler(
                **schedule, algorithm_type="dpmsolver++", solver_order=2, timestep_spacing=config.timestep_spacing
            )
        else:
            self.sampler = DDIMScheduler(**schedule, clip_sample=False, timestep_spacing=config.timestep_spacing)

    def loss(
        self,
        actions: torch.Tensor,
        state: torch.Tensor,
        spatial: torch.Tensor,
        motion: torch.Tensor,
        instruction: Instruction | None = None,
        views: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Denoising loss on normalised actions (B, H, action_dim): against the
        noise or the clean chunk, as `prediction_type` says (for the RDT head
        over its whole unified vector, as RDT trains: zero where no joint is)."""
        actions = self.model.to_diffused(actions)
        noise = torch.randn_like(actions)
        timesteps = torch.randint(0, self.config.num_train_timesteps, (actions.shape[0],), device=actions.device)
        noisy = self.scheduler.add_noise(actions, noise, timesteps)
        target = noise if self.config.prediction_type == "epsilon" else actions
        return F.mse_loss(self.model(noisy, timesteps, state, spatial, motion, instruction, views), target)

    @torch.no_grad()
    def sample(
        self,
        state: torch.Tensor,
        spatial: torch.Tensor,
        motion: torch.Tensor,
        generator: torch.Generator | None = None,
        num_inference_steps: int | None = None,
        prior: torch.Tensor | None = None,
        prior_weights: torch.Tensor | None = None,
        instruction: Instruction | None = None,
        views: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Normalised action chunk (B, H, action_dim) by the configured
        sampler (DDIM with eta = 0, or DPM-Solver++).

        With a `prior` chunk (B, H, action_dim) and per-step `prior_weights`
        (B, H) in [0, 1], every step pulls the clean-sample estimate toward
        the prior by its weight before stepping on: steps of weight 1 come
        out as the prior exactly (the last step of either sampler returns
        the clean estimate), the others are denoised knowing them, so the chunk
        continues them (replacement inpainting, as RePaint without
        resampling; the RTC paper guides with a vector-Jacobian product
        instead, at a backward pass per step).
        """
        cfg = self.config
        batch = state.shape[0]
        parameter = next(self.model.parameters())
        # The chunk being denoised, and the sampler's steps on it, stay
        # float32 whatever the head's precision: bf16 would round every step.
        actions = torch.randn(
            (batch, cfg.horizon, self.model.diffused_dim),
            generator=generator,
            device=generator.device if generator else "cpu",
        ).to(parameter.device)
        if prior is not None:
            prior = self.model.to_diffused(prior)
        # Sampling runs off the sampler's timestep table (and DPM-Solver++'s
        # history of outputs); set per call so one instance serves any step count.
        self.sampler.set_timesteps(num_inference_steps or cfg.num_inference_steps, device=parameter.device)
        conditioning = self.model.conditioning(state, spatial, motion, instruction, views)
        for t in self.sampler.timesteps:
            timesteps = t.expand(batch).to(parameter.device)
            predicted = self.model.denoise(actions.to(parameter.dtype), timesteps, conditioning).float()
            if prior is not None:
                predicted = self._inpainted(actions, predicted, t, prior, prior_weights)
            actions = self.sampler.step(predicted, t, actions).prev_sample
        return self.model.from_diffused(actions)

    def _inpainted(
        self,
        actions: torch.Tensor,
        predicted: torch.Tensor,
        t: torch.Tensor,
        prior: torch.Tensor,
        weights: torch.Tensor,
    ) -> torch.Tensor:
        """The prediction whose clean-sample estimate is the weighted blend of
        the model's own and the prior's."""
        weights = weights.float().unsqueeze(-1)
        if self.config.prediction_type == "sample":
            return (predicted.float() + weights * (prior.float() - predicted.float())).to(predicted.dtype)
        alpha = self.scheduler.alphas_cumprod[int(t)].to(actions.device, torch.float32)
        keep, spread = alpha.sqrt(), (1 - alpha).sqrt()
        clean = (actions.float() - spread * predicted.float()) / keep
        clean = clean + weights * (prior.float() - clean)
        return ((actions.float() - keep * clean) / spread).to(predicted.dtype)
