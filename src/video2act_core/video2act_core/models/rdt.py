"""System 1 as RDT-1B builds it, so that it can start from RDT-1B's
released weights (thu-ml/RoboticsDiffusionTransformer @deb71d8:
models/rdt/model.py, models/rdt/blocks.py, models/rdt_runner.py), with the
official Video2Act's one change: the spatial and motion tokens join the
image tokens in the odd blocks' cross-attention, without positions.

The sequence is [diffusion step, control frequency, state, action_0 ...
action_{H-1}] in RDT's unified 128-d state/action space (our joints at
`unified_indices`, the rest zero, a mask channel beside each value); even
blocks cross-attend to the instruction's tokens, odd ones to the image (and
stream) tokens; RMS-normed pre-norm blocks, no adaLN. Module names are the
release's (`model.*`, `lang_adaptor.*`, `img_adaptor.*`, `state_adaptor.*`),
so its `pytorch_model.bin` loads as it is.

RmsNorm is timm 1.0.3's, which RDT pins and trained with: without apex it
divides by the root of the unbiased variance, not by the RMS (timm issue
#2380, changed in 1.0.13); the released weights expect that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from video2act_core.models.conditions import (
    DROPPED_CONDITIONS,
    instruction_words,
    kept_conditions,
    zeroed_where_dropped,
)

# RDT's unified state/action vector (configs/state_vec.py): a single arm's
# joints at 0-9 (right_arm_joint_i_pos), its gripper at 10 (right_gripper_open).
UNIFIED_DIM = 128
# Its gripper positions: right_gripper_joint_{0..4}_pos, left_... (state_vec.py).
GRIPPER_SLOTS = frozenset(range(10, 15)) | frozenset(range(60, 65))
FREQUENCY_EMBEDDING = 256


class RmsNorm(nn.Module):
    """timm 1.0.3's RmsNorm without apex: x / sqrt(unbiased variance + eps)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.var(x, dim=-1, keepdim=True) + self.eps) * self.weight


