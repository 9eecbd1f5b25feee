"""HunyuanVideo as a System 2 backbone, the model of the paper's first
version.

Frames go through HunyuanVideo's causal 3D VAE (8x in space, 4x in time)
into scaled latents; the transformer runs once on the clean latents at
timestep 0 and the video tokens after its first `num_blocks` dual-stream
blocks are the features, one map per latent frame. Only those blocks run
(the single-stream blocks after them never do).

Upstream: diffusers (Apache-2.0) `HunyuanVideoTransformer3DModel` and
`AutoencoderKLHunyuanVideo`, written against diffusers 0.42.1; weights
hunyuanvideo-community/HunyuanVideo (diffusers layout), loaded from a
local directory. `features` repeats the transformer's forward up to its
block loop (rotary positions, time/guidance/pooled-text embedding, patch
embedding, the text token refiner, the joint attention mask) and stops
after `num_blocks`; `HunyuanVideoTransformer3DModel.forward` is the
reference to re-check on a diffusers upgrade (a test compares the two).

Text: HunyuanVideo conditions on Llama hidden states (refined by its token
refiner) and a pooled CLIP text projection. Neither text model is loaded:
one zero text token (attention mask 1) and a zero pooled projection stand
in, a fixed condition like Wan's null context. The guidance-distilled
weights take `guidance` x 1000, as HunyuanVideoPipeline passes it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from video2act_core.models.backbones import (
    NUM_TRAIN_TIMESTEPS,
    VideoBackbone,
    check_flow_options,
    flow_noise_levels,
    transformer_and_vae,
)

# A HunyuanVideo-style transformer and VAE small enough for CPU tests: the
# same block types (dual-stream then single-stream blocks, token refiner,
# 3D rotary positions, patch (1, 2, 2)), 141 k and 233 k parameters. The VAE
# downsamples 8x in space and 4x in time, as the real one.
TINY_TRANSFORMER: dict[str, Any] = {
    "in_channels": 4,
    "out_channels": 4,
    "num_attention_heads": 2,
    "attention_head_dim": 16,
    "num_layers": 2,
    "num_single_layers": 1,
    "num_refiner_layers": 1,
    "text_embed_dim": 16,
    "pooled_projection_dim": 8,
    "rope_axes_dim": [4, 6, 6],
}
TINY_VAE: dict[str, Any] = {
    "latent_channels": 4,
    "down_block_types": ["HunyuanVideoDownBlock3D"] * 4,
    "up_block_types": ["HunyuanVideoUpBlock3D"] * 4,
    "block_out_channels": [8, 16, 16, 16],
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "mid_block_add_attention": False,
}


class HunyuanVideoBackbone(VideoBackbone):
    # The causal VAE: the first frame alone, then 4 frames per latent frame.
    temporal_compression = 4

    def __init__(
        self,
        pretrained_path: str = "",
        transformer: dict[str, Any] | None = None,
        vae: dict[str, Any] | None = None,
        # Features are the video tokens after the first N dual-stream blocks
        # (of 20 in HunyuanVideo); 0 or more than it has means all of them.
        num_blocks: int = 10,
        # Transformer timestep of the feature pass, 0..1000; 0: clean latents.
        timestep: float = 0.0,
        # The distilled guidance scale, as HunyuanVideoPipeline's default.
        guidance: float = 6.0,
        loss_timestep_sampling: str = "logit_normal",
    ):
        super().__init__()
        from diffusers import AutoencoderKLHunyuanVideo, HunyuanVideoTransformer3DModel

        self.check_arguments(
            {"timestep": timestep, "loss_timestep_sampling": loss_timestep_sampling, "num_blocks": num_blocks}
        )
        self.transformer, self.vae = transformer_and_vae(
            "HunyuanVideo",
            HunyuanVideoTransformer3DModel,
            AutoencoderKLHunyuanVideo,
            pretrained_path,
            transformer or TINY_TRANSFORMER,
            vae or TINY_VAE,
        )
        config = self.transformer.config
        if config.in_channels != self.vae.config.latent_channels:
            raise ValueError(
                f"HunyuanVideo transformer in_channels={config.in_channels} must equal the VAE's "
                f"latent_channels={self.vae.config.latent_channels}"
            )
        if config.patch_size_t != 1:
            raise ValueError(f"patch_size_t={config.patch_size_t}: features are per latent frame, so it must be 1")
        total = len(self.transformer.transformer_blocks)
        self.num_blocks = num_blocks if 0 < num_blocks <= total else total
        self.timestep, self.guidance = float(timestep), float(guidance)
        self.loss_timestep_sampling = loss_timestep_sampling
        self.feature_channels = config.num_attention_heads * config.attention_head_dim
        # Pixels per feature cell: the VAE's spatial compression, then the transformer's patch.
        self.size_multiple = self.vae.config.spatial_compression_ratio * config.patch_size

    @classmethod
    def check_arguments(cls, arguments: dict[str, Any]) -> None:
        check_flow_options(arguments)

    def feature_grid(self, height: int, width: int) -> tuple[int, int]:
        """One feature cell per transformer token: (height, width) / size_multiple."""
        return height // self.size_multiple, width // self.size_multiple

    def diffusers_modules(self) -> dict[str, torch.nn.Module]:
        return {"transformer": self.transformer, "vae": self.vae}

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) in [0, 1] -> scaled latent means (B, t, c, h, w),
        t = 1 + (T - 1) // 4; surplus frames are dropped from the start, so
        the newest frame is always encoded."""
        surplus = (frames.shape[1] - 1) % self.temporal_compression
        pixels = frames[:, surplus:].transpose(1, 2).to(self.vae.dtype) * 2.0 - 1.0  # (B, 3, T, H, W)
        latents = self.vae.encode(pixels).latent_dist.mode() * self.vae.config.scaling_factor
        return latents.transpose(1, 2)

    def _conditions(self, batch: int, device: torch.device, dtype: torch.dtype):
        """The null text: one zero token (masked in), a zero pooled projection, the guidance."""
        config = self.transformer.config
        text = torch.zeros(batch, 1, config.text_embed_dim, device=device, dtype=dtype)
        mask = torch.ones(batch, 1, device=device, dtype=torch.bool)
        pooled = torch.zeros(batch, config.pooled_projection_dim, device=device, dtype=dtype)
        guidance = torch.full((batch,), self.guidance * 1000.0, device=device, dtype=dtype)
        return text, mask, pooled, guidance

    def features(self, latents: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """One transformer pass on the latents, read after the first `num_blocks`
        dual-stream blocks: (B, t, c, h, w) -> (B, t, C, h / 2, w / 2)."""
        batch, steps, _, height, width = latents.shape
        transformer = self.transformer
        patch = transformer.config.patch_size
        if height % patch or width % patch:
            raise ValueError(f"latent grid {height}x{width} is not divisible by the transformer's patch {patch}")
        sample = latents.transpose(1, 2).to(transformer.dtype)  # (B, c, t, h, w)
        timestep = torch.full((batch,), self.timestep, device=sample.device)
        text, mask, pooled, guidance = self._conditions(batch, sample.device, sample.dtype)

        # HunyuanVideoTransformer3DModel.forward up to its block loop (diffusers 0.42.1).
        rotary = transformer.rope(sample)
        temb, token_replace_emb = transformer.time_text_embed(timestep, pooled, guidance)
        tokens = transformer.x_embedder(sample)
        text = transformer.context_embedder(text, timestep, mask)
        # Every video and text token attends (one text token, never padding).
        attention_mask = torch.ones(
            batch, 1, 1, tokens.shape[1] + text.shape[1], device=sample.device, dtype=torch.bool
        )
        first_frame_tokens = (height // patch) * (width // patch)
        for block in transformer.transformer_blocks[: self.num_blocks]:
            tokens, text = block(tokens, text, temb, attention_mask, rotary, token_replace_emb, first_frame_tokens)

        # The patch embedding flattens its (t, h, w) grid with w fastest.
        grid = tokens.unflatten(1, (steps, height // patch, width // patch))  # (B, t, h', w', C)
        return grid.permute(0, 1, 4, 2, 3)

    def denoising_loss(
        self, latents: torch.Tensor, generator: torch.Generator | None = None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """HunyuanVideo's flow-matching objective on the full transformer:
        with x_s = (1 - s) x0 + s noise, predict the velocity noise - x0."""
        batch = latents.shape[0]
        noise_level = flow_noise_levels(batch, self.loss_timestep_sampling, generator).to(latents.device)
        noise = torch.randn(latents.shape, generator=generator).to(latents)
        scale = noise_level.to(latents.dtype).view(batch, 1, 1, 1, 1)
        noisy = (1.0 - scale) * latents + scale * noise
        transformer = self.transformer
        text, mask, pooled, guidance = self._conditions(batch, latents.device, transformer.dtype)
        prediction = transformer(
            noisy.transpose(1, 2).to(transformer.dtype),
            timestep=noise_level * NUM_TRAIN_TIMESTEPS,
            encoder_hidden_states=text,
            encoder_attention_mask=mask,
            pooled_projections=pooled,
            guidance=guidance,
            return_dict=False,
        )[0]
        return F.mse_loss(prediction.float(), (noise - latents).transpose(1, 2).float())