class Mlp(nn.Module):
    """timm's Mlp: fc1, GELU (tanh), fc2."""

    def __init__(self, width: int, hidden: int, out: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class SelfAttention(nn.Module):
    """timm's Attention with qk_norm: q, k, v consecutive thirds of qkv."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.q_norm, self.k_norm = RmsNorm(width // heads), RmsNorm(width // heads)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v)
        return self.proj(attended.transpose(1, 2).reshape(batch, tokens, width))


class CrossAttention(nn.Module):
    """RDT's CrossAttention: q from the sequence, k and v halves of kv from
    the condition, a bool mask (True: attend) over the condition's tokens."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.kv = nn.Linear(width, width), nn.Linear(width, 2 * width)
        self.q_norm, self.k_norm = RmsNorm(width // heads), RmsNorm(width // heads)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, tokens, width = x.shape
        q = self.q(x).reshape(batch, tokens, self.heads, -1).transpose(1, 2)
        k, v = self.kv(condition).reshape(batch, condition.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        mask = None if mask is None else mask[:, None, None, :]
        attended = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v, attn_mask=mask)
        return self.proj(attended.transpose(1, 2).reshape(batch, tokens, width))


class RDTBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        # RDTBlock's order, so the state dict's is the release's.
        self.norm1, self.attn = RmsNorm(width), SelfAttention(width, heads)
        self.cross_attn, self.norm2 = CrossAttention(width, heads), RmsNorm(width)
        self.ffn, self.norm3 = Mlp(width, width, width), RmsNorm(width)

    def forward(self, x: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), condition, mask)
        return x + self.ffn(self.norm3(x))


class FinalLayer(nn.Module):
    def __init__(self, width: int, out: int):
        super().__init__()
        self.norm_final, self.ffn_final = RmsNorm(width), Mlp(width, width, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn_final(self.norm_final(x))


class TimestepEmbedder(nn.Module):
    """A scalar (the diffusion step, or the control frequency in Hz) ->
    [cos | sin] of 256 frequencies -> MLP."""

    def __init__(self, width: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(FREQUENCY_EMBEDDING, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = FREQUENCY_EMBEDDING // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        angles = t[:, None].float() * freqs[None]
        return self.mlp(torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1).to(self.mlp[0].weight.dtype))


def sincos(dim: int, positions) -> np.ndarray:
    """RDT's 1-d table (MAE's): [sin | cos] of `positions` (M,) -> (M, dim)."""
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    angles = np.outer(np.asarray(positions, dtype=np.float64).reshape(-1), omega)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sequence_positions(dim: int, horizon: int) -> np.ndarray:
    """x_pos_embed's start: the segment's index (timestep, frequency, state,
    action) in the first half, the position inside it in the second."""
    segments = [(0, 0), (1, 0), (2, 0)] + [(3, j) for j in range(horizon)]
    return np.concatenate(
        [sincos(dim // 2, [s for s, _ in segments]), sincos(dim // 2, [p for _, p in segments])], axis=1
    )


def image_positions(dim: int, history: int, cameras: int, patches: int) -> np.ndarray:
    """img_cond_pos_embed's start for RDT's ("image", (history, cameras,
    -patches)): the width shared by the axes longer than 1 (history,
    camera), nothing for the patch; rows history-major, then camera, patch."""
    sizes = (history, cameras)
    longer = [axis for axis, size in enumerate(sizes) if size > 1]
    table = np.zeros((history, cameras, dim))
    if longer:
        share = dim // len(longer)
        share -= share % 2
        for slot, axis in enumerate(longer):
            shape = [1, 1, share]
            shape[axis] = sizes[axis]
            table[..., slot * share : (slot + 1) * share] += sincos(share, np.arange(sizes[axis])).reshape(shape)
    return np.repeat(table.reshape(history * cameras, dim), patches, axis=0)


class RDTCore(nn.Module):
    """RDT (models/rdt/model.py): the token sequence through the blocks."""

    def __init__(self, width: int, depth: int, heads: int, horizon: int, language_tokens: int, image_layout):
        super().__init__()
        self.horizon = horizon
        # Training keeps each block's input only and recomputes the rest in
        # the backward pass: the odd blocks' keys and values of thousands of
        # image tokens are most of a step's memory at RDT-1B's size.
        self.gradient_checkpointing = False
        history, cameras, patches = image_layout
        self.t_embedder, self.freq_embedder = TimestepEmbedder(width), TimestepEmbedder(width)
        self.x_pos_embed = nn.Parameter(torch.zeros(1, horizon + 3, width))
        self.lang_cond_pos_embed = nn.Parameter(torch.zeros(1, language_tokens, width))
        self.img_cond_pos_embed = nn.Parameter(torch.zeros(1, history * cameras * patches, width))
        self.blocks = nn.ModuleList(RDTBlock(width, heads) for _ in range(depth))
        self.final_layer = FinalLayer(width, UNIFIED_DIM)
        # RDT's initialize_weights, for a start without its weights.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.x_pos_embed.copy_(torch.from_numpy(sequence_positions(width, horizon)).unsqueeze(0))
            # ("lang", -n): every row is position 0's code.
            self.lang_cond_pos_embed.copy_(torch.from_numpy(sincos(width, [0])).expand(1, language_tokens, width))
            self.img_cond_pos_embed.copy_(torch.from_numpy(image_positions(width, history, cameras, patches))[None])
        for embedder in (self.t_embedder, self.freq_embedder):
            nn.init.normal_(embedder.mlp[0].weight, std=0.02)
            nn.init.normal_(embedder.mlp[2].weight, std=0.02)
        nn.init.zeros_(self.final_layer.ffn_final.fc2.weight)
        nn.init.zeros_(self.final_layer.ffn_final.fc2.bias)

    def forward(
        self,
        x: torch.Tensor,
        frequency: torch.Tensor,
        t: torch.Tensor,
        language: torch.Tensor,
        images: torch.Tensor,
        language_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """x (B, 1 + H, width): the adapted state and action tokens;
        `language` and `images` with their positions added. Returns the
        action tokens' outputs (B, H, 128)."""
        t = self.t_embedder(t.expand(x.shape[0])).unsqueeze(1)
        frequency = self.freq_embedder(frequency).unsqueeze(1)
        x = torch.cat([t, frequency, x], dim=1) + self.x_pos_embed
        conditions, masks = (language, images), (language_mask, None)
        for i, block in enumerate(self.blocks):
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, conditions[i % 2], masks[i % 2], use_reentrant=False)
            else:
                x = block(x, conditions[i % 2], masks[i % 2])
        return self.final_layer(x)[:, -self.horizon :]


def adaptor(width_in: int, width: int, layers: int) -> nn.Sequential:
    """RDT's mlp{layers}x_gelu condition adaptor."""
    modules = [nn.Linear(width_in, width)]
    for _ in range(layers - 1):
        modules += [nn.GELU(approximate="tanh"), nn.Linear(width, width)]
    return nn.Sequential(*modules)


@dataclass
class RDTConditioning:
    """What stays fixed while one chunk is denoised."""

    state_token: torch.Tensor  # (B, 1, width)
    frequency: torch.Tensor  # (B,)
    language: torch.Tensor  # (B, L, width), positions added
    language_mask: torch.Tensor  # (B, L) bool
    images: torch.Tensor  # (B, M, width): image tokens with positions, then the stream tokens


class RDTRunner(nn.Module):
    """RDTRunner's modules and state_dict keys (models/rdt_runner.py); the
    head below adds how our inputs reach them."""

    def __init__(
        self,
        width: int,
        depth: int,
        heads: int,
        horizon: int,
        language_dim: int,
        language_tokens: int,
        image_dim: int,
        image_layout,
    ):
        super().__init__()
        self.model = RDTCore(width, depth, heads, horizon, language_tokens, image_layout)
        self.lang_adaptor = adaptor(language_dim, width, 2)
        self.img_adaptor = adaptor(image_dim, width, 2)
        self.state_adaptor = adaptor(2 * UNIFIED_DIM, width, 3)

    def predict(
        self,
        noisy: torch.Tensor,
        t: torch.Tensor,
        state: torch.Tensor,
        action_mask: torch.Tensor,
        frequency: torch.Tensor,
        language: torch.Tensor,
        language_mask: torch.Tensor,
        images: torch.Tensor,
    ) -> torch.Tensor:
        """One model call as RDTRunner makes it, from raw tokens (the
        upstream comparison's entry): noisy (B, H, 128), state (B, 1, 128),
        action_mask (B, 1, 128), language (B, L, dim), images (B, M, dim)."""
        state_token = self.state_adaptor(torch.cat([state, action_mask], dim=2))
        return self.model(
            torch.cat([state_token, self.adapt_actions(noisy, action_mask)], dim=1),
            frequency,
            t,
            self.lang_adaptor(language) + self.model.lang_cond_pos_embed[:, : language.shape[1]],
            self.img_adaptor(images) + self.model.img_cond_pos_embed,
            language_mask,
        )

    def adapt_actions(self, noisy: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
        return self.state_adaptor(torch.cat([noisy, action_mask.expand(-1, noisy.shape[1], -1)], dim=2))


class RDTActionHead(RDTRunner):
    """System 1 on RDT's architecture: our joints in the unified space, the
    instruction's tokens (the configured text encoder, T5-XXL for RDT-1B),
    the image tokens in RDT's order and the stream tokens after them."""

    diffused_dim = UNIFIED_DIM  # what ActionDiffusion diffuses: the unified vector

    def __init__(self, config):
        from video2act_core.models.text import build_text_encoder

        text_encoder = build_text_encoder(config.language)
        cameras, history, cells = config.view_layout
        super().__init__(
            config.hidden_dim,
            config.num_layers,
            config.num_heads,
            config.horizon,
            text_encoder.dim,
            config.language_positions,
            config.view_dim,
            (history, cameras, cells),
        )
        self.config = config
        self.text_encoder = text_encoder
        self.model.gradient_checkpointing = config.gradient_checkpointing
        self.register_buffer("indices", torch.tensor(config.unified_indices), persistent=False)
        mask = torch.zeros(UNIFIED_DIM)
        mask[config.unified_indices] = 1.0
        self.register_buffer("action_mask", mask, persistent=False)
        # A left-out state reads the demonstrations' mean, as RDT's (its
        # units need not centre it at zero); stage 2 sets it.
        self.register_buffer("state_mean", torch.zeros(config.state_dim), persistent=False)

    def to_diffused(self, values: torch.Tensor) -> torch.Tensor:
        """(..., joints) -> (..., 128): each joint at its unified index, zeros elsewhere."""
        out = values.new_zeros(*values.shape[:-1], UNIFIED_DIM)
        out[..., self.indices] = values
        return out

    def from_diffused(self, unified: torch.Tensor) -> torch.Tensor:
        return unified[..., self.indices]

    def conditioning(self, state, spatial, motion, instruction=None, views=None) -> RDTConditioning:
        """What stays fixed while one chunk is denoised; in training mode
        with some conditions left out (`condition_dropout`; the control
        frequency then reads 0, RDT's 'unknown')."""
        if instruction is None or views is None:
            raise ValueError("the RDT head reads the task instruction and image tokens; one was not given")
        batch = state.shape[0]
        frequency = torch.full((batch,), float(self.config.control_hz), device=state.device)
        language_kept = None
        if self.training and self.config.condition_dropout:
            names = (*DROPPED_CONDITIONS, "frequency")
            kept = kept_conditions(names, batch, self.config.condition_dropout, state.device)
            spatial, motion, views, frequency = (
                zeroed_where_dropped(x, kept[name])
                for name, x in zip(("spatial", "motion", "views", "frequency"), (spatial, motion, views, frequency))
            )
            state = torch.where(kept["state"][:, None], state, self.state_mean.to(state.dtype))
            language_kept = kept["language"]
        mask = self.action_mask.expand(batch, 1, -1).to(state.dtype)
        state_token = self.state_adaptor(torch.cat([self.to_diffused(state).unsqueeze(1), mask], dim=2))
        words = instruction_words(self.text_encoder, instruction, state_token)
        if language_kept is not None:
            words = zeroed_where_dropped(words, language_kept)
        language = self.lang_adaptor(words) + self.model.lang_cond_pos_embed[:, : words.shape[1]]
        # Ours are camera-major (camera, frame, cell), RDT's frame-major.
        cameras, history, cells = self.config.view_layout
        views = views.unflatten(1, (cameras, history, cells)).transpose(1, 2).flatten(1, 3)
        images = [self.img_adaptor(views.to(state_token.dtype)) + self.model.img_cond_pos_embed]
        # The official Video2Act appends the stream tokens, without positions.
        if self.config.use_spatial:
            images.append(spatial.to(state_token.dtype))
        if self.config.use_motion:
            images.append(motion.to(state_token.dtype))
        return RDTConditioning(
            state_token, frequency, language, instruction.mask.to(state.device), torch.cat(images, dim=1)
        )

    def denoise(self, noisy: torch.Tensor, timesteps: torch.Tensor, conditioning: RDTConditioning) -> torch.Tensor:
        """The prediction over the unified vector (B, H, 128) for `noisy` (B, H, 128)."""
        mask = self.action_mask.expand(noisy.shape[0], 1, -1).to(noisy.dtype)
        x = torch.cat([conditioning.state_token, self.adapt_actions(noisy, mask)], dim=1)
        return self.model(
            x, conditioning.frequency, timesteps, conditioning.language, conditioning.images, conditioning.language_mask
        )

    def forward(self, noisy, timesteps, state, spatial, motion, instruction=None, views=None) -> torch.Tensor:
        return self.denoise(noisy, timesteps, self.conditioning(state, spatial, motion, instruction, views))


def load_rdt_weights(head: RDTRunner, path: str) -> list[str]:
    """Loads a released RDT checkpoint (RDTRunner's `pytorch_model.bin`, or a
    state holding it under "module", as DeepSpeed's) into `head`: every key
    of the release must fit by name and shape, and the head may have none
    the release lacks but a learned text encoder's (returned: they keep
    their start)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("module", state)
    own = head.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ValueError(f"{path}: keys this RDT head does not have (not an RDTRunner release?): {unknown[:5]}")
    misfits = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in state if state[k].shape != own[k].shape]
    if misfits:
        raise ValueError(f"{path}: shapes that do not fit this head's config: {misfits[:5]}")
    kept = sorted(set(own) - set(state))
    untrained = [k for k in kept if not k.startswith("text_encoder.")]
    if untrained:
        raise ValueError(f"{path}: this head has weights the release does not (a larger config?): {untrained[:5]}")
    head.load_state_dict(state, strict=False)
    return kept
